"""Training-step and inference time of the detector, with the share of assignment/targets and post-processing.

    python benchmarks/model.py [--configs small r50] [--repeats 3] [--device cpu]

For each config: a training step (forward + loss + backward) at batch 2, and
the part of it spent in ATSS assignment + target building + losses (the
criterion, timed on the same head outputs); inference per image and the part
spent in post-processing (top-k, decode, NMS). Prints JSON.
"""

from __future__ import annotations

import argparse

import torch
from common import add_json_argument, report, time_call

from gfocal.models import gfl_resnet50_fpn, gfl_small
from gfocal.models.grid import valid_locations
from gfocal.models.postprocess import postprocess_image

CONFIGS = {
    "small": (gfl_small, (320, 320)),
    "r50": (gfl_resnet50_fpn, (800, 1333)),
}


def synthetic_batch(size: tuple[int, int], batch: int, boxes_per_image: int, device: torch.device):
    generator = torch.Generator().manual_seed(0)
    height, width = size
    images = [torch.rand(3, height, width, generator=generator).to(device) for _ in range(batch)]
    targets = []
    for _ in range(batch):
        corner = torch.rand(boxes_per_image, 2, generator=generator) * torch.tensor([width * 0.8, height * 0.8])
        extent = 8 + torch.rand(boxes_per_image, 2, generator=generator) * torch.tensor([width * 0.2, height * 0.2])
        targets.append(
            {
                "boxes": torch.cat((corner, corner + extent), 1).to(device),
                "labels": torch.randint(0, 80, (boxes_per_image,), generator=generator).to(device),
            }
        )
    return images, targets


def benchmark(name: str, repeats: int, device: torch.device) -> dict:
    factory, size = CONFIGS[name]
    model = factory(80).to(device)
    images, targets = synthetic_batch(size, 2, 20, device)

    def train_step():
        model.zero_grad(set_to_none=True)
        sum(model(images, targets).values()).backward()

    model.train()
    batch, scaled_targets = model.transform(images, targets)
    outputs, grid = model.head_outputs(batch.tensors)
    valid = valid_locations(grid, batch.image_sizes, model.config.size_divisible)
    detached = type(outputs)(*(None if o is None else o.detach().requires_grad_() for o in outputs))
    train = time_call(train_step, warmup=1, repeats=repeats)
    criterion = time_call(lambda: model.criterion(detached, grid, scaled_targets, valid), warmup=1, repeats=repeats)

    model.eval()
    one = images[:1]
    with torch.inference_mode():
        inference = time_call(lambda: model(one), warmup=1, repeats=repeats)
        batch, _ = model.transform(one)
        scored = model.scored_outputs(batch.tensors)
        factors = None if scored.score_factors is None else scored.score_factors[0]

        def post():
            postprocess_image(
                model.config,
                model.head.box_coding,
                scored.scores[0],
                factors,
                scored.box_outputs[0],
                scored.grid,
                batch.image_sizes[0],
            )

        post_time = time_call(post, warmup=1, repeats=repeats)
    return {
        "image_size": list(size),
        "train_step_batch2_ms": train["median_ms"],
        "assignment_targets_losses_ms": criterion["median_ms"],
        "assignment_targets_share": criterion["median_ms"] / train["median_ms"],
        "inference_per_image_ms": inference["median_ms"],
        "postprocess_ms": post_time["median_ms"],
        "postprocess_share": post_time["median_ms"] / inference["median_ms"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=["small", "r50"], choices=sorted(CONFIGS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    add_json_argument(parser, "model")
    args = parser.parse_args()
    device = torch.device(args.device)
    report({name: benchmark(name, args.repeats, device) for name in args.configs} | {"device": str(device)}, args.json)


if __name__ == "__main__":
    main()
