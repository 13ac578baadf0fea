"""benchmarks/cpu.py: the zoo configs are the named models at COCO size, and a deformable config is timed in every
mode while mmdetection's side says why it is not timed (run scaled down: the full X-101-DCN takes seconds a call)."""

from __future__ import annotations

import functools

import cpu
import pytest

from gfocal.models import gfl_resnext101_32x4d_dcn_fpn

# The scaled-down zoo model of tests/models/test_zoo.py: the full body's layout at 1/4 width.
TINY = {"backbone_width": 16, "fpn_channels": 32, "feat_channels": 32, "norm_groups": 16, "stacked_convs": 1}


def test_every_zoo_model_runs_at_coco_size_and_each_has_mmdetection_s_side_or_a_reason():
    zoo = ("r101", "r101_dcn", "x101", "x101_dcn")
    assert all(cpu.CONFIGS[name][1] == (800, 1216) for name in ("r50", *zoo))
    assert [cpu.CONFIGS[name][0].defaults for name in zoo] == [
        {"backbone": "resnet101"},
        {"backbone": "resnet101", "deform_stages": (2, 3, 4)},
        {"backbone": "resnext101_32x4d"},
        {"backbone": "resnext101_32x4d", "deform_stages": (3, 4)},
    ]
    for name in cpu.CONFIGS:  # exactly one of: an mmdetection architecture, a reason it has none
        assert (name in cpu.MMDET_ARCHITECTURES) != (name in cpu.MMDET_NOT_TIMED), name


@pytest.mark.slow
def test_a_deformable_config_is_timed_in_the_modes_asked_and_mmdetection_s_side_says_why_not(monkeypatch):
    monkeypatch.setitem(cpu.CONFIGS, "x101_dcn", (functools.partial(gfl_resnext101_32x4d_dcn_fpn, **TINY), (64, 96)))
    modes = ["fp32", "bf16_channels_last"]
    results = cpu.benchmark("x101_dcn", repeats=1, compile_=False, training=False, modes=modes)
    assert sorted(results) == sorted(["image_size", "mmdet_fp32", *modes])
    assert results["image_size"] == [64, 96]
    assert "compiled mmcv op" in results["mmdet_fp32"]["not_timed"]
    for mode in modes:
        assert results[mode]["inference_ms"] > 0 and "train_step_batch2_ms" not in results[mode]
        assert "speedup_vs_mmdet" not in results[mode]
    assert results["fp32"]["speedup_vs_fp32"] == {"inference_ms": 1.0}
    assert set(results["bf16_channels_last"]["speedup_vs_fp32"]) == {"inference_ms"}
