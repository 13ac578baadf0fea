"""``benchmarks/distillation.py``: the unlabelled split, the equal-step epochs, the step cost, and the whole
benchmark end to end at a tiny setting (seconds per run)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import distillation
import pytest
import yaml

import gfocal
from gfocal.data import load_dataset


def test_the_unlabelled_share_loses_its_boxes_and_the_rest_stays_labelled(tmp_path: Path):
    split = distillation.dataset_splits(tmp_path / "data", distillation.SHAPES, shapes_images=8)
    labelled, folder, kept, hidden = distillation.split_unlabelled(split["train"], 0.25, tmp_path / "split")
    records = load_dataset(labelled)
    assert (kept, hidden) == (6, 2) and len(records.images) == 6 and len(list(folder.iterdir())) == 2
    assert sum(len(image.annotations) for image in records.images) > 0
    assert distillation.equal_step_epochs(10, labelled=32, unlabelled=32, batch_size=16) == 5
    assert distillation.equal_step_epochs(1, labelled=16, unlabelled=100, batch_size=16) == 1


@pytest.mark.slow
def test_the_benchmark_runs_end_to_end_at_a_tiny_setting(tmp_path: Path, monkeypatch, capfd):
    src = str(Path(gfocal.__file__).resolve().parents[1])  # the children run this checkout's gfocal
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")])))
    results = tmp_path / "distillation.json"
    distillation.main(
        [
            *["--datasets", "shapes", "--shapes-images", "16", "--seeds", "0", "--teacher-epochs", "1"],
            *["--student-epochs", "1", "--teacher-minutes", "1", "--student-minutes", "1", "--cost-repeats", "1"],
            *["--data-root", str(tmp_path / "data"), "--work", str(tmp_path / "work"), "--json", str(results)],
        ]
    )
    output = json.loads(results.read_text())
    assert output["complete"] and json.loads(capfd.readouterr().out)["complete"]
    variants = [run["variant"] for run in output["runs"]]
    assert variants == ["plain", "ld", "half_plain", "half_ld", "half_ld_unlabelled", "plain_equal_time"]
    assert all("error" not in run and 0.0 <= run["AP"] <= 1.0 and run["iterations"] > 0 for run in output["runs"])
    cost = output["step_cost"]["shapes"]
    assert cost["ratio"] > 1.0 and cost["plain_ms"] > 0
    mixed = tmp_path / "work" / "shapes" / "half_ld_unlabelled" / "seed0"
    setup = json.loads((mixed / "metrics.jsonl").read_text().splitlines()[0])
    assert setup["train_images"] == 16  # 8 labelled + 8 unlabelled
    config = yaml.safe_load((mixed / "config.yaml").read_text())
    assert config["teacher"].endswith("teacher/model.safetensors") and config["unlabelled"].endswith("images")
