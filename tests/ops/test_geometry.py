"""IoU of paired boxes against the diagonal of torchvision's all-pairs box_iou."""

import torch
from torchvision.ops import box_iou

from gfocal.ops import aligned_box_iou


def test_aligned_iou_is_the_diagonal_of_box_iou():
    generator = torch.Generator().manual_seed(0)
    corners = torch.rand(50, 2, 2, generator=generator) * 100
    boxes = torch.cat((corners.amin(1), corners.amax(1)), dim=1)
    other = boxes + torch.randn(50, 4, generator=generator) * 10
    other = torch.cat((other[:, :2], other[:, :2].maximum(other[:, 2:]) + 1), dim=1)
    torch.testing.assert_close(aligned_box_iou(boxes, other), box_iou(boxes, other).diagonal())


def test_disjoint_and_degenerate_boxes_give_zero():
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [5.0, 5.0, 5.0, 5.0]])
    other = torch.tensor([[20.0, 20.0, 30.0, 30.0], [0.0, 0.0, 10.0, 10.0]])
    assert aligned_box_iou(boxes, other).tolist() == [0.0, 0.0]
