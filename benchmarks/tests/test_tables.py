"""``benchmarks/tables.py``: the docs' tables are what the committed raw JSON gives, and the renderers compute
the right figures from hand-made runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tables
import tables_speed
import tables_tools


def test_every_generated_table_in_the_docs_is_what_the_committed_results_give():
    documents_with_tables = [path for path in tables.DOCUMENTS if tables.BLOCK.search(path.read_text())]
    assert documents_with_tables, "no generated table found: the docs' tables should come from docs/results"
    for path in documents_with_tables:
        text = path.read_text()
        assert tables.render_document(text, tables.RESULTS) == text, f"{path}: run python benchmarks/tables.py --write"


def _write_runs(folder: Path, name: str, runs: list[dict]) -> None:
    provenance = {"machine": {"cpu": "Test CPU"}, "gfocal_commit": "abcdef0123"}
    (folder / name).write_text(json.dumps({**provenance, "runs": runs}))


def _run(variant: str, seed: int, ap: float, **extra) -> dict:
    metrics = {"AP": ap, "AP50": ap + 0.1, "APs": ap - 0.1, "APm": ap, "iterations": 100 + seed, "train_seconds": 60.0}
    return {"dataset": "d", "variant": variant, "seed": seed, **metrics, **extra}


def test_comparison_table_gives_mean_and_sample_std_per_variant_and_takes_only_the_named_runs(tmp_path: Path):
    _write_runs(tmp_path, "a.json", [_run("old_name", 0, 0.50), _run("other", 0, 0.99)])
    _write_runs(tmp_path, "b.json", [_run("new", 2, 0.70), _run("new", 1, 0.60), _run("new", 3, 0.1, error="x")])
    sources = [tables.Source("a.json", variants=("old_name",), rename={"old_name": "new"}), tables.Source("b.json")]
    rows = tables.comparison_table(sources, {"new": "the new one"}, tmp_path).splitlines()
    assert len(rows) == 3  # header, rule, one group: "other" not taken, the failed run left out
    cells = [cell.strip() for cell in rows[2].split("|")]
    assert cells[2:5] == ["the new one", "0, 1, 2", "60.0 ± 10.0"]  # AP 50, 60, 70: sample std 10
    assert cells[8] == "50.0, 60.0, 70.0" and cells[9] == "100, 101, 102"
    assert cells[10] == "Test CPU, abcdef0"


def test_paired_table_differences_are_per_seed_against_the_reference(tmp_path: Path):
    runs = [_run("default", 0, 0.50), _run("default", 1, 0.60), _run("piece", 0, 0.45), _run("piece", 1, 0.62)]
    _write_runs(tmp_path, "s.json", runs)
    rows = tables.paired_table([tables.Source("s.json")], "default", {}, tmp_path).splitlines()
    piece = [cell.strip() for cell in rows[3].split("|")]
    assert piece[2] == "piece" and piece[7] == "-5.0, +2.0" and piece[8] == "-1.5"


def test_an_unknown_table_name_is_an_error():
    with pytest.raises(KeyError, match="no_such_table"):
        tables.render_document("<!-- table: no_such_table -->\nold\n<!-- end table -->\n", tables.RESULTS)


def _write(folder: Path, name: str, data: dict) -> None:
    provenance = {
        "command": "python x.py",
        "gfocal_commit": "abcdef0123",
        "machine": {"cpu": "Test CPU", "threads": 2, "cuda": None, "torch": "9.9"},
        "load_average": [0.4, 1.3, 2.0],
    }
    (folder / name).write_text(json.dumps({**provenance, **data}))


def test_speed_tables_show_each_mode_with_first_calls_and_the_ratio_to_mmdetection(tmp_path: Path):
    timings = {
        "fp32": {"inference_ms": 1500.0, "train_step_batch2_ms": 9000.0},
        "bf16_channels_last": {"inference_ms": 300.0, "train_step_batch2_ms": 3000.0},
        "bf16_channels_last_compiled": {"inference_ms": 250.0, "inference_first_call_s": 16.4},
        "mmdet_fp32": {"inference_ms": 1000.0, "train_step_batch2_ms": 10000.0},
    }
    _write(tmp_path, "cpu.json", {"r50": timings})
    rows = tables.speed_table({"r50": "cpu.json"}, tmp_path).splitlines()
    assert rows[2] == "| gfocal fp32 | 1.50 s | 9.00 s |"
    assert [row.split(" | ")[1:] for row in rows[3:5]] == [
        ["300 ms", "3.00 s |"],
        ["250 ms (first call 16 s)", "not measured |"],
    ]
    assert rows[-1].endswith(
        "Test CPU, 2 threads, torch 9.9, gfocal abcdef0, by `python x.py` (load average 1.3 over the last 5 minutes)."
    )
    goals = tables.goals_table("cpu.json", "r50", tmp_path).splitlines()
    assert goals[2].startswith("| inference time, `auto` | ≤ 0.35x | **0.30x** | 300 ms | 1.00 s |")
    assert goals[3].startswith("| training step time")  # fp32 + channels_last was not measured: no row
    assert "| **0.30x** |" in goals[3]  # 3 s against 10 s meets the 0.4x goal
    timings["bf16_channels_last"]["inference_ms"] = 400.0
    _write(tmp_path, "cpu.json", {"r50": timings})
    assert "| 0.40x |" in tables.goals_table("cpu.json", "r50", tmp_path).splitlines()[2]  # misses 0.35x: not bold


def test_ablation_differences_are_per_seed_and_a_file_without_provenance_says_where_it_came_from(tmp_path: Path):
    def runs(*aps):
        return [{"seed": seed, "AP": ap} for seed, ap in enumerate(aps)]

    results = {
        "ATSS baseline (FL)": {"id": "atss", "runs": runs(0.10, 0.12)},
        "GFL = QFL + DFL": {"id": "gfl", "runs": runs(0.11, 0.11)},
    }
    (tmp_path / "a.json").write_text(json.dumps({"results": results}))
    rows = tables.seed_differences_table("a.json", [("gfl", "atss")], tmp_path, "an older run").splitlines()
    assert rows[2] == "| GFL − ATSS baseline | +1.0 | −1.0 | +0.0 |"
    assert rows[-1] == "Source: `docs/results/a.json`, an older run."


def test_an_ablation_run_in_parts_is_one_table_with_the_source_of_each_part(tmp_path: Path):
    def variant(variant_id: str, *aps: float) -> dict:
        runs = [
            {
                "seed": seed,
                "AP": ap,
                "AP50": ap,
                "AP75": ap,
                "APs": ap,
                "train_s_per_iter": 0.5,
                "inference_ms_per_image": 20,
            }
            for seed, ap in enumerate(aps)
        ]
        return {"id": variant_id, "runs": runs}

    def part(name: str, commit: str, results: dict) -> None:
        provenance = {"machine": {"cpu": "Test CPU", "cuda": None, "threads": 2, "torch": "2.14.1"}, "command": "x"}
        (tmp_path / name).write_text(json.dumps({**provenance, "gfocal_commit": commit, "results": results}))

    part("a.json", "aaaaaaa1", {"GFL = QFL + DFL": variant("gfl", 0.20, 0.22)})
    part("b.json", "bbbbbbb2", {"GFLv2 (DGQP)": variant("gflv2", 0.25, 0.21)})
    table = tables.ablation_table(("a.json", "b.json"), tmp_path).splitlines()
    assert [row.split(" | ")[0] for row in table[2:4]] == ["| GFL = QFL + DFL", "| GFLv2 (DGQP)"]
    assert table[3].startswith("| GFLv2 (DGQP) | 0, 1 | 23.0 ± 2.8 |")
    assert "`docs/results/a.json`" in table[-3] and "aaaaaaa" in table[-3]
    assert "`docs/results/b.json`" in table[-1] and "bbbbbbb" in table[-1]
    differences = tables.seed_differences_table(("a.json", "b.json"), [("gflv2", "gfl")], tmp_path).splitlines()
    assert differences[2] == "| GFLv2 − GFL | +5.0 | −1.0 | +2.0 |"


def test_auroc_table_has_a_column_per_evaluation_and_says_when_the_run_stopped_early(tmp_path: Path):
    def evaluation(iteration, value):
        return {
            "iteration": iteration,
            "auroc": dict.fromkeys(tables_tools.AUROC_ROWS.values(), value),
            "annotations": 9,
            "ambiguous": 4,
        }

    runs = [evaluation(300, 0.61), evaluation(600, 0.7), evaluation(600, 0.7)]  # the last one repeated
    _write(tmp_path, "a.json", {"complete": False, "settings": {"iterations": 1200}, "evaluations": runs})
    rows = tables.auroc_table("a.json", tmp_path).splitlines()
    assert rows[0] == "| statistic (AUROC, held-out objects) | 300 it. | 600 it. |"
    assert rows[2] == "| **`ambiguity`** (label-free box score) | 0.61 | 0.70 |"
    assert rows[-1].startswith(
        "9 held-out objects, 4 of them ambiguous. The run was stopped after 600 of 1200 iterations."
    )


def _analysis(merges: dict[str, dict]) -> dict:
    return {
        "machine": {"cpu": "Test CPU", "torch": "9.9"},
        "gfocal_commit": "abcdef0123",
        "objects": 30,
        "min_score": 0.3,
        "results": merges,
    }


def _merge(ap: float, **places: dict) -> dict:
    return {"AP": ap, "AP50": 0.5, "AP75": 0.25, "detections": 40, "by_place": places}


def _place(objects: int, missed: int, iou: float, **detections: int) -> dict:
    return {"objects": objects, "missed": missed, "mean_best_iou_found": iou, "share_iou_075_of_found": 0.5,
            "detections": detections}  # fmt: skip


def test_merge_analysis_table_sums_the_places_and_weights_the_iou_by_objects_found(tmp_path: Path):
    places = {
        "cut": _place(10, 0, 0.9, true=10, duplicate=2, background=1),
        "single": _place(20, 10, 0.6, true=10, poor_box=3, wrong_class=4),
    }
    (tmp_path / "a.json").write_text(json.dumps(_analysis({"nms": _merge(0.2, **places)})))
    rows = tables.merge_analysis_table({"val": "a.json"}, {"nms": "NMS"}, tmp_path).splitlines()
    cells = [cell.strip() for cell in rows[2].split("|")]
    assert cells[1:7] == ["val", "NMS", "20.0", "50.0", "25.0", "40"]
    assert cells[7:12] == ["20", "2", "3", "5", "10"]  # true, duplicate, poor box, background + wrong class, missed
    assert cells[12] == "0.750"  # (10 x 0.9 + 10 x 0.6) / 20 found
    assert "30 objects" in rows[-1] and "abcdef0" in rows[-1]


def test_place_table_has_one_row_per_merge_and_place(tmp_path: Path):
    places = {"cut": _place(10, 1, 0.8, true=9), "overlap": _place(5, 0, 0.7, true=5, duplicate=1)}
    (tmp_path / "a.json").write_text(json.dumps(_analysis({"nms": _merge(0.2, **places), "dist": _merge(0.1)})))
    rows = tables.place_table("a.json", ("nms",), {}, tmp_path).splitlines()
    assert len(rows) == 2 + 2 + 2  # header, rule, two places, a blank line and the provenance
    assert [cell.strip() for cell in rows[3].split("|")][1:9] == [
        "nms", "whole in 2+ tiles", "5", "0", "0.700", "50%", "5", "1",
    ]  # fmt: skip


def _localisation_run(
    label: str, ap75: float, gains: tuple[float, float, float], largest: str | None, ap: float = 0.4
) -> dict:
    oracles = {"original": {"AP": ap, "AP50": 0.8, "AP75": ap75}}
    for name, gain in zip(("perfect_boxes", "perfect_ranking", "no_duplicates"), gains):
        oracles[name] = {"gain": {"AP": gain / 2, "AP50": 0.0, "AP75": gain}}
    return {
        "label": label,
        "settings": {"score_threshold": 0.3},
        "oracles": oracles,
        "best_iou": {"quantiles": {"p50": 0.712}, "share_iou_075": 0.41},
        "box_errors": {"width_ratio": 1.084, "height_ratio": None},  # None: no object found
        "score_iou": {"spearman": 0.456},
        "duplicates": {"iou_050": {"count_confident": 7, "share_confident": 0.05}},
        "largest_ap75_gain": largest,
    }


def test_localisation_table_has_a_row_per_run_and_names_a_file_not_written_yet(tmp_path: Path):
    runs = [_localisation_run("gfocal", 0.25, (0.30, 0.05, 0.01), "perfect_boxes"),
            _localisation_run("yolov8n", 0.45, (0.0, -0.01, 0.0), None)]  # fmt: skip
    _write(tmp_path, "a.json", {"objects": 236, "runs": runs})
    rows = tables.localisation_table({"trees": "a.json", "other": "missing.json"}, tmp_path).splitlines()
    cells = [cell.strip() for cell in rows[2].split("|")][1:-1]
    assert cells == ["trees", "gfocal", "40.0", "80.0", "25.0", "0.71", "41%", "1.08", "–", "0.46", "7 (5%)",
                     "+30.0", "+5.0", "+1.0", "box regression"]  # fmt: skip
    assert rows[3].endswith("| +0.0 | −1.0 | +0.0 | none |")
    assert rows[5].startswith("trees: 236 objects, score ≥ 0.3. Source: `docs/results/a.json`")
    assert rows[6] == "other: not measured yet (no `docs/results/missing.json`)."


def test_seeds_table_gives_each_seed_the_mean_and_std_and_the_ratio_to_the_last_model(tmp_path: Path):
    for seed, (ours, peer) in enumerate([(0.14, 0.12), (0.16, 0.12)]):
        runs = [_localisation_run("gfocal", 0.25, (0.3, 0.0, 0.0), None, ap=ours),
                _localisation_run("yolov8n", 0.45, (0.0, 0.0, 0.0), None, ap=peer)]  # fmt: skip
        _write(tmp_path, f"s{seed}.json", {"objects": 9, "runs": runs})
    rows = tables.seeds_table({0: "s0.json", 1: "s1.json"}, tmp_path).splitlines()
    assert rows[0].endswith("| AP75 | AP, AP75 over yolov8n's |")
    assert (
        rows[2]
        == "| gfocal | 14.0 / 80.0 / 25.0 | 16.0 / 80.0 / 25.0 | 15.0 ± 1.4 | 80.0 ± 0.0 | 25.0 ± 0.0 | 1.25x, 0.56x |"
    )
    assert rows[3].endswith("| 12.0 ± 0.0 | 80.0 ± 0.0 | 45.0 ± 0.0 | 1.00x, 1.00x |")
    assert rows[5].startswith("Source: `docs/results/s0.json`") and rows[7].startswith("Source: `docs/results/s1.json`")


def test_zoo_speed_table_has_a_row_per_model_and_says_why_mmdetection_was_not_timed(tmp_path: Path):
    results = {
        "r101": {"fp32": {"inference_ms": 4000.0}, "mmdet_fp32": {"inference_ms": 5000.0}},
        "x101_dcn": {"fp32": {"inference_ms": 9000.0}, "mmdet_fp32": {"not_timed": "no compiled op"}},
    }
    _write(tmp_path, "zoo.json", results)
    rows = tables_speed.zoo_speed_table("zoo.json", tmp_path).splitlines()
    assert rows[0] == "| inference, one 800 x 1216 image | gfocal fp32 | mmdetection GFL, fp32 |"
    assert rows[2] == "| R-101 (`gfl_resnet101_fpn`) | 4.00 s | 5.00 s |"
    assert rows[3] == "| X-101-32x4d-DCN (`gfl_resnext101_32x4d_dcn_fpn`) | 9.00 s | not timed: no compiled op |"


def test_real_tiling_table_bolds_the_best_merge_and_adds_the_tiles_row(tmp_path: Path):
    places = {"single": _place(30, 5, 0.8, true=25, background=2)}
    data = {
        **_analysis({"nms": _merge(0.2, **places), "dist": _merge(0.1, **places)}),
        **{"weights": "/runs/trees_base/model.safetensors", "tile": 416, "overlap": 0.2, "max_detections": 1000},
        "tiles": {"AP": 0.15, "AP50": 0.4, "AP75": 0.05, "AR100": 0.3, "images": 12},
    }
    (tmp_path / "a.json").write_text(json.dumps(data))
    rows = tables_tools.real_tiling_table({"test band": "a.json"}, {"nms": "NMS"}, tmp_path).splitlines()
    assert [cell.strip() for cell in rows[2].split("|")][1:6] == [
        "test band",
        "NMS",
        "**20.0**",
        "**50.0**",
        "**25.0**",
    ]
    assert [cell.strip() for cell in rows[3].split("|")][1:6] == ["test band", "dist", "10.0", "**50.0**", "**25.0**"]
    assert [cell.strip() for cell in rows[4].split("|")][1:6] == [
        "test band", "its 12 tiles, each scored alone", "15.0", "40.0", "5.0",
    ]  # fmt: skip
    assert "`trees_base`" in rows[-1] and "416 px" in rows[-1] and "30 crowns" in rows[-1]


def test_lever_table_differences_are_against_the_reference_row_and_a_missing_file_is_named(tmp_path: Path):
    from tables_levers import lever_table

    rows = [{"weights": w, "nms": n, "AP": ap, "AP50": 0.6, "AP75": 0.08} for w, n, ap in
            [("raw", 0.5, 0.215), ("raw", 0.6, 0.219), ("ema0.99:0.1", 0.6, 0.195)]]  # fmt: skip
    _write(tmp_path, "a.json", {"rows": rows, "iterations": 300, "seed": 0, "set": []})
    _write(tmp_path, "b.json", {"rows": [{**rows[1], "AP": 0.214}], "iterations": 300, "seed": 0, "set": ["x=1"]})
    files = {"default": "a.json", "DGQP": "b.json", "later": "missing.json"}
    lines = lever_table(files, ("default", "raw", 0.6), tmp_path).splitlines()
    assert lines[2] == "| default | raw | 0.5 | 21.5 | 60.0 | 8.0 | −0.4 |"
    assert lines[3].endswith("| 21.9 | 60.0 | 8.0 | +0.0 |")
    assert lines[4].endswith("| 19.5 | 60.0 | 8.0 | −2.4 |")
    assert lines[5] == "| DGQP | raw | 0.6 | 21.4 | 60.0 | 8.0 | −0.5 |"
    assert lines[8].startswith("DGQP: 300 steps, seed 0, `--set x=1`. Source: `docs/results/b.json`")
    assert lines[9] == "later: not measured yet (no `docs/results/missing.json`)."


def test_lever_seeds_table_pairs_each_seed_and_names_the_seeds_not_measured(tmp_path: Path):
    from tables_levers import lever_seeds_table

    for label, seed, ap in [("a", 0, 0.219), ("b", 0, 0.214), ("a", 1, 0.210), ("b", 1, 0.221)]:
        row = {"weights": "raw", "nms": 0.6, "AP": ap, "AP50": 0.6, "AP75": 0.08}
        _write(tmp_path, f"{label}{seed}.json", {"rows": [row], "seed": seed, "iterations": 300, "set": []})
    files = {"default": ["a0.json", "a1.json", "a2.json"], "DGQP": ["b0.json", "b1.json", "b2.json"]}
    lines = lever_seeds_table(files, "default", tmp_path).splitlines()
    assert lines[0] == "| seed | default AP / AP75 | DGQP AP / AP75 | DGQP − default |"
    assert lines[2:5] == [
        "| 0 | 21.9 / 8.0 | 21.4 / 8.0 | −0.5 |",
        "| 1 | 21.0 / 8.0 | 22.1 / 8.0 | +1.1 |",
        "| mean ± std (AP) | 21.4 ± 0.6 | 21.8 ± 0.5 | +0.3 ± 1.1 |",
    ]
    assert lines[6] == "not measured yet: `docs/results/a2.json`, `docs/results/b2.json`."
