"""Box voting in the exported graph's decoding: the same boxes as ``model.eval()(images)``, checked on the
eager wrapper the graph is traced from (fast; the ONNX graph itself is checked by test_onnx_decoded)."""

import pytest
import torch
from busy_models import busy_model, images

from gfocal.export.onnx import ExportedDetector


@pytest.mark.parametrize("voting", ["score", "distribution"])
def test_the_exported_graphs_batched_detections_vote_as_the_model_does(voting):
    model = busy_model(box_voting=voting, box_voting_sigma=0.1)
    plain = ExportedDetector(busy_model(), "decoded")
    x = images(2, 96, 150, seed=1)
    with torch.no_grad():
        boxes, scores, labels, counts = ExportedDetector(model, "decoded")(x)
        plain_boxes = plain(x)[0]
        expected = [model([image / 255])[0] for image in x]
    for i, wanted in enumerate(expected):
        count = int(counts[i])
        assert count == len(wanted["boxes"]) > 3
        torch.testing.assert_close(boxes[i, :count], wanted["boxes"], atol=1e-3, rtol=0)
        torch.testing.assert_close(scores[i, :count], wanted["scores"])
    assert not torch.allclose(boxes, plain_boxes, atol=1e-2)  # voting moved the boxes
