"""Fine-tuning from an mmdetection GFL checkpoint: its classes (COCO's when 80, else unnamed) and `gfocal train` end to end."""

import argparse
import json

import pytest
import torch
from test_mmdet_mapping import fake_mmdet_state, source_model

from gfocal.cli.main import main
from gfocal.data.synthetic import make_synthetic_splits
from gfocal.engine.pretrained import COCO_CLASSES, read_pretrained
from gfocal.interop import MMDET_PREPROCESSING
from gfocal.models import WeightsError, gfl_small, load_model


def test_mmdetection_classes_are_coco_when_there_are_80_and_unnamed_otherwise(tmp_path):
    torch.manual_seed(0)
    torch.save(
        fake_mmdet_state(gfl_small(80, min_size=64, max_size=64, backbone_norm="frozen_bn")), tmp_path / "coco.pth"
    )
    torch.save(fake_mmdet_state(source_model()), tmp_path / "four.pth")
    coco = read_pretrained(tmp_path / "coco.pth")
    assert coco.kind == "mmdetection checkpoint" and coco.class_names == COCO_CLASSES and len(set(COCO_CLASSES)) == 80
    assert "its 80 classes are taken as COCO's" in coco.notes[0]
    unnamed = read_pretrained(tmp_path / "four.pth")
    assert unnamed.class_names is None and "weights_class_map=by_order" in unnamed.notes[0]
    assert unnamed.config.backbone_norm == "frozen_bn" and unnamed.config.min_size == 800  # mmdetection's settings


@pytest.mark.parametrize(
    "meta",
    [
        {"dataset_meta": {"classes": ("a", "b", "c", "d"), "palette": [(0, 0, 0)] * 4}},
        {"CLASSES": ("a", "b", "c", "d")},
    ],
    ids=["mmdet3", "mmdet2"],
)
def test_mmdetection_class_names_are_read_from_the_meta_of_either_version(tmp_path, meta):
    torch.save({"meta": {"epoch": 12, **meta}, "state_dict": fake_mmdet_state(source_model())}, tmp_path / "w.pth")
    pretrained = read_pretrained(tmp_path / "w.pth")
    assert (
        pretrained.class_names == ("a", "b", "c", "d")
        and "class names from the checkpoint's meta" in pretrained.notes[0]
    )
    torch.save({"meta": {"CLASSES": ("a", "b")}, "state_dict": fake_mmdet_state(source_model())}, tmp_path / "w.pth")
    miscounted = read_pretrained(tmp_path / "w.pth")
    assert miscounted.class_names is None and "its meta names 2 classes for 4 outputs" in miscounted.notes[0]


def test_a_checkpoint_pickling_objects_is_refused_with_what_to_save_instead(tmp_path):
    torch.save(
        {"state_dict": fake_mmdet_state(source_model()), "message_hub": argparse.Namespace()}, tmp_path / "w.pth"
    )
    with pytest.raises(WeightsError, match=r"torch\.save only its 'state_dict' and 'meta' entries"):
        read_pretrained(tmp_path / "w.pth")


@pytest.mark.slow
def test_gfocal_train_fine_tunes_from_an_mmdetection_pth(tmp_path, capsys):
    source = source_model()  # gfl_small's architecture, 4 classes, random non-trivial weights
    torch.save({"meta": {"epoch": 12}, "state_dict": fake_mmdet_state(source)}, tmp_path / "gfl_mmdet.pth")
    train_json, val_json = make_synthetic_splits(
        tmp_path / "data",
        "demo",
        seed=0,
        num_train=4,
        num_val=2,
        image_size=(64, 64),
        size_range=(12, 40),
        objects_per_image=(1, 2),
    )
    out = tmp_path / "run"
    argv = [
        "train",
        "--weights",
        str(tmp_path / "gfl_mmdet.pth"),
        "--data",
        str(train_json),
        "--val-data",
        str(val_json),
        "--out",
        str(out),
        "--image-size",
        "64",
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--workers",
        "0",
        "--precision",
        "fp32",
        "--set",
        "weights_class_map=by_order",
    ]
    assert main(argv) == 0
    report = json.loads((out / "pretrained.json").read_text())
    assert report["kind"] == "mmdetection checkpoint"
    assert report["lines"][-1].endswith("cls_out: all 4 classes from the checkpoint (same order)")
    assert len(report["loaded"]) == len(source.state_dict()) and report["unused"] == []
    model = load_model(out / "model.safetensors")
    assert (model.config.max_size, model.config.backbone_norm) == (64, "frozen_bn")
    assert tuple(model.config.image_mean) == MMDET_PREPROCESSING["image_mean"]  # the checkpoint's preprocessing
    config = (out / "config.yaml").read_text()
    assert "lr: 0.002" in config and "warmup_iters: 100" in config  # the default recipe, as from scratch
