"""Training from pretrained weights: the three sources, the architecture they bring, the report, the recipe."""

import json

import pytest
import torch

from gfocal.data.synthetic import make_synthetic_splits
from gfocal.engine import TrainConfig, load_config, train
from gfocal.engine.build import TrainSetupError
from gfocal.engine.distributed import DistInfo
from gfocal.engine.prepare import prepare_run
from gfocal.engine.pretrained import read_pretrained
from gfocal.models import WeightsError, gfl_small, load_model, save_weights

SHAPES = ("rectangle", "ellipse", "triangle", "cross")


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    """A 'pretraining' set with the four default shapes and a target set with other classes, 64 px."""
    root = tmp_path_factory.mktemp("pretrained_data")
    options = dict(num_train=4, num_val=2, image_size=(64, 64), size_range=(12, 40), objects_per_image=(1, 3))
    source = make_synthetic_splits(root / "source", "demo", seed=0, **options)
    target = make_synthetic_splits(
        root / "target", "demo", seed=1, classes=("ellipse", "diamond", "rectangle"), **options
    )
    return source, target


@pytest.fixture(scope="module")
def pretrained_run(datasets, tmp_path_factory):
    """One short gfocal run on the source set: its model.safetensors and last.pt are the pretrained files."""
    (train_json, val_json), _ = datasets
    out = tmp_path_factory.mktemp("pretrain") / "run"
    config = TrainConfig(
        model="gfl_small",
        model_overrides={"min_size": 64, "max_size": 64},
        train_data=str(train_json),
        epochs=1,
        batch_size=4,
        warmup_iters=1,
        workers=0,
        precision="fp32",
        out_dir=str(out),
    )
    return train(config)


def finetune_config(datasets, tmp_path, **changes):
    _, (train_json, val_json) = datasets
    values = dict(
        train_data=str(train_json),
        val_data=str(val_json),
        epochs=1,
        batch_size=4,
        warmup_iters=1,
        workers=0,
        precision="fp32",
        out_dir=str(tmp_path / "finetune"),
    )
    return TrainConfig(**{**values, **changes})


@pytest.mark.slow
def test_a_gfocal_weights_file_brings_its_architecture_and_its_shared_classes(
    datasets, pretrained_run, tmp_path, caplog
):
    config = finetune_config(datasets, tmp_path, weights=str(pretrained_run.weights))
    source = load_model(pretrained_run.weights)
    with caplog.at_level("INFO", logger="gfocal.engine.prepare"):
        run = prepare_run(config, DistInfo(), torch.device("cpu"), None, None)
    model = run.module
    assert (model.config.min_size, model.config.fpn_channels) == (64, 96)  # the file's, not gfl_small's defaults (320)
    assert model.config.class_names == ("ellipse", "diamond", "rectangle")
    torch.testing.assert_close(model.backbone.body.conv1.weight, source.backbone.body.conv1.weight)
    # ellipse is the source's class 1, rectangle its class 0; diamond is new.
    torch.testing.assert_close(model.head.cls_out.weight[[0, 2]], source.head.cls_out.weight[[1, 0]])
    assert run.ema is not None
    torch.testing.assert_close(
        run.ema.module.head.cls_out.weight, model.head.cls_out.weight
    )  # the EMA starts there too
    line = "cls_out: 2 of 3 classes from the checkpoint (ellipse, rectangle), 1 new (diamond)"
    assert any(r.getMessage().endswith(line) and r.getMessage().startswith("loaded ") for r in caplog.records)
    report = json.loads((tmp_path / "finetune" / "pretrained.json").read_text())
    assert report["kind"] == "gfocal weights" and report["class_rows"] == {
        "ellipse": "ellipse",
        "diamond": None,
        "rectangle": "rectangle",
    }
    assert "backbone.body.conv1.weight" in report["loaded"] and report["lines"][-1].endswith(line)


@pytest.mark.slow
def test_fine_tuning_from_a_training_checkpoint_trains_and_exports_the_new_classes(datasets, pretrained_run, tmp_path):
    config = finetune_config(datasets, tmp_path, weights=str(pretrained_run.last_checkpoint))
    result = train(config)
    report = json.loads((result.out_dir / "pretrained.json").read_text())
    assert report["kind"] == "gfocal training checkpoint"
    assert report["lines"][0].endswith("a gfocal training checkpoint; its EMA weights are used")
    assert load_model(result.weights).config.class_names == ("ellipse", "diamond", "rectangle")
    assert result.final_metrics is not None


@pytest.mark.slow
def test_a_named_model_of_another_architecture_is_a_setup_error(datasets, pretrained_run, tmp_path):
    config = finetune_config(
        datasets,
        tmp_path,
        weights=str(pretrained_run.weights),
        model="gfl_small",
        model_overrides={"min_size": 64, "max_size": 64, "reg_max": 8},
    )
    with pytest.raises(
        TrainSetupError, match=r"head\.box_out\.weight: checkpoint \(68, 96, 3, 3\) vs model \(36, 96, 3, 3\)"
    ):
        prepare_run(config, DistInfo(), torch.device("cpu"), None, None)


def test_read_pretrained_tells_the_sources_apart(tmp_path):
    torch.manual_seed(0)
    model = gfl_small(4, class_names=SHAPES, min_size=64, max_size=64)
    safetensors = save_weights(model, tmp_path / "w.safetensors")
    assert read_pretrained(safetensors).class_names == SHAPES
    torch.save({"model": model.state_dict(), "ema": None, "model_config": model.config.to_dict()}, tmp_path / "last.pt")
    checkpoint = read_pretrained(tmp_path / "last.pt")
    assert checkpoint.kind == "gfocal training checkpoint" and "raw (no EMA kept)" in checkpoint.notes[0]
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match=r"junk\.pth: cannot read it with torch\.load\(weights_only=True\)"):
        read_pretrained(tmp_path / "junk.pth")
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(WeightsError, match=r"other\.pth: not an mmdetection GFL"):
        read_pretrained(tmp_path / "other.pth")
    with pytest.raises(WeightsError, match="pretrained weights file not found"):
        read_pretrained(tmp_path / "missing.safetensors")


def test_pretrained_weights_train_with_the_default_recipe_unless_another_is_named():
    default = load_config()
    for pretrained in ("weights=w.safetensors", "backbone_weights=DEFAULT", "model_overrides.backbone_weights=r18.pth"):
        tuned = load_config(overrides=[pretrained])
        assert (tuned.lr, tuned.warmup_iters, tuned.schedule) == (default.lr, default.warmup_iters, default.schedule)
    assert (default.lr, default.warmup_iters, default.schedule) == (0.002, 100, "cosine")
    named = load_config(overrides=["weights=w.safetensors"], recipe="finetune")
    assert (named.lr, named.warmup_iters) == (0.001, 20)
    own = load_config(overrides=["weights=w.safetensors", "lr=0.004"], recipe="finetune")
    assert (own.lr, own.warmup_iters) == (0.004, 20)  # a field set wins; the others keep the recipe's
    assert load_config(overrides=["weights=w.safetensors"], recipe="paper").lr == 0.01
    assert load_config().lr == 0.002  # from scratch: the default recipe
    with pytest.raises(ValueError, match="weights and backbone_weights both set"):
        load_config(overrides=["weights=w.safetensors", "backbone_weights=DEFAULT"])
