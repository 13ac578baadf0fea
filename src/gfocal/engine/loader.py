"""Data loading that resumes exactly: a resumable distributed sampler and per-sample seeded augmentation.

Exact resume needs two things the stock DataLoader does not give:

* the sample order of an epoch is a function of ``(seed, epoch)`` only, and a
  resumed epoch can start at any batch (:class:`ResumableSampler`);
* the random augmentation of a sample is a function of ``(seed, epoch, index)``
  only, whichever worker process draws it and whatever it drew before
  (:class:`SeededSamples`).

With both, a run killed and resumed sees exactly the batches of an
uninterrupted run, for any number of workers, and K processes with B/K images
each see the same global batches as one process with B images.

Training draws all its batches from one iterator (:func:`endless_batches`): the
sampler runs on from epoch to epoch, so the worker processes start once per run
and prefetch the next epoch's first batches while the last ones train and while
the loop evaluates or saves. On a small dataset an epoch is a few steps, and a
fresh iterator per epoch restarted the workers and waited for its first batch
every few steps.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Generator, Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

__all__ = ["ResumableSampler", "SeededSamples", "build_train_loader", "endless_batches"]


class ResumableSampler(Sampler[tuple[int, int]]):
    """Yields ``(epoch, index)`` keys for this rank's share of each global batch.

    Every epoch shuffles with a generator seeded by ``seed + epoch``, keeps the first
    ``batches_per_epoch * batch_size`` indices (the last incomplete global batch is
    dropped) and gives rank ``r`` of ``K`` the positions ``r, r+K, r+2K, ...``, so
    the union of the ranks' b-th batches is the b-th global batch.

    Args:
        num_samples: dataset length.
        batch_size: global batch size (all ranks).
        seed: shuffling seed.
        rank, world_size: this process's share.
        continuous: iterate on past the selected epoch into the next ones, without end, yielding
            exactly the keys that selecting each epoch in turn would (an epoch holds whole batches,
            so batches never straddle two epochs).
    """

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        continuous: bool = False,
    ) -> None:
        if batch_size % world_size:
            raise ValueError(f"batch_size {batch_size} is not divisible by the number of processes {world_size}")
        if num_samples < batch_size:
            raise ValueError(f"the training set has {num_samples} images, fewer than batch_size {batch_size}")
        self.num_samples, self.batch_size, self.seed = num_samples, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.batches_per_epoch = num_samples // batch_size
        self.epoch, self.start_batch, self.continuous = 0, 0, continuous

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Select the epoch to iterate and the first batch of it to yield (for resuming mid-epoch)."""
        self.epoch, self.start_batch = epoch, start_batch

    def __iter__(self) -> Iterator[tuple[int, int]]:
        yield from self._keys(self.epoch)[self.start_batch * (self.batch_size // self.world_size) :]
        epoch = self.epoch + 1
        while self.continuous:
            yield from self._keys(epoch)
            epoch += 1

    def _keys(self, epoch: int) -> list[tuple[int, int]]:
        """This rank's keys of a whole epoch, in order."""
        generator = torch.Generator().manual_seed(self.seed + epoch)
        order = torch.randperm(self.num_samples, generator=generator)[: self.batches_per_epoch * self.batch_size]
        return [(epoch, index) for index in order[self.rank :: self.world_size].tolist()]

    def __len__(self) -> int:
        if self.continuous:
            raise TypeError("a continuous ResumableSampler has no end, so no length")
        return (self.batches_per_epoch - self.start_batch) * (self.batch_size // self.world_size)

    def state_dict(self) -> dict[str, int]:
        return {
            "seed": self.seed,
            "epoch": self.epoch,
            "start_batch": self.start_batch,
            "batch_size": self.batch_size,
            "world_size": self.world_size,
        }


class SeededSamples(Dataset):
    """Wraps a dataset so that item ``(epoch, index)`` draws its randomness from a seed of ``(seed, epoch, index)``.

    The global Python, NumPy and torch generators are seeded for the call and
    restored afterwards, so the caller's random streams are untouched.
    """

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset, self.seed = dataset, seed

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> Any:
        epoch, index = key
        sample_seed = int(np.random.SeedSequence([self.seed, epoch, index]).generate_state(1, dtype=np.uint64)[0])
        python_state, numpy_state = random.getstate(), np.random.get_state()
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(sample_seed)
                random.seed(sample_seed)
                np.random.seed(sample_seed % 2**32)
                return self.dataset[index]
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)


def build_train_loader(
    dataset: Dataset,
    collate: Callable[[list[Any]], Any],
    batch_size: int,
    seed: int,
    workers: int,
    rank: int = 0,
    world_size: int = 1,
    continuous: bool = False,
) -> tuple[DataLoader, ResumableSampler]:
    """The training loader (``batch_size / world_size`` images per rank) and its sampler (``continuous``: see
    :class:`ResumableSampler`)."""
    sampler = ResumableSampler(len(dataset), batch_size, seed, rank, world_size, continuous)  # type: ignore[arg-type]
    loader = DataLoader(
        SeededSamples(dataset, seed),
        batch_size=batch_size // world_size,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=torch.cuda.is_available(),
        drop_last=False,
        # Its own generator: making an iterator draws the workers' base seed from it, not from the
        # global stream the training step uses (SeededSamples seeds every sample anyway).
        generator=torch.Generator().manual_seed(seed),
    )
    return loader, sampler


def endless_batches(loader: DataLoader, epoch: int, start_batch: int) -> Generator[Any, None, None]:
    """The batches of ``loader`` (over a continuous :class:`ResumableSampler`) from batch ``start_batch`` of
    ``epoch`` on, through one iterator: its workers start now, once, and prefetch across epoch ends.

    ``close()`` the generator to stop the workers (before an evaluation that needs the cores, say).
    """
    sampler = loader.sampler
    if not (isinstance(sampler, ResumableSampler) and sampler.continuous):
        raise ValueError("endless_batches needs a loader over a continuous ResumableSampler")
    sampler.set_epoch(epoch, start_batch)
    return _through(iter(loader))


def _through(batches: Iterator[Any]) -> Generator[Any, None, None]:
    yield from batches  # closing the generator drops the DataLoader iterator, which stops its workers
