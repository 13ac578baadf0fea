"""``gfocal analyze`` end to end on a tiny synthetic set with an untrained model: files, formats, rankings."""

import csv
import json
from pathlib import Path

import pytest

from gfocal.cli.main import main


def run_ambiguity(weights: Path, data: Path, out: Path, *extra: str) -> int:
    return main(
        [
            "-q",
            "analyze",
            "ambiguity",
            "--weights",
            str(weights),
            "--data",
            str(data),
            "--out",
            str(out),
            "--top-k",
            "3",
            *extra,
        ]
    )


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_ambiguity_report_on_coco(tiny_coco, untrained_weights, tmp_path, capsys):
    out = tmp_path / "report"
    assert run_ambiguity(untrained_weights, tiny_coco, out) == 0
    coco = json.loads(tiny_coco.read_text())
    rows = read_csv(out / "annotations.csv")
    # One row per annotation, keeping the dataset's own ids and file names.
    assert sorted(int(r["annotation_id"]) for r in rows) == sorted(a["id"] for a in coco["annotations"])
    by_id = {i["id"]: i["file_name"] for i in coco["images"]}
    assert all(r["file_name"] == by_id[int(r["image_id"])] for r in rows)
    # Ranks follow the scores.
    scores = [float(r["ambiguity"]) for r in rows]
    assert [int(r["rank"]) for r in rows] == list(range(1, len(rows) + 1))
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
    disagreement = sorted(rows, key=lambda r: int(r["disagreement_rank"]))
    assert [float(r["disagreement"]) for r in disagreement] == sorted(
        (float(r["disagreement"]) for r in rows), reverse=True
    )
    # JSON: the same rows plus the dataset's extra fields (the synthetic ambiguity record).
    report = json.loads((out / "annotations.json").read_text())
    assert [a["annotation_id"] for a in report["annotations"]] == [int(r["annotation_id"]) for r in rows]
    assert all("ambiguous_edges" in a["extra"] for a in report["annotations"])
    images = read_csv(out / "images.csv")
    assert len(images) == len({r["image_id"] for r in rows})
    assert float(images[0]["max_ambiguity"]) == pytest.approx(scores[0], rel=1e-6)
    # Figures for the top 3, embedded in a self-contained page.
    figures = sorted((out / "figures").glob("*.png"))
    assert len(figures) == 3 and all(f.read_bytes().startswith(b"\x89PNG") for f in figures)
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 3 and "src='http" not in page and "<script" not in page
    assert "report.html" in capsys.readouterr().out


def test_existing_output_is_refused_without_overwrite(tiny_coco, untrained_weights, tmp_path, capsys):
    out = tmp_path / "report"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert run_ambiguity(untrained_weights, tiny_coco, out) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert list(out.iterdir()) == [out / "keep.txt"]
    assert run_ambiguity(untrained_weights, tiny_coco, out, "--overwrite", "--max-images", "1") == 0
    assert (out / "keep.txt").read_text() == "mine" and (out / "report.html").is_file()


@pytest.mark.parametrize("fixture", ["tiny_voc", "tiny_yolo"])
def test_ambiguity_on_voc_and_yolo(fixture, request, tiny_coco, untrained_weights, tmp_path):
    data = request.getfixturevalue(fixture)
    out = tmp_path / fixture
    assert run_ambiguity(untrained_weights, data, out, "--top-k", "1") == 0
    rows = read_csv(out / "annotations.csv")
    assert len(rows) == len(json.loads(tiny_coco.read_text())["annotations"])
    assert all(r["annotation_id"] and r["file_name"] for r in rows)


def test_hostile_file_names_cannot_escape(tmp_path, untrained_weights, tiny_coco):
    coco = json.loads(tiny_coco.read_text())
    coco["annotations"][0]["id"] = "../../../escape"
    data = tiny_coco.parent / "hostile.json"
    data.write_text(json.dumps(coco))
    out = tmp_path / "out"
    assert run_ambiguity(untrained_weights, data, out, "--top-k", "50", "--max-images", "1") == 0
    assert any("escape" in p.name for p in (out / "figures").iterdir())
    written = {p.resolve() for p in tmp_path.rglob("*") if p.is_file()}
    assert all(out.resolve() in p.parents for p in written)
    assert not (tmp_path / "escape.png").exists()


def test_labels_report(tiny_coco, tmp_path, capsys):
    out = tmp_path / "labels"
    assert main(["-q", "analyze", "labels", "--data", str(tiny_coco), "--out", str(out), "--image-size", "64"]) == 0
    stats = json.loads((out / "labels.json").read_text())
    assert set(stats["levels"]) == {"P3", "P4", "P5", "P6", "P7"}
    positives = sum(level["positives"] for level in stats["levels"].values())
    assert positives > 0
    for level in stats["levels"].values():
        for key in ("iou", "centerness"):
            assert sum(level[key]["histogram"]) == level["positives"]
            if level["positives"]:
                assert 0 <= level[key]["tiny_fraction"] <= 1
    assert (out / "labels.png").read_bytes().startswith(b"\x89PNG")
    assert "P3" in capsys.readouterr().out
