"""`gfocal train --weights / --backbone-weights`: the flags reach the config, and offline names fail in one line."""

import urllib.error

import torch

from gfocal.cli.main import build_parser, main
from gfocal.cli.train import training_config
from gfocal.data.synthetic import make_synthetic_dataset


def test_the_flags_set_the_fields_and_the_recipe_is_the_one_named(tmp_path):
    parser = build_parser()
    (tmp_path / "train.json").write_text("{}")  # only its format is looked at
    base = ["train", "--data", str(tmp_path / "train.json"), "--out", str(tmp_path / "run")]
    tuned = training_config(parser.parse_args([*base, "--weights", "w.safetensors"]))
    assert (tuned.weights, tuned.lr, tuned.warmup_iters) == ("w.safetensors", 0.002, 100)  # the default recipe
    named = training_config(parser.parse_args([*base, "--backbone-weights", "ResNet50_Weights.IMAGENET1K_V2"]))
    assert (named.backbone_weights, named.lr) == ("ResNet50_Weights.IMAGENET1K_V2", 0.002)
    assert training_config(parser.parse_args([*base, "--weights", "w.pth", "--lr", "0.003"])).lr == 0.003
    finetune = training_config(parser.parse_args([*base, "--weights", "w.pth", "--recipe", "finetune"]))
    assert (finetune.lr, finetune.warmup_iters) == (0.001, 20)
    assert training_config(parser.parse_args(base)).lr == 0.002


def test_an_imagenet_name_offline_is_a_one_line_error_naming_the_file(tmp_path, monkeypatch, capsys):
    def no_network(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))  # torch.hub.set_dir, undone after the test
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    train_json = make_synthetic_dataset(tmp_path / "data", num_images=2, image_size=64, size_range=(12, 40))
    argv = [
        "train",
        "--data",
        str(train_json),
        "--out",
        str(tmp_path / "run"),
        "--model",
        "gfl_small",
        "--backbone-weights",
        "IMAGENET1K_V1",
        "--epochs",
        "1",
        "--workers",
        "0",
    ]
    assert main(argv) == 2
    error = capsys.readouterr().err
    expected = tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    assert f"place that file at {expected} or pass its path to --backbone-weights" in error
    assert "Traceback" not in error and len(error.strip().splitlines()) == 1
