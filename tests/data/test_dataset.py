"""DetectionDataset and collate_detection give the documented shapes and dtypes."""

from __future__ import annotations

import random

import torch
from torch.utils.data import DataLoader

from gfocal.data import DetectionDataset, collate_detection, load_dataset
from gfocal.data.transforms import Augmentation, build_transforms


def test_item_shapes_dtypes_and_scale(coco_dir):
    records = load_dataset(coco_dir / "ann.json")
    dataset = DetectionDataset(records, build_transforms(32, 32))
    image, target = dataset[0]
    assert type(image) is torch.Tensor and image.dtype == torch.uint8 and image.shape == (3, 24, 32)
    assert target["boxes"].dtype == torch.float32 and target["boxes"].shape == (1, 4)
    assert target["labels"].dtype == torch.int64 and target["labels"].tolist() == [1]
    assert target["boxes"].tolist() == [[2.0, 2.5, 7.0, 12.5]]  # (4, 5, 14, 25) at scale 0.5
    assert target["ignore_boxes"].tolist() == [[10.0, 5.0, 25.0, 20.0]]  # the crowd box, in eval
    assert target["image_id"] == 0 and target["orig_size"] == (48, 64) and target["scale"] == 0.5


def test_train_removes_crowd_boxes_and_keeps_negatives(coco_dir):
    dataset = DetectionDataset(load_dataset(coco_dir / "ann.json"), train=True)
    _, target = dataset[0]
    assert target["labels"].tolist() == [1] and target["ignore_boxes"].shape == (0, 4)
    image, negative = dataset[2]
    assert image.shape == (3, 48, 64) and negative["boxes"].shape == (0, 4) and negative["labels"].shape == (0,)


def test_collate_through_a_dataloader(coco_dir):
    dataset = DetectionDataset(
        load_dataset(coco_dir / "ann.json"), build_transforms(40, 40, Augmentation()), train=True
    )
    images, targets = next(iter(DataLoader(dataset, batch_size=3, collate_fn=collate_detection)))
    assert isinstance(images, list) and len(images) == 3 and all(im.shape[0] == 3 for im in images)
    assert [t["image_id"] for t in targets] == [0, 1, 2]
    assert collate_detection([]) == ([], [])


def seed(value):
    torch.manual_seed(value)
    random.seed(value)  # the zoom-and-crop draws from Python's generator


def test_cached_decoding_gives_the_same_samples_within_its_byte_bound(coco_dir, monkeypatch):
    """Images decoded once while the cache has room (48x64 RGB = 9216 bytes: room for two), the rest each time;
    the same augmented samples as without a cache; a caller writing into a sample leaves the cache intact."""
    from gfocal.data import dataset as dataset_module

    decoded, real_decode = [], dataset_module.decode_image

    def counting_decode(path):
        decoded.append(path)
        return real_decode(path)

    monkeypatch.setattr(dataset_module, "decode_image", counting_decode)
    records = load_dataset(coco_dir / "ann.json")
    pipeline = build_transforms(40, 40, Augmentation(scale_range=(0.5, 1.5), color=True))
    plain = DetectionDataset(records, pipeline, train=True)
    cached = DetectionDataset(records, pipeline, train=True, cache_bytes=2 * 48 * 64 * 3)
    for round_ in range(3):
        for index in range(3):
            seed(round_ * 10 + index)
            expected_image, expected = plain[index]
            seed(round_ * 10 + index)
            image, target = cached[index]
            assert torch.equal(image, expected_image) and torch.equal(target["boxes"], expected["boxes"])
            image.zero_()
    paths = [image.path for image in records.images]
    assert decoded.count(paths[0]) == decoded.count(paths[1]) == 3 + 1  # 3 uncached reads, then 1 to the cache
    assert decoded.count(paths[2]) == 3 + 3  # over the bound: decoded each time
    raw = DetectionDataset(records, cache_bytes=10**6)
    first, _ = raw[0]
    first.fill_(7)
    assert not torch.equal(raw[0][0], first)
