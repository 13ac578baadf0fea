"""``gfocal analyze calibration`` end to end: files, counts that add up, and a temperature that is applied."""

import json

import pytest
import torch

from gfocal.analysis.calibration_report import CalibrationData, calibration_statistics, collect, save_calibrated
from gfocal.cli.main import main
from gfocal.data import load_dataset
from gfocal.models import gfl_small, load_model, save_weights

SIZE = 64


@pytest.fixture(scope="module")
def eager_weights(tmp_path_factory):
    """An untrained gfl_small that keeps every candidate (score threshold 0), so that boxes match."""
    torch.manual_seed(0)
    model = gfl_small(4, min_size=SIZE, max_size=SIZE, score_threshold=0.0, max_detections=20)
    path = tmp_path_factory.mktemp("eager") / "eager.safetensors"
    save_weights(model, path)
    return path


def test_command_writes_the_report(tiny_coco, eager_weights, tmp_path, capsys):
    out, calibrated = tmp_path / "calibration", tmp_path / "calibrated.safetensors"
    args = ["analyze", "calibration", "--weights", str(eager_weights), "--data", str(tiny_coco), "--out", str(out)]
    assert main(["-q", *args, "--iou", "0.05", "--save-calibrated", str(calibrated)]) == 0
    stats = json.loads((out / "calibration.json").read_text())
    coco = json.loads(tiny_coco.read_text())
    assert stats["images"] == len(coco["images"])
    assert 0 < stats["matched_boxes"] <= len(coco["annotations"])
    assert stats["edges"]["count"] == 4 * stats["matched_boxes"] and stats["boxes"]["count"] == stats["matched_boxes"]
    assert stats["score"]["count"] == sum(r["count"] for r in stats["score"]["bins"]) > 0
    assert (out / "reliability.png").read_bytes()[:4] == b"\x89PNG"
    assert "data:image/png;base64," in (out / "report.html").read_text()
    assert f"fitted std scale {stats['fitted_std_scale']:.3f}" in capsys.readouterr().out
    assert load_model(calibrated).config.std_scale == pytest.approx(stats["fitted_std_scale"])
    # A second run into the same folder is refused without --overwrite.
    assert main(["-q", *args]) == 2


def test_the_temperature_scales_every_reported_std(tiny_coco, eager_weights, tmp_path):
    model = load_model(eager_weights).eval()
    records = load_dataset(tiny_coco, warn=False)
    before = collect(model, records, iou_threshold=0.05, progress=False)
    save_calibrated(model, 2.5, tmp_path / "scaled.safetensors")
    assert model.config.std_scale == 1.0  # the model itself is unchanged
    after = collect(load_model(tmp_path / "scaled.safetensors"), records, iou_threshold=0.05, progress=False)
    assert torch.allclose(torch.from_numpy(after.std), 2.5 * torch.from_numpy(before.std), rtol=1e-5)
    assert (after.error == before.error).all()
    stats_before, stats_after = calibration_statistics(before), calibration_statistics(after)
    assert stats_after["fitted_std_scale"] == pytest.approx(stats_before["fitted_std_scale"] / 2.5, rel=1e-4)


def test_statistics_of_no_match():
    empty = CalibrationData(torch.zeros(0, 4).numpy(), torch.zeros(0, 4).numpy(), torch.zeros(0).numpy(),
                            torch.zeros(0).numpy(), images=3)  # fmt: skip
    stats = calibration_statistics(empty)
    assert stats["matched_boxes"] == 0 and stats["edges"]["ence"] is None and stats["fitted_std_scale"] == 1.0


def test_dirac_models_are_refused(tiny_coco):
    with pytest.raises(ValueError, match="box='dfl'"):
        collect(gfl_small(4, box="dirac"), load_dataset(tiny_coco, warn=False))


def test_predicted_statistics_report_the_calibrated_std():
    from gfocal.analysis.distributions import edge_statistics

    torch.manual_seed(0)
    plain = gfl_small(2, min_size=SIZE, max_size=SIZE, score_threshold=0.0).eval()
    scaled = gfl_small(2, min_size=SIZE, max_size=SIZE, score_threshold=0.0, std_scale=3.0).eval()
    scaled.load_state_dict(plain.state_dict())
    image = torch.rand(3, SIZE, SIZE)
    with torch.no_grad():
        a, b = (edge_statistics(m([image], return_distributions=True)[0]) for m in (plain, scaled))
    torch.testing.assert_close(b["std"], 3.0 * a["std"])
    torch.testing.assert_close(b["std_bins"], a["std_bins"])  # the distribution itself is unchanged
