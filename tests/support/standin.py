"""A tiny stand-in detector and dataset obeying the gfocal.models / gfocal.data contracts, for engine tests."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset

from gfocal.data.records import Annotation


class TinyDetector(nn.Module):
    """Conv + linear "detector": train mode returns a loss dict, eval mode one box per image.

    ``nan_at`` makes the ``nan_at``-th training forward return a NaN loss; ``sleep_s`` slows each step.
    """

    def __init__(self, num_classes: int = 3, nan_at: int | None = None, sleep_s: float = 0.0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.head = nn.Linear(8, 4 + num_classes)
        self.nan_at, self.sleep_s, self.calls = nan_at, sleep_s, 0
        self.last_stats: dict[str, float] = {}

    def _features(self, images: list[torch.Tensor]) -> torch.Tensor:
        feats = [self.conv(img.float()[None] / 255).relu().mean((2, 3)) for img in images]  # [1, 8] each
        return self.head(torch.cat(feats))  # [N, 4 + C]

    def forward(self, images, targets=None):
        out = self._features(images)
        if not self.training:
            return [
                {
                    "boxes": torch.tensor([[0.0, 0.0, 8.0, 8.0]]),
                    "scores": o[4:].softmax(0).max()[None],
                    "labels": o[4:].argmax()[None],
                }
                for o in out
            ]
        self.calls += 1
        if self.sleep_s:
            time.sleep(self.sleep_s)
        box_target = torch.stack([t["boxes"][0] / 64 for t in targets])
        label_target = torch.stack([t["labels"][0] for t in targets])
        losses = {
            "loss_box": nn.functional.smooth_l1_loss(out[:, :4], box_target),
            "loss_cls": nn.functional.cross_entropy(out[:, 4:], label_target),
        }
        if self.calls == self.nan_at:
            losses["loss_box"] = losses["loss_box"] * float("nan")
        self.last_stats = {"num_pos": float(len(images))}
        return losses


class RandomDetections(Dataset):
    """``n`` random 32x32 images, each with one box; random horizontal flip (to test seeded augmentation)."""

    def __init__(self, n: int = 16, size: int = 32, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)
        xy = torch.randint(0, size // 2, (n, 2), generator=g).float()
        self.boxes = torch.cat([xy, xy + size // 2], 1)
        self.labels = torch.randint(0, 3, (n,), generator=g)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        image, box = self.images[i], self.boxes[i].clone()
        if torch.rand(()) < 0.5:
            image = image.flip(-1)
            box = torch.stack([32 - box[2], box[1], 32 - box[0], box[3]])
        return image, {
            "boxes": box[None],
            "labels": self.labels[i][None],
            "image_id": i,
            "orig_size": (32, 32),
            "scale": 1.0,
        }


def collate(batch):
    images, targets = zip(*batch)
    return list(images), list(targets)


Ann = Annotation  # the real record type: evaluation reads its properties (area, evaluation_area)


@dataclass
class Img:
    width: int
    height: int
    annotations: list[Ann] = field(default_factory=list)
    path: Path = Path("x.jpg")
    file_name: str = "x.jpg"


@dataclass
class Records:
    images: list[Img]
    class_names: list[str]


def records_for(dataset: RandomDetections) -> Records:
    """Ground-truth records matching ``dataset`` (unflipped boxes)."""
    return Records(
        [Img(32, 32, [Ann(tuple(b.tolist()), int(label))]) for b, label in zip(dataset.boxes, dataset.labels)],
        ["a", "b", "c"],
    )
