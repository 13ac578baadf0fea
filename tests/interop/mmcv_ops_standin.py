"""A stand-in for ``mmcv.ops`` (compiled in full mmcv, absent from pure-Python ``mmcv-lite``).

mmdetection imports ``mmcv.ops`` in many modules; GFL inference only calls ``nms`` and
``batched_nms``, which this module provides on top of ``torchvision.ops`` with mmcv's return
conventions. Any other name resolves to a placeholder that fails loudly if it is ever used.
Install with :func:`install` before importing ``mmdet``; for comparisons only, never a dependency.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import types

import torch
from torchvision.ops import batched_nms as tv_batched_nms
from torchvision.ops import nms as tv_nms


def nms(boxes, scores, iou_threshold, offset=0, score_threshold=0, max_num=-1):
    """mmcv's ``nms``: returns (dets [K, 5] = boxes + score, sorted by score; keep indices [K])."""
    keep = tv_nms(boxes, scores, float(iou_threshold))
    if max_num > 0:
        keep = keep[:max_num]
    return torch.cat((boxes[keep], scores[keep, None]), dim=-1), keep


def batched_nms(boxes, scores, idxs, nms_cfg, class_agnostic=False):
    """mmcv's ``batched_nms`` for ``nms_cfg = {"type": "nms", "iou_threshold": t}`` (class-aware unless told)."""
    nms_cfg = dict(nms_cfg or {})
    if nms_cfg.pop("type", "nms") != "nms":
        raise NotImplementedError("the mmcv.ops stand-in only implements plain NMS")
    groups = torch.zeros_like(idxs) if nms_cfg.pop("class_agnostic", class_agnostic) else idxs
    keep = tv_batched_nms(boxes, scores, groups, float(nms_cfg["iou_threshold"]))
    max_num = nms_cfg.get("max_num", -1)
    if max_num > 0:
        keep = keep[:max_num]
    return torch.cat((boxes[keep], scores[keep, None]), dim=-1), keep


class _Placeholder:
    def __init__(self, *args, **kwargs):
        raise NotImplementedError("this mmcv op is not available in the mmcv.ops stand-in")


def _module(name: str) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__path__ = []  # a package, so that submodules import
    module.nms, module.batched_nms = nms, batched_nms
    module.__getattr__ = lambda attr: (
        _Placeholder if not attr.startswith("__") else (_ for _ in ()).throw(AttributeError(attr))
    )
    return module


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path, target=None):
        if fullname == "mmcv.ops" or fullname.startswith("mmcv.ops."):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        return _module(spec.name)

    def exec_module(self, module):
        pass


def install() -> None:
    """Make ``import mmcv.ops`` (and its submodules) resolve to this stand-in."""
    if not any(isinstance(finder, _Finder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
