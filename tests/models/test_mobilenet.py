"""A backbone that is not a ResNet, through the backbone contract: MobileNetV3-Large as ``gfl_mobilenetv3_fpn``.

Its ImageNet weights by name are a random network's state dict placed in an offline torch hub cache
(``support.hub``): every key and shape of torchvision's file, nothing downloaded.
"""

import pytest
import torch
import torchvision
from torchvision.models import MobileNet_V3_Large_Weights

from gfocal.models import ModelConfig, WeightsError, gfl_mobilenetv3_fpn, load_model, save_weights
from gfocal.models.backbone import FrozenBatchNorm
from gfocal.models.components import build_backbone
from gfocal.models.precision import prepare_for_inference
from support.hub import place_in_cache

SMALL = {"fpn_channels": 32, "feat_channels": 32, "norm_groups": 16, "stacked_convs": 1, "min_size": 64, "max_size": 64}


def test_the_body_is_torchvision_s_features_read_at_strides_8_16_32_plus_two_extra_levels():
    backbone = build_backbone(
        ModelConfig(num_classes=1, backbone="mobilenet_v3_large", fpn_channels=32, norm_groups=16)
    )
    theirs = torchvision.models.mobilenet_v3_large().state_dict()
    ours = backbone.body.state_dict()
    assert {k: v.shape for k, v in ours.items()} == {
        k: v.shape for k, v in theirs.items() if not k.startswith("classifier.")
    }
    x = torch.rand(1, 3, 96, 64)
    assert [tuple(c.shape) for c in backbone.body(x)] == [(1, 40, 12, 8), (1, 112, 6, 4), (1, 960, 3, 2)]
    assert [tuple(p.shape) for p in backbone(x)] == [(1, 32, 96 // s, 64 // s) for s in (8, 16, 32)] + [
        (1, 32, 2, 1),
        (1, 32, 1, 1),
    ]
    assert {k for k in backbone.state_dict() if "extra_blocks" in k} == {
        f"fpn.extra_blocks.{level}.{p}" for level in ("p6", "p7") for p in ("weight", "bias")
    }


def test_imagenet_weights_by_name_load_from_the_cache_with_frozen_batchnorm_and_stem(offline_hub):
    torch.manual_seed(5)
    _, state = place_in_cache(MobileNet_V3_Large_Weights.IMAGENET1K_V1, torchvision.models.mobilenet_v3_large())
    model = gfl_mobilenetv3_fpn(num_classes=2, backbone_weights="IMAGENET1K_V1", **SMALL)
    body = model.backbone.body
    torch.testing.assert_close(body.features[7].block[0][0].weight, state["features.7.block.0.0.weight"])
    batchnorms = [m for m in body.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    frozen = [m for m in body.modules() if isinstance(m, FrozenBatchNorm)]
    assert batchnorms == [] and len(frozen) > 30 and all(m.eps == 1e-3 for m in frozen)  # MobileNetV3's eps kept
    torch.testing.assert_close(body.features[16][1].running_var, state["features.16.1.running_var"])
    # trainable_backbone_layers=3 of its 5 stages: the stem (blocks 0-1) and the stride-4 stage (2-3) frozen
    trainable = {int(name.split(".")[1]) for name, p in body.named_parameters() if p.requires_grad}
    assert trainable == set(range(4, 17))


def test_offline_without_the_file_the_name_fails_in_one_line_naming_the_file(offline_hub):
    with pytest.raises(WeightsError) as error:
        gfl_mobilenetv3_fpn(num_classes=2, backbone_weights="DEFAULT", **SMALL)
    message = str(error.value)
    expected = offline_hub / "checkpoints" / "mobilenet_v3_large-5c1a4163.pth"  # DEFAULT is IMAGENET1K_V2
    assert "MobileNet_V3_Large_Weights.IMAGENET1K_V2" in message and f"place that file at {expected}" in message
    assert "\n" not in message


def test_a_few_training_steps_on_a_tiny_image_then_folded_inference_and_a_round_trip(tmp_path):
    torch.manual_seed(0)
    model = gfl_mobilenetv3_fpn(num_classes=2, **SMALL)
    images = [torch.rand(3, 64, 64)]
    targets = [{"boxes": torch.tensor([[8.0, 10.0, 50.0, 56.0]]), "labels": torch.tensor([1])}]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    before = model.backbone.body.features[0][0].weight.detach().clone()
    losses = []
    for _ in range(3):
        loss = sum(model(images, targets).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses))) and model.last_stats["num_pos"] > 0
    assert not torch.equal(model.backbone.body.features[0][0].weight, before)  # from scratch everything trains
    model.eval()
    batch = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        expected = model.scored_outputs(batch).scores
        reloaded = load_model(save_weights(model, tmp_path / "mobilenet.safetensors")).eval()
        torch.testing.assert_close(reloaded.scored_outputs(batch).scores, expected)
        folded = prepare_for_inference(model, channels_last=False)  # conv + BatchNorm pairs fold
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.backbone.body.modules())
        torch.testing.assert_close(folded.scored_outputs(batch).scores, expected, atol=1e-5, rtol=1e-4)


def test_resnet_options_and_stage_counts_it_does_not_have_are_refused():
    with pytest.raises(ValueError, match="'mobilenet_v3_large' does not read deform_stages"):
        gfl_mobilenetv3_fpn(num_classes=1, deform_stages=(3,), **SMALL)
    with pytest.raises(ValueError, match=r"trainable_backbone_layers must be in \[0, 5\] for MobileNetV3Body, got 6"):
        gfl_mobilenetv3_fpn(num_classes=1, trainable_backbone_layers=6, **SMALL)
