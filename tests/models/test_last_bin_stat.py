"""The criterion counts positives' edge targets clamped to the last bin (a reg_max too short for the data)."""

import logging

import torch

from gfocal.engine.trainer import _warn_short_range
from gfocal.models import gfl_small


def last_bin_fraction(reg_max: int, box: list[float]) -> float:
    torch.manual_seed(0)
    model = gfl_small(1, min_size=128, max_size=128, reg_max=reg_max).train()
    model([torch.rand(3, 128, 128)], [{"boxes": torch.tensor([box]), "labels": torch.tensor([0])}])
    return model.last_stats["last_bin_fraction"]


def test_a_box_beyond_the_range_sits_at_the_last_bin():
    # With reg_max 2 the range is 1.9 strides; a 120 px box's positives near its centre are about
    # 60 px (7.5 strides on P3, 3.75 on P4, 1.9 on P5) from every edge.
    assert last_bin_fraction(2, [4.0, 4.0, 124.0, 124.0]) >= 0.5
    assert last_bin_fraction(16, [40.0, 40.0, 72.0, 72.0]) == 0.0


def test_training_warns_when_many_targets_are_clamped(caplog):
    model = gfl_small(1, reg_max=4)
    with caplog.at_level(logging.WARNING, logger="gfocal.engine.trainer"):
        _warn_short_range(0.01, model)
        assert not caplog.records
        _warn_short_range(0.2, model)
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert "20.0%" in message and "reg_max=4" in message and "gfocal analyze range" in message


def test_dirac_boxes_have_no_bins():
    model = gfl_small(1, min_size=64, max_size=64, box="dirac").train()
    model([torch.rand(3, 64, 64)], [{"boxes": torch.tensor([[4.0, 4.0, 60.0, 60.0]]), "labels": torch.tensor([0])}])
    assert "last_bin_fraction" not in model.last_stats
