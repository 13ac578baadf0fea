"""The ResNet and ResNeXt bodies at torchvision's width and scaled, with deformable stages: channels, strides,
cost, and what fits ImageNet weights."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from torchvision.models import resnet

from gfocal.models import gfl_nano, gfl_small
from gfocal.models.components import build_backbone
from gfocal.models.config import ModelConfig
from gfocal.models.deform_conv import DeformConv2d


def _multiply_adds(forward, size: int) -> float:
    with FlopCounterMode(display=False) as counter:
        forward(torch.rand(1, 3, size, size))
    return counter.get_total_flops() / 2


def _body(body, x):
    x = body.maxpool(body.relu(body.bn1(body.conv1(x))))
    return body.layer4(body.layer3(body.layer2(body.layer1(x))))


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_width_64_is_torchvision_s_network_so_its_weights_fit(name):
    ours = build_backbone(ModelConfig(num_classes=1, backbone=name)).body.state_dict()
    theirs = {k: v for k, v in getattr(resnet, name)(weights=None).state_dict().items() if not k.startswith("fc.")}
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}


@pytest.mark.parametrize(
    ("name", "stage_channels"), [("resnet18", (32, 64, 128, 256)), ("resnet50", (128, 256, 512, 1024))]
)
def test_a_scaled_body_has_torchvision_s_layout_at_the_new_width(name, stage_channels):
    body = build_backbone(ModelConfig(num_classes=1, backbone=name, backbone_width=32)).body
    assert body.torchvision_name is None  # no ImageNet weights by name for a scaled body
    reference = getattr(resnet, name)(weights=None)
    x = torch.rand(1, 3, 64, 64)
    x = body.maxpool(body.relu(body.bn1(body.conv1(x))))
    for index, channels in enumerate(stage_channels, start=1):
        stage, reference_stage = getattr(body, f"layer{index}"), getattr(reference, f"layer{index}")
        assert len(stage) == len(reference_stage)  # blocks per stage, as torchvision's
        x = stage(x)
        assert x.shape[1] == channels and x.shape[-1] == 64 // (4 * 2 ** (index - 1))


def test_a_scaled_detector_gives_every_level_at_its_stride_and_trains():
    model = gfl_nano(num_classes=2)
    features = model.backbone(torch.rand(2, 3, 128, 96))
    assert [tuple(f.shape) for f in features] == [(2, 64, 128 // s, 96 // s) for s in (8, 16, 32)] + [
        (2, 64, 2, 2),
        (2, 64, 1, 1),
    ]
    losses = model(
        [torch.rand(3, 120, 90)], [{"boxes": torch.tensor([[10.0, 10.0, 60.0, 70.0]]), "labels": torch.tensor([1])}]
    )
    sum(losses.values()).backward()
    assert all(p.grad is not None for p in model.backbone.body.parameters())


def test_half_width_quarters_the_body_s_cost_and_nano_costs_half_of_small():
    full = build_backbone(ModelConfig(num_classes=1, backbone="resnet18")).body
    half = build_backbone(ModelConfig(num_classes=1, backbone="resnet18", backbone_width=32)).body
    ratio = _multiply_adds(lambda x: _body(half, x), 224) / _multiply_adds(lambda x: _body(full, x), 224)
    assert 0.24 < ratio < 0.3  # the stem's 3 input channels do not halve
    nano, small = gfl_nano(num_classes=1).eval(), gfl_small(num_classes=1).eval()
    nano_cost = _multiply_adds(lambda x: nano.head(nano.backbone(x)), 416)
    assert nano_cost < 0.6 * _multiply_adds(lambda x: small.head(small.backbone(x)), 320)


def test_a_width_below_one_channel_is_refused():
    with pytest.raises(ValueError, match="backbone_width"):
        ModelConfig(num_classes=1, backbone_width=0)


def test_resnext50_at_width_64_is_torchvision_s_network_so_its_weights_fit():
    ours = build_backbone(ModelConfig(num_classes=1, backbone="resnext50_32x4d")).body.state_dict()
    theirs = {k: v for k, v in resnet.resnext50_32x4d(weights=None).state_dict().items() if not k.startswith("fc.")}
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}


def test_resnext101_32x4d_has_mmdetection_s_widths_and_deformable_stages():
    """mmdetection's ResNeXt: 3x3 width floor(planes * 4 / 64) * 32 for planes 64..512, its stride on the 3x3
    conv; stage_with_dcn=(False, False, True, True) makes every 3x3 conv of C4 and C5 deformable."""
    config = ModelConfig(num_classes=1, backbone="resnext101_32x4d", deform_stages=(3, 4))
    with torch.device("meta"):  # ResNeXt-101's layout without its 42 M parameters
        body = build_backbone(config).body
    state = body.state_dict()
    for stage, planes in zip(range(1, 5), (64, 128, 256, 512)):
        width = planes * 4 // 64 * 32
        assert len(getattr(body, f"layer{stage}")) == (3, 4, 23, 3)[stage - 1]
        assert state[f"layer{stage}.0.conv2.weight"].shape == (width, 4 * 2 ** (stage - 1), 3, 3)
        assert state[f"layer{stage}.0.conv3.weight"].shape == (planes * 4, width, 1, 1)
        deformable = [isinstance(block.conv2, DeformConv2d) for block in getattr(body, f"layer{stage}")]
        assert all(deformable) if stage in (3, 4) else not any(deformable)
    # mmcv's DeformConv2dPack (type='DCN'): 2 x 3 x 3 offset channels, no mask
    assert state["layer3.22.conv2.conv_offset.weight"].shape == (18, 512, 3, 3)
    assert body.layer3[0].conv2.stride == 2 and "layer2.0.conv2.conv_offset.bias" not in state


def test_a_deformable_body_with_zero_offsets_computes_the_plain_body_and_takes_its_weights(tmp_path):
    torch.manual_seed(0)
    plain = build_backbone(ModelConfig(num_classes=1, backbone="resnet50", backbone_width=16)).eval()
    path = tmp_path / "plain_body.pth"
    torch.save(plain.body.state_dict(), path)
    deformable = build_backbone(
        ModelConfig(num_classes=1, backbone="resnet50", backbone_width=16, deform_stages=(2, 3, 4))
    ).eval()
    deformable.load_imagenet(path)  # the offset convs are not in the file: they stay zero
    deformable.fpn.load_state_dict(plain.fpn.state_dict())
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        for ours, expected in zip(deformable(x), plain(x)):
            torch.testing.assert_close(ours, expected, atol=1e-4, rtol=1e-4)
    path.unlink()


def test_deformable_stages_and_resnext_widths_are_checked():
    with pytest.raises(ValueError, match="bottleneck"):
        build_backbone(ModelConfig(num_classes=1, backbone="resnet18", deform_stages=(4,)))
    with pytest.raises(ValueError, match="deform_stages"):
        ModelConfig(num_classes=1, deform_stages=(5,))
    assert ModelConfig(num_classes=1, deform_stages=[3, 4]).deform_stages == (3, 4)  # as YAML gives it
    with pytest.raises(ValueError, match="backbone_width >= 16"):
        build_backbone(ModelConfig(num_classes=1, backbone="resnext50_32x4d", backbone_width=8))


@pytest.mark.parametrize("strides", [(8, 16, 32), (8, 16, 32, 64)])
def test_extra_levels_are_the_strides_beyond_the_body_s_each_doubling(strides):
    config = ModelConfig(num_classes=1, backbone="resnet18", backbone_width=16, fpn_channels=32, strides=strides)
    backbone = build_backbone(config)
    assert [f.shape[-1] for f in backbone(torch.rand(1, 3, 128, 128))] == [128 // s for s in strides]
    assert sorted({k.split(".")[2] for k in backbone.state_dict() if "extra_blocks" in k}) == (
        ["p6"] if len(strides) == 4 else []
    )
    with pytest.raises(ValueError, match=r"gives strides \(8, 16, 32\); strides must start with them and double"):
        build_backbone(config.replace(strides=(8, 16, 32, 96)))


def test_frozen_batchnorm_and_stages_are_the_body_s_whatever_the_network():
    config = ModelConfig(num_classes=1, backbone="resnet18", backbone_width=16, backbone_norm="frozen_bn")
    body = build_backbone(config.replace(trainable_backbone_layers=2)).body
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in body.modules())
    trainable = {name.split(".")[0] for name, p in body.named_parameters() if p.requires_grad}
    assert trainable == {"layer3", "layer4"}
    with pytest.raises(ValueError, match=r"trainable_backbone_layers must be in \[0, 5\] for ResNetBody, got 6"):
        build_backbone(config.replace(trainable_backbone_layers=6))
