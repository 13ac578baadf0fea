"""Bad input at the command line: exit status 2 and one ``gfocal CMD: error: ...`` message naming the file
and the problem, never a traceback; or a documented recovery (predict skips unreadable images, counted)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch

from robust_files import box, coco, image, png_header_only
from gfocal.cli.main import main
from gfocal.data import DatasetWarning
from gfocal.engine import TrainConfig, save_checkpoint
from gfocal.models import gfl_small, save_weights

FAST = ["--workers", "0", "--precision", "fp32"]


def dataset(t: Path, name: str = "train", n: int = 2, categories=None) -> Path:
    for i in range(n):
        image(t / name / f"{i}.png", (32, 24))
    images = [{"id": i + 1, "file_name": f"{name}/{i}.png"} for i in range(n)]
    return coco(t / f"{name}.json", images=images, annotations=[box([2, 2, 10, 10], i + 1, i + 1) for i in range(n)],
                categories=categories)


def weights(t: Path, nan: bool = False, **options) -> Path:
    torch.manual_seed(0)
    model = gfl_small(1, min_size=64, max_size=64, class_names=("x",), **options)
    if nan:
        with torch.no_grad():
            model.head.cls_out.bias.fill_(float("nan"))
    return save_weights(model, t / "w.safetensors")


def train_args(t: Path, data: Path | None = None, *extra: str) -> list[str]:
    return ["train", "--data", str(data or dataset(t)), "--out", str(t / "run"), "--model", "gfl_small", "--epochs", "1",
            "--batch-size", "2", *FAST, *extra]


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
    pytest.param(lambda t: train_args(t, coco(t / "bad.json", raw="{")), r"bad\.json: not valid JSON", id="train-data-malformed-json"),
    pytest.param(lambda t: train_args(t, coco(t / "data.txt", raw="x")), r"data\.txt: unknown dataset file type", id="train-data-unknown-type"),
    pytest.param(lambda t: train_args(t, coco(t / "empty.json", images=[])), r"empty\.json: 0 usable images, fewer than batch_size 2",
                 id="train-empty-dataset"),
    pytest.param(lambda t: train_args(t, coco(t / "gone.json", images=[{"id": 1, "file_name": "gone.jpg"}])),
                 r"gone\.json: 0 usable images.*skipped images", id="train-every-image-missing"),
    pytest.param(lambda t: [*train_args(t), "--model", "gfl_smal"], r"unknown model 'gfl_smal'.*did you mean gfl_small", id="train-unknown-model"),
    pytest.param(lambda t: [*train_args(t), "--set", "model_overrides.reg_max=0"], r"model_overrides.*reg_max must be >= 1",
                 id="train-bad-model-option"),
    pytest.param(lambda t: [*train_args(t), "--epochs", "0"], r"epochs must be > 0", id="train-zero-epochs"),
    pytest.param(lambda t: [*train_args(t), "--val-data", str(dataset(t, "val", categories=[{"id": 1, "name": "y"}]))],
                 r"val\.json: classes \['y'\] differ from the training set's \['x'\]", id="train-val-classes-differ"),
    pytest.param(lambda t: [*train_args(t), "--resume", str(garbage(t / "old" / "last.pt"))], r"last\.pt is truncated or corrupt",
                 id="train-resume-truncated-checkpoint"),
    pytest.param(checkpoint_of_another_recipe, r"cannot resume from .*last\.pt: .*lr: 0\.05 -> 0\.01", id="train-resume-changed-recipe"),
    pytest.param(lambda t: ["predict", str(image(t / "a.png")), "--weights", str(garbage(t / "w.safetensors")), "--out", str(t / "o")],
                 r"w\.safetensors: not a readable safetensors", id="predict-weights-garbage"),
    pytest.param(lambda t: ["predict", str(image(t / "a.png")), "--weights", str(weights(t, nan=True)), "--out", str(t / "o")],
                 r"w\.safetensors: 1 tensors hold NaN", id="predict-weights-with-nan"),
    pytest.param(lambda t: ["predict", str(image(t / "a.png")), "--weights", str(weights(t)), "--out", str(image(t / "o.png"))],
                 r"o\.png exists and is not a folder", id="predict-out-is-a-file"),
    pytest.param(lambda t: ["predict", str(image(t / "a.png")), "--weights", str(weights(t)), "--out", str(image(t / "o" / "x.png").parent)],
                 r"o already exists and is not empty.*--overwrite", id="predict-out-not-empty"),
    pytest.param(lambda t: ["predict", str((t / "none").mkdir() or t / "none"), "--weights", str(weights(t)), "--out", str(t / "o")],
                 r"no images found at .*none", id="predict-folder-without-images"),
    pytest.param(lambda t: ["eval", "--weights", str(weights(t)), "--data", str(dataset(t, categories=[{"id": 1, "name": "y"}])), *FAST],
                 r"train\.json: classes \['y'\] do not match the model's \['x'\]", id="eval-classes-differ-from-model"),
    pytest.param(lambda t: ["eval", "--weights", str(t / "nope.safetensors"), "--data", str(dataset(t))], r"nope\.safetensors",
                 id="eval-weights-missing"),
    pytest.param(lambda t: ["data", "summary", str(coco(t / "d.yaml", raw="names: [a\n"))], r"d\.yaml: cannot read the data yaml",
                 id="data-summary-malformed-yaml"),
    pytest.param(lambda t: ["data", "summary", "--strict", str(coco(t / "o.json", annotations=[box([1, 1, 4, 4], image_id=9)]))],
                 r"o\.json, annotation id=1: image_id 9 is not in 'images'.*orphan_annotation", id="data-summary-strict"),
]


@pytest.mark.parametrize("make_argv, message", CASES)
def test_user_mistake_exits_2_with_one_clear_message(tmp_path, capsys, make_argv, message):
    argv = make_argv(tmp_path)
    capsys.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DatasetWarning)
        assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith(f"gfocal {argv[0]}: error: "), err
    assert __import__("re").search(message, err), err


@pytest.mark.parametrize("argv", [["predict", "x.png", "--weights", "w", "--out", "o", "--batch-size", "0"],
                                  ["eval", "--weights", "w", "--data", "d.json", "--batch-size", "-1"]],
                         ids=["predict-batch-size-0", "eval-batch-size-negative"])
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
        code = main(["predict", str(source), "--weights", str(weights(tmp_path)), "--out", str(out), "--batch-size", "2", *FAST])
    assert code == 0
    messages = " ".join(str(w.message) for w in caught)
    assert all(name in messages for name in ("empty.jpg", "page.png", "bomb.png")) and "good.png" not in messages
    assert "in 1 images (3 unreadable images skipped" in capsys.readouterr().out
    predictions = json.loads((out / "predictions.json").read_text())
    assert [Path(i["file_name"]).name for i in predictions["images"]] == ["good.png"]
    assert [p.name for p in (out / "images").iterdir()] == ["good.jpg"]
