"""The Generalized Focal Loss family: QFL, DFL and their unified form GFL.

Shape letters used in this module:
    N  number of samples (locations)
    C  number of classes, background excluded (labels are 0..C-1, C = background)
    R  ``reg_max``; a box-edge distribution has R + 1 bins

All losses work from logits, take ``weight`` (broadcast to the elementwise
loss), ``reduction`` ("none" | "mean" | "sum") and ``avg_factor``: with
``reduction="mean"`` and an ``avg_factor`` the summed loss is divided by it (the
reference implementation's normalisation by the number of positives), otherwise
"mean" averages over elements. ``validate=False`` skips the value checks that
need a host sync, for internal hot paths whose inputs are known to be valid.

Reference: PAPER.md "The losses"; Li et al., arXiv 2006.04388, eqs. 5-7.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "quality_focal_loss",
    "distribution_focal_loss",
    "generalized_focal_loss",
    "reduce_loss",
]

Reduction = Literal["none", "mean", "sum"]


def reduce_loss(loss: Tensor, weight: Tensor | None, reduction: Reduction, avg_factor: float | Tensor | None) -> Tensor:
    """Apply ``weight`` then reduce an elementwise loss the way the reference implementation does."""
    if weight is not None:
        loss = loss * weight
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        if avg_factor is None:
            # Empty inputs must still give a zero loss attached to the graph.
            return loss.sum() / max(loss.numel(), 1)
        return loss.sum() / avg_factor
    raise ValueError(f"reduction must be 'none', 'mean' or 'sum', got {reduction!r}")


def _check_finite(name: str, tensor: Tensor) -> None:
    if not torch.isfinite(tensor).all():
        raise ValueError(f"{name} contains NaN or infinite values")


def _check_range(name: str, tensor: Tensor, low: float, high: float) -> None:
    _check_finite(name, tensor)
    if tensor.numel() and (tensor.min() < low or tensor.max() > high):
        raise ValueError(
            f"{name} must lie in [{low}, {high}], got values in [{tensor.min().item():g}, {tensor.max().item():g}]"
        )


class _QualityFocalLossFunction(torch.autograd.Function):
    """Elementwise QFL whose gradient is computed in the forward pass.

    Autograd through the composed formula keeps about six N x C intermediates
    and runs a dozen elementwise passes backwards; the closed-form gradient
    needs a few fused passes and one saved tensor, which makes QFL cost about
    as much as plain BCE-with-logits (see benchmarks/losses.py).
    """

    @staticmethod
    def forward(ctx, logits: Tensor, target: Tensor, beta: float) -> Tensor:  # type: ignore[override]
        # Fresh N x C buffers cost as much as the arithmetic on CPU: work in place where possible.
        sigma = logits.sigmoid()
        # BCE-with-logits as softplus(x) - x*y: stable, and cheaper than the ATen op on CPU.
        bce = F.softplus(logits).addcmul_(logits, target, value=-1)
        diff = sigma - target
        if beta == 2.0:
            modulator = diff * diff
            dmod_ddiff = None  # 2·d, folded into the expressions below
        else:
            abs_diff = diff.abs()
            modulator = abs_diff.pow(beta)
            # β·|d|^(β-1)·sign(d), written to be 0 (not NaN) at d = 0 for any β > 0.
            dmod_ddiff = torch.where(diff == 0, 0.0, beta * abs_diff.pow(beta - 1) * diff.sign())
        grad_logits = grad_target = None
        if ctx.needs_input_grad[1]:
            # dL/dy = -(|d|^β · x + BCE · dmod/dd)
            bce_dmod = bce * (2.0 * diff if dmod_ddiff is None else dmod_ddiff)
            grad_target = bce_dmod.addcmul_(modulator, logits).neg_()
        if ctx.needs_input_grad[0]:
            # dL/dx = |d|^β · (σ - y) + BCE · dmod/dd · σ(1 - σ); σ's buffer becomes the gradient.
            grad_logits = sigma.addcmul_(sigma, sigma, value=-1).mul_(bce)
            if dmod_ddiff is None:
                grad_logits.mul_(2.0).add_(modulator).mul_(diff)
            else:
                grad_logits.mul_(dmod_ddiff).addcmul_(modulator, diff)
        ctx.save_for_backward(grad_logits, grad_target)
        return modulator.mul_(bce)

    @staticmethod
    def backward(ctx, grad_output: Tensor):  # type: ignore[override]
        grad_logits, grad_target = ctx.saved_tensors
        return (
            None if grad_logits is None else grad_output * grad_logits,
            None if grad_target is None else grad_output * grad_target,
            None,
        )


def _dense_quality_target(logits: Tensor, target: Tensor | tuple[Tensor, Tensor], validate: bool) -> Tensor:
    num_classes = logits.shape[-1]
    if isinstance(target, Tensor):
        if target.shape != logits.shape:
            raise ValueError(
                f"dense target must have the logits' shape {tuple(logits.shape)}, got {tuple(target.shape)}"
            )
        if validate:
            _check_range("target", target, 0.0, 1.0)
        return target.to(logits.dtype)
    labels, scores = target
    if labels.shape != logits.shape[:1] or scores.shape != logits.shape[:1]:
        raise ValueError(
            f"labels and scores must have shape ({logits.shape[0]},), got {tuple(labels.shape)} and {tuple(scores.shape)}"
        )
    if labels.dtype.is_floating_point:
        raise ValueError(
            f"labels must be integers in [0, {num_classes}] ({num_classes} = background), got {labels.dtype}"
        )
    if validate:
        _check_range(f"labels (0..{num_classes - 1} classes, {num_classes} = background)", labels, 0, num_classes)
        _check_range("scores", scores, 0.0, 1.0)
    # Background rows write a 0 into a column that is 0 already: one scatter, no mask, no host sync.
    is_foreground = labels < num_classes
    column = torch.where(is_foreground, labels, num_classes - 1).long().unsqueeze(1)
    value = torch.where(is_foreground, scores.to(logits.dtype), 0.0).unsqueeze(1)
    return logits.new_zeros(logits.shape).scatter_(1, column, value)


def quality_focal_loss(
    logits: Tensor,
    target: Tensor | tuple[Tensor, Tensor],
    beta: float = 2.0,
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
    avg_factor: float | Tensor | None = None,
    validate: bool = True,
) -> Tensor:
    """Quality Focal Loss: ``QFL(σ) = -|y - σ|^β · ((1 - y)·log(1 - σ) + y·log σ)``.

    Trains a sigmoid class score towards a soft quality target (the IoU of the
    predicted box at positives, 0 elsewhere); its minimum is at σ = y.

    Args:
        logits (Tensor[N, C]): class logits, σ = sigmoid(logits).
        target: either a dense soft target (Tensor[N, C], values in [0, 1]), or a pair
            ``(labels, scores)``: labels (int Tensor[N]) in [0, C] with C meaning background,
            scores (Tensor[N]) in [0, 1], the quality of each sample's labelled class.
        beta: the focusing exponent β (paper default 2).
        weight: optional weights broadcastable to [N, C] (a [N, 1] tensor weighs samples).
        reduction: "none" returns the elementwise loss [N, C]; "sum"; "mean" (see module doc).
        avg_factor: divisor for "mean", e.g. the number of positives.
        validate: check target values (needs a host sync).

    Returns:
        Tensor: the reduced loss, or [N, C] for ``reduction="none"``.

    Reference: PAPER.md "The losses", QFL; arXiv 2006.04388 eq. 5.
    """
    if logits.dim() != 2:
        raise ValueError(f"logits must have shape (N, C), got {tuple(logits.shape)}")
    if beta <= 0:
        raise ValueError(f"beta must be positive, got {beta}")
    dense = _dense_quality_target(logits, target, validate)
    loss = _QualityFocalLossFunction.apply(logits, dense, float(beta))
    return reduce_loss(loss, weight, reduction, avg_factor)


def distribution_focal_loss(
    logits: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
    avg_factor: float | Tensor | None = None,
    validate: bool = True,
) -> Tensor:
    """Distribution Focal Loss: ``DFL = -((y_r - y)·log P(y_l) + (y - y_l)·log P(y_r))``.

    Cross-entropy of a distribution over bins 0..R against the two bins around
    the continuous target, weighted by closeness; it pushes probability mass
    next to the target. A target exactly on a bin puts all weight on that bin.

    Args:
        logits (Tensor[N, R+1]): distribution logits over bins 0..R.
        target (Tensor[N]): continuous target in bins, in [0, R].
        weight: optional per-sample weights, shape [N].
        reduction: "none" returns [N]; "sum"; "mean" (see module doc).
        avg_factor: divisor for "mean".
        validate: check target values (needs a host sync).

    Returns:
        Tensor: the reduced loss, or [N] for ``reduction="none"``.

    Reference: PAPER.md "The losses", DFL; arXiv 2006.04388 eq. 6.
    """
    if logits.dim() != 2 or logits.shape[1] < 2:
        raise ValueError(f"logits must have shape (N, R+1) with R >= 1, got {tuple(logits.shape)}")
    if target.shape != logits.shape[:1]:
        raise ValueError(f"target must have shape ({logits.shape[0]},), got {tuple(target.shape)}")
    reg_max = logits.shape[1] - 1
    if validate:
        _check_range(f"target (reg_max = {reg_max})", target, 0.0, float(reg_max))
    target = target.to(logits.dtype)
    # y = R has no right neighbour: pair it with y_l = R - 1 (all weight lands on R).
    left = target.floor().clamp(max=reg_max - 1)
    weight_right = target - left
    soft = logits.new_zeros(logits.shape)
    soft.scatter_(1, left.long().unsqueeze(1), (1 - weight_right).unsqueeze(1))
    soft.scatter_(1, left.long().unsqueeze(1) + 1, weight_right.unsqueeze(1))
    loss = F.cross_entropy(logits, soft, reduction="none")
    return reduce_loss(loss, weight, reduction, avg_factor)


def generalized_focal_loss(
    log_prob_left: Tensor,
    log_prob_right: Tensor,
    target: Tensor,
    y_left: Tensor | float,
    y_right: Tensor | float,
    beta: float = 2.0,
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
    avg_factor: float | Tensor | None = None,
) -> Tensor:
    """The unified Generalized Focal Loss on two values y_l < y_r.

    ``GFL(p_l, p_r) = -|y - ŷ|^β · ((y_r - y)·log p_l + (y - y_l)·log p_r)`` with
    ``ŷ = y_l·p_l + y_r·p_r``. Its special cases:

    - Focal Loss: y_l = 0, y_r = 1, y ∈ {0, 1}, log p_r = logsigmoid(x), log p_l = logsigmoid(-x), β = γ;
    - QFL: the same with y ∈ [0, 1];
    - DFL: β = 0, y_l = floor(y), y_r = y_l + 1, log p from the log-softmax over all R+1 bins.

    Args:
        log_prob_left (Tensor[...]): log p_l (log-probabilities keep large logits finite).
        log_prob_right (Tensor[...]): log p_r, same shape.
        target (Tensor[...]): y, with y_l <= y <= y_r.
        y_left, y_right: the two values (scalars or tensors broadcastable to ``target``).
        beta: focusing exponent; 0 disables the modulating factor.
        weight, reduction, avg_factor: as in the other losses; "none" returns shape [...].

    Returns:
        Tensor: the reduced loss.

    Reference: PAPER.md "The losses", GFL; arXiv 2006.04388 eq. 7.
    """
    if not (log_prob_left.shape == log_prob_right.shape == target.shape):
        raise ValueError(
            "log_prob_left, log_prob_right and target must have the same shape, got "
            f"{tuple(log_prob_left.shape)}, {tuple(log_prob_right.shape)}, {tuple(target.shape)}"
        )
    if beta < 0:
        raise ValueError(f"beta must be non-negative, got {beta}")
    cross_entropy = -((y_right - target) * log_prob_left + (target - y_left) * log_prob_right)
    if beta == 0:
        return reduce_loss(cross_entropy, weight, reduction, avg_factor)
    estimate = y_left * log_prob_left.exp() + y_right * log_prob_right.exp()
    return reduce_loss((target - estimate).abs().pow(beta) * cross_entropy, weight, reduction, avg_factor)
