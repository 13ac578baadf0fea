"""The LD loss (KL of temperature-softened edge distributions) and moving a distribution onto other bins."""

import pytest
import torch

from gfocal.ops import localization_distillation_loss, resample_bins


def test_the_loss_is_t_squared_times_the_mean_over_bins_of_the_kl_divergence():
    generator = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(6, 9, generator=generator), 3 * torch.randn(6, 9, generator=generator)
    temperature = 4.0
    p = (teacher / temperature).softmax(-1)
    q = (student / temperature).softmax(-1)
    expected = (p * (p.log() - q.log())).sum(-1) / 9 * temperature**2
    actual = localization_distillation_loss(student, teacher, temperature, reduction="none")
    torch.testing.assert_close(actual, expected)
    weight = torch.rand(6, generator=generator)
    torch.testing.assert_close(
        localization_distillation_loss(student, teacher, temperature, weight, "mean", avg_factor=4.0),
        (expected * weight).sum() / 4,
    )


def test_a_student_equal_to_its_teacher_has_no_loss_and_no_gradient():
    logits = torch.randn(8, 17)
    student = logits.clone().requires_grad_()
    loss = localization_distillation_loss(student, logits, 10.0, reduction="sum")
    (gradient,) = torch.autograd.grad(loss, student)
    assert loss.abs() < 1e-5  # float32 rounding of log-softmax, times T² = 100
    assert gradient.abs().max() < 1e-6


def test_no_gradient_reaches_the_teacher():
    teacher = torch.randn(4, 5, requires_grad=True)
    localization_distillation_loss(torch.randn(4, 5, requires_grad=True), teacher).backward()
    assert teacher.grad is None


def test_resampling_keeps_each_bins_mass_and_piles_the_tail_on_the_last_bin():
    probs = torch.tensor([[0.1, 0.2, 0.3, 0.25, 0.15]])  # bins 0..4
    torch.testing.assert_close(resample_bins(probs, 5), probs)
    torch.testing.assert_close(resample_bins(probs, 3), torch.tensor([[0.1, 0.2, 0.7]]))
    torch.testing.assert_close(resample_bins(probs, 7), torch.tensor([[0.1, 0.2, 0.3, 0.25, 0.15, 0.0, 0.0]]))


def test_a_teacher_with_more_bins_teaches_as_one_with_the_students_bins_when_its_tail_is_empty():
    generator = torch.Generator().manual_seed(1)
    student, short = torch.randn(5, 9, generator=generator), torch.randn(5, 9, generator=generator)
    # The same distribution over bins 0..8 after softening, with bins 9..16 holding (almost) nothing.
    long = torch.cat((short, torch.full((5, 8), -1e4)), dim=-1)
    torch.testing.assert_close(
        localization_distillation_loss(student, long, 10.0, reduction="none"),
        localization_distillation_loss(student, short, 10.0, reduction="none"),
    )


def test_a_teacher_with_fewer_bins_teaches_the_student_to_leave_its_extra_bins_empty():
    teacher = torch.randn(3, 5)
    # The teacher's own distribution on bins 0..4, (almost) nothing on the student's extra bins 5..8.
    matching = torch.cat((teacher, torch.full((3, 4), -1e4)), dim=-1)
    spread = torch.cat((teacher, torch.zeros(3, 4)), dim=-1)
    assert localization_distillation_loss(matching, teacher, 1.0, reduction="sum").abs() < 1e-5
    assert localization_distillation_loss(spread, teacher, 1.0, reduction="sum") > 0.1


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="same E"):
        localization_distillation_loss(torch.randn(3, 5), torch.randn(4, 5))
    with pytest.raises(ValueError, match="temperature"):
        localization_distillation_loss(torch.randn(3, 5), torch.randn(3, 5), temperature=0.5)
