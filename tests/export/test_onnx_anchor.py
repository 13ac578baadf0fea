"""ONNX export of the anchor-based ATSS baseline: the raw graph carries its score factors (the decoded
graph's detections are tested in test_onnx_decoded.py, the reference decode of its raw outputs in
test_reference_decode.py)."""

import pytest

onnx = pytest.importorskip("onnx")

from busy_models import busy_model  # noqa: E402

from gfocal.export import export_onnx  # noqa: E402


@pytest.mark.slow
def test_raw_graph_of_the_anchor_variant_has_score_factors(tmp_path):
    model = busy_model(classification="focal", box="anchor_delta")
    path = export_onnx(model, tmp_path / "raw.onnx", form="raw", optimize=False)
    outputs = [output.name for output in onnx.load(str(path)).graph.output]
    assert outputs == ["scores", "box_outputs", "points", "strides", "score_factors"]
