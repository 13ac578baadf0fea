"""The ATSS targets module: positives as the assigner gives them, empty images, and no other module reaching into the loss."""

import ast
from pathlib import Path

import torch

from gfocal.models.assigner import ATSSAssigner, atss_assign
from gfocal.models.grid import location_grid
from gfocal.models.targets import assign_targets, pad_targets


def _targets():
    return [
        {"boxes": torch.tensor([[4.0, 4.0, 40.0, 36.0], [30.0, 10.0, 60.0, 60.0]]), "labels": torch.tensor([1, 0])},
        {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)},
        {"boxes": torch.tensor([[0.0, 0.0, 20.0, 12.0]]), "labels": torch.tensor([2])},
    ]


def test_positives_are_the_assigned_locations_with_their_boxes_points_and_strides():
    grid = location_grid([(8, 8), (4, 4), (2, 2)], (8, 16, 32), 0.0, torch.device("cpu"))
    targets = _targets()
    result = assign_targets(grid, targets, ATSSAssigner(topk=9, anchor_scale=8.0))
    padded = pad_targets(targets, torch.device("cpu"))
    reference = atss_assign(grid, padded.boxes, padded.valid, 9, 8.0)
    assert torch.equal(result.assignment.gt_index, reference.gt_index)
    positives = result.positives
    assert len(positives.image) == int(reference.positive.sum()) > 0
    assert 1 not in positives.image.tolist()  # the empty image has no positive
    for row in range(len(positives.image)):
        image, location, index = (int(positives.image[row]), int(positives.location[row]), int(positives.gt_index[row]))
        assert reference.gt_index[image, location] == index
        assert torch.equal(positives.box[row], targets[image]["boxes"][index])
        assert positives.label[row] == targets[image]["labels"][index]
        assert (
            torch.equal(positives.point[row], grid.points[location]) and positives.stride[row] == grid.strides[location]
        )
    per_location = torch.arange(3 * len(grid.points)).reshape(3, -1)
    assert torch.equal(positives.gather(per_location), positives.flat_index(len(grid.points)))


def test_a_batch_without_any_box_has_no_positive():
    grid = location_grid([(4, 4)], (8,), 0.0, torch.device("cpu"))
    empty = [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}] * 2
    result = assign_targets(grid, empty, ATSSAssigner())
    assert result.padded.boxes.shape == (2, 0, 4) and result.positives.box.shape == (0, 4)
    assert not result.assignment.positive.any()


def test_only_the_detector_imports_the_loss_module():
    package = Path(__file__).resolve().parents[2] / "src" / "gfocal"
    importers = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module == "gfocal.models.criterion":
                importers.add(path.relative_to(package).as_posix())
    assert importers == {"models/detector.py"}
