"""Range diagnostics on hand-made boxes whose answer is known: which positive edges exceed reg_max."""

from pathlib import Path

import numpy as np
import pytest
import torch

from gfocal.analysis.range import edge_range_statistics, feature_grid, positive_edge_distances, suggest_reg_max
from gfocal.data import Annotation, DatasetRecords, ImageRecord
from gfocal.models import ModelConfig, gfl_small


def records(boxes_per_image, size=(64, 64)) -> DatasetRecords:
    """One image of ``size`` (w, h) per list of boxes, all of class 0."""
    images = [
        ImageRecord(Path(f"{i}.png"), size[0], size[1], i, [Annotation(tuple(b), 0) for b in boxes], f"{i}.png")
        for i, boxes in enumerate(boxes_per_image)
    ]
    return DatasetRecords(images, ["thing"], Path("hand-made"), "coco")


def config(**overrides) -> ModelConfig:
    options = {"num_classes": 1, "strides": (8,), "reg_max": 4, "min_size": 64, "max_size": 64, "size_divisible": 8}
    return ModelConfig(**{**options, **overrides})


def test_feature_grid_matches_the_network():
    model = gfl_small(1, min_size=70, max_size=100).eval()
    batch, _ = model.transform([torch.rand(3, 70, 100)])
    _, grid = model.head_outputs(batch.tensors)
    expected = feature_grid(model.config, *batch.image_sizes[0])
    assert expected.level_shapes == grid.level_shapes
    assert torch.equal(expected.points, grid.points) and torch.equal(expected.strides, grid.strides)


def test_a_box_wider_than_the_range_clamps_every_positive():
    # One level of stride 8 and reg_max 4 (range 3.9 strides): a 64 px box spans 8 strides, so every
    # location inside it is at least 4 strides from its left or right edge, and from its top or bottom.
    stats = edge_range_statistics(config(), records([[(0, 0, 64, 64)]]))
    assert stats["positives"] > 0 and stats["boxes_without_positives"] == 0
    assert stats["clamped_box_fraction"] == 1.0
    assert stats["clamped_edge_fraction"] >= 0.5
    assert stats["suggested_reg_max"] > 4
    assert stats["levels"]["P3"]["range_pixels"] == 32


def test_a_small_box_is_within_range():
    stats = edge_range_statistics(config(reg_max=16), records([[(20, 20, 36, 36)], []]))
    assert stats["clamped_edge_fraction"] == 0.0 and stats["clamped_box_fraction"] == 0.0
    assert stats["mean_clamped_pixels"] is None
    # A 16 px box seen from inside: no edge farther than 2 strides.
    assert stats["levels"]["P3"]["max_distance"] <= 2.0
    assert stats["suggested_reg_max"] <= 3


def test_an_assigner_that_reads_predictions_is_refused_without_a_network():
    with pytest.raises(ValueError, match="task_aligned"):
        edge_range_statistics(config(assigner="task_aligned"), records([[(20, 20, 36, 36)]]))


def test_suggested_reg_max_holds_the_coverage():
    boxes = [[(0, 0, 64, 64)], [(10, 10, 40, 30)], [(5, 30, 60, 62)]]
    suggested = edge_range_statistics(config(), records(boxes), coverage=1.0)["suggested_reg_max"]
    assert edge_range_statistics(config(reg_max=suggested), records(boxes))["clamped_edge_fraction"] == 0.0
    assert edge_range_statistics(config(reg_max=suggested - 1), records(boxes))["clamped_edge_fraction"] > 0.0


def test_suggest_reg_max_known_values():
    distances = np.array([1.0, 2.0, 3.0, 7.5])  # strides
    assert suggest_reg_max(distances, coverage=1.0) == 8  # 7.5 < 8 - 0.1
    assert suggest_reg_max(distances, coverage=0.75) == 4  # 3 of 4 below 3.9
    assert suggest_reg_max(np.array([3.9])) == 5  # at 4 - 0.1 it would be clamped
    assert suggest_reg_max(np.zeros(0)) == 1
    with pytest.raises(ValueError, match="coverage"):
        suggest_reg_max(distances, coverage=0.0)


def test_images_are_resized_as_the_model_resizes_them():
    small = positive_edge_distances(config(), records([[(8, 8, 40, 56)]]))
    large = positive_edge_distances(config(), records([[(16, 16, 80, 112)]], size=(128, 128)))
    assert np.allclose(small[0], large[0]) and np.array_equal(small[1], large[1])


def test_crowd_boxes_are_left_out_and_ids_are_per_box():
    crowd = ImageRecord(Path("c.png"), 64, 64, 9, [Annotation((0, 0, 64, 64), 0, iscrowd=True)], "c.png")
    data = records([[(0, 0, 32, 32), (32, 32, 64, 64)]])
    data = DatasetRecords(data.images + [crowd], data.class_names, data.root, data.format)
    distances, levels, box_ids, num_boxes, without = positive_edge_distances(config(), data)
    assert num_boxes == 2 and set(box_ids.tolist()) == {0, 1} and without == 0
    assert len(distances) == len(levels) == len(box_ids)


def test_range_command_prints_and_writes_json(tiny_coco, untrained_weights, tmp_path, capsys):
    import json

    from gfocal.cli.main import main

    out = tmp_path / "range.json"
    assert main(["analyze", "range", "--data", str(tiny_coco), "--weights", str(untrained_weights), "--reg-max", "2",
                 "--json", str(out)]) == 0  # fmt: skip
    stats = json.loads(out.read_text())
    assert stats["reg_max"] == 2 and stats["input_size"] == [64, 64]
    printed = capsys.readouterr().out
    assert f"suggested reg_max (holds 99% of the edges): {stats['suggested_reg_max']}" in printed
    assert main(["analyze", "range", "--data", str(tiny_coco), "--model", "gfl_tiny"]) == 2
    assert "unknown model 'gfl_tiny'" in capsys.readouterr().err
