"""Training-step time of gfl_small on any checkout, in wall and CPU seconds, for before/after comparisons.

    PYTHONPATH=CHECKOUT/src python benchmarks/step_time.py [--steps 30] [--batch 8] [--size 320] [--json OUT]

``benchmarks/cpu.py`` times a step by the wall clock, which on a machine shared
with other work measures the other work too. This script also reports the
step's CPU time (``time.process_time``: all of the process's threads), which
another process's load barely moves, so two checkouts can be compared on a
busy machine: run it on each, alternating, and compare the CPU-time medians; or run the two at
once with ``--threads 1`` each, so that both see the same load, and compare their wall times.
It uses only what every gfocal since the CPU fast path has (``gfl_small``,
``model(images, targets)`` returning the loss dict, ``precision.resolve_precision`` and ``autocast``),
so it runs on an older checkout as it is (point ``PYTHONPATH`` at its ``src``).
The step is the one training runs: bf16 autocast on a CPU with native bf16
(else float32), channels_last, forward, loss, backward, SGD step.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from common import add_json_argument, gfocal_commit, report

import gfocal
from gfocal.models import gfl_small
from gfocal.models.precision import autocast, resolve_precision


def synthetic_batch(batch: int, size: int, seed: int = 0) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
    """``batch`` random images of ``size``² with 8 random boxes of 3 classes each."""
    generator = torch.Generator().manual_seed(seed)
    images = [torch.rand(3, size, size, generator=generator) for _ in range(batch)]
    targets = []
    for _ in range(batch):
        corners = torch.rand(8, 2, generator=generator) * size * 0.7
        sides = 16 + torch.rand(8, 2, generator=generator) * size * 0.25
        boxes = torch.cat((corners, corners + sides), dim=1)
        targets.append({"boxes": boxes, "labels": torch.randint(0, 3, (8,), generator=generator)})
    return images, targets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30, help="timed steps, after 3 warm-up steps")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own choice)")
    add_json_argument(parser, "step_time")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    precision = resolve_precision("auto", "cpu")  # bf16 where the CPU has it natively, as training does
    model = gfl_small(num_classes=3).train().to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    images, targets = synthetic_batch(args.batch, args.size)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast(precision):
            loss = sum(model(images, targets).values())
        loss.backward()
        optimizer.step()

    for _ in range(3):
        step()
    wall, cpu = [], []
    for _ in range(args.steps):
        wall_start, cpu_start = time.perf_counter(), time.process_time()
        step()
        wall.append(time.perf_counter() - wall_start)
        cpu.append(time.process_time() - cpu_start)
    report(
        {
            "checkout_commit": gfocal_commit(Path(gfocal.__file__).parent),  # the gfocal timed, maybe another
            "precision": precision.name,
            "batch": args.batch,
            "size": args.size,
            "steps": args.steps,
            "threads": torch.get_num_threads(),
            "median_wall_s": statistics.median(wall),
            "median_cpu_s": statistics.median(cpu),
        },
        args.json,
    )


if __name__ == "__main__":
    main()
