"""Precision resolution, BN folding and the bf16 fast path's parity with float32."""

import pytest
import torch

from gfocal.models import gfl_nano, gfl_small
from gfocal.models.precision import autocast, cpu_has_native_bf16, prepare_for_inference, resolve_precision


def trained_like_model(factory=gfl_small):
    torch.manual_seed(0)
    model = factory(3, min_size=128, max_size=128)
    # Non-trivial BN statistics and a confident head, so parity is checked on real detections.
    with torch.no_grad():
        for module in model.backbone.body.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
        model.head.cls_out.bias.fill_(0.0)
    return model.eval()


def test_auto_resolves_by_hardware_and_explicit_names_are_kept():
    auto = resolve_precision("auto", "cpu")
    assert auto.name == ("bf16" if cpu_has_native_bf16() else "fp32") and auto.reason
    assert resolve_precision("fp32", "cpu").dtype is None
    assert resolve_precision("bf16", "cpu").dtype is torch.bfloat16
    with pytest.raises(ValueError, match="fp16 autocast is for CUDA"):
        resolve_precision("fp16", "cpu")
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_precision("half", "cpu")


@pytest.mark.parametrize("factory", [gfl_small, gfl_nano])  # torchvision's ResNet and the scaled one
def test_folding_batchnorm_and_channels_last_keep_the_outputs(factory):
    model = trained_like_model(factory)
    image = torch.rand(3, 128, 128)
    with torch.no_grad():
        reference = model.scored_outputs(model.transform([image])[0].tensors)
        prepare_for_inference(model)
        fast = model.scored_outputs(model.transform([image])[0].tensors.contiguous(memory_format=torch.channels_last))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.backbone.body.modules())
    torch.testing.assert_close(fast.scores, reference.scores, atol=1e-4, rtol=1e-3)
    torch.testing.assert_close(fast.box_outputs, reference.box_outputs, atol=1e-3, rtol=1e-3)


@pytest.mark.skipif(not cpu_has_native_bf16(), reason="this CPU has no native bf16 (AVX512-BF16/AMX)")
def test_bf16_detections_match_fp32():
    model = prepare_for_inference(trained_like_model())
    images = [torch.rand(3, 128, 128) for _ in range(2)]
    with torch.inference_mode():
        fp32 = model(images)
        with autocast(resolve_precision("bf16", "cpu")):
            bf16 = model(images)
    for a, b in zip(fp32, bf16):
        assert b["boxes"].dtype == torch.float32 and b["scores"].dtype == torch.float32
        top = a["scores"].argsort(descending=True)[:20]
        from torchvision.ops import box_iou

        iou = box_iou(a["boxes"][top], b["boxes"]) * (a["labels"][top, None] == b["labels"][None])
        matched = iou.amax(1) > 0.9
        assert matched.float().mean() >= 0.95
        best = iou.argmax(1)[matched]
        assert (a["scores"][top][matched] - b["scores"][best]).abs().max() < 0.02


@pytest.mark.skipif(not cpu_has_native_bf16(), reason="this CPU has no native bf16 (AVX512-BF16/AMX)")
@pytest.mark.parametrize("variant", [{}, {"classification": "focal", "box": "dirac"}, {"box": "dirac"}])
def test_bf16_training_gradients_are_finite_on_small_images(variant):
    # 64 px images make P6 and P7 1x1, where oneDNN's bf16 stride-2 conv gives garbage weight gradients.
    torch.manual_seed(0)
    model = gfl_small(3, min_size=64, max_size=64, **variant).to(memory_format=torch.channels_last)
    images = [torch.rand(3, 64, 64) for _ in range(4)]
    targets = [{"boxes": torch.tensor([[8.0, 8.0, 30.0, 40.0]]), "labels": torch.tensor([1])}] * 4
    with autocast(resolve_precision("bf16", "cpu")):
        losses = model(images, targets)
    sum(losses.values()).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_frozen_batchnorm_keeps_bf16_activations_and_torchvision_values():
    from torchvision.ops import FrozenBatchNorm2d

    from gfocal.models.backbone import FrozenBatchNorm

    ours, reference = FrozenBatchNorm(6), FrozenBatchNorm2d(6)
    generator = torch.Generator().manual_seed(0)
    for name in ("weight", "bias", "running_mean"):
        getattr(ours, name).copy_(torch.randn(6, generator=generator))
    ours.running_var.copy_(torch.rand(6, generator=generator) + 0.1)
    reference.load_state_dict(ours.state_dict())
    x = torch.randn(2, 6, 5, 7, generator=generator).contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(ours(x), reference(x))
    assert ours(x.bfloat16()).dtype == torch.bfloat16  # torchvision's promotes to float32
    torch.testing.assert_close(ours(x.bfloat16()).float(), reference(x), atol=0.05, rtol=0.02)


def _has_cpp_compiler() -> bool:
    import shutil

    return any(shutil.which(name) for name in ("g++", "c++", "clang++"))


def test_compile_needs_a_detector():
    from gfocal.models.precision import compile_network

    with pytest.raises(ValueError, match="compile needs a gfocal detector"):
        compile_network(torch.nn.Linear(2, 2))


@pytest.mark.slow
@pytest.mark.skipif(not _has_cpp_compiler(), reason="torch.compile on CPU needs a C++ compiler")
def test_compiled_inference_matches_eager():
    torch.manual_seed(0)
    model = gfl_small(3, min_size=64, max_size=64, fpn_channels=32, feat_channels=32, stacked_convs=1)
    batch = torch.rand(2, 3, 64, 64).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        eager, _ = prepare_for_inference(model).head_outputs(batch)
        compiled, _ = prepare_for_inference(model, compile=True).head_outputs(batch)
    torch.testing.assert_close(compiled.cls_logits, eager.cls_logits, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(compiled.box_outputs, eager.box_outputs, atol=1e-4, rtol=1e-4)
