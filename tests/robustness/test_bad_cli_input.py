"""Bad input at the command line: exit status 2 and one ``gfocal CMD: error: ...`` message naming the file
and the problem, never a traceback; or a documented recovery (predict skips unreadable images, counted)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch

from gfocal.cli.main import main
from gfocal.data import DatasetWarning
from gfocal.engine import TrainConfig, load_checkpoint, save_checkpoint
from gfocal.models import gfl_small, save_weights
from support.files import box, coco, image, png_header_only

FAST = ["--workers", "0", "--precision", "fp32"]


def dataset(t: Path, name: str = "train", n: int = 2, categories=None) -> Path:
    for i in range(n):
        image(t / name / f"{i}.png", (32, 24))
    images = [{"id": i + 1, "file_name": f"{name}/{i}.png"} for i in range(n)]
    return coco(
        t / f"{name}.json",
        images=images,
        annotations=[box([2, 2, 10, 10], i + 1, i + 1) for i in range(n)],
        categories=categories,
    )


def orphans(t: Path) -> Path:
    """Two images and two annotations, both for an image id that is not listed: no usable box."""
    images = [{"id": i + 1, "file_name": f"train/{i}.png"} for i in range(2)]
    dataset(t)  # the image files
    return coco(
        t / "orphan.json", images=images, annotations=[box([2, 2, 10, 10], i + 1, image_id=99) for i in range(2)]
    )


def weights(t: Path, nan: bool = False, **options) -> Path:
    torch.manual_seed(0)
    model = gfl_small(1, min_size=64, max_size=64, class_names=("x",), **options)
    if nan:
        with torch.no_grad():
            model.head.cls_out.bias.fill_(float("nan"))
    return save_weights(model, t / "w.safetensors")


class MessageHub:
    """Stands for the mmengine objects (message hub, config) that an mmdetection 3.x training checkpoint pickles."""


def checkpoint_pickling_a_class(path: Path) -> Path:
    torch.save({"state_dict": {"bbox_head.gfl_cls.bias": torch.zeros(2)}, "message_hub": MessageHub()}, path)
    return path


def train_args(t: Path, data: Path | None = None, *extra: str) -> list[str]:
    return [
        "train",
        "--data",
        str(data or dataset(t)),
        "--out",
        str(t / "run"),
        "--model",
        "gfl_small",
        "--epochs",
        "1",
        "--batch-size",
        "2",
        *FAST,
        *extra,
    ]


def checkpoint_of_another_recipe(t: Path) -> list[str]:
    config = TrainConfig(train_data=str(dataset(t)), out_dir=str(t / "run"), model="gfl_small", lr=0.05)
    save_checkpoint(t / "run" / "last.pt", {"model": {}, "config": config.to_dict()})
    return train_args(t, t / "train.json", "--resume")


def garbage(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x80\x04 not a checkpoint")
    return path


CASES = [
    pytest.param(lambda t: train_args(t, t / "nowhere.json"), r"nowhere\.json: no such file", id="train-data-missing"),
    pytest.param(
        lambda t: train_args(t, coco(t / "bad.json", raw="{")),
        r"bad\.json: not valid JSON",
        id="train-data-malformed-json",
    ),
    pytest.param(
        lambda t: train_args(t, coco(t / "data.txt", raw="x")),
        r"data\.txt: unknown dataset file type",
        id="train-data-unknown-type",
    ),
    pytest.param(
        lambda t: train_args(t, coco(t / "empty.json", images=[])),
        r"empty\.json: no usable box to train on after validation \(0 images\): the dataset lists no images$",
        id="train-empty-dataset",
    ),
    pytest.param(
        lambda t: train_args(t, coco(t / "gone.json", images=[{"id": 1, "file_name": "gone.jpg"}])),
        r"gone\.json: no usable box to train on after validation \(0 images\): 1 image files missing",
        id="train-every-image-missing",
    ),
    pytest.param(
        lambda t: train_args(t, orphans(t)),
        r"orphan\.json: no usable box to train on after validation \(2 images, "
        r"none with a box\): 2 annotations pointing to an unknown image \(skipped\)\. Example: .*image_id 99 is not",
        id="train-every-annotation-orphan",
    ),
    pytest.param(
        lambda t: [*train_args(t), "--val-data", str(orphans(t))],
        r"orphan\.json: no usable box to evaluate against",
        id="train-val-set-without-boxes",
    ),
    pytest.param(
        lambda t: [*train_args(t), "--model", "gfl_smal"],
        r"unknown model 'gfl_smal'.*did you mean gfl_small",
        id="train-unknown-model",
    ),
    pytest.param(
        lambda t: [*train_args(t), "--set", "model_overrides.reg_max=0"],
        r"model_overrides.*reg_max must be >= 1",
        id="train-bad-model-option",
    ),
    pytest.param(lambda t: [*train_args(t), "--epochs", "0"], r"epochs must be > 0", id="train-zero-epochs"),
    pytest.param(
        lambda t: [*train_args(t), "--val-data", str(dataset(t, "val", categories=[{"id": 1, "name": "y"}]))],
        r"val\.json: classes \['y'\] differ from the training set's \['x'\]",
        id="train-val-classes-differ",
    ),
    pytest.param(
        lambda t: [*train_args(t), "--resume", str(garbage(t / "old" / "last.pt"))],
        r"last\.pt: cannot read it with torch\.load\(weights_only=True\) .*truncated, corrupt",
        id="train-resume-truncated-checkpoint",
    ),
    pytest.param(
        checkpoint_of_another_recipe,
        r"cannot resume from .*last\.pt: .*lr: 0\.05 -> 0\.002",
        id="train-resume-changed-recipe",
    ),
    pytest.param(
        lambda t: [
            "predict",
            str(image(t / "a.png")),
            "--weights",
            str(garbage(t / "w.safetensors")),
            "--out",
            str(t / "o"),
        ],
        r"w\.safetensors: not a readable safetensors",
        id="predict-weights-garbage",
    ),
    pytest.param(
        lambda t: ["predict", str(image(t / "a.png")), "--weights", str(weights(t, nan=True)), "--out", str(t / "o")],
        r"w\.safetensors: 1 tensors hold NaN",
        id="predict-weights-with-nan",
    ),
    pytest.param(
        lambda t: ["predict", str(image(t / "a.png")), "--weights", str(weights(t)), "--out", str(image(t / "o.png"))],
        r"o\.png exists and is not a folder",
        id="predict-out-is-a-file",
    ),
    pytest.param(
        lambda t: [
            "predict",
            str(image(t / "a.png")),
            "--weights",
            str(weights(t)),
            "--out",
            str(image(t / "o" / "x.png").parent),
        ],
        r"o already exists and is not empty.*--overwrite",
        id="predict-out-not-empty",
    ),
    pytest.param(
        lambda t: [
            "predict",
            str((t / "none").mkdir() or t / "none"),
            "--weights",
            str(weights(t)),
            "--out",
            str(t / "o"),
        ],
        r"no images found at .*none",
        id="predict-folder-without-images",
    ),
    pytest.param(
        lambda t: [
            "eval",
            "--weights",
            str(weights(t)),
            "--data",
            str(dataset(t, categories=[{"id": 1, "name": "y"}])),
            *FAST,
        ],
        r"train\.json: classes \['y'\] do not match the model's \['x'\]",
        id="eval-classes-differ-from-model",
    ),
    pytest.param(
        lambda t: ["eval", "--weights", str(t / "nope.safetensors"), "--data", str(dataset(t))],
        r"nope\.safetensors",
        id="eval-weights-missing",
    ),
    pytest.param(
        lambda t: ["eval", "--weights", str(weights(t)), "--data", str(orphans(t)), *FAST],
        r"orphan\.json: no usable box to evaluate against after validation.*2 annotations pointing to an unknown image",
        id="eval-dataset-without-boxes",
    ),
    pytest.param(
        lambda t: ["convert", "mmdet", str(checkpoint_pickling_a_class(t / "gfl.pth")), str(t / "w.safetensors")],
        r"gfl\.pth: cannot read it with torch\.load\(weights_only=True\), which refuses the Python object it "
        r"pickles \(\S*MessageHub\).*torch\.save only its 'state_dict' and 'meta' entries",
        id="convert-mmdet-checkpoint-pickling-code",
    ),
    pytest.param(
        lambda t: ["convert", "mmdet", str(t / "gfl.pth"), str(t / "w.safetensors")],
        r"gfl\.pth: weights file not found",
        id="convert-mmdet-checkpoint-missing",
    ),
    pytest.param(
        lambda t: ["data", "summary", str(coco(t / "d.yaml", raw="names: [a\n"))],
        r"d\.yaml: cannot read the data yaml",
        id="data-summary-malformed-yaml",
    ),
    pytest.param(
        lambda t: ["data", "summary", "--strict", str(coco(t / "o.json", annotations=[box([1, 1, 4, 4], image_id=9)]))],
        r"o\.json, annotation id=1: image_id 9 is not in 'images'.*orphan_annotation",
        id="data-summary-strict",
    ),
]


# These quote a library's multi-line message (PyYAML's marked source): still to shorten.
MULTI_LINE = {"data-summary-malformed-yaml"}


@pytest.mark.parametrize("make_argv, message", CASES)
def test_user_mistake_exits_2_with_one_clear_message(tmp_path, capsys, request, make_argv, message):
    argv = make_argv(tmp_path)
    capsys.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DatasetWarning)
        assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith(f"gfocal {argv[0]}: error: "), err
    assert len(err.splitlines()) == 1 or request.node.callspec.id in MULTI_LINE, err
    assert __import__("re").search(message, err), err


@pytest.mark.parametrize(
    "argv",
    [
        ["predict", "x.png", "--weights", "w", "--out", "o", "--batch-size", "0"],
        ["eval", "--weights", "w", "--data", "d.json", "--batch-size", "-1"],
    ],
    ids=["predict-batch-size-0", "eval-batch-size-negative"],
)
def test_bad_numbers_are_refused_by_the_parser(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2 and "must be >= 1" in capsys.readouterr().err


def test_predict_skips_unreadable_images_with_a_warning_and_a_count(tmp_path, capsys):
    source = tmp_path / "imgs"
    image(source / "good.png", (40, 30))
    (source / "empty.jpg").write_bytes(b"")
    (source / "page.png").write_text("<html>not found</html>")
    png_header_only(source / "bomb.png", 20000, 20000)
    out = tmp_path / "out"
    with pytest.warns(DatasetWarning) as caught:
        code = main(
            ["predict", str(source), "--weights", str(weights(tmp_path)), "--out", str(out), "--batch-size", "2", *FAST]
        )
    assert code == 0
    messages = " ".join(str(w.message) for w in caught)
    assert all(name in messages for name in ("empty.jpg", "page.png", "bomb.png")) and "good.png" not in messages
    assert "in 1 images (3 unreadable images skipped" in capsys.readouterr().out
    predictions = json.loads((out / "predictions.json").read_text())
    assert [Path(i["file_name"]).name for i in predictions["images"]] == ["good.png"]
    assert [p.name for p in (out / "images").iterdir()] == ["good.jpg"]


def test_a_dataset_smaller_than_the_batch_trains_with_all_its_images(tmp_path, caplog):
    """2 images, batch_size 16: one step of 2 images, said in one warning and in the metrics log's setup row."""
    with caplog.at_level("WARNING", logger="gfocal.engine.prepare"):
        assert main(train_args(tmp_path, None, "--batch-size", "16", "--image-size", "64", "--set", "lr=0.01")) == 0
    assert [r.getMessage() for r in caplog.records if r.name == "gfocal.engine.prepare"] == [
        f"the training set {tmp_path / 'train.json'} has 2 usable images, fewer than batch_size 16: training with batches of 2 (the whole "
        "set), lr 0.00125 (lr 0.01 x 2/16)"
    ]
    setup = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])
    assert (setup["kind"], setup["batch_size"], setup["requested_batch_size"]) == ("setup", 2, 16)
    assert load_checkpoint(tmp_path / "run" / "last.pt")["iteration"] == 1
