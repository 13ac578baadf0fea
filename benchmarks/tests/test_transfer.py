"""``benchmarks/transfer.py``: its two datasets (many pretraining classes, disjoint target classes), its
variants, and the whole benchmark end to end at a tiny setting (seconds per run)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import transfer
import yaml

import gfocal
from gfocal.models import load_model


def test_the_datasets_have_many_pretraining_classes_disjoint_from_the_target_and_the_asked_sizes(tmp_path: Path):
    splits = transfer.write_datasets(tmp_path, pretrain_images=6, finetune_images=3, image_size=64, held_out=4)
    classes = {
        name: [c["name"] for c in json.loads(split["train"].read_text())["categories"]]
        for name, split in splits.items()
    }
    assert classes == {"pretrain": list(transfer.PRETRAIN_CLASSES), "target": ["diamond", "ring"]}
    assert len(classes["pretrain"]) == 16 and "triangle/stripes" in classes["pretrain"]
    pretrain_shapes = {name.split("/")[0] for name in classes["pretrain"]}
    assert pretrain_shapes.isdisjoint(classes["target"])
    counts = {
        (name, s): len(json.loads(p.read_text())["images"]) for name, split in splits.items() for s, p in split.items()
    }
    assert counts == {
        ("pretrain", "train"): 6,
        ("pretrain", "val"): 20,
        ("pretrain", "test"): 20,
        ("target", "train"): 3,
        ("target", "val"): 4,
        ("target", "test"): 4,
    }
    test_images = {i["file_name"] for i in json.loads(splits["target"]["test"].read_text())["images"]}
    assert all(name.startswith("test/") for name in test_images)  # its own images, none of train's
    stamp = splits["target"]["train"].stat().st_mtime_ns
    again = transfer.write_datasets(tmp_path, 6, 3, 64, held_out=4)
    assert again == splits and splits["target"]["train"].stat().st_mtime_ns == stamp


def test_every_variant_has_arguments_and_only_fine_tuning_reads_the_weights(tmp_path: Path):
    args = {variant: transfer.variant_args(variant, tmp_path, 96) for variant in transfer.VARIANTS}
    weights = str(tmp_path / "model.safetensors")
    assert args["finetune"] == ["--weights", weights, "--recipe", "finetune", "--image-size", "96"]
    assert args["finetune_default_recipe"] == ["--weights", weights, "--recipe", "default", "--image-size", "96"]
    assert str(tmp_path) not in " ".join(args["scratch"])
    assert args["finetune_mmdet"][:2] == ["--weights", str(tmp_path / "model_mmdet.pth")]
    assert "model_overrides.min_size=96" in args["finetune_mmdet"] and "--image-size" not in args["finetune_mmdet"]
    assert transfer.planned_runs(list(transfer.VARIANTS), [0, 1], 1) == [
        ("finetune", 0),
        ("finetune", 1),
        ("finetune_default_recipe", 0),
        ("finetune_default_recipe", 1),
        ("scratch", 0),
        ("scratch", 1),
        ("finetune_mmdet", 0),
    ]


@pytest.mark.slow
def test_the_benchmark_runs_end_to_end_at_a_tiny_setting(tmp_path: Path, monkeypatch, capfd):
    src = str(Path(gfocal.__file__).resolve().parents[1])  # the children run this checkout's gfocal
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")])))
    work, results = tmp_path / "work", tmp_path / "transfer.json"
    transfer.main(
        [
            *["--seeds", "0", "--minutes", "0.2", "--pretrain-minutes", "0.3", "--pretrain-images", "40"],
            *["--finetune-images", "8", "--held-out", "6", "--image-size", "64"],
            *["--work", str(work), "--json", str(results)],
        ]
    )
    output = json.loads(results.read_text())
    assert output["complete"] and json.loads(capfd.readouterr().out)["complete"]
    runs = {run["variant"]: run for run in output["runs"]}
    assert sorted(runs) == sorted(transfer.VARIANTS) and len(output["runs"]) == 4
    assert all("error" not in run and 0.0 <= run["AP"] <= 1.0 and run["iterations"] > 0 for run in runs.values())
    assert load_model(work / "pretrain" / "model.safetensors").config.class_names == transfer.PRETRAIN_CLASSES

    def started_from(variant: str) -> dict:
        return json.loads((work / variant / "seed0" / "pretrained.json").read_text())

    gfocal_weights, mmdet = started_from("finetune"), started_from("finetune_mmdet")
    assert (gfocal_weights["kind"], mmdet["kind"]) == ("gfocal weights", "mmdetection checkpoint")
    # Disjoint classes: the class layer starts afresh; everything else comes from the pretrained detector,
    # through the mmdetection file too (which holds no BatchNorm counters of gfocal's: its BatchNorm is frozen).
    assert all("cls_out: re-initialised" in report["lines"][-1] for report in (gfocal_weights, mmdet))
    assert "class names from the checkpoint's meta (rectangle/solid" in mmdet["lines"][0]
    assert mmdet["loaded"] == [k for k in gfocal_weights["loaded"] if not k.endswith("num_batches_tracked")]
    assert not (work / "scratch" / "seed0" / "pretrained.json").exists()
    tuned = load_model(work / "finetune_mmdet" / "seed0" / "model.safetensors").config
    assert (tuned.min_size, tuned.max_size, tuned.backbone_norm) == (64, 64, "frozen_bn")

    def lr(variant: str) -> float:
        return yaml.safe_load((work / variant / "seed0" / "config.yaml").read_text())["lr"]

    assert (lr("finetune"), lr("finetune_mmdet"), lr("finetune_default_recipe"), lr("scratch")) == (
        0.001,
        0.001,
        0.002,
        0.002,
    )
