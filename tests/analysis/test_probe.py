"""Probing the distributions at the annotated boxes: every annotation gets one, in original pixels."""

import pytest
import torch

from gfocal.analysis import probe_annotations
from gfocal.analysis.probe import PROBE_KINDS, probe_and_detect
from gfocal.models import gfl_small


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return gfl_small(3, min_size=64, max_size=64).eval()


def batch():
    images = [torch.rand(3, 96, 128), torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8)]
    targets = [
        {
            "boxes": torch.tensor([[10.0, 12.0, 70.0, 80.0], [80.0, 20.0, 120.0, 50.0], [3.0, 3.0, 6.0, 5.0]]),
            "labels": torch.tensor([0, 2, 1]),
        },
        {"boxes": torch.tensor([[5.0, 5.0, 40.0, 30.0]]), "labels": torch.tensor([1])},
    ]
    return images, targets


def test_every_annotation_gets_distributions_in_original_pixels(model):
    images, targets = batch()
    probes = probe_annotations(model, images, targets)
    assert [len(p.probs) for p in probes] == [3, 1]
    for probe, target in zip(probes, targets):
        assert torch.allclose(probe.probs.sum(-1), torch.ones_like(probe.probs[..., 0]), atol=1e-5)
        # The point plus the annotated distances (bins x pixels per bin) rebuilds the annotated box.
        signs = torch.tensor([-1.0, -1.0, 1.0, 1.0])
        rebuilt = probe.points.repeat(1, 2) + signs * probe.annotated_bins * probe.bin_size
        torch.testing.assert_close(rebuilt, target["boxes"], atol=1e-3, rtol=1e-4)
    # The image of 128 px is scaled by 0.5 for a 64 px model: bins are twice as many original pixels.
    assert probes[0].bin_size[0, 0] == pytest.approx(2 * model.config.strides[probes[0].levels[0]])
    assert PROBE_KINDS[probes[0].kinds[0]] == "atss"
    assert PROBE_KINDS[probes[0].kinds[2]] in ("inside", "nearest")  # 3x2 px: no ATSS location


def test_batched_equals_one_by_one_and_inputs_untouched(model):
    images, targets = batch()
    before = [t["boxes"].clone() for t in targets]
    together = probe_annotations(model, images, targets)
    for i in range(2):
        (alone,) = probe_annotations(model, [images[i]], [targets[i]])
        torch.testing.assert_close(alone.probs, together[i].probs, atol=1e-5, rtol=1e-4)
    assert all(torch.equal(b, t["boxes"]) for b, t in zip(before, targets))


def test_detections_match_the_model_forward(model):
    images, targets = batch()
    _, detections = probe_and_detect(model, images, targets)
    with torch.no_grad():
        reference = model(images, return_distributions=True)
    for ours, theirs in zip(detections, reference):
        torch.testing.assert_close(ours["boxes"], theirs["boxes"])
        torch.testing.assert_close(ours["box_distributions"], theirs["box_distributions"])


def test_images_without_annotations(model):
    probes = probe_annotations(
        model, [torch.rand(3, 64, 64)], [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}]
    )
    assert probes[0].probs.shape == (0, 4, model.config.reg_max + 1)


def test_dirac_models_are_refused():
    with pytest.raises(ValueError, match="distribution head"):
        probe_annotations(gfl_small(1, min_size=64, max_size=64, box="dirac"), *batch())
