import warnings

import torch

from gfocal.engine import TrainConfig, TrainData, train
from support.standin import RandomDetections, TinyDetector, collate


def test_bf16_channels_last_training_runs_and_keeps_float32_weights(tmp_path):
    torch.manual_seed(0)
    config = TrainConfig(
        model="standin",
        epochs=1,
        batch_size=4,
        warmup_iters=1,
        step_epochs=(),
        workers=0,
        precision="bf16",
        channels_last=True,
        out_dir=str(tmp_path),
    )
    model = TinyDetector()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "bf16 on a CPU without native bf16" on older CPUs
        result = train(config, model=model, data=TrainData(RandomDetections(8), collate))
    assert result.iterations == 2 and result.final_metrics is None and result.best_checkpoint is None
    assert model.conv.weight.dtype == torch.float32
    assert model.conv.weight.is_contiguous(memory_format=torch.channels_last)


def test_compile_applies_to_the_trained_module_not_the_ema_copy(tmp_path, monkeypatch):
    import gfocal.engine.prepare as prepare_module

    compiled = []
    monkeypatch.setattr(prepare_module, "compile_network", compiled.append)  # the wiring, without compile's minute
    config = TrainConfig(
        model="standin",
        epochs=1,
        batch_size=4,
        warmup_iters=1,
        step_epochs=(),
        workers=0,
        ema=True,
        precision="fp32",
        compile=True,
        out_dir=str(tmp_path),
    )
    model = TinyDetector()
    train(config, model=model, data=TrainData(RandomDetections(8), collate))
    assert compiled == [model]
