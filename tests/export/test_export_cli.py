"""``gfocal export onnx``: a weights file in, an ONNX file that onnxruntime runs out."""

import pytest
import torch

from gfocal.cli.main import main
from gfocal.models import gfl_small, save_weights

ort = pytest.importorskip("onnxruntime")


@pytest.mark.slow
def test_export_onnx_from_a_weights_file(tmp_path, capsys):
    torch.manual_seed(0)
    weights = save_weights(gfl_small(2, min_size=64, max_size=64), tmp_path / "model.safetensors")
    out = tmp_path / "model.onnx"
    assert main(["export", "onnx", str(weights), str(out), "--form", "raw", "--no-optimize"]) == 0
    assert "raw form" in capsys.readouterr().out
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["scores", "box_outputs", "points", "strides"]
    scores = session.run(["scores"], {"images": torch.rand(1, 3, 64, 96).numpy() * 255})[0]
    assert scores.shape == (1, 8 * 12 + 4 * 6 + 2 * 3 + 1 * 2 + 1 * 1, 2)
