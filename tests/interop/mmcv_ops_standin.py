"""A stand-in for ``mmcv.ops`` (compiled in full mmcv, absent from pure-Python ``mmcv-lite``).

mmdetection imports ``mmcv.ops`` in many modules; GFL inference only calls ``nms`` and
``batched_nms``, which this module provides on top of ``torchvision.ops`` with mmcv's return
conventions. Any other name resolves to a placeholder that fails loudly if it is ever used.
The deformable convs of the zoo's ``dconv`` configs (``type='DCN'``, ``'DCNv2'``) are registered as
mmcv's ``DeformConv2dPack`` and ``ModulatedDeformConv2dPack``: their tensors and forward, the sampling
written from the published formula (``tests/support/deform_reference.py``), independent of gfocal's layer.
Install with :func:`install` before importing ``mmdet``; for comparisons only, never a dependency.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import types

import torch
from torch import nn
from torchvision.ops import batched_nms as tv_batched_nms
from torchvision.ops import nms as tv_nms

from support.deform_reference import deform_conv_reference


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


class DeformConv2dPack(nn.Module):
    """mmcv's ``DeformConv2dPack`` (``type='DCN'``): offsets from ``conv_offset`` (2*G*k*k channels, (dy, dx)
    per kernel point), then the deformable conv; ``ModulatedDeformConv2dPack`` adds a sigmoid mask."""

    modulated = False

    def __init__(
        self,
        in_channels,
        out_channels,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        groups=1,
        deform_groups=1,
        bias=False,
    ):
        super().__init__()
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self.weight = nn.Parameter(torch.zeros(out_channels, in_channels // groups, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        fields = 3 if self.modulated else 2
        self.conv_offset = nn.Conv2d(
            in_channels, deform_groups * fields * kernel_size**2, kernel_size, stride, padding, dilation, bias=True
        )

    def forward(self, x):
        out, mask = self.conv_offset(x), None
        if self.modulated:  # mmcv's ModulatedDeformConv2dPack.forward
            o1, o2, mask = torch.chunk(out, 3, dim=1)
            out, mask = torch.cat((o1, o2), dim=1), torch.sigmoid(mask)
        y = deform_conv_reference(x, out, self.weight, self.stride, self.padding, self.dilation, mask)
        return y if self.bias is None else y + self.bias.view(1, -1, 1, 1)


class ModulatedDeformConv2dPack(DeformConv2dPack):
    modulated = True


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
    """Make ``import mmcv.ops`` (and its submodules) resolve to this stand-in, and register its deformable convs
    under mmcv's names ('DCN', 'DCNv2') for mmdetection's ``build_conv_layer``."""
    if not any(isinstance(finder, _Finder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
    from mmengine.registry import MODELS

    MODELS.register_module("DCN", module=DeformConv2dPack, force=True)
    MODELS.register_module("DCNv2", module=ModulatedDeformConv2dPack, force=True)
