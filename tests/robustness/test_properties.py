"""Property-based tests: readers never fail with anything but DatasetError, valid files round-trip, box
coding inverts, and the losses stay finite with finite gradients for any finite input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gfocal.data import DatasetError, load_dataset, write_coco
from gfocal.ops import (
    box_to_distance,
    distance_to_box,
    distribution_focal_loss,
    generalized_focal_loss,
    quality_focal_loss,
)
from support.files import image

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
W, H = 40, 30


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("props")
    for name in ("a.png", "b.png"):
        image(root / name, (W, H))
    image(root / "images" / "train" / "a.png", (W, H))
    return root


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**12), 10**12)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=8,
)


def valid_coco(boxes: list[tuple[float, float, float, float, int]]) -> dict:
    return {
        "images": [{"id": 1, "file_name": "a.png", "width": W, "height": H}, {"id": 2, "file_name": "b.png"}],
        "annotations": [
            {"id": i + 1, "image_id": 1 + i % 2, "category_id": 1 + c, "bbox": [x, y, w, h]}
            for i, (x, y, w, h, c) in enumerate(boxes)
        ],
        "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
    }


boxes_strategy = st.lists(
    st.tuples(st.floats(-10, 50), st.floats(-10, 40), st.floats(-5, 30), st.floats(-5, 30), st.integers(0, 1)),
    max_size=8,
)


def assert_loads_or_raises_dataset_error(path: Path):
    """Load ``path``: a DatasetError is fine (None is returned), any other exception fails the test, and what
    loads holds only boxes of positive size inside their image, with labels of known classes."""
    try:
        records = load_dataset(path, warn=False)
    except DatasetError:
        return None
    for record in records.images:
        for ann in record.annotations:
            x0, y0, x1, y1 = ann.box
            assert 0 <= x0 < x1 <= record.width and 0 <= y0 < y1 <= record.height, (record.path, ann.box)
            assert 0 <= ann.label < len(records.class_names)
    return records


@SETTINGS
@given(boxes=boxes_strategy)
def test_any_coco_boxes_load_inside_the_image_and_round_trip(folder, boxes):
    path = folder / "valid.json"
    path.write_text(json.dumps(valid_coco(boxes)))
    records = load_dataset(path, warn=False)
    for record in records.images:
        for ann in record.annotations:
            x0, y0, x1, y1 = ann.box
            assert 0 <= x0 < x1 <= record.width and 0 <= y0 < y1 <= record.height
    again = load_dataset(write_coco(records, folder / "again.json"), warn=False)
    assert [r.boxes().tolist() for r in again.images] == [r.boxes().tolist() for r in records.images]
    assert [r.labels().tolist() for r in again.images] == [r.labels().tolist() for r in records.images]
    assert not again.problems.warnings


@SETTINGS
@given(
    boxes=boxes_strategy,
    section=st.sampled_from(["images", "annotations", "categories"]),
    index=st.integers(0, 3),
    key=st.sampled_from(["id", "image_id", "file_name", "width", "height", "bbox", "category_id", "name", None]),
    value=json_values,
    delete=st.booleans(),
)
def test_a_corrupted_coco_field_loads_or_raises_dataset_error(folder, boxes, section, index, key, value, delete):
    data = valid_coco(boxes)
    entries = data[section]
    if entries:
        entry = entries[index % len(entries)]
        if key is None:
            entries[index % len(entries)] = value
        elif delete:
            entry.pop(key, None)
        else:
            entry[key] = value
    path = folder / "corrupt.json"
    path.write_text(json.dumps(data))
    assert_loads_or_raises_dataset_error(path)


@SETTINGS
@given(boxes=boxes_strategy, cut=st.integers(0, 10_000), junk=st.binary(max_size=12))
def test_a_truncated_or_garbled_coco_file_loads_or_raises_dataset_error(folder, boxes, cut, junk):
    text = json.dumps(valid_coco(boxes)).encode()
    path = folder / "cut.json"
    path.write_bytes(text[: cut % (len(text) + 1)] + junk)
    assert_loads_or_raises_dataset_error(path)


@SETTINGS
@given(
    lines=st.lists(st.text(alphabet="0123456789.-e naif\t", max_size=30), max_size=6),
    names=st.sampled_from(["[a, b]", "{0: a, 1: b}", "abc", "[]", "{1: a}", "5", "[a, [b]]"]),
)
def test_any_yolo_label_file_loads_or_raises_dataset_error(folder, lines, names):
    (folder / "labels" / "train").mkdir(parents=True, exist_ok=True)
    (folder / "labels" / "train" / "a.txt").write_text("\n".join(lines))
    (folder / "data.yaml").write_text(f"path: .\ntrain: images/train\nnames: {names}\n")
    records = assert_loads_or_raises_dataset_error(folder / "data.yaml")
    for record in records.images if records else []:
        assert all(0 <= label < len(records.class_names) for label in record.labels().tolist())


@SETTINGS
@given(
    cut=st.integers(0, 400),
    junk=st.text(max_size=10),
    values=st.lists(st.sampled_from(["5", "-3", "nan", "x", "", "1e9", "40"]), min_size=6, max_size=6),
)
def test_any_voc_file_loads_or_raises_dataset_error(folder, cut, junk, values):
    w, h, x0, y0, x1, y1 = values
    xml = (
        f"<annotation><filename>a.png</filename><size><width>{w}</width><height>{h}</height></size><object><name>c</name>"
        f"<bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object></annotation>"
    )
    voc = folder / "voc"
    voc.mkdir(exist_ok=True)
    (voc / "a.xml").write_text(xml[:cut] + junk if cut < len(xml) else xml)
    image(voc / "a.png", (W, H)) if not (voc / "a.png").exists() else None
    assert_loads_or_raises_dataset_error(voc)


finite = st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False, width=32)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(0, 500, width=32),
            st.floats(0, 500, width=32),
            st.floats(0, 64, width=32),
            st.floats(0, 64, width=32),
            st.floats(0, 64, width=32),
            st.floats(0, 64, width=32),
        ),
        min_size=1,
        max_size=16,
    ),
    st.sampled_from([4, 8, 16]),
    st.sampled_from([8, 16, 32, 64]),
)
def test_box_coding_in_stride_units_inverts_within_the_clamp(rows, reg_max, stride):
    """As the model uses it (float32, pixel boxes divided by a stride, any reg_max): decode(encode(box)) == box
    wherever no distance reaches the clamp, and a clamped distance never exceeds reg_max - 0.1."""
    t = torch.tensor(rows, dtype=torch.float32)
    points, distances = t[:, :2], t[:, 2:]
    boxes = distance_to_box(points, distances)
    encoded = box_to_distance(points / stride, boxes / stride, max_distance=reg_max)
    assert (encoded >= 0).all() and (encoded <= reg_max - 0.1 + 1e-5).all()
    inside = (distances / stride < reg_max - 0.1).all(dim=1)
    torch.testing.assert_close(
        distance_to_box(points / stride, encoded)[inside] * stride, boxes[inside], atol=1e-2, rtol=1e-5
    )


def assert_finite_with_finite_grads(loss: torch.Tensor, *inputs: torch.Tensor) -> None:
    loss.backward()
    assert torch.isfinite(loss), loss
    for tensor in inputs:
        assert torch.isfinite(tensor.grad).all()


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(finite, finite, st.floats(0, 1, width=32), st.floats(0, 1, width=32)), min_size=1, max_size=12),
    st.sampled_from([0.5, 1.0, 2.0, 3.0]),
    st.integers(0, 2),
)
def test_qfl_is_finite_with_finite_gradients_for_any_finite_input(rows, beta, label):
    t = torch.tensor(rows)
    logits = t[:, :2].clone().requires_grad_(True)
    assert_finite_with_finite_grads(quality_focal_loss(logits, t[:, 2:], beta=beta, reduction="sum"), logits)
    pair_logits = t[:, :2].clone().requires_grad_(True)
    labels = torch.full((len(rows),), label, dtype=torch.long)  # 2 = background
    assert_finite_with_finite_grads(
        quality_focal_loss(pair_logits, (labels, t[:, 3]), beta=beta, avg_factor=1.0), pair_logits
    )


@settings(max_examples=150, deadline=None)
@given(
    st.integers(1, 16).flatmap(
        lambda r: st.tuples(
            st.just(r),
            st.lists(st.lists(finite, min_size=r + 1, max_size=r + 1), min_size=1, max_size=6),
            st.lists(st.floats(0, r, width=32), min_size=6, max_size=6),
        )
    )
)
def test_dfl_is_finite_with_finite_gradients_for_any_finite_input(case):
    reg_max, logits, targets = case
    logits = torch.tensor(logits).requires_grad_(True)
    target = torch.tensor(targets[: len(logits)])
    assert_finite_with_finite_grads(distribution_focal_loss(logits, target, reduction="mean"), logits)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(finite, st.floats(0, 1, width=32)), min_size=1, max_size=12), st.sampled_from([0.0, 1.0, 2.0])
)
def test_gfl_is_finite_with_finite_gradients_for_any_finite_input(rows, beta):
    t = torch.tensor(rows)
    x = t[:, 0].clone().requires_grad_(True)
    assert_finite_with_finite_grads(
        generalized_focal_loss(F.logsigmoid(-x), F.logsigmoid(x), t[:, 1], 0.0, 1.0, beta=beta), x
    )
