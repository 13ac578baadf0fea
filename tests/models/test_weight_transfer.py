"""Starting from pretrained weights: class rows matched by name, the report, shape errors, torchvision names offline."""

import pytest
import torch
import torchvision

from gfocal.models import WeightsError, gfl_small
from gfocal.models.pretrained import resolve_backbone_weights, transfer_weights
from support.hub import place_in_cache


def small(names, **overrides):
    return gfl_small(len(names), class_names=tuple(names), min_size=64, max_size=64, **overrides)


@pytest.fixture(scope="module")
def source():
    """A 'pretrained' detector for car, person, bike with non-trivial weights everywhere."""
    torch.manual_seed(1)
    model = small(["car", "person", "bike"])
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.normal_(0, 0.05)
    return model


def transfer(source, names, checkpoint_classes=("car", "person", "bike"), **options):
    torch.manual_seed(2)
    model = small(names)
    fresh = {k: v.clone() for k, v in model.state_dict().items()}
    report = transfer_weights(model, source.state_dict(), checkpoint_classes, "src.safetensors", **options)
    return model, fresh, report


def rows(model):
    return model.head.cls_out.weight, model.head.cls_out.bias


def test_same_names_in_another_order_reorder_the_rows(source):
    model, _, report = transfer(source, ["bike", "car", "person"])
    weight, bias = rows(model)
    torch.testing.assert_close(weight, source.head.cls_out.weight[[2, 0, 1]])
    torch.testing.assert_close(bias, source.head.cls_out.bias[[2, 0, 1]])
    torch.testing.assert_close(model.head.box_out.weight, source.head.box_out.weight)  # everything else as is
    assert report.class_rows == {"bike": "bike", "car": "car", "person": "person"}
    assert report.left_initialised == [] and report.unused == []
    assert report.lines() == [
        f"loaded {len(source.state_dict())} tensors from src.safetensors; "
        "cls_out: all 3 classes from the checkpoint (rows reordered to the dataset's order)"
    ]


def test_some_shared_names_load_those_rows_and_start_the_others_fresh(source):
    model, fresh, report = transfer(source, ["person", "dog", "car"])
    weight, bias = rows(model)
    torch.testing.assert_close(weight[[0, 2]], source.head.cls_out.weight[[1, 0]])
    torch.testing.assert_close(weight[1], fresh["head.cls_out.weight"][1])
    prior = -torch.log(torch.tensor((1 - 0.01) / 0.01))
    torch.testing.assert_close(bias[1], prior)  # a new class gets the prior-probability bias of a fresh head
    assert report.class_rows == {"person": "person", "dog": None, "car": "car"}
    assert report.lines()[-1].endswith("cls_out: 2 of 3 classes from the checkpoint (person, car), 1 new (dog)")


def test_no_shared_name_reinitialises_the_layer_and_keeps_the_rest(source):
    model, fresh, report = transfer(source, ["cat", "dog"])
    torch.testing.assert_close(rows(model)[0], fresh["head.cls_out.weight"])
    torch.testing.assert_close(model.head.cls_tower[0].weight, source.head.cls_tower[0].weight)
    assert "head.cls_out.weight" not in report.loaded and "backbone.body.conv1.weight" in report.loaded
    assert report.lines()[-1].endswith("cls_out: re-initialised, no class taken from the checkpoint (2 new: cat, dog)")


def test_unnamed_classes_start_fresh_unless_taken_by_order(source):
    model, fresh, _ = transfer(source, ["a", "b", "c"], checkpoint_classes=None)
    torch.testing.assert_close(rows(model)[0], fresh["head.cls_out.weight"])
    model, _, report = transfer(source, ["a", "b", "c"], checkpoint_classes=None, by_order=True)
    torch.testing.assert_close(rows(model)[0], source.head.cls_out.weight)
    assert report.class_rows == {"a": "class 0", "b": "class 1", "c": "class 2"}
    assert report.lines()[-1].endswith("cls_out: all 3 classes from the checkpoint (same order)")
    with pytest.raises(
        WeightsError, match=r"by_order needs as many classes in the checkpoint \(3\) as in the dataset \(2\)"
    ):
        transfer(source, ["a", "b"], checkpoint_classes=None, by_order=True)


def test_tensors_only_on_one_side_are_reported_not_errors(source):
    torch.manual_seed(2)
    model = small(["car"], dgqp=True, reg_max=16)  # DGQP layers the source lacks
    state = {**source.state_dict(), "head.extra.weight": torch.zeros(1)}
    report = transfer_weights(model, state, ("car", "person", "bike"), "src")
    assert report.left_initialised == sorted(k for k in model.state_dict() if k.startswith("head.dgqp."))
    assert report.unused == ["head.extra.weight"]
    assert any(
        line.startswith("4 model tensors not in the checkpoint, left as initialised: head.dgqp.0.bias")
        for line in report.lines()
    )
    assert report.to_dict()["unused"] == ["head.extra.weight"]


@pytest.mark.parametrize(
    "changes, tensor", [({"reg_max": 8}, "head.box_out.weight"), ({"feat_channels": 64}, "head.cls_tower.0.weight")]
)
def test_another_architecture_is_an_error_naming_tensors_and_the_fix(source, changes, tensor):
    model = small(["car"], **changes)
    with pytest.raises(WeightsError) as error:
        transfer_weights(model, source.state_dict(), ("car", "person", "bike"), "src.safetensors")
    message = str(error.value)
    assert message.startswith("src.safetensors: ") and tensor in message and "checkpoint (" in message
    assert "Leave out --model" in message


# --- torchvision weights names, offline --------------------------------------------------------------------------


def place_resnet18_in_cache(weights):
    """A randomly initialised, correctly keyed ResNet-18 state dict where torch hub caches ``weights``."""
    torch.manual_seed(3)
    return place_in_cache(weights, torchvision.models.resnet18())


@pytest.mark.parametrize("name", ["DEFAULT", "IMAGENET1K_V1", "ResNet18_Weights.IMAGENET1K_V1"])
def test_a_weights_name_finds_the_file_in_the_torch_hub_cache(offline_hub, name):
    path, _ = place_resnet18_in_cache(torchvision.models.ResNet18_Weights.IMAGENET1K_V1)
    assert path == offline_hub / "checkpoints" / "resnet18-f37072fd.pth"
    assert resolve_backbone_weights(name, "resnet18") == path


def test_a_model_from_a_weights_name_gets_those_weights_and_the_frozen_recipe(offline_hub):
    _, state = place_resnet18_in_cache(torchvision.models.ResNet18_Weights.IMAGENET1K_V1)
    model = small(["a"], backbone_weights="DEFAULT")
    torch.testing.assert_close(model.backbone.body.layer1[0].conv1.weight, state["layer1.0.conv1.weight"])
    assert model.config.backbone_norm == "frozen_bn" and model.config.trainable_backbone_layers == 3
    assert not model.backbone.body.conv1.weight.requires_grad


def test_offline_without_the_file_says_which_file_to_place_where(offline_hub):
    with pytest.raises(WeightsError) as error:
        resolve_backbone_weights("DEFAULT", "resnet50")
    message = str(error.value)
    expected = offline_hub / "checkpoints" / "resnet50-11ad3fa6.pth"  # DEFAULT of ResNet-50 is IMAGENET1K_V2
    assert "ResNet50_Weights.IMAGENET1K_V2" in message and "Temporary failure in name resolution" in message
    assert f"place that file at {expected} or pass its path to --backbone-weights" in message
    assert "\n" not in message


def test_a_file_path_is_used_as_is_and_a_bad_name_lists_the_names(offline_hub, tmp_path):
    file = tmp_path / "mine.pth"
    file.write_bytes(b"")
    assert resolve_backbone_weights(str(file), "resnet18") == file
    with pytest.raises(
        WeightsError,
        match=r"'missing\.pth': no such file, and not a torchvision weights name of "
        r"resnet18 \(names: DEFAULT, IMAGENET1K_V1",
    ):
        resolve_backbone_weights("missing.pth", "resnet18")
    with pytest.raises(WeightsError, match="are ResNet50_Weights, not weights of a resnet18 body"):
        resolve_backbone_weights("ResNet50_Weights.IMAGENET1K_V2", "resnet18")
