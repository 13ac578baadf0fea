"""Forward + backward cost of QFL and DFL against plain BCE / cross-entropy on the same tensors.

    python benchmarks/losses.py [--locations 20000] [--classes 80] [--reg-max 16]

Prints JSON. Each loss is compared in the same run with (a) a direct
implementation of the paper's formula through autograd and (b) the plain
PyTorch loss on the same logits, so the ratios are meaningful on a noisy machine.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from common import add_json_argument, report, time_call

from gfocal.ops import distribution_focal_loss, quality_focal_loss


def qfl_from_formula(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    sigma = logits.sigmoid()
    return (-(sigma - target).abs().pow(2) * ((1 - target) * torch.log(1 - sigma) + target * torch.log(sigma))).sum()


def dfl_from_formula(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    left = target.long()
    log_p = logits.log_softmax(-1)
    weight_right = target - left
    return -(
        (1 - weight_right) * log_p.gather(1, left[:, None])[:, 0]
        + weight_right * log_p.gather(1, left[:, None] + 1)[:, 0]
    ).sum()


def forward_backward(loss_fn, logits: torch.Tensor):
    def step():
        logits.grad = None
        loss_fn(logits).backward()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--locations", type=int, default=20000)
    parser.add_argument("--classes", type=int, default=80)
    parser.add_argument("--reg-max", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=30)
    add_json_argument(parser, "losses")
    args = parser.parse_args()
    torch.manual_seed(0)

    cls_logits = torch.randn(args.locations, args.classes, requires_grad=True)
    labels = torch.randint(0, args.classes + 1, (args.locations,))
    scores = torch.rand(args.locations)
    dense = torch.zeros(args.locations, args.classes + 1).scatter_(1, labels[:, None], scores[:, None])[:, :-1]
    qfl = {
        "gfocal": forward_backward(
            lambda x: quality_focal_loss(x, (labels, scores), reduction="sum", validate=False), cls_logits
        ),
        "formula_autograd": forward_backward(lambda x: qfl_from_formula(x, dense), cls_logits),
        "plain_bce_with_logits": forward_backward(
            lambda x: F.binary_cross_entropy_with_logits(x, dense, reduction="sum"), cls_logits
        ),
    }

    dist_logits = torch.randn(args.locations * 4, args.reg_max + 1, requires_grad=True)
    target = torch.rand(args.locations * 4) * (args.reg_max - 0.1)
    hard = target.round().long()
    dfl = {
        "gfocal": forward_backward(
            lambda x: distribution_focal_loss(x, target, reduction="sum", validate=False), dist_logits
        ),
        "formula_autograd": forward_backward(lambda x: dfl_from_formula(x, target), dist_logits),
        "plain_cross_entropy": forward_backward(lambda x: F.cross_entropy(x, hard, reduction="sum"), dist_logits),
    }

    results = {}
    for name, variants in (("qfl", qfl), ("dfl", dfl)):
        timings = {key: time_call(fn, repeats=args.repeats) for key, fn in variants.items()}
        plain_key = next(key for key in timings if key.startswith("plain"))
        ours = timings["gfocal"]["median_ms"]
        results[name] = {
            "timings": timings,
            "ratio_to_plain": ours / timings[plain_key]["median_ms"],
            "ratio_to_formula": ours / timings["formula_autograd"]["median_ms"],
        }
    results["shape"] = {"locations": args.locations, "classes": args.classes, "bins": args.reg_max + 1}
    report(results, args.json)


if __name__ == "__main__":
    main()
