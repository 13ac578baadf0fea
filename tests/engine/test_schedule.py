import math

import pytest

from gfocal.engine.schedule import LRSchedule, fit_to_budget


def paper(ipe=100):
    return LRSchedule.from_epochs(12, ipe, "step", (8, 11), warmup_iters=500, warmup_ratio=0.001)


def test_linear_warmup_then_steps_at_epochs_8_and_11():
    s = paper()
    assert s.factor(0) == pytest.approx(0.001)
    assert s.factor(250) == pytest.approx(0.001 + 0.999 * 0.5)
    assert s.factor(500) == 1.0 and s.factor(799) == 1.0
    assert s.factor(800) == pytest.approx(0.1) and s.factor(1099) == pytest.approx(0.1)
    assert s.factor(1100) == pytest.approx(0.01) and s.total_iters == 1200 and s.epochs == 12


def test_warmup_multiplies_the_main_schedule():
    s = LRSchedule.from_epochs(2, 10, "step", (1,), warmup_iters=20, warmup_ratio=0.5)
    assert s.factor(10) == pytest.approx(0.1 * 0.75)


def test_cosine_from_one_to_min_ratio():
    s = LRSchedule(total_iters=100, iters_per_epoch=10, kind="cosine", min_ratio=0.01, warmup_iters=0)
    assert s.factor(0) == 1.0
    assert s.factor(50) == pytest.approx(0.01 + 0.99 * 0.5)
    assert s.factor(100) == pytest.approx(0.01)
    values = [s.factor(i) for i in range(101)]
    assert all(a >= b for a, b in zip(values, values[1:]))


def test_compression_scales_milestones_and_caps_warmup():
    c = paper().resized(600)
    assert c.total_iters == 600 and c.milestones == (400, 550) and c.warmup_iters == 120
    assert c.epochs == 6 and c.iters_per_epoch == 100


def test_dict_round_trip():
    s = paper()
    assert LRSchedule.from_dict(s.to_dict()) == s


def test_fit_to_budget():
    s = paper()  # 1200 steps
    assert fit_to_budget(s, 10, 10.0, 1.0, budget_s=5000) is s
    fitted = fit_to_budget(s, 100, elapsed_s=100.0, seconds_per_iter=1.0, budget_s=700, reserve_s=100)
    assert fitted.total_iters == 100 + 500
    assert fit_to_budget(s, 300, elapsed_s=800.0, seconds_per_iter=1.0, budget_s=700).total_iters == 300
    assert math.isclose(fitted.factor(fitted.milestones[0]), 0.1)


def test_filling_a_budget_stretches_as_well_as_squeezes():
    s = paper()  # 1200 steps, a provisional plan
    stretched = fit_to_budget(s, 100, elapsed_s=100.0, seconds_per_iter=0.5, budget_s=1500, reserve_s=100, fill=True)
    assert stretched.total_iters == 100 + 2600 and stretched.milestones == (
        round(800 * 2700 / 1200),
        round(1100 * 2700 / 1200),
    )
    squeezed = fit_to_budget(s, 100, elapsed_s=100.0, seconds_per_iter=1.0, budget_s=700, reserve_s=100, fill=True)
    assert squeezed.total_iters == 600
    assert fit_to_budget(s, 300, elapsed_s=800.0, seconds_per_iter=1.0, budget_s=700, fill=True).total_iters == 300
