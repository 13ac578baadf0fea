"""Safety: nothing unpickles untrusted content, derived output names stay inside the output folder, and
nothing is overwritten or deleted without being asked."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
import torch

from gfocal.cli.main import main
from gfocal.data import load_dataset, write_coco
from gfocal.models import gfl_small, save_weights
from support.files import box, coco, image

ROOT = Path(__file__).parents[2]
SOURCES = sorted((ROOT / "src").rglob("*.py")) + sorted((ROOT / "benchmarks").rglob("*.py"))


def _name(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_name(node.value)}.{node.attr}"
    return ""


def _keyword(call: ast.Call, name: str):
    return next((k.value.value for k in call.keywords if k.arg == name and isinstance(k.value, ast.Constant)), None)


def unsafe_loads(source: str) -> list[tuple[int, str]]:
    """(line, call) of every load that can run code from the file it reads."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        name = _name(node.func)
        if name == "torch.load" and _keyword(node, "weights_only") is not True:
            found.append((node.lineno, "torch.load without weights_only=True"))
        elif name in (
            "pickle.load",
            "pickle.loads",
            "pickle.Unpickler",
            "dill.load",
            "cloudpickle.load",
            "torch.jit.load",
            "marshal.load",
            "marshal.loads",
            "eval",
            "exec",
        ):
            found.append((node.lineno, name))
        elif name in ("np.load", "numpy.load") and _keyword(node, "allow_pickle") is True:
            found.append((node.lineno, f"{name}(allow_pickle=True)"))
        elif name == "yaml.load" and "Safe" not in ast.unparse(node):
            found.append((node.lineno, "yaml.load without SafeLoader"))
    return found


def test_the_checker_catches_what_it_is_for():
    bad = (
        "import torch, pickle, yaml\ntorch.load(f)\ntorch.load(f, weights_only=False)\npickle.loads(b)\nyaml.load(s)\n"
    )
    assert [line for line, _ in unsafe_loads(bad)] == [2, 3, 4, 5]
    assert unsafe_loads("torch.load(f, map_location='cpu', weights_only=True)\nyaml.safe_load(s)\n") == []


def test_no_source_file_loads_untrusted_content_unsafely():
    assert len(SOURCES) > 40
    found = [
        f"{path.relative_to(ROOT)}:{line}: {what}"
        for path in SOURCES
        for line, what in unsafe_loads(path.read_text(encoding="utf-8"))
    ]
    assert found == []


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return save_weights(gfl_small(1, min_size=32, max_size=32), tmp_path_factory.mktemp("w") / "w.safetensors")


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()}


def test_predict_output_names_stay_inside_out_whatever_the_source_paths(tmp_path, weights):
    src = tmp_path / "in"
    hostile = ["..png", "...png", "a b$%&;|.png", f"{'x' * 240}.png", "-rf.png", "née 画像.png"]
    png = image(tmp_path / "template.png", (20, 16)).read_bytes()
    (src / "deep").mkdir(parents=True)
    for name in hostile:
        (src / "deep" / name).write_bytes(png)
    image(src / "one" / "same.png", (20, 16)), image(src / "two" / "same.png", (20, 16))
    before = files_under(tmp_path)
    out = tmp_path / "out"
    source = str(src / "deep" / "..")  # a source that climbs out with '..' and back: reading through it is fine
    assert (
        main(["predict", source, "--weights", str(weights), "--out", str(out), "--workers", "0", "--precision", "fp32"])
        == 0
    )
    created = files_under(tmp_path) - before
    assert all(out.resolve() in p.resolve().parents for p in created), created
    drawn = sorted(p.name for p in (out / "images").iterdir())
    assert len(drawn) == len(hostile) + 2 and all(p.parent == out / "images" for p in (out / "images").iterdir())
    assert {"same.jpg", "same_1.jpg"} <= set(drawn) and max(map(len, drawn)) <= 104


def test_dataset_paths_outside_the_folder_are_read_but_never_written(tmp_path):
    outside = image(tmp_path / "elsewhere" / "evil.png")
    absolute = image(tmp_path / "abs" / "x.png")
    ann = coco(
        tmp_path / "data" / "sub" / "ann.json",
        images=[{"id": 1, "file_name": "../../elsewhere/evil.png"}, {"id": 2, "file_name": str(absolute)}],
        annotations=[box([1, 1, 5, 5], 1, 1), box([1, 1, 5, 5], 2, 2)],
    )
    before = {p: p.stat().st_mtime_ns for p in files_under(tmp_path)}
    records = load_dataset(ann, warn=False)
    assert [r.path.resolve() for r in records.images] == [outside.resolve(), absolute.resolve()]
    out = write_coco(records, tmp_path / "data" / "converted.json")
    assert {p: p.stat().st_mtime_ns for p in files_under(tmp_path) if p != out} == before
    assert load_dataset(out, warn=False).images[0].path.resolve() == outside.resolve()


def test_predict_overwrite_writes_its_files_and_deletes_nothing(tmp_path, weights):
    image(tmp_path / "a.png", (20, 16))
    out = tmp_path / "out"
    (out / "notes").mkdir(parents=True)
    (out / "notes" / "keep.txt").write_text("mine")
    argv = [
        "predict",
        str(tmp_path / "a.png"),
        "--weights",
        str(weights),
        "--out",
        str(out),
        "--workers",
        "0",
        "--precision",
        "fp32",
    ]
    assert main(argv) == 2  # not empty: refused
    assert main([*argv, "--overwrite"]) == 0
    assert (out / "notes" / "keep.txt").read_text() == "mine" and (out / "results.json").is_file()


def test_train_refuses_a_folder_holding_a_run_and_leaves_it_byte_identical(tmp_path, capsys):
    image(tmp_path / "0.png")
    data = coco(tmp_path / "train.json", images=[{"id": 1, "file_name": "0.png"}], annotations=[box([1, 1, 9, 9])])
    run = tmp_path / "run"
    run.mkdir()
    (run / "last.pt").write_bytes(b"an earlier run")
    (run / "metrics.jsonl").write_text(json.dumps({"kind": "train", "iteration": 1}) + "\n")
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    assert main(["train", "--data", str(data), "--out", str(run), "--batch-size", "1", "--workers", "0"]) == 2
    assert "--resume" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before
