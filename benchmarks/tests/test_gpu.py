"""benchmarks/gpu.py: its arguments, and its one-line refusal where there is no CUDA device (as on CI)."""

from __future__ import annotations

from pathlib import Path

import gpu
import pytest
import torch


def test_the_defaults_are_both_models_in_three_precisions_and_weights_are_per_model():
    args = gpu.parse_args(["--json", "-"])
    assert args.models == ["r50", "x101-dcn"] and args.precisions == ["fp32", "fp16", "bf16"]
    assert (args.warmup, args.iterations, args.score_threshold, args.weights) == (20, 200, 0.0, [])
    assert {name: (model, fps) for name, (model, fps, _) in gpu.MODELS.items()} == {
        "r50": ("gfl_resnet50_fpn", 19.4),
        "x101-dcn": ("gfl_resnext101_32x4d_dcn_fpn", 10.0),
    }
    args = gpu.parse_args(["--models", "x101-dcn", "--weights", "x101-dcn=zoo.safetensors", "--iterations", "5"])
    assert args.weights == [("x101-dcn", Path("zoo.safetensors"))] and args.iterations == 5


@pytest.mark.parametrize(
    "argv", [["--models", "r18"], ["--precisions", "int8"], ["--iterations", "0"], ["--weights", "r101=w.safetensors"]]
)
def test_bad_arguments_are_refused_by_the_parser(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        gpu.parse_args(argv)
    assert exit_info.value.code == 2 and "error:" in capsys.readouterr().err


def test_without_cuda_it_stops_in_one_line_before_building_a_model(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(gpu, "build", lambda *args: pytest.fail("built a model without a GPU"))
    with pytest.raises(SystemExit) as exit_info:
        gpu.main(["--json", "-"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith("benchmarks/gpu.py: no CUDA device") and err.count("\n") == 1
