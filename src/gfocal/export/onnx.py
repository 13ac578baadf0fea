"""ONNX export: the whole detector, dynamic batch and image size, in two forms.

The exported graph takes ``images``: float32 [N, 3, H, W], **RGB in 0-255**, already resized by
the caller (keep-ratio, as :func:`gfocal.export.reference_decode.preprocess` shows); the graph
divides by 255, normalises with the model's mean/std and zero-pads H and W up to a multiple of
``size_divisible``, exactly as :class:`gfocal.models.transform.DetectionTransform` does.

Forms (``form=``):

``"raw"``: per-location outputs, to be decoded by the caller (see ``reference_decode.py``)
    scores [N, A, C]        class scores in [0, 1]; the joint score for GFL, DGQP folded in for GFLv2
    box_outputs [N, A, 4B]  edge distribution logits (B = reg_max+1 bins, ``box="dfl"``) or
                            stride-unit distances (B = 1, ``box="dirac"``), edges left, top, right, bottom
    points [A, 2]           (x, y) of every location in input pixels
    strides [A]             the stride of every location's level (levels are contiguous runs)
    score_factors [N, A]    centerness, multiplied in *after* thresholding (only for quality branches
                            with score factors: the ATSS baseline's, ``classification="focal"``)
``"decoded"``: the same post-processing as ``model.eval()(images)`` inside the graph
    boxes [N, D, 4]         xyxy in input pixels, clipped to (H, W); D = ``max_detections``
    scores [N, D], labels [N, D] int64 (-1 in empty slots), num_detections [N] int64
    edge_std [N, D, 4]      with ``edge_std=True`` (``box="dfl"`` only): the standard deviation of each
                            box edge's learned distribution (left, top, right, bottom), input pixels,
                            times the model's ``std_scale``; 0 in empty slots

Shape letters: N images, A locations over all levels, C classes, K candidates, D max detections.

Deformable convs (the zoo's DCN models, ``deform_stages``) become ONNX's ``DeformConv`` (with its mask
input for DCN v2), which exists from opset 19: a deformable model exports at opset 19 by default, and a
lower opset is refused (the exporter would write a DeformConv node that opset lacks, which onnxruntime
refuses to load).

The exporter is ``torch.onnx.export(..., dynamo=True)`` (torch.export + onnxscript): it keeps the
batch and image size symbolic through the padding, the location grid and NMS. It traces with a
batch of 2 and an image large enough that every level is wider than 1 px, because torch.export
specialises sizes it sees equal to 1.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import nms

from gfocal.models import GFLDetector
from gfocal.models.box_voting import edge_variance, vote_boxes
from gfocal.models.deform_conv import DeformConv2d
from gfocal.models.detector import ScoredOutputs
from gfocal.models.grid import LocationGrid
from gfocal.ops import distribution_std

__all__ = [
    "RAW_OUTPUTS",
    "DECODED_OUTPUTS",
    "DEFORM_CONV_OPSET",
    "ExportedDetector",
    "batched_detections",
    "resolve_opset",
    "export_onnx",
]

RAW_OUTPUTS = ("scores", "box_outputs", "points", "strides")
DECODED_OUTPUTS = ("boxes", "scores", "labels", "num_detections")
Form = Literal["raw", "decoded"]
#: The first ONNX opset with DeformConv (deformable convolution, optionally modulated by a mask).
DEFORM_CONV_OPSET = 19


def resolve_opset(model: GFLDetector, opset: int | None = None) -> int:
    """The opset to export ``model`` at: ``opset``, or by default 18, or :data:`DEFORM_CONV_OPSET` when the model
    has deformable convs. Raises ValueError for an opset below 17, or below DeformConv's for a deformable model."""
    deformable = any(isinstance(module, DeformConv2d) for module in model.modules())
    needed = DEFORM_CONV_OPSET if deformable else 17
    if opset is None:
        return DEFORM_CONV_OPSET if deformable else 18
    if opset < 17:
        raise ValueError(f"opset must be >= 17, got {opset}")
    if opset < needed:
        raise ValueError(
            f"opset {opset} has no deformable convolution; this model's are in stages {model.config.deform_stages} "
            f"(ONNX's DeformConv is opset {DEFORM_CONV_OPSET} and later): export at opset {DEFORM_CONV_OPSET}"
        )
    return opset


class ExportedDetector(nn.Module):
    """A GFLDetector as an export-friendly module: 0-255 RGB batch in, raw or decoded outputs out.

    It runs the detector's one forward path (:meth:`GFLDetector.scored_outputs`); only the input
    handling (normalise, pad) and the batched post-processing are written for a static graph.
    """

    def __init__(self, model: GFLDetector, form: Form = "raw", edge_std: bool = False) -> None:
        super().__init__()
        if form not in ("raw", "decoded"):
            raise ValueError(f"form must be 'raw' or 'decoded', got {form!r}")
        if edge_std and (form != "decoded" or not model.head.box_coding.has_distributions):
            raise ValueError(
                "edge_std needs form='decoded' and a distribution head (box='dfl'); "
                "the raw form's box_outputs hold the distributions (reference_decode computes the std)"
            )
        self.model, self.form, self.edge_std = model.eval(), form, edge_std
        self.register_buffer("mean", model.transform.mean.clone(), persistent=False)
        self.register_buffer("std", model.transform.std.clone(), persistent=False)

    @property
    def output_names(self) -> tuple[str, ...]:
        if self.form == "decoded":
            return DECODED_OUTPUTS + (("edge_std",) if self.edge_std else ())
        return RAW_OUTPUTS + (("score_factors",) if self.model.head.quality.has_score_factors else ())

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        """images (Tensor[N, 3, H, W]): float RGB in [0, 255], resized by the caller."""
        height, width = images.shape[-2:]
        divisor = self.model.config.size_divisible
        batch = (images / 255 - self.mean) / self.std
        batch = F.pad(batch, (0, (-width) % divisor, 0, (-height) % divisor))  # zero padding after normalising
        scored = self.model.scored_outputs(batch)
        if self.form == "decoded":
            return batched_detections(self.model, scored, height, width, self.edge_std)
        raw = (scored.scores, scored.box_outputs, scored.grid.points, scored.grid.strides)
        return raw + ((scored.score_factors,) if scored.score_factors is not None else ())


def batched_detections(
    model: GFLDetector, scored: ScoredOutputs, height: int, width: int, edge_std: bool = False
) -> tuple[Tensor, ...]:
    """:func:`gfocal.models.postprocess.postprocess_image` for a whole batch of one image size,
    written with fixed-rank tensors so that it exports: per-level top-k, threshold, decode, clip (empty
    boxes dropped), class-aware NMS (per image and class), at most ``max_detections`` per image.

    Returns:
        boxes [N, D, 4], scores [N, D], labels [N, D] int64 (-1 when empty), num_detections [N] int64,
        and with ``edge_std`` the std of each edge [N, D, 4] in pixels (times ``std_scale``).
    """
    config = model.config
    scores, box_outputs, grid = scored.scores, scored.box_outputs, scored.grid
    n, _, num_classes = scores.shape
    candidate_scores, candidate_locations = [], []
    start = 0
    for size in grid.level_sizes:
        level = scores[:, start : start + size].reshape(n, -1)  # [N, A_l*C]
        top = level.topk(torch.sym_min(config.pre_nms_top_k, level.shape[1]), dim=1)
        candidate_scores.append(top.values)
        candidate_locations.append(top.indices + start * num_classes)
        start = start + size
    flat_index = torch.cat(candidate_locations, dim=1)  # [N, K] into the [A*C] scores of one image
    candidate = torch.cat(candidate_scores, dim=1)  # [N, K]
    locations, labels = flat_index // num_classes, flat_index % num_classes
    valid = candidate > config.score_threshold
    if scored.score_factors is not None:
        candidate = candidate * scored.score_factors.gather(1, locations)
    selected = box_outputs.gather(1, locations.unsqueeze(-1).expand(-1, -1, box_outputs.shape[-1]))  # [N, K, 4B]
    boxes = model.head.box_coding.decode(selected, grid.points[locations], grid.strides[locations])  # [N, K, 4]
    boxes = torch.stack(
        (
            boxes[..., 0].clamp(0, width),
            boxes[..., 1].clamp(0, height),
            boxes[..., 2].clamp(0, width),
            boxes[..., 3].clamp(0, height),
        ),
        dim=-1,
    )
    valid = valid & ((boxes[..., 2:] - boxes[..., :2]) > 0).all(-1)  # clipped to nothing: no detection
    if edge_std:  # carried through NMS as 4 more columns of the boxes
        probs = model.head.box_coding.distributions(selected)  # [N, K, 4, B]
        spread = distribution_std(probs) * grid.strides[locations].unsqueeze(-1) * config.std_scale  # [N, K, 4]
        boxes = torch.cat((boxes, spread), dim=-1)  # [N, K, 8]
    detections = _nms_per_image_and_class(
        boxes, candidate, labels, valid, config.nms_iou_threshold, config.max_detections, num_classes
    )
    if config.box_voting != "off":
        detections = _voted(model, detections, boxes[..., :4], candidate * valid, labels, selected, grid, locations)
    if not edge_std:
        return detections
    out_boxes, *rest = detections
    return (out_boxes[..., :4], *rest, out_boxes[..., 4:])


def _voted(
    model: GFLDetector,
    detections: tuple[Tensor, Tensor, Tensor, Tensor],
    candidates: Tensor,
    candidate_scores: Tensor,
    candidate_labels: Tensor,
    selected: Tensor,
    grid: LocationGrid,
    locations: Tensor,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The kept boxes [N, D, 4 + X] with their xyxy voted over the candidates [N, K, 4] as ``postprocess_image``
    does (invalid candidates score 0: no vote)."""
    config = model.config
    variance = None
    if config.box_voting == "distribution":
        variance = edge_variance(model.head.box_coding, selected, grid.strides[locations])
    out_boxes, out_scores, out_labels, counts = detections
    voted = vote_boxes(
        out_boxes[..., :4],
        out_labels,
        candidates,
        candidate_scores,
        candidate_labels,
        config.box_voting_sigma,
        variance,
    )
    return torch.cat((voted, out_boxes[..., 4:]), dim=-1), out_scores, out_labels, counts


def _nms_per_image_and_class(
    boxes: Tensor,
    scores: Tensor,
    labels: Tensor,
    valid: Tensor,
    iou_threshold: float,
    max_detections: int,
    num_classes: int,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Class-aware NMS per image; ``boxes`` [N, K, 4 + X]: xyxy first, X more columns carried along."""
    n, k = scores.shape
    image = torch.arange(n, device=boxes.device).unsqueeze(1).expand(n, k)  # [N, K]
    groups = (image * num_classes + labels).reshape(-1)  # [N*K]
    columns = boxes.shape[-1]
    flat_boxes, flat_scores, flat_valid = boxes.reshape(-1, columns), scores.reshape(-1), valid.reshape(-1)
    # Only candidates above the threshold enter NMS (its cost grows with the square of their number).
    candidates = flat_valid.nonzero().squeeze(1)
    # torchvision's coordinate trick: shift each (image, class) group apart so one NMS call is per group.
    offsets = groups[candidates].to(flat_boxes.dtype) * (flat_boxes[:, :4].max() + 1)
    shifted = flat_boxes[candidates, :4] + offsets.unsqueeze(1)
    keep = candidates[nms(shifted, flat_scores[candidates], iou_threshold)]  # sorted by score
    owner = keep // k  # image of each kept box
    one_hot = (owner.unsqueeze(1) == torch.arange(n, device=boxes.device)).long()  # [K', N]
    rank = (one_hot.cumsum(0) * one_hot).sum(1) - 1  # position within its image, in score order
    fits = rank < max_detections
    keep, owner, rank = keep[fits], owner[fits], rank[fits]
    slot = owner * max_detections + rank  # [K''] into [N*D]
    out_boxes = boxes.new_zeros(n * max_detections, columns).index_put((slot,), flat_boxes[keep])
    out_scores = scores.new_zeros(n * max_detections).index_put((slot,), flat_scores[keep])
    out_labels = labels.new_full((n * max_detections,), -1).index_put((slot,), labels.reshape(-1)[keep])
    counts = one_hot[fits].sum(0)  # [N]
    return (
        out_boxes.reshape(n, max_detections, columns),
        out_scores.reshape(n, max_detections),
        out_labels.reshape(n, max_detections),
        counts,
    )


def export_onnx(
    model: GFLDetector,
    path: str | Path,
    form: Form = "raw",
    opset: int | None = None,
    example_size: tuple[int, int] = (320, 352),
    optimize: bool = True,
    edge_std: bool = False,
) -> Path:
    """Export ``model`` to ONNX with dynamic batch, height and width; returns the path.

    The file's metadata holds ``gfocal_config`` (the ModelConfig as JSON), ``gfocal_form`` and
    ``gfocal_input`` (a description of the expected input), so a deployment can read the
    thresholds, reg_max and class names from the file. ``edge_std`` adds the decoded form's
    ``edge_std`` output (see the module doc). ``opset``: see :func:`resolve_opset` (None: its default).
    """
    import onnx

    opset = resolve_opset(model, opset)
    wrapper = ExportedDetector(model, form, edge_std)
    height, width = example_size
    example = torch.rand(2, 3, height, width) * 255
    dynamic = {
        "images": {
            0: torch.export.Dim("batch", min=1, max=1024),
            2: torch.export.Dim("height", min=1, max=8192),
            3: torch.export.Dim("width", min=1, max=8192),
        }
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        program = torch.onnx.export(
            wrapper,
            (example,),
            input_names=["images"],
            output_names=list(wrapper.output_names),
            dynamic_shapes=dynamic,
            opset_version=opset,
            dynamo=True,
            external_data=False,
            verbose=False,
            optimize=optimize,
        )
    proto = program.model_proto
    for key, value in (
        ("gfocal_config", json.dumps(model.config.to_dict())),
        ("gfocal_form", form),
        (
            "gfocal_input",
            "images: float32 [N, 3, H, W], RGB, 0-255, resized by the caller; normalised and padded inside",
        ),
    ):
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(path))
    return path
