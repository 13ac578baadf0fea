import itertools
import random

import pytest
import torch

from gfocal.engine.loader import ResumableSampler, SeededSamples, build_train_loader, endless_batches


def test_ranks_split_each_global_batch():
    single = list(ResumableSampler(10, 4, seed=0))
    assert len(single) == 8  # two full batches; the last incomplete one is dropped
    ranks = [list(ResumableSampler(10, 4, seed=0, rank=r, world_size=2)) for r in range(2)]
    for b in range(2):
        merged = {i for r in range(2) for i in ranks[r][2 * b : 2 * b + 2]}
        assert merged == set(single[4 * b : 4 * b + 4])


def test_epochs_differ_and_resume_mid_epoch():
    sampler = ResumableSampler(12, 3, seed=5)
    sampler.set_epoch(1)
    full = list(sampler)
    sampler.set_epoch(1, start_batch=2)
    assert list(sampler) == full[6:] and len(sampler) == 6
    sampler.set_epoch(2)
    assert [i for _, i in sampler] != [i for _, i in full]


def test_bad_batch_sizes():
    with pytest.raises(ValueError, match="not divisible"):
        ResumableSampler(10, 3, 0, world_size=2)
    with pytest.raises(ValueError, match="fewer than batch_size"):
        ResumableSampler(2, 4, 0)


class Draw(torch.utils.data.Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        return torch.rand(()).item(), random.random()


def test_seeded_samples_depend_only_on_seed_epoch_index():
    data = SeededSamples(Draw(), seed=0)
    torch.manual_seed(0)
    first = data[(1, 2)]
    outer = torch.rand(())
    torch.manual_seed(0)
    data[(0, 0)]
    assert data[(1, 2)] == first and torch.rand(()) == outer  # caller's stream untouched
    assert data[(2, 2)] != first and SeededSamples(Draw(), seed=1)[(1, 2)] != first


def per_epoch_keys(sampler, epoch, start_batch=0):
    sampler.set_epoch(epoch, start_batch)
    return list(sampler)


@pytest.mark.parametrize("world_size", [1, 2])
def test_a_continuous_sampler_runs_on_through_the_epochs_exactly(world_size):
    """From a mid-epoch start, the continuous sampler yields what selecting each epoch in turn yields, on every rank."""
    for rank in range(world_size):
        one_by_one = ResumableSampler(14, 4, seed=3, rank=rank, world_size=world_size)  # 3 batches, 2 images dropped
        expected = per_epoch_keys(one_by_one, 2, start_batch=1) + [
            key for epoch in (3, 4, 5) for key in per_epoch_keys(one_by_one, epoch)
        ]
        continuous = ResumableSampler(14, 4, seed=3, rank=rank, world_size=world_size, continuous=True)
        continuous.set_epoch(2, start_batch=1)
        keys = list(itertools.islice(continuous, len(expected)))
        assert keys == expected
        assert len(keys) == (2 + 3 * 3) * 4 // world_size
        assert [epoch for epoch, _ in keys[: 8 // world_size]] == [2] * (8 // world_size)
    with pytest.raises(TypeError, match="no end"):
        len(continuous)


class KeyedImages(torch.utils.data.Dataset):
    """Image i is i everywhere plus a seeded random flip of its first row: a batch shows its keys and augmentation."""

    def __len__(self):
        return 10

    def __getitem__(self, i):
        image = torch.full((1, 2, 3), float(i))
        image[0, 0] += torch.rand(3)
        return image, {"image_id": i}


def collate_keys(batch):
    images, targets = zip(*batch)
    return torch.stack(images), [t["image_id"] for t in targets]


@pytest.mark.parametrize("workers", [0, 2])
def test_one_loader_for_the_run_yields_the_batches_of_a_loader_per_epoch(workers):
    """Epochs 1 (from its second batch) to 4 on each of 2 ranks: the same image ids and augmented pixels, batch by batch."""
    for rank in range(2):  # 10 images in global batches of 4: 2 batches an epoch (2 images dropped)
        loader, sampler = build_train_loader(KeyedImages(), collate_keys, 4, 7, workers=0, rank=rank, world_size=2)
        expected = []
        for epoch in range(1, 5):
            sampler.set_epoch(epoch, start_batch=1 if epoch == 1 else 0)
            expected += list(loader)
        assert len(expected) == 1 + 3 * 2
        loader, _ = build_train_loader(
            KeyedImages(), collate_keys, 4, 7, workers, rank=rank, world_size=2, continuous=True
        )
        batches = endless_batches(loader, 1, 1)
        actual = [next(batches) for _ in range(len(expected))]
        batches.close()
        assert [ids for _, ids in actual] == [ids for _, ids in expected]
        assert all(len(ids) == 2 for _, ids in actual)
        for (images, _), (reference, _) in zip(actual, expected):
            assert torch.equal(images, reference)


def test_endless_batches_refuses_a_sampler_with_an_end():
    loader, _ = build_train_loader(KeyedImages(), collate_keys, 4, 7, workers=0)
    with pytest.raises(ValueError, match="continuous"):
        endless_batches(loader, 0, 0)
