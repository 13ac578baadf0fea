"""The command line: help, version, and one-line errors for user mistakes."""

import json
import subprocess
import sys

import pytest
import torch

from gfocal import __version__
from gfocal.cli.main import main
from gfocal.models import gfl_small, save_weights


def test_version_and_help(capsys):
    with pytest.raises(SystemExit):
        main(["--version"])
    assert __version__ in capsys.readouterr().out
    assert main([]) == 0
    assert "predict" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["demo", "train", "eval", "predict", "data", "export", "convert", "bench"])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0 and "usage" in capsys.readouterr().out


def test_console_script_runs():
    result = subprocess.run([sys.executable, "-m", "gfocal", "--version"], capture_output=True, text=True, check=True)
    assert __version__ in result.stdout


def test_synthetic_summary_and_predict_end_to_end(tmp_path, capsys):
    assert main(["data", "synthetic", str(tmp_path / "syn"), "--num-train", "2", "--num-val", "2"]) == 0
    assert main(["data", "summary", str(tmp_path / "syn" / "train.json"), "--png", str(tmp_path / "s.png")]) == 0
    assert "boxes by size" in capsys.readouterr().out and (tmp_path / "s.png").stat().st_size > 0
    torch.manual_seed(0)
    weights = save_weights(gfl_small(4, min_size=64, max_size=64), tmp_path / "w.safetensors")
    args = ["predict", str(tmp_path / "syn" / "val"), "--weights", str(weights), "--out", str(tmp_path / "p")]
    assert main([*args, "--workers", "0", "--precision", "fp32", "--distributions", "--score-threshold", "0"]) == 0
    assert (tmp_path / "p" / "results.json").exists()
    box = json.loads((tmp_path / "p" / "predictions.json").read_text())["annotations"][0]
    assert 0 <= box["ambiguity"] <= 1 and len(box["distributions"]) == 4 and len(box["distributions"][0]) == 17
    assert {"left_std", "top_entropy", "right_num_modes", "bottom_second_peak_ratio"} <= set(box)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["predict", "nowhere/*.jpg", "--weights", "w.safetensors", "--out", "o"], "no images found"),
        (["data", "summary", "missing.json"], "missing.json"),
    ],
)
def test_user_mistakes_give_one_line_errors(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert message in error and "Traceback" not in error


def test_weights_that_are_not_a_model_give_one_line_error(tmp_path, capsys):
    (tmp_path / "img.png").write_bytes(b"")
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "img.png")
    (tmp_path / "w.safetensors").write_bytes(b"garbage")
    assert (
        main(
            [
                "predict",
                str(tmp_path / "img.png"),
                "--weights",
                str(tmp_path / "w.safetensors"),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    assert "w.safetensors" in capsys.readouterr().err


@pytest.mark.slow
def test_train_then_eval_then_refuse_to_overwrite(tmp_path, capsys):
    assert main(["data", "synthetic", str(tmp_path / "syn"), "--num-train", "4", "--num-val", "2"]) == 0
    out = tmp_path / "run"
    train_args = [
        "train",
        "--data",
        str(tmp_path / "syn" / "train.json"),
        "--val-data",
        str(tmp_path / "syn" / "val.json"),
        "--out",
        str(out),
        "--model",
        "gfl_small",
        "--epochs",
        "1",
        "--batch-size",
        "2",
        "--workers",
        "0",
        "--precision",
        "fp32",
        "--set",
        "model_overrides.min_size=64",
        "--set",
        "model_overrides.max_size=64",
        "--set",
        "warmup_iters=1",
    ]
    assert main(train_args) == 0
    printed = capsys.readouterr().out
    assert "trained 2 iterations" in printed and (out / "model.safetensors").exists()
    assert "max_size: 64" in (out / "config.yaml").read_text()
    assert (
        main(
            [
                "eval",
                "--weights",
                str(out / "model.safetensors"),
                "--data",
                str(tmp_path / "syn" / "val.json"),
                "--workers",
                "0",
                "--precision",
                "fp32",
                "--out",
                str(tmp_path / "eval.json"),
            ]
        )
        == 0
    )
    assert "AP50" in capsys.readouterr().out
    assert json.loads((tmp_path / "eval.json").read_text())["AP"] >= 0
    # The same folder again, without --resume or --overwrite, is refused: the earlier run is kept.
    assert main(train_args) == 2
    assert "--resume" in capsys.readouterr().err


def test_unknown_config_key_names_close_matches(tmp_path, capsys):
    assert main(["data", "synthetic", str(tmp_path / "syn"), "--num-train", "1", "--num-val", "1"]) == 0
    argv = ["train", "--data", str(tmp_path / "syn" / "train.json"), "--out", str(tmp_path / "r"), "--set", "epoch=3"]
    assert main(argv) == 2
    assert "did you mean epochs" in capsys.readouterr().err


@pytest.mark.slow
def test_ablation_smoke_writes_a_table(tmp_path, capsys):
    out = tmp_path / "ablation"
    assert (
        main(
            [
                "bench",
                "ablation",
                "--smoke",
                "--out",
                str(out),
                "--workers",
                "0",
                "--precision",
                "fp32",
                "--variants",
                "gfl",
                "atss",
                "--markdown",
                str(tmp_path / "table.md"),
            ]
        )
        == 0
    )
    results = json.loads((out / "ablation.json").read_text())["results"]
    assert [entry["id"] for entry in results.values()] == ["gfl", "atss"]
    assert (out / "runs" / "atss_seed0" / "model.safetensors").is_file()
    for entry in results.values():
        summary = entry["summary"]
        assert 0 <= summary["AP"]["mean"] <= 1 and summary["train_s_per_iter"]["mean"] > 0
    assert "| ATSS baseline" in (tmp_path / "table.md").read_text()


def test_ablation_rejects_unknown_variant_ids(tmp_path, capsys):
    assert main(["bench", "ablation", "--smoke", "--out", str(tmp_path), "--variants", "gfl", "yolo"]) == 2
    err = capsys.readouterr().err
    assert "unknown variant id(s) yolo" in err and "gfl-centerness" in err and "retinanet-gfl" in err


def test_compile_flag_reaches_the_training_config(tmp_path):
    from gfocal.cli.main import build_parser
    from gfocal.cli.train import training_config

    parser = build_parser()
    (tmp_path / "train.json").write_text("{}")  # only its format is looked at
    base = ["train", "--data", str(tmp_path / "train.json"), "--out", str(tmp_path / "run")]
    assert training_config(parser.parse_args([*base, "--compile"])).compile is True
    assert training_config(parser.parse_args(base)).compile is False
    assert training_config(parser.parse_args([*base, "--set", "compile=true"])).compile is True


def test_variant_flag_reaches_the_training_config_and_bad_ids_are_one_line(tmp_path, capsys):
    from gfocal.cli.main import build_parser
    from gfocal.cli.train import training_config

    (tmp_path / "train.json").write_text("{}")  # only its format is looked at
    base = ["train", "--data", str(tmp_path / "train.json"), "--out", str(tmp_path / "run")]
    assert training_config(build_parser().parse_args([*base, "--variant", "fcos-gfl"])).variant == "fcos-gfl"
    assert main([*base, "--variant", "retina"]) == 2
    err = capsys.readouterr().err
    assert "unknown 'retina'" in err and "retinanet" in err and "Traceback" not in err


def test_a_budget_without_epochs_fills_it_and_recipes_and_image_size_reach_the_config(tmp_path):
    from gfocal.cli.main import build_parser
    from gfocal.cli.train import training_config

    parser = build_parser()
    (tmp_path / "train.json").write_text("{}")  # only its format is looked at
    base = ["train", "--data", str(tmp_path / "train.json"), "--out", str(tmp_path / "run")]
    assert training_config(parser.parse_args([*base, "--time-budget", "20"])).epochs is None  # fill the budget
    assert training_config(parser.parse_args([*base, "--time-budget", "20", "--epochs", "30"])).epochs == 30  # a cap
    assert training_config(parser.parse_args([*base, "--time-budget", "20", "--set", "epochs=7"])).epochs == 7
    (tmp_path / "c.yaml").write_text("epochs: 9\n")
    assert (
        training_config(parser.parse_args([*base, "--time-budget", "2", "--config", str(tmp_path / "c.yaml")])).epochs
        == 9
    )
    assert training_config(parser.parse_args(base)).epochs == 100
    paper = training_config(parser.parse_args([*base, "--recipe", "paper", "--image-size", "640"]))
    assert (paper.model, paper.optimizer, paper.epochs, paper.image_size) == ("gfl_resnet50_fpn", "sgd", 12, 640)
    assert training_config(parser.parse_args(base)).model == "auto"


@pytest.mark.parametrize(
    "user_env, expected", [({}, "10000"), ({"OMP_WAIT_POLICY": "ACTIVE"}, None), ({"GOMP_SPINCOUNT": "500"}, "500")]
)
def test_cli_sets_a_short_openmp_spin_unless_the_user_chose(user_env, expected):
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    probe = "import os, gfocal.cli; print(os.environ.get('GOMP_SPINCOUNT'))"
    result = subprocess.run(
        [sys.executable, "-c", probe], env={**env, **user_env}, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == str(expected)


def test_flag_values_are_taken_as_typed_not_parsed_as_yaml(tmp_path):
    from gfocal.cli.main import build_parser
    from gfocal.cli.train import training_config

    parser = build_parser()
    data = tmp_path / "[old] set.json"  # YAML would read "[old]" as a list
    data.write_text("{}")
    out = tmp_path / "runs #2" / "x"  # and "#" as the start of a comment
    config = training_config(
        parser.parse_args(["train", "--data", str(data), "--out", str(out), "--model", "null", "--set", "seed=3"])
    )
    assert (config.train_data, config.out_dir, config.model, config.seed) == (str(data), str(out), "null", 3)


def test_the_parser_loads_without_torch_so_help_is_quick():
    import subprocess
    import sys

    code = "import sys, gfocal.cli.main as m; m.build_parser(); print('torch' in sys.modules)"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "False"


def test_log_and_patience_reach_the_training_config_and_a_missing_extra_is_one_line(tmp_path, capsys, monkeypatch):
    from gfocal.cli.main import build_parser
    from gfocal.cli.train import training_config

    parser = build_parser()
    (tmp_path / "train.json").write_text("{}")  # only its format is looked at
    base = ["train", "--data", str(tmp_path / "train.json"), "--out", str(tmp_path / "run")]
    config = training_config(parser.parse_args([*base, "--log", "tensorboard, mlflow", "--patience", "3"]))
    assert (config.loggers, config.patience) == (("tensorboard", "mlflow"), 3)
    assert (training_config(parser.parse_args(base)).loggers, training_config(parser.parse_args(base)).patience) == (
        (),
        None,
    )
    assert main(["data", "synthetic", str(tmp_path / "syn"), "--num-train", "2", "--num-val", "0"]) == 0
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as where the extra is not installed
    train_args = ["train", "--data", str(tmp_path / "syn" / "train.json"), "--out", str(tmp_path / "run")]
    assert main([*train_args, "--log", "tensorboard"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        'gfocal train: error: --log tensorboard needs TensorBoard: pip install "gfocal[tensorboard]"'
    )
