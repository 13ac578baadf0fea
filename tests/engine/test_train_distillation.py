"""`train` with a teacher: the LD terms logged, the teacher kept out of every saved file, exact resume with the
teacher checked, unlabelled images, and the errors a user can act on."""

import json
import shutil

import pytest
import torch

from gfocal.cli.main import main
from gfocal.data.synthetic import make_synthetic_splits
from gfocal.engine import TrainConfig, train
from gfocal.engine.build import TrainSetupError
from gfocal.engine.checkpoint import load_checkpoint
from gfocal.models import gfl_nano, load_model, save_weights
from gfocal.weights_file import read_tensors

SIZE = {"min_size": 64, "max_size": 64}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A 64 px synthetic set, a folder of its validation images as unlabelled ones, and a teacher file
    (an untrained gfl_nano with a wider head and reg_max 16: distillation needs no trained teacher to run)."""
    root = tmp_path_factory.mktemp("ld")
    options = dict(num_train=8, num_val=2, image_size=(64, 64), size_range=(12, 40), objects_per_image=(1, 3))
    make_synthetic_splits(root / "data", "demo", seed=0, **options)
    shutil.copytree(root / "data" / "val", root / "unlabelled")
    classes = json.loads((root / "data" / "train.json").read_text())["categories"]
    names = tuple(c["name"] for c in sorted(classes, key=lambda c: c["id"]))[::-1]  # another order: matched by name
    torch.manual_seed(1)
    teacher = save_weights(gfl_nano(num_classes=len(names), class_names=names, **SIZE), root / "teacher.safetensors")
    return root, teacher


def config(root, teacher, out, **changes):
    values = dict(
        model="gfl_nano",
        model_overrides={**SIZE, "reg_max": 8},
        train_data=str(root / "data" / "train.json"),
        epochs=2,
        batch_size=4,
        warmup_iters=1,
        workers=0,
        precision="fp32",
        log_interval=1,
        teacher=str(teacher),
        unlabelled=str(root / "unlabelled"),
        out_dir=str(out),
    )
    return TrainConfig(**{**values, **changes})


class Stop(Exception):
    pass


def stop_after(iterations):
    def hook(iteration, network):
        if iteration == iterations:
            raise Stop

    return hook


@pytest.mark.slow
def test_a_distillation_run_logs_ld_saves_no_teacher_and_resumes_exactly(data, tmp_path):
    root, teacher = data
    reference = train(config(root, teacher, tmp_path / "reference"))
    rows = [json.loads(line) for line in (tmp_path / "reference" / "metrics.jsonl").read_text().splitlines()]
    trained = [r for r in rows if r["kind"] == "train"]
    assert len(trained) == 4 and all(r["loss_ld"] >= 0 and "loss_ld_vlr" in r for r in trained)
    plain = gfl_nano(num_classes=4, **SIZE).state_dict().keys()
    checkpoint = load_checkpoint(reference.last_checkpoint)
    assert checkpoint["model"].keys() == plain and checkpoint["ema"]["module"].keys() == plain
    assert read_tensors(reference.weights).keys() == plain
    assert load_model(reference.weights).config.reg_max == 8
    assert checkpoint["distillation"]["path"] == str(teacher) and len(checkpoint["distillation"]["sha256"]) == 64

    interrupted = config(root, teacher, tmp_path / "resumed", checkpoint_interval=1)
    with pytest.raises(Stop):
        train(interrupted, on_step=stop_after(1))
    resumed = train(interrupted.replace(resume="auto"))
    final = load_checkpoint(resumed.last_checkpoint)
    assert final["iteration"] == 4
    for name, tensor in checkpoint["model"].items():
        torch.testing.assert_close(final["model"][name], tensor, rtol=0, atol=1e-6, msg=name)


@pytest.mark.slow
def test_resuming_with_a_changed_teacher_file_is_refused(data, tmp_path):
    root, teacher = data
    copied = tmp_path / "teacher.safetensors"
    shutil.copy(teacher, copied)
    first = config(root, copied, tmp_path / "run", epochs=1, unlabelled="")
    train(first)
    with torch.no_grad():  # the same architecture, other weights
        model = load_model(copied)
        model.head.box_out.bias.add_(1.0)
        save_weights(model, copied)
    with pytest.raises(TrainSetupError, match="the teacher .* changed since the run started"):
        train(first.replace(resume="auto"))


def test_unusable_teachers_and_folders_are_refused_saying_why(data, tmp_path):
    root, teacher = data
    other_strides = save_weights(
        gfl_nano(num_classes=2, strides=(8, 16, 32, 64, 128), box="dirac", **SIZE), tmp_path / "dirac.safetensors"
    )
    with pytest.raises(TrainSetupError, match="box='dirac'"):
        train(config(root, other_strides, tmp_path / "a"))
    with pytest.raises(TrainSetupError, match="teacher .*missing.pt: file not found"):
        train(config(root, tmp_path / "missing.pt", tmp_path / "b"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(TrainSetupError, match="unlabelled images: no images found"):
        train(config(root, teacher, tmp_path / "c", unlabelled=str(tmp_path / "empty")))
    with pytest.raises(ValueError, match="unlabelled needs a teacher"):
        config(root, "", tmp_path / "d")


def test_the_cli_flags_reach_the_run_and_errors_take_one_line(data, tmp_path, capsys):
    root, teacher = data
    argv = ["train", "--data", str(root / "data" / "train.json"), "--out", str(tmp_path / "run"), "--workers", "0"]
    assert main([*argv, "--teacher", str(tmp_path / "nope.pth"), "--unlabelled", str(root / "unlabelled")]) == 2
    error = capsys.readouterr().err
    assert "nope.pth: file not found" in error and "Traceback" not in error and len(error.strip().splitlines()) == 1
