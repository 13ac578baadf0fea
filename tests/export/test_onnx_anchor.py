"""ONNX export of the anchor-based ATSS baseline: the decoded graph asks the box coding to decode,
so its detections are those of ``model.eval()(images)``; the raw graph carries score factors."""

import numpy as np
import pytest
import torch

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from busy_models import busy_model, images  # noqa: E402

from gfocal.export import export_onnx  # noqa: E402

ANCHOR = {"classification": "focal", "box": "anchor_delta"}


def test_decoded_graph_of_the_anchor_variant_gives_the_detections_of_model_eval(tmp_path):
    model = busy_model(**ANCHOR)
    path = export_onnx(model, tmp_path / "atss.onnx", form="decoded", optimize=False)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = images(2, 96, 150, seed=1)
    boxes, scores, labels, counts = session.run(None, {"images": x.numpy()})
    with torch.no_grad():
        expected = [model([image / 255])[0] for image in x]
    for i, wanted in enumerate(expected):
        count = int(counts[i])
        assert count == len(wanted["boxes"]) > 3
        np.testing.assert_array_equal(labels[i, :count], wanted["labels"].numpy())
        np.testing.assert_allclose(boxes[i, :count], wanted["boxes"].numpy(), atol=1e-3, rtol=0)
        np.testing.assert_allclose(scores[i, :count], wanted["scores"].numpy(), atol=1e-5)


def test_raw_graph_of_the_anchor_variant_has_score_factors(tmp_path):
    path = export_onnx(busy_model(**ANCHOR), tmp_path / "raw.onnx", form="raw", optimize=False)
    outputs = [output.name for output in onnx.load(str(path)).graph.output]
    assert outputs == ["scores", "box_outputs", "points", "strides", "score_factors"]
