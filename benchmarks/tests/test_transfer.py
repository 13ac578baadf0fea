"""``benchmarks/transfer.py``'s pieces: the two datasets (disjoint classes, sizes, rewritten only when needed) and the variants."""

from __future__ import annotations

import json
from pathlib import Path

import transfer


def test_the_datasets_have_disjoint_classes_and_the_asked_sizes(tmp_path: Path):
    splits = transfer.write_datasets(tmp_path, pretrain_images=6, finetune_images=3, image_size=64)
    classes = {
        name: [c["name"] for c in json.loads(split["train"].read_text())["categories"]]
        for name, split in splits.items()
    }
    assert classes == {"pretrain": list(transfer.PRETRAIN_CLASSES), "target": list(transfer.TARGET_CLASSES)}
    counts = {
        (name, s): len(json.loads(p.read_text())["images"]) for name, split in splits.items() for s, p in split.items()
    }
    assert counts == {
        ("pretrain", "train"): 6,
        ("pretrain", "val"): 20,
        ("pretrain", "test"): 20,
        ("target", "train"): 3,
        ("target", "val"): 100,
        ("target", "test"): 100,
    }
    test_images = {i["file_name"] for i in json.loads(splits["target"]["test"].read_text())["images"]}
    assert all(name.startswith("test/") for name in test_images)  # its own images, none of train's
    stamp = splits["target"]["train"].stat().st_mtime_ns
    assert (
        transfer.write_datasets(tmp_path, 6, 3, 64) == splits and splits["target"]["train"].stat().st_mtime_ns == stamp
    )


def test_every_variant_has_arguments_and_only_fine_tuning_reads_the_weights(tmp_path: Path):
    weights = tmp_path / "model.safetensors"
    args = {variant: transfer.variant_args(variant, weights) for variant in transfer.VARIANTS}
    assert args["finetune"] == ["--weights", str(weights)]
    assert args["finetune_default_recipe"] == ["--weights", str(weights), "--recipe", "default"]
    assert str(weights) not in args["scratch"]
