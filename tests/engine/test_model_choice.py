"""The default model fits the device, --image-size reaches the model, slow set-ups are announced, AdamW's groups."""

import logging

import pytest
import torch
import torchvision

from gfocal.engine.build import build_model, build_optimizer, resolve_model_name
from gfocal.engine.config import TrainConfig, load_config
from gfocal.engine.prepare import _warn_if_slow_here
from gfocal.models import WeightsError
from gfocal.models.assigner.task_aligned import TaskAlignedAssigner


def test_auto_is_the_small_model_on_a_cpu_and_the_paper_model_on_a_gpu():
    assert resolve_model_name("auto", torch.device("cpu")) == "gfl_nano"
    assert resolve_model_name("auto", torch.device("cuda")) == "gfl_resnet50_fpn"
    assert resolve_model_name("gfl_resnet18_fpn", torch.device("cpu")) == "gfl_resnet18_fpn"
    assert resolve_model_name("gfl_nano", torch.device("cpu"), imagenet_body=True) == "gfl_nano"


def test_imagenet_weights_pick_a_full_width_body_on_a_cpu_and_gfl_nano_refuses_them_clearly(tmp_path):
    imagenet = tmp_path / "resnet18-imagenet.pth"
    reference = torchvision.models.resnet18()
    torch.save(reference.state_dict(), imagenet)
    built = build_model(TrainConfig(backbone_weights=str(imagenet)), ["a"], torch.device("cpu"))
    assert built.config.backbone == "resnet18" and built.config.backbone_width == 64  # gfl_small
    assert torch.equal(built.backbone.body.layer1[0].conv1.weight, reference.layer1[0].conv1.weight)
    by_override = build_model(TrainConfig(model_overrides={"backbone_weights": str(imagenet)}), ["a"])
    assert by_override.config.backbone_width == 64  # the same choice when the weights come as a model option
    with pytest.raises(WeightsError, match="backbone_width 32.*gfl_small"):
        build_model(TrainConfig(model="gfl_nano", backbone_weights=str(imagenet)), ["a"], torch.device("cpu"))


@pytest.mark.parametrize(
    ("model", "image_size", "expected"),
    [
        ("auto", 320, (320, 320)),  # gfl_nano on this CPU: square
        ("gfl_resnet50_fpn", 1000, (600, 1000)),  # the paper's 800/1333 ratio kept
        ("auto", None, (416, 416)),
    ],
)
def test_image_size_sets_the_model_input_and_is_stored_with_it(model, image_size, expected):
    built = build_model(TrainConfig(model=model, image_size=image_size), ["a"], torch.device("cpu"))
    assert (built.config.min_size, built.config.max_size) == expected


def test_a_large_input_on_a_cpu_is_announced_before_training(caplog):
    with caplog.at_level(logging.WARNING, logger="gfocal"):
        _warn_if_slow_here(build_model(TrainConfig(model="gfl_resnet18_fpn"), ["a"]), torch.device("cpu"))
        _warn_if_slow_here(build_model(TrainConfig(), ["a"]), torch.device("cpu"))
    [warning] = [r.getMessage() for r in caplog.records]
    assert "1333x800 on a CPU" in warning and "gfl_nano" in warning


def test_adamw_does_not_decay_biases_norms_and_scales():
    model = build_model(TrainConfig(), ["a"])
    optimizer = build_optimizer(TrainConfig(optimizer="adamw", weight_decay=0.05), model, 1e-3)
    decayed, undecayed = optimizer.param_groups
    assert decayed["weight_decay"] == 0.05 and undecayed["weight_decay"] == 0.0
    assert all(p.ndim > 1 for p in decayed["params"]) and all(p.ndim <= 1 for p in undecayed["params"])
    assert len(decayed["params"]) + len(undecayed["params"]) == sum(1 for p in model.parameters() if p.requires_grad)
    sgd = build_optimizer(TrainConfig(optimizer="sgd", weight_decay=1e-4), model, 1e-2)
    assert isinstance(sgd, torch.optim.SGD) and sgd.param_groups[0]["weight_decay"] == 1e-4


def test_eval_and_predict_image_size_overrides_the_stored_one(tmp_path):
    from gfocal.models import load_model, save_weights

    path = save_weights(build_model(TrainConfig(model="gfl_resnet18_fpn"), ["a"]), tmp_path / "w.safetensors")
    assert (load_model(path).config.min_size, load_model(path).config.max_size) == (800, 1333)
    resized = load_model(path, image_size=640)
    assert (resized.config.min_size, resized.config.max_size) == (384, 640)  # the stored ratio kept


def test_the_task_aligned_assigner_is_chosen_from_the_command_line():
    overrides = [
        "model_overrides.assigner=task_aligned",
        "model_overrides.quality_label=alignment",
        "model_overrides.tal_topk=10",
        "model_overrides.tal_alpha=0.5",
        "model_overrides.tal_beta=4.0",
    ]
    model = build_model(load_config(overrides=overrides), ["a"], torch.device("cpu"))
    assert model.config.assigner == "task_aligned" and model.config.quality_label == "alignment"
    assert model.criterion.assigner == TaskAlignedAssigner(10, 0.5, 4.0)


@pytest.mark.parametrize("variant", ["retinanet", "fcos-gfl", "tood"])
def test_a_detector_variant_is_chosen_by_id_and_model_overrides_win(variant):
    from gfocal.models.variants import VARIANTS

    config = load_config(overrides=[f"variant={variant}", "model_overrides.focal_gamma=1.5"])
    model = build_model(config, ["a"], torch.device("cpu"))
    for name, value in VARIANTS[variant].overrides.items():
        assert getattr(model.config, name) == value, name
    assert model.config.focal_gamma == 1.5
    overridden = build_model(config.replace(model_overrides={"box": "dfl"}), ["a"], torch.device("cpu"))
    assert overridden.config.box == "dfl"


def test_an_unknown_variant_is_refused_naming_the_known_ones():
    with pytest.raises(ValueError, match="unknown 'retina'.*retinanet-gfl"):
        TrainConfig(variant="retina")
