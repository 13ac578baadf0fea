"""``benchmarks/detectors.py``: every detector with and without GFL on the same data, seeds and steps; the
per-seed gain and the docs table (the long benchmark itself is run by hand, docs/ablation.md)."""

from __future__ import annotations

import json

import detectors
import pytest


def run(variant, seed, ap, dataset="synthetic"):
    return {"dataset": dataset, "variant": variant, "seed": seed, "AP": ap}


def test_gain_is_per_seed_and_counts_the_seeds_where_gfl_is_not_worse():
    runs = [run("fcos", 0, 0.20), run("fcos-gfl", 0, 0.25), run("fcos", 1, 0.30), run("fcos-gfl", 1, 0.28)]
    runs += [run("tood", 0, 0.1), {"dataset": "synthetic", "variant": "tood-gfl", "seed": 0, "error": "boom"}]
    (row,) = detectors.gains(runs)  # tood has no finished pair: no row
    assert (row["detector"], row["baseline"], row["gfl"]) == ("fcos", "fcos", "fcos-gfl")
    assert row["gain_per_seed"] == pytest.approx({0: 0.05, 1: -0.02})
    assert row["gain"]["mean"] == pytest.approx(0.015)
    assert (row["gfl_not_worse_seeds"], row["seeds"]) == (1, 2)


@pytest.mark.slow
def test_a_detector_trains_with_and_without_gfl_on_the_same_data_and_seed(tmp_path):
    out = tmp_path / "detectors.json"
    table = tmp_path / "detectors.md"
    # fmt: off
    detectors.main([
        "--datasets", "synthetic", "--detectors", "retinanet", "--seeds", "0", "--epochs", "1",
        "--num-train", "4", "--num-val", "2", "--data-root", str(tmp_path / "data"), "--work", str(tmp_path / "runs"),
        "--set", "batch_size=2", "--set", "warmup_iters=1", "--set", "workers=0",
        "--set", "model_overrides.min_size=64", "--set", "model_overrides.max_size=64",
        "--json", str(out), "--markdown", str(table),
    ])
    # fmt: on
    written = json.loads(out.read_text())
    assert written["complete"] and written["gfocal_commit"]
    runs = {r["variant"]: r for r in written["runs"]}
    assert set(runs) == {"retinanet", "retinanet-gfl"} and not any("error" in r for r in runs.values())
    assert {r["iterations"] for r in runs.values()} == {2}  # 4 images, batch 2, 1 epoch: the same steps
    configs = {v: (tmp_path / "runs" / "synthetic" / v / "s0" / "config.yaml").read_text() for v in runs}
    assert "variant: retinanet\n" in configs["retinanet"] and "variant: retinanet-gfl" in configs["retinanet-gfl"]
    (gain,) = written["gains"]
    assert gain["gain_per_seed"]["0"] == pytest.approx(runs["retinanet-gfl"]["AP"] - runs["retinanet"]["AP"])
    assert "| synthetic | retinanet (`retinanet` / `retinanet-gfl`) |" in table.read_text()
