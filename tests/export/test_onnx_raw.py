"""ONNX export, raw form: onnxruntime equals PyTorch on several batch and image sizes; the numpy
reference decode of its outputs gives the detections of ``model.eval()(images)``."""

import json

import numpy as np
import pytest
import torch

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from busy_models import SIZES, busy_model, images  # noqa: E402

from gfocal.export import ExportedDetector, export_onnx  # noqa: E402
from gfocal.export.reference_decode import decode, decode_settings  # noqa: E402

pytestmark = pytest.mark.slow  # exports ONNX graphs (a minute or more on 2 cores)


@pytest.fixture(scope="module")
def model():
    return busy_model()


@pytest.fixture(scope="module")
def raw_session(model, tmp_path_factory):
    path = export_onnx(model, tmp_path_factory.mktemp("onnx") / "raw.onnx", form="raw", optimize=False)
    return onnx.load(str(path)), ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_graph_is_dynamic_opset_17_plus_and_carries_the_config(raw_session, model):
    proto, _ = raw_session
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
    shape = proto.graph.input[0].type.tensor_type.shape.dim
    assert all(d.dim_param for i, d in enumerate(shape) if i != 1) and shape[1].dim_value == 3
    metadata = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(metadata["gfocal_config"])["reg_max"] == model.config.reg_max and metadata["gfocal_form"] == "raw"


@pytest.mark.parametrize("batch, height, width", SIZES)
def test_raw_outputs_match_pytorch(raw_session, model, batch, height, width):
    _, session = raw_session
    x = images(batch, height, width)
    got = session.run(None, {"images": x.numpy()})
    with torch.no_grad():
        expected = ExportedDetector(model, "raw")(x)
    for name, a, b in zip(("scores", "box_outputs", "points", "strides"), got, expected):
        # float32 sums in another order: about one value in 10^5 near zero strays to 1.1e-5.
        np.testing.assert_allclose(a, b.numpy(), rtol=1e-4, atol=3e-5, err_msg=name)


@pytest.mark.parametrize("batch, height, width", SIZES)
def test_reference_decode_of_the_raw_graph_gives_the_detections_of_model_eval(raw_session, model, batch, height, width):
    x = images(batch, height, width, seed=1)
    raw = raw_session[1].run(None, {"images": x.numpy()})
    settings = decode_settings(json.dumps(model.config.to_dict()))
    for i in range(batch):
        with torch.no_grad():
            wanted = model([x[i] / 255])[0]  # model.eval()(images), 0-1 floats as its contract says
        reference = decode(raw[0][i], raw[1][i], raw[2], raw[3], settings, (height, width))
        assert len(wanted["boxes"]) > 3
        np.testing.assert_array_equal(reference["labels"], wanted["labels"].numpy())
        np.testing.assert_allclose(reference["boxes"], wanted["boxes"].numpy(), atol=1e-3, rtol=0)
        np.testing.assert_allclose(reference["scores"], wanted["scores"].numpy(), atol=1e-5)


def test_unknown_form_and_old_opset_are_refused(model, tmp_path):
    with pytest.raises(ValueError, match="form"):
        ExportedDetector(model, "boxes")
    with pytest.raises(ValueError, match="opset"):
        export_onnx(model, tmp_path / "m.onnx", opset=13)
