"""``benchmarks/tables.py``: the docs' tables are what the committed raw JSON gives, and the renderers compute
the right figures from hand-made runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tables


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
