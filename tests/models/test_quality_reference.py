"""The quality branches' formulas on hand-computed numbers, without mmdetection: GFLv2's DGQP score
(top-k + mean statistics -> MLP -> sigmoid x class score) with fixed weights, and QFL's targets under
``quality_label="centerness"`` (the centerness of the point, whatever box was predicted).

Reference: PAPER.md "GFLv2 (DGQP)", "Quality Focal Loss".
"""

import math

import torch

from gfocal.models.box_coding import DistributionBoxes
from gfocal.models.quality import (
    ClassificationInputs,
    DistributionGuidedQuality,
    JointScoreLoss,
    centerness_label,
    iou_label,
)

# One location's edge distributions over reg_max + 1 = 5 bins (left, top, right, bottom).
EDGE_PROBS = [
    [0.5, 0.25, 0.125, 0.0625, 0.0625],  # top-2 0.5, 0.25; mean 0.375
    [0.1, 0.2, 0.4, 0.2, 0.1],  # top-2 0.4, 0.2; mean 0.3
    [0.0625, 0.0625, 0.125, 0.25, 0.5],  # top-2 0.5, 0.25; mean 0.375
    [0.2, 0.2, 0.2, 0.2, 0.2],  # top-2 0.2, 0.2; mean 0.2
]


def sigmoid(x):
    return 1 / (1 + math.exp(-x))


def test_dgqp_score_is_the_mlp_of_the_topk_statistics_times_the_class_score():
    branch = DistributionGuidedQuality(DistributionBoxes(reg_max=4), topk=2, channels=3)
    # Statistics per edge (top-1, top-2, mean of the two), edge after edge: 12 inputs.
    first, hidden = branch[0], branch[2]
    with torch.no_grad():
        first.weight.zero_()
        first.weight[0, [0, 3, 6, 9], 0, 0] = 1.0  # h0 = sum of the top-1 probabilities
        first.weight[1, [2, 5, 8, 11], 0, 0] = 1.0  # h1 = relu(sum of the means - 2): negative, so 0
        first.weight[2, 1, 0, 0] = 0.5  # h2 = half the left edge's second probability
        first.bias.copy_(torch.tensor([0.0, -2.0, 0.0]))
        hidden.weight.copy_(torch.tensor([1.0, 2.0, -1.0]).reshape(1, 3, 1, 1))
        hidden.bias.fill_(0.1)
    box_outputs = torch.tensor(EDGE_PROBS).log().reshape(1, 1, 20)  # softmax(log p) = p
    cls_logits = torch.tensor([[[0.0, -1.0]]])  # [N=1, A=1, C=2]

    with torch.no_grad():
        quality_logits = branch.logits([], box_outputs)
        scores, factors = branch.scores(cls_logits, quality_logits)

    h0 = 0.5 + 0.4 + 0.5 + 0.2
    h1 = max(0.375 + 0.3 + 0.375 + 0.2 - 2.0, 0.0)
    h2 = 0.5 * 0.25
    logit = 1.0 * h0 + 2.0 * h1 - 1.0 * h2 + 0.1  # 1.575
    assert h1 == 0.0
    torch.testing.assert_close(quality_logits, torch.tensor([[[logit]]]))
    expected = torch.tensor([[[sigmoid(0.0) * sigmoid(logit), sigmoid(-1.0) * sigmoid(logit)]]])
    torch.testing.assert_close(scores, expected)
    assert factors is None  # the quality is inside the score, not a factor applied after thresholding


def qfl_inputs():
    """Two locations, one class: a positive at (30, 20) in (10, 10, 70, 60) whose predicted box is poor
    (IoU 1/4 with its ground truth), and a negative. Both score 0.5 (logit 0)."""
    gt = torch.tensor([[10.0, 10.0, 70.0, 60.0]])
    predicted = torch.tensor([[10.0, 10.0, 40.0, 35.0]])  # inside it, area 750 of 3000
    return ClassificationInputs(
        cls_logits=torch.zeros(2, 1),
        quality_logits=None,
        positive=torch.tensor([0]),
        labels=torch.tensor([0]),
        boxes=predicted,
        gt_boxes=gt,
        points=torch.tensor([[30.0, 20.0]]),
        weight=None,
        num_pos=torch.tensor(1.0),
    )


def qfl(target, sigma=0.5, beta=2.0):
    """QFL of one score: |y - sigma|^beta * BCE(sigma, y)."""
    return abs(target - sigma) ** beta * -(target * math.log(sigma) + (1 - target) * math.log(1 - sigma))


def test_qfl_targets_under_the_centerness_label_are_the_points_centerness_not_the_boxes_iou():
    inputs = qfl_inputs()
    # (l, t, r, b) = (20, 10, 40, 40): centerness sqrt(20/40 * 10/40); IoU of the boxes 750/3000.
    centerness, iou = math.sqrt(20 / 40 * 10 / 40), 750 / 3000
    negative = qfl(0.0)
    losses, box_weight = JointScoreLoss(centerness_label)(inputs.cls_logits, inputs)
    torch.testing.assert_close(losses["loss_qfl"], torch.tensor(qfl(centerness) + negative))
    torch.testing.assert_close(box_weight, torch.tensor([0.5]))  # the positive's score, whatever the label
    losses, _ = JointScoreLoss(iou_label)(inputs.cls_logits, inputs)
    torch.testing.assert_close(losses["loss_qfl"], torch.tensor(qfl(iou) + negative))
