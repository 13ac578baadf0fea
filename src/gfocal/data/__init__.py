"""Datasets: COCO, Pascal VOC and YOLO readers with validation, transforms, synthetic data.

Knows nothing of models. The pieces:

- :func:`load_dataset` → :class:`DatasetRecords` (one representation for all formats),
  :func:`write_coco` to convert or evaluate with pycocotools;
- :class:`DetectionDataset` (and :class:`ImageFiles`, files without annotations) + :func:`collate_detection`
  for ``torch.utils.data``,
  with :func:`gfocal.data.transforms.build_transforms`;
- :mod:`gfocal.data.summary` (statistics and a plot), :mod:`gfocal.data.synthetic`.
"""

from gfocal.data.coco import coco_image_ids, read_coco, write_coco
from gfocal.data.dataset import DetectionDataset, ImageFiles, collate_detection
from gfocal.data.formats import detect_format, load_dataset
from gfocal.data.problems import DatasetError, DatasetWarning, ProblemReport
from gfocal.data.records import Annotation, DatasetRecords, ImageRecord
from gfocal.data.transforms import build_transforms
from gfocal.data.voc import read_voc
from gfocal.data.yolo import read_yolo

__all__ = [
    "Annotation",
    "DatasetError",
    "DatasetRecords",
    "DatasetWarning",
    "DetectionDataset",
    "ImageFiles",
    "ImageRecord",
    "ProblemReport",
    "build_transforms",
    "coco_image_ids",
    "collate_detection",
    "detect_format",
    "load_dataset",
    "read_coco",
    "read_voc",
    "read_yolo",
    "write_coco",
]
