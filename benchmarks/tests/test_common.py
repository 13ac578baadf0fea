"""``benchmarks/common.py``: every benchmark writes its raw JSON with the machine, commit and command."""

from __future__ import annotations

import argparse
import ast
import json
from pathlib import Path

import common
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1]

# Scripts with a command line that are not benchmarks: they make tables, data sets, or run inside small_data.py.
NOT_BENCHMARKS = {"tables.py", "small_data_sets.py", "real_data.py", "yolo_peer.py"}  # data writers and the peer


def _description(cpu: str, capability: str = "AVX2", bf16: bool = False, amx: bool = False, cuda: str | None = None):
    return {"cpu": cpu, "cpu_capability": capability, "cpu_native_bf16": bf16, "cpu_amx": amx, "cuda": cuda}


def test_machine_tag_names_the_vendor_and_what_the_cpu_offers_torch():
    assert common.machine_tag(_description("Intel(R) Xeon(R) Processor", "AVX512", True, True)) == "intel-amx"
    assert common.machine_tag(_description("AMD EPYC 9B14", "AVX512", bf16=True)) == "amd-avx512bf16"
    assert common.machine_tag(_description("AMD EPYC 7B13")) == "amd-avx2"
    assert common.machine_tag(_description("AMD EPYC 7B13", cuda="NVIDIA H100 80GB HBM3")) == "nvidia-h100-80gb-hbm3"


def test_machine_lists_only_the_simd_and_matrix_flags():
    description = common.machine()
    assert description["cpu_cores"] >= 1 and description["torch"]
    assert all(common.SIMD_FLAGS.fullmatch(flag) for flag in description["cpu_flags"])
    assert not {"fpu", "sse2", "ht"} & set(description["cpu_flags"])
    if description["cpu_capability"] in ("AVX2", "AVX512"):  # torch saw AVX2 or wider: /proc/cpuinfo says so too
        assert "avx2" in description["cpu_flags"]


def test_the_default_results_file_is_under_docs_results_named_by_benchmark_and_machine():
    parser = argparse.ArgumentParser()
    common.add_json_argument(parser, "cpu")
    default = Path(parser.parse_args([]).json)
    assert default.parent == common.RESULTS
    assert default.name == f"cpu-{common.machine_tag(common.machine())}.json"
    assert parser.parse_args(["--json", "x.json"]).json == "x.json"


def test_report_writes_results_with_command_commit_and_machine(tmp_path: Path, capsys: pytest.CaptureFixture):
    common.report({"median_ms": 1.5}, tmp_path / "sub" / "r.json", quiet=True)
    written = json.loads((tmp_path / "sub" / "r.json").read_text())
    assert written["median_ms"] == 1.5
    assert written["machine"] == common.machine() and "command" in written
    assert len(written["load_average"]) == 3 and min(written["load_average"]) >= 0
    assert written["gfocal_commit"] is None or len(written["gfocal_commit"].split("+")[0]) == 40
    assert capsys.readouterr().out == ""
    common.report({"median_ms": 2.0}, "-")
    assert json.loads(capsys.readouterr().out)["median_ms"] == 2.0
    assert not Path("-").exists()


def _calls(tree: ast.AST) -> set[str]:
    return {
        node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
    }


def test_every_benchmark_writes_its_json_through_the_shared_helpers():
    scripts = sorted(path for path in BENCHMARKS.glob("*.py") if path.name not in NOT_BENCHMARKS | {"common.py"})
    with_command_line = [
        path for path in scripts if {"parse_args", "parse_known_args"} & _calls(ast.parse(path.read_text()))
    ]
    assert len(with_command_line) >= 15
    for path in with_command_line:
        calls = _calls(ast.parse(path.read_text()))
        assert {"add_json_argument", "report"} <= calls, f"{path.name} does not write its JSON with common.report"
