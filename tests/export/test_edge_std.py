"""Per-box edge std in deployment: the decoded ONNX output and the numpy reference decoder give the
``edge_std`` of ``model.eval()(images, return_distributions=True)``, temperature included."""

import json

import numpy as np
import pytest
import torch
from busy_models import busy_model, images

from gfocal.export import ExportedDetector
from gfocal.export.reference_decode import decode, decode_settings, preprocess

STD_SCALE = 1.7


@pytest.fixture(scope="module")
def model():
    return busy_model(std_scale=STD_SCALE)


def expected(model, image):
    """PyTorch inference on one 0-255 float image [3, H, W]."""
    with torch.no_grad():
        return model([image / 255], return_distributions=True)[0]


def test_reference_decoder_computes_edge_std_from_the_raw_form(model):
    settings = decode_settings(json.dumps(model.config.to_dict()))
    assert settings.std_scale == STD_SCALE
    generator = np.random.default_rng(0)
    for height, width in ((64, 80), (150, 100)):  # both resized: the std is mapped back to original pixels
        image = generator.integers(0, 256, (height, width, 3), dtype=np.uint8)
        wanted = expected(model, torch.from_numpy(image).permute(2, 0, 1).float())
        graph_input, image_size, scale = preprocess(image, settings)
        with torch.no_grad():
            scores, box_outputs, points, strides = (
                o.numpy() for o in ExportedDetector(model)(torch.from_numpy(graph_input))
            )
        got = decode(scores[0], box_outputs[0], points, strides, settings, image_size, scale)
        assert len(wanted["boxes"]) > 3
        np.testing.assert_array_equal(got["labels"], wanted["labels"].numpy())
        np.testing.assert_allclose(got["edge_std"], wanted["edge_std"].numpy(), rtol=1e-4, atol=1e-4)


def test_decoded_wrapper_emits_edge_std(model):
    x = images(2, 96, 150, seed=3)
    with torch.no_grad():
        boxes, scores, labels, counts, edge_std = ExportedDetector(model, "decoded", edge_std=True)(x)
    for i in range(len(x)):
        wanted = expected(model, x[i])
        count = int(counts[i])
        assert count == len(wanted["boxes"]) > 3
        torch.testing.assert_close(boxes[i, :count], wanted["boxes"], atol=1e-3, rtol=0)
        torch.testing.assert_close(edge_std[i, :count], wanted["edge_std"], atol=1e-4, rtol=1e-4)
        assert (edge_std[i, count:] == 0).all()


@pytest.mark.slow
def test_edge_std_in_the_onnx_graph(model, tmp_path):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from gfocal.export import export_onnx

    path = export_onnx(model, tmp_path / "std.onnx", form="decoded", optimize=False, edge_std=True)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["boxes", "scores", "labels", "num_detections", "edge_std"]
    x = images(1, 90, 160, seed=4)
    _, _, _, counts, edge_std = session.run(None, {"images": x.numpy()})
    wanted = expected(model, x[0])
    count = int(counts[0])
    assert count == len(wanted["boxes"])
    np.testing.assert_allclose(edge_std[0, :count], wanted["edge_std"].numpy(), atol=1e-3, rtol=1e-4)


def test_edge_std_needs_the_decoded_form_and_distributions(model):
    with pytest.raises(ValueError, match="form='decoded'"):
        ExportedDetector(model, "raw", edge_std=True)
    with pytest.raises(ValueError, match="box='dfl'"):
        ExportedDetector(busy_model(box="dirac"), "decoded", edge_std=True)


def test_settings_of_files_exported_before_std_scale():
    config = busy_model().config.to_dict()
    del config["std_scale"]
    assert decode_settings(json.dumps(config)).std_scale == 1.0


def test_export_command_refuses_edge_std_in_the_raw_form(model, tmp_path, capsys):
    from gfocal.cli.main import main
    from gfocal.models import save_weights

    weights = save_weights(model, tmp_path / "m.safetensors")
    assert main(["export", "onnx", str(weights), str(tmp_path / "m.onnx"), "--form", "raw", "--edge-std"]) == 2
    assert "--edge-std needs --form decoded" in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()
