"""``gfocal analyze calibration``: run a model over a labelled set and measure how calibrated its spreads are.

Every annotation is matched to at most one detection of its class (:func:`match_detections`);
for each match, each edge's predicted std (``edge_std``, pixels, the model's ``std_scale``
applied) is set against that edge's actual error (detected minus annotated coordinate). Every
detection's joint score is set against its IoU with the best annotation of its class.
The statistics are :mod:`gfocal.analysis.calibration`'s. Writes::

    OUT/calibration.json   the statistics (all edges, per edge, per box, score vs IoU), settings
    OUT/reliability.png    RMSE against RMV per std bin (edges and boxes), mean IoU against mean score
    OUT/report.html        the figure and the numbers on one self-contained page

Shape letters: K detections, M annotations of one image, E matched edges.
"""

from __future__ import annotations

import base64
import html
import io
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure  # no pyplot: renders with Agg, leaves the user's backend alone
from torchvision.ops import box_iou

from gfocal.analysis.ambiguity import annotation_targets
from gfocal.analysis.calibration import fit_std_scale, score_reliability, spread_reliability
from gfocal.analysis.distributions import EDGES, require_distribution_head
from gfocal.analysis.matching import match_detections
from gfocal.analysis.output import write_json
from gfocal.data import DatasetRecords, DetectionDataset
from gfocal.engine.inference_loop import LoadedImage, run_over_images
from gfocal.fileio import atomic_write_bytes, output_path, prepare_output_dir
from gfocal.models import GFLDetector, build_detector, save_weights

__all__ = [
    "CalibrationData",
    "calibration_figure",
    "calibration_html",
    "calibration_report",
    "calibration_statistics",
    "collect",
    "save_calibrated",
]


@dataclass(frozen=True)
class CalibrationData:
    """What a model predicted about a labelled set, for calibration.

    std (float [E/4, 4]): predicted std of each edge of each matched detection, pixels.
    error (float [E/4, 4]): its actual error, detected minus annotated coordinate, pixels.
    scores (float [D]): every detection's score; ious (float [D]): its IoU with the best annotation
        of its class in its image (0 when none).
    images: images used.
    """

    std: np.ndarray
    error: np.ndarray
    scores: np.ndarray
    ious: np.ndarray
    images: int


def collect(
    model: GFLDetector,
    records: DatasetRecords,
    iou_threshold: float = 0.5,
    batch_size: int = 4,
    max_images: int | None = None,
    progress: bool = True,
    workers: int = 0,
) -> CalibrationData:
    """Run ``model`` over ``records`` and pair predicted spreads with actual errors (see the module doc).

    ``workers``: image-decoding processes (:func:`~gfocal.engine.inference_loop.run_over_images`).
    """
    require_distribution_head(model, "calibration")
    model.eval()
    device = next(model.parameters()).device
    chosen = range(len(records.images[:max_images]))

    def detect(images: list[torch.Tensor], items: list[LoadedImage]) -> list[tuple[dict[str, torch.Tensor], ...]]:
        targets = [annotation_targets(records.images[i.index], i.original_size, device)[0] for i in items]
        return list(zip(model(images, return_distributions=True), targets))

    std, error, scores, ious = [], [], [], []
    loop = run_over_images(
        DetectionDataset(records), detect, device, batch_size, workers, chosen, progress=progress, desc="calibration"
    )
    for _, (detection, target) in loop:
        match = match_detections(
            detection["boxes"], detection["labels"], detection["scores"], target["boxes"], target["labels"],
            iou_threshold,
        )  # fmt: skip
        matched = match.detection >= 0  # [M]
        picked = match.detection[matched]
        std.append(detection["edge_std"][picked].cpu().numpy())
        error.append((detection["boxes"][picked] - target["boxes"][matched]).cpu().numpy())
        scores.append(detection["scores"].cpu().numpy())
        ious.append(_best_iou(detection, target).cpu().numpy())
    return CalibrationData(
        std=np.concatenate(std) if std else np.zeros((0, 4), np.float32),
        error=np.concatenate(error) if error else np.zeros((0, 4), np.float32),
        scores=np.concatenate(scores) if scores else np.zeros(0, np.float32),
        ious=np.concatenate(ious) if ious else np.zeros(0, np.float32),
        images=len(chosen),
    )


def _best_iou(detection: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> torch.Tensor:
    """Tensor[K]: each detection's IoU with its best same-class annotation, 0 when it has none."""
    if len(detection["boxes"]) == 0 or len(target["boxes"]) == 0:
        return detection["scores"].new_zeros(len(detection["boxes"]))
    iou = box_iou(detection["boxes"].float(), target["boxes"].float())  # [K, M]
    same_class = detection["labels"].unsqueeze(1) == target["labels"].unsqueeze(0)
    return torch.where(same_class, iou, 0.0).amax(dim=1)


def calibration_statistics(data: CalibrationData, bins: int = 10) -> dict[str, Any]:
    """The calibration of ``data``: all edges pooled, each edge, boxes, the score, and the fitted temperature.

    A box's spread is the root mean of its four edge variances and its error the RMS of its four
    edge errors, so a box is calibrated when its edges are.

    Returns:
        JSON-ready dict: ``matched_boxes``, ``edges`` / ``boxes`` / ``left``... (:func:`spread_reliability`),
        ``bias`` per edge (mean signed error, pixels), ``score`` (:func:`score_reliability`), and
        ``fitted_std_scale`` (:func:`fit_std_scale`: multiply the model's std_scale by it to calibrate).
    """
    std, error = data.std.astype(np.float64), data.error.astype(np.float64)
    statistics: dict[str, Any] = {
        "images": data.images,
        "matched_boxes": len(std),
        "edges": spread_reliability(std.ravel(), error.ravel(), bins),
        "boxes": spread_reliability(np.sqrt((std**2).mean(-1)), np.sqrt((error**2).mean(-1)), bins),
        "bias": {edge: float(error[:, j].mean()) if len(error) else None for j, edge in enumerate(EDGES)},
        "score": score_reliability(data.scores, data.ious, bins),
        "fitted_std_scale": fit_std_scale(std.ravel(), error.ravel()),
    }
    for j, edge in enumerate(EDGES):
        statistics[edge] = spread_reliability(std[:, j], error[:, j], bins)
    return statistics


def calibration_figure(statistics: dict[str, Any], dpi: int = 90) -> bytes:
    """PNG bytes: the spread reliability diagram (RMSE vs RMV per bin) and the score reliability diagram."""
    figure = Figure(figsize=(9.0, 4.0), dpi=dpi, layout="constrained")
    spread_axes, score_axes = figure.subplots(1, 2)
    largest = 1.0
    for key, colour in (("edges", "#1f77b4"), ("boxes", "#ff7f0e")):
        rows = statistics[key]["bins"]
        rmv, rmse = [r["rmv"] for r in rows], [r["rmse"] for r in rows]
        largest = max([largest, *rmv, *rmse])
        ence, rho = statistics[key]["ence"], statistics[key]["spearman"]
        label = f"{key}: ENCE {_fmt(ence)}, Spearman {_fmt(rho)}"
        spread_axes.plot(rmv, rmse, "o-", color=colour, label=label, markersize=4)
    spread_axes.plot([0, largest], [0, largest], "k--", linewidth=1, label="calibrated")
    spread_axes.set_xlabel("predicted spread, RMV per bin (px)")
    spread_axes.set_ylabel("actual error, RMSE per bin (px)")
    spread_axes.set_title(f"localisation: {statistics['matched_boxes']} matched boxes", fontsize=9)
    spread_axes.legend(fontsize=7, frameon=False)
    rows = statistics["score"]["bins"]
    score_axes.plot([r["mean_score"] for r in rows], [r["mean_iou"] for r in rows], "o-", markersize=4,
                    label=f"ECE {_fmt(statistics['score']['ece'])}, Spearman {_fmt(statistics['score']['spearman'])}")  # fmt: skip
    score_axes.plot([0, 1], [0, 1], "k--", linewidth=1, label="calibrated")
    score_axes.set_xlim(0, 1)
    score_axes.set_ylim(0, 1)
    score_axes.set_xlabel("joint score, mean per bin")
    score_axes.set_ylabel("IoU with best annotation, mean per bin")
    score_axes.set_title(f"quality score: {statistics['score']['count']} detections", fontsize=9)
    score_axes.legend(fontsize=7, frameon=False)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def calibration_html(statistics: dict[str, Any], png: bytes, title: str = "gfocal calibration report") -> str:
    """A self-contained page: the figure, a table per edge, the score's calibration and the fitted temperature."""
    rows = "".join(
        f"<tr><td class=l>{name}</td><td>{statistics[name]['count']}</td><td>{_fmt(statistics[name]['rmv'])}</td>"
        f"<td>{_fmt(statistics[name]['rmse'])}</td><td>{_fmt(statistics[name]['ratio'])}</td>"
        f"<td>{_fmt(statistics[name]['ence'])}</td><td>{_fmt(statistics[name]['spearman'])}</td>"
        f"<td>{_fmt(statistics['bias'].get(name))}</td></tr>"
        for name in ("edges", "boxes", *EDGES)
    )
    score = statistics["score"]
    image = base64.b64encode(png).decode("ascii")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:1.5em}}td,th{{padding:2px 8px;text-align:right}}.l{{text-align:left}}</style>
</head><body><h1>{html.escape(title)}</h1>
<p>Dataset <code>{html.escape(str(statistics.get("dataset", "")))}</code>: {statistics["images"]} images,
{statistics["matched_boxes"]} annotations matched (IoU ≥ {statistics.get("iou_threshold", 0.5)}).
<b>RMV</b>: root mean predicted variance of an edge (px); <b>RMSE</b>: root mean squared actual error (px);
calibrated spreads have RMSE = RMV in every bin (ratio 1, ENCE 0; ratio &gt; 1: overconfident).
<b>Spearman</b>: rank correlation of the predicted std and the absolute error.</p>
<img alt="reliability diagrams" src="data:image/png;base64,{image}">
<h2>Localisation</h2><table><tr><th class=l>edges</th><th>count</th><th>RMV px</th><th>RMSE px</th>
<th>ratio</th><th>ENCE</th><th>Spearman</th><th>bias px</th></tr>{rows}</table>
<p>Fitted temperature: multiply the predicted std by <b>{_fmt(statistics["fitted_std_scale"])}</b>
(model's std_scale now {_fmt(statistics.get("std_scale"))}).</p>
<h2>Quality score</h2><p>{score["count"]} detections: ECE {_fmt(score["ece"])}, Spearman(score, IoU)
{_fmt(score["spearman"])}, mean score {_fmt(score["mean_score"])} against mean IoU {_fmt(score["mean_iou"])}.</p>
</body></html>
"""


def _fmt(value: Any) -> str:
    return "–" if value is None else f"{value:.3f}" if isinstance(value, float) else html.escape(str(value))


def calibration_report(
    model: GFLDetector,
    records: DatasetRecords,
    out: str | os.PathLike[str],
    overwrite: bool = False,
    bins: int = 10,
    **options: Any,
) -> dict[str, Any]:
    """:func:`collect` (``options`` passed on), :func:`calibration_statistics`, and the files in ``out``."""
    out = prepare_output_dir(out, overwrite)  # refuse early, before the long run
    statistics = calibration_statistics(collect(model, records, **options), bins)
    statistics.update(
        dataset=str(records.root), iou_threshold=options.get("iou_threshold", 0.5), std_scale=model.config.std_scale
    )
    write_json(output_path(out, "calibration.json"), statistics)
    png = calibration_figure(statistics)
    atomic_write_bytes(output_path(out, "reliability.png"), png)
    atomic_write_bytes(output_path(out, "report.html"), calibration_html(statistics, png).encode("utf-8"))
    return statistics


def save_calibrated(model: GFLDetector, fitted_scale: float, path: str | os.PathLike[str]) -> None:
    """Write ``model``'s weights with ``std_scale`` multiplied by ``fitted_scale`` (the model is not changed)."""
    calibrated = build_detector(model.config.replace(std_scale=model.config.std_scale * fitted_scale))
    calibrated.load_state_dict(model.state_dict())
    save_weights(calibrated, path)
