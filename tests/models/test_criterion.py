"""The criterion on a zero-padded batch: padding locations are neither assigned nor trained on.

A batch of images of different aspect ratios must give, per image, the same positives and the
same loss sums as that image alone, when both see the same head outputs. Conv outputs near the
padding depend on it through their receptive fields, so the head runs once on the batch and each
image's outputs are sliced at the locations of its own grid.
"""

import pytest
import torch

from gfocal.models import ModelConfig, gfl_small
from gfocal.models.assigner import atss_assign
from gfocal.models.criterion import GFLCriterion
from gfocal.models.grid import location_grid, valid_locations
from gfocal.models.head import HeadOutputs
from gfocal.models.targets import pad_targets

# Per image (height, width) inside the padding, not multiples of 32: each image also has its own
# padding up to the next multiple (mmdetection's pad_shape), which stays valid. The first box of each
# image touches its right or bottom edge: in the batch, some of its nearest coarse locations lie in
# another image's padding, and counting them as candidates changes its IoU threshold.
SIZES = [(300, 180), (180, 300), (250, 250)]
BOXES = [
    [[122.9, 144.0, 179.9, 299.2], [24.9, 262.4, 179.5, 298.8], [10.0, 12.0, 60.0, 70.0]],
    [[180.0, 103.4, 296.3, 176.6], [20.0, 30.0, 90.0, 100.0]],
    [[30.8, 216.5, 247.8, 248.6], [51.7, 56.4, 249.3, 248.8], [100.0, 20.0, 140.0, 60.0]],
]


def padded(images):
    height = max(image.shape[1] for image in images)
    width = max(image.shape[2] for image in images)
    batch = torch.zeros(len(images), 3, -(-height // 32) * 32, -(-width // 32) * 32)
    for slot, image in zip(batch, images):
        slot[:, : image.shape[1], : image.shape[2]] = image
    return batch


def loss_sums(losses, outputs, positive):
    """Undo the criterion's normalisers (num_pos for QFL, the positives' box weights for GIoU and DFL)."""
    num_pos = positive.sum().clamp_min(1)
    box_weight = outputs.cls_logits[positive].sigmoid().amax(-1).sum().clamp_min(1)
    return {
        "loss_qfl": losses["loss_qfl"] * num_pos,
        "loss_bbox": losses["loss_bbox"] * box_weight,
        "loss_dfl": losses["loss_dfl"] * box_weight,
    }


def test_a_padded_batch_assigns_and_trains_as_each_image_alone():
    torch.manual_seed(0)
    model = gfl_small(3).eval()
    config = model.config
    images = [torch.randn(3, height, width) for height, width in SIZES]
    targets = [{"boxes": torch.tensor(boxes), "labels": torch.arange(len(boxes)) % 3} for boxes in BOXES]
    with torch.no_grad():
        outputs, grid = model.head_outputs(padded(images))
        alone_grids = [model.head_outputs(padded([image]))[1] for image in images]
    # Scores near 0.5, so that the box-weight normaliser is above its floor of 1 and is tested too.
    outputs = outputs._replace(cls_logits=outputs.cls_logits + 4.0)

    valid = valid_locations(grid, SIZES, config.size_divisible)  # [N, A]
    gt_boxes, _, gt_valid = pad_targets(targets, torch.device("cpu"))
    batched = atss_assign(grid, gt_boxes, gt_valid, config.atss_topk, config.anchor_scale, valid)
    batched_sums = loss_sums(model.criterion(outputs, grid, targets, valid)[0], outputs, batched.positive)

    alone_sums = dict.fromkeys(batched_sums, 0.0)
    for i, (size, alone_grid) in enumerate(zip(SIZES, alone_grids)):
        mine = valid[i]  # [A]
        assert torch.equal(grid.points[mine], alone_grid.points), "valid locations are the image's own grid, in order"
        alone_valid = valid_locations(alone_grid, [size], config.size_divisible)
        assert alone_valid.all()  # alone, the padding up to a multiple of 32 is the image's own
        boxes, gt_valid = targets[i]["boxes"][None], torch.ones(1, len(BOXES[i]), dtype=torch.bool)
        alone = atss_assign(alone_grid, boxes, gt_valid, config.atss_topk, config.anchor_scale, alone_valid)
        assert alone.positive.any()
        assert torch.equal(batched.gt_index[i, mine], alone.gt_index[0]), f"image {i}: other positives"
        assert not batched.positive[i, ~mine].any()

        alone_outputs = HeadOutputs(outputs.cls_logits[i, mine][None], outputs.box_outputs[i, mine][None], None)
        alone_losses, _ = model.criterion(alone_outputs, alone_grid, [targets[i]], alone_valid)
        for name, value in loss_sums(alone_losses, alone_outputs, alone.positive).items():
            alone_sums[name] = alone_sums[name] + value

    for name, value in batched_sums.items():
        torch.testing.assert_close(value, alone_sums[name], rtol=1e-5, atol=0.0, msg=name)


@pytest.mark.parametrize("overrides", [{}, {"dgqp": True}, {"classification": "focal", "box": "dirac"}])
def test_padding_has_no_loss_and_no_gradient(overrides):
    config = ModelConfig(num_classes=3, **overrides)
    grid = location_grid([(8, 8), (4, 4)], (8, 16), 0.0, torch.device("cpu"))  # a 64 x 64 batch
    valid = valid_locations(grid, [(64, 64), (40, 24)])  # [2, A]
    targets = [
        {"boxes": torch.tensor([[4.0, 6.0, 40.0, 50.0]]), "labels": torch.tensor([1])},
        {"boxes": torch.tensor([[2.0, 3.0, 22.0, 36.0]]), "labels": torch.tensor([2])},
    ]
    generator = torch.Generator().manual_seed(0)
    quality = None if config.classification == "qfl" and not config.dgqp else torch.randn(2, 80, 1, generator=generator)
    outputs = HeadOutputs(
        torch.randn(2, 80, 3, generator=generator), torch.rand(2, 80, 4 * config.bins, generator=generator), quality
    )
    outputs = HeadOutputs(*(None if o is None else o.requires_grad_() for o in outputs))
    losses, _ = GFLCriterion.from_config(config)(outputs, grid, targets, valid)
    sum(losses.values()).backward()
    for output in outputs:
        if output is not None:
            assert not output.grad[~valid].any() and output.grad[valid].any()

    # Whatever the head says in the padding changes no loss.
    moved = HeadOutputs(*(None if o is None else torch.where(valid.unsqueeze(-1), o, o + 5.0) for o in outputs))
    for name, value in GFLCriterion.from_config(config)(moved, grid, targets, valid)[0].items():
        assert torch.equal(value, losses[name]), name
