"""Bad image files met after the readers: sizes taken on trust, files changed after validation, odd names and
one-pixel images; and validation that reads headers only (a 20000x20000 header allocates nothing)."""

from __future__ import annotations

import resource
import warnings

import pytest
from PIL import Image, ImageFile

from gfocal.data import DatasetError, DetectionDataset, load_dataset
from gfocal.data.transforms import Augmentation, build_transforms
from support.files import box, coco, coco_with_image, image, png_header_only


def test_probing_a_20000x20000_header_allocates_nothing_large(tmp_path):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    path = coco_with_image(tmp_path, lambda p: png_header_only(p.with_suffix(".png"), 20000, 20000))
    for check in ("fast", "full"):
        assert load_dataset(path, check_images=check, warn=False).problems.count("oversized_image") == 1
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200 * 1024  # decoding would need 1.2 GB


def test_an_oversized_image_taken_on_trust_is_refused_at_decode_with_its_name(tmp_path):
    png_header_only(tmp_path / "huge.png", 20000, 20000)
    path = coco(tmp_path / "ann.json", images=[{"id": 1, "file_name": "huge.png", "width": 20000, "height": 20000}])
    records = load_dataset(path, check_images="none", warn=False)  # sizes trusted: the file is not opened
    with pytest.raises(
        DatasetError, match=r"huge\.png: image over twice PIL\.Image\.MAX_IMAGE_PIXELS.*400000000 pixels"
    ):
        DetectionDataset(records, build_transforms(64, 64, Augmentation()))[0]


def test_a_file_corrupted_after_validation_fails_at_decode_with_its_name(tmp_path):
    path = coco(tmp_path / "ann.json", annotations=[box([1, 1, 4, 4])])
    dataset = DetectionDataset(load_dataset(path, warn=False), build_transforms(64, 64, Augmentation()), train=True)
    (tmp_path / "a.jpg").write_bytes(b"\xff\xd8 gone \xff\xd9")
    with pytest.raises(DatasetError, match=r"a\.jpg: cannot decode image"):
        dataset[0]


def test_one_pixel_and_non_ascii_images_go_through_the_training_pipeline(tmp_path):
    image(tmp_path / "ü 画像" / "1.png", (1, 1))
    path = coco(tmp_path / "ann.json", images=[{"id": 1, "file_name": "ü 画像/1.png"}], annotations=[box([0, 0, 1, 1])])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning either
        item, target = DetectionDataset(load_dataset(path), build_transforms(64, 64, Augmentation()), train=True)[0]
    assert item.dtype.is_floating_point is False and item.shape[0] == 3 and min(item.shape[1:]) >= 1
    assert target["boxes"].shape == (1, 4) and (target["boxes"][:, 2:] > target["boxes"][:, :2]).all()


def test_the_fast_probe_reads_headers_only(tmp_path, monkeypatch):
    """Validation of a large dataset must not decode every image (PNG's getexif() did, to find a late eXIf chunk)."""
    names = [image(tmp_path / f"{i}.{ext}", (300, 200)).name for i, ext in enumerate(["png", "jpg", "bmp", "webp"])]
    path = coco(tmp_path / "ann.json", images=[{"id": i, "file_name": n} for i, n in enumerate(names)])

    def no_decoding(self):
        raise AssertionError(f"{self.filename} was decoded")

    monkeypatch.setattr(Image.Image, "load", no_decoding)
    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    assert len(load_dataset(path, warn=False)) == 4
