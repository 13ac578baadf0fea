"""ONNX export, decoded form (NMS in the graph): the same detections as ``model.eval()(images)``."""

import numpy as np
import pytest
import torch

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from busy_models import SIZES, busy_model, images  # noqa: E402

from gfocal.export import export_onnx  # noqa: E402

pytestmark = pytest.mark.slow  # exports ONNX graphs (a minute or more each on 2 cores)


@pytest.fixture(
    scope="module",
    params=[
        {},
        {"classification": "focal", "box": "anchor_delta"},
        {"box_voting": "distribution", "box_voting_sigma": 0.1},
    ],
    # The anchor-based baseline decodes (and multiplies centerness) in the graph too; box voting runs in it.
    ids=["gfl", "atss_anchor", "gfl_voted"],
)
def model(request):
    return busy_model(**request.param)


@pytest.fixture(scope="module")
def decoded_session(model, tmp_path_factory):
    path = export_onnx(model, tmp_path_factory.mktemp("onnx") / "decoded.onnx", form="decoded", optimize=False)
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("batch, height, width", SIZES)
def test_decoded_graph_gives_the_detections_of_model_eval(decoded_session, model, batch, height, width):
    x = images(batch, height, width, seed=1)
    boxes, scores, labels, counts = decoded_session.run(None, {"images": x.numpy()})
    with torch.no_grad():
        # model.eval()(images) one image at a time, from 0-1 floats as its contract says
        expected = [model([image / 255])[0] for image in x]
    for i, wanted in enumerate(expected):
        count = int(counts[i])
        assert count == len(wanted["boxes"]) > 3
        np.testing.assert_array_equal(labels[i, :count], wanted["labels"].numpy())
        np.testing.assert_allclose(boxes[i, :count], wanted["boxes"].numpy(), atol=1e-3, rtol=0)
        np.testing.assert_allclose(scores[i, :count], wanted["scores"].numpy(), atol=1e-5)
        assert (labels[i, count:] == -1).all() and (scores[i, count:] == 0).all()
