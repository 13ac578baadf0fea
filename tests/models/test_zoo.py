"""The paper's model zoo as named models: R-101, R-101-DCN, X-101-32x4d, X-101-32x4d-DCN (mmdetection's GFL configs).

The named models are built scaled down here (the full ones are 50-60 M parameters); their layout at full
width is checked in test_backbone.py and against mmdetection in tests/interop.
"""

import pytest
import torch

from gfocal.models import MODELS, WeightsError, load_model, save_weights
from gfocal.models.deform_conv import DeformConv2d
from gfocal.models.precision import prepare_for_inference

TINY = {"backbone_width": 16, "fpn_channels": 32, "feat_channels": 32, "norm_groups": 16, "stacked_convs": 1}


@pytest.mark.parametrize(
    ("name", "defaults"),
    [
        ("gfl_resnet101_fpn", {"backbone": "resnet101"}),
        ("gfl_resnet101_dcn_fpn", {"backbone": "resnet101", "deform_stages": (2, 3, 4)}),  # dconv-c3-c5
        ("gfl_resnext101_32x4d_fpn", {"backbone": "resnext101_32x4d"}),
        ("gfl_resnext101_32x4d_dcn_fpn", {"backbone": "resnext101_32x4d", "deform_stages": (3, 4)}),  # dconv-c4-c5
    ],
)
def test_the_zoo_s_models_are_named_as_mmdetection_s_configs(name, defaults):
    assert MODELS[name].defaults == defaults


def test_the_deformable_resnext_trains_folds_for_inference_and_round_trips(tmp_path):
    torch.manual_seed(0)
    model = MODELS["gfl_resnext101_32x4d_dcn_fpn"](num_classes=2, min_size=128, max_size=128, **TINY)
    deformable = [m for m in model.backbone.body.modules() if isinstance(m, DeformConv2d)]
    assert len(deformable) == 23 + 3 and not any(m.modulated for m in deformable)  # DCN v1, as the zoo's
    images = [torch.rand(3, 128, 128), torch.rand(3, 96, 128)]
    targets = [{"boxes": torch.tensor([[8.0, 10.0, 80.0, 90.0]]), "labels": torch.tensor([1])}] * 2
    sum(model(images, targets).values()).backward()
    assert all(m.conv_offset.weight.grad is not None for m in deformable)  # the offsets learn
    model.eval()
    with torch.no_grad():
        batch = torch.randn(1, 3, 128, 128)
        expected = model.scored_outputs(batch).scores
        path = save_weights(model, tmp_path / "x101_dcn.safetensors")
        reloaded = load_model(path).eval()
        assert reloaded.config.deform_stages == (3, 4)
        torch.testing.assert_close(reloaded.scored_outputs(batch).scores, expected)
        # BatchNorm after a deformable conv stays unfolded; the rest folds; outputs unchanged
        folded = prepare_for_inference(model, channels_last=False)
        torch.testing.assert_close(folded.scored_outputs(batch).scores, expected, atol=1e-5, rtol=1e-4)
    path.unlink()


def test_resnext101_32x4d_imagenet_weights_are_not_torchvision_s_and_the_error_says_where_they_are():
    with (
        torch.device("meta"),
        pytest.raises(WeightsError, match="torchvision has ResNeXt-101 32x8d and 64x4d, not 32x4d.*open-mmlab"),
    ):
        MODELS["gfl_resnext101_32x4d_fpn"](num_classes=1, backbone_weights="DEFAULT")
