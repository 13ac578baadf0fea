"""Our detections equal mmdetection's for an imported GFL checkpoint.

mmdetection is not a dependency: ``bash .ci/install_mmdet DIR`` installs mmdetection 3.3.0 with the
pure-Python ``mmcv-lite`` into DIR, then ``PYTHONPATH=DIR pytest -m mmdet tests/interop`` runs the
parity tests (``.ci/run`` does both; see ``conftest.py`` here for what skips and what fails).
``mmcv-lite`` has no compiled ``mmcv.ops``; ``tests/interop/mmcv_ops_standin.py`` provides the ``nms`` and
``batched_nms`` GFL inference calls, on top of torchvision.
"""

import pytest
import torch
from mmdet_reference import assert_same_detections, build_mmdet_gfl

from gfocal.interop import from_mmdet, save_mmdet_checkpoint

pytestmark = pytest.mark.mmdet

NUM_CLASSES = 3


@pytest.mark.parametrize("depth, stacked_convs, reg_max", [(18, 2, 16), (50, 1, 8)])
def test_detections_equal_mmdetection(depth, stacked_convs, reg_max):
    reference = build_mmdet_gfl(NUM_CLASSES, depth, 64, stacked_convs, reg_max, random_weights=True)
    ours = from_mmdet(reference.state_dict())
    assert ours.config.backbone == f"resnet{depth}" and ours.config.reg_max == reg_max
    torch.manual_seed(1)
    batch = torch.randn(1, 3, 96, 128)  # a normalised, padded input
    image_size = (90, 120)  # the image inside the padding: boxes are clipped to it
    assert assert_same_detections(reference, ours, batch, image_size) > 10


def test_a_written_checkpoint_is_the_state_dict_mmdetection_holds(tmp_path):
    reference = build_mmdet_gfl(NUM_CLASSES, 18, 64, 2, 16, random_weights=True)
    path = save_mmdet_checkpoint(from_mmdet(reference.state_dict(), class_names=("a", "b", "c")), tmp_path / "w.pth")
    written = torch.load(path, weights_only=True)
    assert sorted(written["state_dict"]) == sorted(reference.state_dict())
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(written["state_dict"][key], value, msg=key)
    reference.load_state_dict(written["state_dict"], strict=True)
