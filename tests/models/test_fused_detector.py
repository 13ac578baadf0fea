"""FusedDetector: the views of each image go through the detector and come back fused, in image pixels."""

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from gfocal.models import gfl_small
from gfocal.models.fusion import FusedDetector, TestTimeAugmentation

HEIGHT, WIDTH = 60, 100
# One object, far from the image's vertical mid-line, so a flipped view that is not unflipped lands elsewhere.
OBJECT = torch.tensor([[10.0, 20.0, 40.0, 50.0]])
# The oracle is sure of the object's left edge and unsure of its right one.
OBJECT_STD = torch.tensor([[1.0, 2.0, 3.0, 4.0]])


class MarkerOracle(nn.Module):
    """A stand-in detector that finds the one bright rectangle of an image wherever it is, exactly.

    Its edge std follows the object, not the image axes: left is always the sure edge of the *image it
    is given*, so on a flipped view the std it reports for the left edge belongs to the object's right one.
    """

    def __init__(self):
        super().__init__()
        self.config = SimpleNamespace(min_size=HEIGHT, max_size=WIDTH, nms_iou_threshold=0.6, max_detections=100)
        self.head = SimpleNamespace(box_coding=SimpleNamespace(has_distributions=True))
        self.calls = []

    def forward(self, images, return_distributions=False, input_size=None):
        self.calls.append((input_size, [image[0, 25, 15].item() for image in images]))
        outputs = []
        for image in images:
            ys, xs = torch.nonzero(image[0] > 0.5, as_tuple=True)
            box = torch.tensor([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], dtype=torch.float32)
            found = {"boxes": box, "scores": torch.tensor([0.8]), "labels": torch.tensor([1])}
            if return_distributions:
                found["edge_std"] = OBJECT_STD.clone()
            outputs.append(found)
        return outputs


def marker_image():
    image = torch.zeros(3, HEIGHT, WIDTH)
    x0, y0, x1, y1 = OBJECT[0].int().tolist()
    image[:, y0:y1, x0:x1] = 1.0
    return image


@pytest.mark.parametrize("method", ["nms", "wbf", "distribution"])
def test_flipped_views_are_unflipped(method):
    oracle = MarkerOracle().eval()
    fused = FusedDetector([oracle], TestTimeAugmentation(scales=(1.0, 1.5), flip=True), method)
    [detections] = fused([marker_image()], return_distributions=True)
    assert [flags for _, flags in oracle.calls] == [[1.0], [0.0], [1.0], [0.0]]  # plain, flipped, plain, flipped
    assert [size for size, _ in oracle.calls] == [(60, 100), (60, 100), (90, 150), (90, 150)]
    torch.testing.assert_close(detections["boxes"], OBJECT)
    assert detections["labels"].tolist() == [1]
    assert detections["scores"].tolist() == pytest.approx([0.8])  # all four views found it
    # Half the views report the object's left edge as sure (std 1), half as unsure (std 3, the flipped views'
    # right edge): the fused spread is their mixture, weighted equally by WBF and by 1 / std^2 by distribution.
    sure, unsure = {"nms": (1.0, 0.0), "wbf": (1.0, 1.0), "distribution": (1.0, 1 / 9)}[method]
    side = ((sure * 1.0 + unsure * 9.0) / (sure + unsure)) ** 0.5
    right = 3.0 if method == "nms" else side  # nms keeps the leader, a plain view: its own right edge
    assert detections["edge_std"][0].tolist() == pytest.approx([side, 2.0, right, 4.0])


def test_one_view_with_nms_is_the_plain_model_in_image_pixels():
    torch.manual_seed(0)
    model = gfl_small(3, min_size=64, max_size=64, score_threshold=0.0, max_detections=30).eval()
    images = [torch.rand(3, 48, 90), torch.rand(3, 70, 40)]  # neither at the network's input size
    with torch.no_grad():
        for parameter in model.head.parameters():  # an untrained head predicts one box everywhere: vary it
            parameter.add_(torch.randn_like(parameter) * 0.2)
        plain = model(images)
        fused = FusedDetector([model], TestTimeAugmentation(), "nms")(images)
    for image, expected, got in zip(images, plain, fused):
        assert set(got) == {"boxes", "scores", "labels"}
        assert len(got["boxes"]) == len(expected["boxes"]) >= 5
        for key in expected:
            torch.testing.assert_close(got[key], expected[key])
        height, width = image.shape[-2:]
        assert (got["boxes"][:, 2] <= width).all() and (got["boxes"][:, 3] <= height).all()
        assert (got["boxes"][:, 2] > 64).any() or (got["boxes"][:, 3] > 64).any()  # mapped back past 64 px


def test_real_model_views_fuse_into_the_image():
    torch.manual_seed(0)
    model = gfl_small(3, min_size=64, max_size=64, score_threshold=0.0, max_detections=20).eval()
    image = torch.rand(3, 48, 90)
    fused = FusedDetector([model], TestTimeAugmentation(scales=(0.8, 1.25), flip=True))
    with torch.no_grad():
        [detections] = fused([image], return_distributions=True)
    assert fused.num_views == 4 and len(detections["boxes"]) <= 20
    assert (detections["boxes"][:, :2] >= 0).all() and (detections["boxes"][:, 2] <= 90 + 1e-4).all()
    assert (detections["edge_std"] > 0).all()
    assert (detections["scores"][:-1] >= detections["scores"][1:]).all()


def test_dirac_model_refuses_distribution_fusion_and_fuses_without_std():
    model = gfl_small(2, box="dirac", min_size=64, max_size=64, score_threshold=0.0).eval()
    with pytest.raises(ValueError, match="distribution fusion needs models with edge distributions"):
        FusedDetector([model], TestTimeAugmentation(flip=True), "distribution")
    fused = FusedDetector([model], TestTimeAugmentation(flip=True), "wbf")
    with torch.no_grad():
        [detections] = fused([torch.rand(3, 64, 64)])
    assert set(detections) == {"boxes", "scores", "labels"}
    with pytest.raises(ValueError, match="return_distributions"):
        fused([torch.rand(3, 64, 64)], return_distributions=True)


def test_fused_detector_predicts_only():
    model = gfl_small(2, min_size=64, max_size=64)
    with pytest.raises(RuntimeError, match="predicts"):
        FusedDetector([model])([torch.rand(3, 64, 64)])
    with pytest.raises(ValueError, match="method"):
        FusedDetector([model.eval()], method="mean")
