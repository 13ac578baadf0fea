"""mmdetection GFL checkpoint import without mmdetection: key names, inferred architecture, errors."""

import re

import pytest
import torch

from gfocal.interop import from_mmdet, mmdet_config_from_state
from gfocal.interop.mmdet import mmdet_key_to_gfocal
from gfocal.models import WeightsError, gfl_small

# The inverse mapping, written independently of the module under test.
_INVERSE = (
    (r"backbone\.body\.(.*)", r"backbone.\1"),
    (r"backbone\.fpn\.inner_blocks\.(\d)\.0\.(\w+)", r"neck.lateral_convs.\1.conv.\2"),
    (r"backbone\.fpn\.layer_blocks\.(\d)\.0\.(\w+)", r"neck.fpn_convs.\1.conv.\2"),
    (r"backbone\.fpn\.extra_blocks\.p6\.(\w+)", r"neck.fpn_convs.3.conv.\1"),
    (r"backbone\.fpn\.extra_blocks\.p7\.(\w+)", r"neck.fpn_convs.4.conv.\1"),
    (r"head\.cls_out\.(\w+)", r"bbox_head.gfl_cls.\1"),
    (r"head\.box_out\.(\w+)", r"bbox_head.gfl_reg.\1"),
    (r"head\.scales\.(\d)\.scale", r"bbox_head.scales.\1.scale"),
)


def to_mmdet_key(key):
    tower = re.fullmatch(r"head\.(cls|reg)_tower\.(\d+)\.(\w+)", key)
    if tower:
        branch, slot, kind = tower.groups()
        return f"bbox_head.{branch}_convs.{int(slot) // 3}.{'gn' if int(slot) % 3 else 'conv'}.{kind}"
    for pattern, replacement in _INVERSE:
        if re.fullmatch(pattern, key):
            return re.sub(pattern, replacement, key)
    raise AssertionError(f"no mmdet name for {key}")


def fake_mmdet_state(model):
    """An mmdetection-style state dict (with BN counters and the Integral's bins) from our model."""
    state = {to_mmdet_key(k): v.clone() for k, v in model.state_dict().items()}
    for key in [k for k in state if k.startswith("backbone.") and k.endswith("running_var")]:
        state[key.replace("running_var", "num_batches_tracked")] = torch.tensor(0)
    state["bbox_head.integral.project"] = torch.linspace(0, model.config.reg_max, model.config.reg_max + 1)
    return state


def source_model(**overrides):
    torch.manual_seed(0)
    model = gfl_small(
        4, min_size=64, max_size=64, backbone_norm="frozen_bn", relu_before_extra_convs=False, **overrides
    )
    with torch.no_grad():  # non-trivial weights everywhere, including BN statistics and scales
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point():
                tensor.copy_(
                    torch.rand_like(tensor) * 0.5 + 0.75
                    if "running_var" in name or "scale" in name
                    else torch.randn_like(tensor) * 0.05
                )
    return model.eval()


@pytest.mark.parametrize(
    "mmdet, ours",
    [
        ("backbone.conv1.weight", "backbone.body.conv1.weight"),
        ("backbone.layer3.1.downsample.1.running_mean", "backbone.body.layer3.1.downsample.1.running_mean"),
        ("backbone.layer4.2.bn3.weight", "backbone.body.layer4.2.bn3.weight"),
        ("neck.lateral_convs.2.conv.bias", "backbone.fpn.inner_blocks.2.0.bias"),
        ("neck.fpn_convs.1.conv.weight", "backbone.fpn.layer_blocks.1.0.weight"),
        ("neck.fpn_convs.3.conv.weight", "backbone.fpn.extra_blocks.p6.weight"),
        ("neck.fpn_convs.4.conv.bias", "backbone.fpn.extra_blocks.p7.bias"),
        ("bbox_head.cls_convs.0.conv.weight", "head.cls_tower.0.weight"),
        ("bbox_head.cls_convs.3.gn.bias", "head.cls_tower.10.bias"),
        ("bbox_head.reg_convs.2.gn.weight", "head.reg_tower.7.weight"),
        ("bbox_head.gfl_cls.bias", "head.cls_out.bias"),
        ("bbox_head.gfl_reg.weight", "head.box_out.weight"),
        ("bbox_head.scales.4.scale", "head.scales.4.scale"),
    ],
)
def test_mmdet_key_names_map_to_ours(mmdet, ours):
    assert mmdet_key_to_gfocal(mmdet) == ours


def test_imported_model_equals_the_source_model():
    model = source_model()
    imported = from_mmdet(fake_mmdet_state(model), image_mean=model.config.image_mean, image_std=model.config.image_std)
    config = imported.config
    assert (config.backbone, config.num_classes, config.fpn_channels, config.feat_channels) == ("resnet18", 4, 96, 96)
    assert (config.stacked_convs, config.reg_max, config.relu_before_extra_convs) == (2, 16, False)
    batch = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        expected, actual = model.scored_outputs(batch), imported.scored_outputs(batch)
    torch.testing.assert_close(actual.scores, expected.scores)
    torch.testing.assert_close(actual.box_outputs, expected.box_outputs)


def test_architecture_is_inferred_from_shapes():
    state = fake_mmdet_state(source_model(backbone="resnet50", stacked_convs=3, reg_max=7, feat_channels=64))
    config = mmdet_config_from_state(state)
    assert (config.backbone, config.stacked_convs, config.reg_max, config.feat_channels) == ("resnet50", 3, 7, 64)
    # mmdetection's preprocessing, in [0, 1] units, and its test-time resize
    torch.testing.assert_close(torch.tensor(config.image_mean) * 255, torch.tensor([123.675, 116.28, 103.53]))
    torch.testing.assert_close(torch.tensor(config.image_std) * 255, torch.tensor([58.395, 57.12, 57.375]))
    assert (config.min_size, config.max_size, config.point_offset) == (800, 1333, 0.0)


def test_unmatched_and_mis_shaped_keys_are_listed_in_one_error():
    state = fake_mmdet_state(source_model())
    state["bbox_head.reg_conf.0.weight"] = torch.zeros(1)  # a GFLv2-style extra branch
    state["neck.fpn_convs.4.conv.weight"] = torch.zeros(96, 96, 1, 1)
    with pytest.raises(WeightsError) as error:
        from_mmdet(state)
    message = str(error.value)
    assert "bbox_head.reg_conf.0.weight" in message and "neck.fpn_convs.4.conv.weight" in message
    assert message.count("\n") == 2  # one error, one line per kind of problem


def test_not_a_gfl_checkpoint_is_refused():
    with pytest.raises(WeightsError, match="not an mmdetection GFL"):
        from_mmdet({"backbone.conv1.weight": torch.zeros(64, 3, 7, 7)})


def test_checkpoint_file_with_state_dict_entry(tmp_path):
    model = source_model()
    path = tmp_path / "gfl_mmdet.pth"
    torch.save({"meta": {"epoch": 12, "CLASSES": ("a", "b", "c", "d")}, "state_dict": fake_mmdet_state(model)}, path)
    imported = from_mmdet(path, class_names=("a", "b", "c", "d"))
    assert imported.class_names == ("a", "b", "c", "d")
    torch.testing.assert_close(imported.head.scales[3].scale, model.head.scales[3].scale)


@pytest.mark.parametrize(
    "zoo_model",
    [
        {"backbone": "resnet101"},  # gfl_r101_fpn_ms-2x_coco
        {"backbone": "resnet101", "deform_stages": (2, 3, 4)},  # gfl_r101-dconv-c3-c5_fpn_ms-2x_coco
        {"backbone": "resnext101_32x4d"},  # gfl_x101-32x4d_fpn_ms-2x_coco
        {"backbone": "resnext101_32x4d", "deform_stages": (3, 4)},  # gfl_x101-32x4d-dconv-c4-c5_fpn_ms-2x_coco
        {"backbone": "resnext101_32x4d", "deform_stages": (2, 3), "deform_modulated": True},  # type='DCNv2'
    ],
)
def test_the_zoo_s_bodies_are_inferred_from_shapes(zoo_model):
    with torch.device("meta"):  # the full-size layouts, without their weights
        state = fake_mmdet_state(gfl_small(80, fpn_channels=256, feat_channels=256, **zoo_model))
    config = mmdet_config_from_state(state)
    expected = {"deform_stages": (), "deform_modulated": False, **zoo_model}
    assert {name: getattr(config, name) for name in expected} == expected


def test_deformable_convs_of_several_deform_groups_are_refused_by_name():
    with torch.device("meta"):
        state = fake_mmdet_state(gfl_small(80, backbone="resnet50", deform_stages=(4,)))
    state["backbone.layer4.0.conv2.conv_offset.weight"] = torch.zeros(36, 512, 3, 3, device="meta")
    with pytest.raises(WeightsError, match=r"\[36\] offset channels"):
        mmdet_config_from_state(state)
