"""Images without annotations in a training set: only distillation trains on them.

:class:`UnlabelledImages` gives each image through the training transforms with no box and
``target["unlabelled"] = True``; :class:`WithUnlabelled` appends them to the labelled training set, so the
sampler shuffles both into the same batches (the share of unlabelled images in a batch is their share of
the whole, on average).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.utils.data import Dataset

from gfocal.data.dataset import Target, transformed_sample
from gfocal.data.image_io import decode_image

__all__ = ["UnlabelledImages", "WithUnlabelled"]


class UnlabelledImages(Dataset):
    """Image files as training samples without annotations.

    ``images[i]`` is ``(image, target)``: the decoded file through ``transforms`` (uint8 Tensor[3, H, W]) and
    the target of :class:`~gfocal.data.DetectionDataset` with no box (``boxes`` [0, 4], ``labels`` [0]) and
    ``"unlabelled": True``.
    """

    def __init__(self, paths: Sequence[str | os.PathLike[str]], transforms: Callable[..., Any] | None) -> None:
        self.paths, self.transforms = list(paths), transforms

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Target]:
        image = decode_image(self.paths[index])  # [3, H, W]
        none = torch.zeros(0, dtype=torch.bool)
        sample, target = transformed_sample(
            image, torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64), none, self.transforms, index
        )
        return sample, {**target, "unlabelled": True}


class WithUnlabelled(Dataset):
    """A labelled training set followed by unlabelled images: indices ``0..L-1`` are the labelled set's.

    Attributes of the labelled set (``records``, which the trainer reads) are exposed as its own.
    """

    def __init__(self, labelled: Dataset, unlabelled: UnlabelledImages) -> None:
        self.labelled, self.unlabelled = labelled, unlabelled

    def __len__(self) -> int:
        return len(self.labelled) + len(self.unlabelled)  # type: ignore[arg-type]

    def __getattr__(self, name: str) -> Any:
        if name in ("labelled", "unlabelled"):
            raise AttributeError(name)
        return getattr(self.labelled, name)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Target]:
        count = len(self.labelled)  # type: ignore[arg-type]
        return self.labelled[index] if index < count else self.unlabelled[index - count]
