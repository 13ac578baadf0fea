"""The GFL losses against independent references: torchvision's focal loss, the formulas, gradcheck."""

import math

import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import sigmoid_focal_loss

from gfocal.ops import distribution_focal_loss, generalized_focal_loss, quality_focal_loss


def qfl_from_formula(logits, target, beta):
    sigma = logits.sigmoid()
    return -(sigma - target).abs().pow(beta) * ((1 - target) * torch.log1p(-sigma) + target * torch.log(sigma))


def dfl_from_formula(logits, target):
    left = target.floor().long()
    right = left + 1
    log_p = logits.log_softmax(-1)
    right_term = torch.where(
        right < logits.shape[1], log_p.gather(1, right.clamp(max=logits.shape[1] - 1)[:, None])[:, 0], 0.0
    )
    return -((right - target) * log_p.gather(1, left[:, None])[:, 0] + (target - left) * right_term)


@pytest.mark.parametrize("beta", [1.0, 2.0, 1.5])
def test_qfl_with_binary_targets_equals_torchvision_focal_loss(beta):
    torch.manual_seed(0)
    logits = torch.randn(64, 7, dtype=torch.float64, requires_grad=True)
    target = (torch.rand(64, 7) > 0.8).double()
    ours = quality_focal_loss(logits, target, beta=beta, reduction="none")
    reference = sigmoid_focal_loss(logits, target, alpha=-1, gamma=beta, reduction="none")
    torch.testing.assert_close(ours, reference)
    (grad_ours,) = torch.autograd.grad(ours.sum(), logits)
    (grad_ref,) = torch.autograd.grad(reference.sum(), logits)
    torch.testing.assert_close(grad_ours, grad_ref)


@pytest.mark.parametrize("beta", [2.0, 1.0, 0.5])
def test_qfl_soft_targets_match_the_formula_values_and_gradients(beta):
    torch.manual_seed(1)
    logits = torch.randn(50, 5, dtype=torch.float64, requires_grad=True)
    target = torch.rand(50, 5, dtype=torch.float64, requires_grad=True)
    ours = quality_focal_loss(logits, target, beta=beta, reduction="none")
    reference = qfl_from_formula(logits, target, beta)
    torch.testing.assert_close(ours, reference)
    grads_ours = torch.autograd.grad(ours.sum(), (logits, target))
    grads_ref = torch.autograd.grad(reference.sum(), (logits, target))
    for ours_grad, ref_grad in zip(grads_ours, grads_ref):
        torch.testing.assert_close(ours_grad, ref_grad)


def test_qfl_minimum_is_at_sigma_equal_target():
    target = torch.full((1, 1), 0.3, dtype=torch.float64)
    grid = torch.linspace(-4, 4, 2001, dtype=torch.float64).reshape(-1, 1)
    losses = quality_focal_loss(grid, target.expand_as(grid), reduction="none").squeeze(1)
    best_sigma = grid[losses.argmin()].sigmoid().item()
    assert abs(best_sigma - 0.3) < 2e-3


def test_qfl_label_score_pair_equals_dense_target():
    torch.manual_seed(2)
    logits = torch.randn(6, 4)
    labels = torch.tensor([0, 4, 2, 4, 3, 1])  # 4 = background
    scores = torch.tensor([0.9, 0.0, 0.5, 0.7, 0.1, 1.0])
    dense = torch.zeros(6, 4)
    for row, (label, score) in enumerate(zip(labels, scores)):
        if label < 4:
            dense[row, label] = score
    torch.testing.assert_close(
        quality_focal_loss(logits, (labels, scores), reduction="none"),
        quality_focal_loss(logits, dense, reduction="none"),
    )


def test_reductions_weight_and_avg_factor():
    torch.manual_seed(3)
    logits = torch.randn(10, 3)
    target = torch.rand(10, 3)
    weight = torch.rand(10, 1)
    elementwise = quality_focal_loss(logits, target, reduction="none")
    torch.testing.assert_close(quality_focal_loss(logits, target, reduction="sum"), elementwise.sum())
    torch.testing.assert_close(quality_focal_loss(logits, target, reduction="mean"), elementwise.mean())
    torch.testing.assert_close(
        quality_focal_loss(logits, target, weight=weight, reduction="mean", avg_factor=4.0),
        (elementwise * weight).sum() / 4.0,
    )
    with pytest.raises(ValueError, match="reduction"):
        quality_focal_loss(logits, target, reduction="avg")


def test_dfl_matches_the_formula_including_bin_edges():
    torch.manual_seed(4)
    logits = torch.randn(8, 17, dtype=torch.float64)
    target = torch.tensor([0.0, 1.0, 3.5, 7.25, 15.9, 16.0, 12.0, 0.3], dtype=torch.float64)
    torch.testing.assert_close(
        distribution_focal_loss(logits, target, reduction="none"), dfl_from_formula(logits, target)
    )


def test_dfl_is_minimal_at_the_two_bin_distribution_whose_integral_is_the_target():
    target = torch.tensor([5.3], dtype=torch.float64)
    optimum = torch.zeros(1, 17, dtype=torch.float64)
    optimum[0, 5], optimum[0, 6] = 0.7, 0.3
    best = distribution_focal_loss(optimum.clamp_min(1e-300).log(), target, reduction="none")
    torch.manual_seed(5)
    for _ in range(200):
        other = torch.randn(1, 17, dtype=torch.float64) * 3
        assert distribution_focal_loss(other, target, reduction="none") >= best
    # Perturbing the optimum's two weights also costs.
    for shift in (-0.05, 0.05):
        moved = optimum.clone()
        moved[0, 5] += shift
        moved[0, 6] -= shift
        assert distribution_focal_loss(moved.clamp_min(1e-300).log(), target, reduction="none") > best
    bins = torch.arange(17, dtype=torch.float64)
    torch.testing.assert_close((optimum @ bins), target)


def test_unified_gfl_reproduces_focal_loss_qfl_and_dfl_with_gradients():
    torch.manual_seed(6)
    logits = torch.randn(40, dtype=torch.float64, requires_grad=True)
    # Focal Loss: y in {0, 1}.
    binary = (torch.rand(40) > 0.5).double()
    gfl = generalized_focal_loss(
        F.logsigmoid(-logits), F.logsigmoid(logits), binary, 0.0, 1.0, beta=2.0, reduction="none"
    )
    focal = sigmoid_focal_loss(logits, binary, alpha=-1, gamma=2.0, reduction="none")
    torch.testing.assert_close(gfl, focal)
    torch.testing.assert_close(*(torch.autograd.grad(x.sum(), logits)[0] for x in (gfl, focal)))
    # QFL: y in [0, 1].
    soft = torch.rand(40, dtype=torch.float64)
    gfl = generalized_focal_loss(
        F.logsigmoid(-logits), F.logsigmoid(logits), soft, 0.0, 1.0, beta=2.0, reduction="none"
    )
    qfl = quality_focal_loss(logits[:, None], soft[:, None], reduction="none")[:, 0]
    torch.testing.assert_close(gfl, qfl)
    torch.testing.assert_close(*(torch.autograd.grad(x.sum(), logits)[0] for x in (gfl, qfl)))
    # DFL: beta = 0 on the two neighbouring bins of a 17-bin softmax.
    dist_logits = torch.randn(40, 17, dtype=torch.float64, requires_grad=True)
    target = torch.rand(40, dtype=torch.float64) * 15.9
    left = target.floor()
    log_p = dist_logits.log_softmax(-1)
    gfl = generalized_focal_loss(
        log_p.gather(1, left.long()[:, None])[:, 0],
        log_p.gather(1, left.long()[:, None] + 1)[:, 0],
        target,
        left,
        left + 1,
        beta=0.0,
        reduction="none",
    )
    dfl = distribution_focal_loss(dist_logits, target, reduction="none")
    torch.testing.assert_close(gfl, dfl)
    torch.testing.assert_close(*(torch.autograd.grad(x.sum(), dist_logits)[0] for x in (gfl, dfl)))


def test_gradcheck_every_loss_in_float64():
    torch.manual_seed(7)
    logits = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    target = torch.rand(6, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, y: quality_focal_loss(x, y, reduction="sum"), (logits, target))
    assert torch.autograd.gradcheck(lambda x, y: quality_focal_loss(x, y, beta=1.5, reduction="sum"), (logits, target))
    dist = torch.randn(5, 9, dtype=torch.float64, requires_grad=True)
    dist_target = torch.tensor([0.2, 3.5, 7.7, 1.1, 5.0], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: distribution_focal_loss(x, dist_target, reduction="sum"), (dist,))
    pair = torch.randn(5, dtype=torch.float64, requires_grad=True)
    soft = torch.rand(5, dtype=torch.float64)
    assert torch.autograd.gradcheck(
        lambda x: generalized_focal_loss(F.logsigmoid(-x), F.logsigmoid(x), soft, 0.0, 1.0, reduction="sum"), (pair,)
    )


@pytest.mark.parametrize("scale", [1e4, -1e4, 0.0])
def test_extreme_logits_give_finite_values_and_gradients(scale):
    logits = torch.linspace(-1, 1, 24).reshape(8, 3).mul(scale).requires_grad_(True)
    target = torch.tensor([0.0, 1.0, 0.5]).repeat(8, 1)
    loss = quality_focal_loss(logits, target, reduction="sum")
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    dist = torch.linspace(-1, 1, 4 * 17).reshape(4, 17).mul(scale).requires_grad_(True)
    edges = torch.tensor([0.0, 8.0, 16.0, 15.9])
    loss = distribution_focal_loss(dist, edges, reduction="sum")
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(dist.grad).all()
    pair = torch.full((3,), scale, requires_grad=True)
    loss = generalized_focal_loss(F.logsigmoid(-pair), F.logsigmoid(pair), torch.tensor([0.0, 0.5, 1.0]), 0.0, 1.0)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(pair.grad).all()


def test_empty_inputs_give_zero_loss_that_backpropagates():
    logits = torch.zeros(0, 5, requires_grad=True)
    loss = quality_focal_loss(logits, torch.zeros(0, 5))
    loss.backward()
    assert loss.item() == 0.0 and logits.grad.shape == (0, 5)
    dist = torch.zeros(0, 17, requires_grad=True)
    loss = distribution_focal_loss(dist, torch.zeros(0), avg_factor=1.0)
    loss.backward()
    assert loss.item() == 0.0 and dist.grad.shape == (0, 17)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: quality_focal_loss(torch.zeros(4, 3), torch.zeros(4, 2)), "shape"),
        (lambda: quality_focal_loss(torch.zeros(4, 3), torch.full((4, 3), 1.5)), r"\[0.0, 1.0\]"),
        (lambda: quality_focal_loss(torch.zeros(2, 3), (torch.tensor([0, 4]), torch.ones(2))), "background"),
        (lambda: quality_focal_loss(torch.zeros(2, 3), (torch.tensor([0.0, 1.0]), torch.ones(2))), "integers"),
        (lambda: quality_focal_loss(torch.zeros(2, 3), torch.tensor([[0.0, math.nan, 0.0]] * 2)), "NaN"),
        (lambda: quality_focal_loss(torch.zeros(3), torch.zeros(3)), r"\(N, C\)"),
        (lambda: distribution_focal_loss(torch.zeros(2, 17), torch.tensor([3.0, 16.5])), r"reg_max = 16"),
        (lambda: distribution_focal_loss(torch.zeros(2, 17), torch.tensor([-0.5, 1.0])), r"\[0.0, 16.0\]"),
        (lambda: distribution_focal_loss(torch.zeros(2, 17), torch.tensor([math.inf, 1.0])), "NaN or infinite"),
        (lambda: distribution_focal_loss(torch.zeros(2, 17), torch.zeros(3)), "shape"),
        (lambda: generalized_focal_loss(torch.zeros(2), torch.zeros(3), torch.zeros(2), 0.0, 1.0), "same shape"),
    ],
)
def test_bad_input_raises_a_value_error_that_says_what_is_wrong(call, message):
    with pytest.raises(ValueError, match=message):
        call()
