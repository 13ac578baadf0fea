import torch

from gfocal.engine import TrainConfig, TrainData, train
from gfocal.engine.precision import autocast_factory, make_grad_scaler, resolve_precision
from standin import RandomDetections, TinyDetector, collate

CPU = torch.device("cpu")


def test_auto_is_fp32_on_cpu_and_only_fp16_gets_a_scaler():
    assert resolve_precision("auto", CPU) == "fp32" and resolve_precision("bf16", CPU) == "bf16"
    assert make_grad_scaler("fp16", CPU) is not None
    assert make_grad_scaler("bf16", CPU) is None and make_grad_scaler("fp32", CPU) is None


def test_bf16_autocast_on_cpu():
    layer = torch.nn.Linear(4, 4)
    with autocast_factory("bf16", CPU)():
        assert layer(torch.randn(2, 4)).dtype == torch.bfloat16
    with autocast_factory("fp32", CPU)():
        assert layer(torch.randn(2, 4)).dtype == torch.float32


def test_bf16_channels_last_training_runs_and_keeps_float32_weights(tmp_path):
    torch.manual_seed(0)
    config = TrainConfig(model="standin", epochs=1, batch_size=4, warmup_iters=1, step_epochs=(), workers=0,
                         precision="bf16", channels_last=True, out_dir=str(tmp_path))
    model = TinyDetector()
    result = train(config, model=model, data=TrainData(RandomDetections(8), collate))
    assert result.iterations == 2 and result.final_metrics is None and result.best_checkpoint is None
    assert model.conv.weight.dtype == torch.float32
    assert model.conv.weight.is_contiguous(memory_format=torch.channels_last)
