"""The pictures and the page of ``gfocal eval --report``: the numbers of :func:`~gfocal.analysis.eval_report.eval_report`
drawn, and the worst images with their boxes. Writes::

    OUT/report.json          eval_report's numbers (curves, thresholds, confusion, worst images)
    OUT/pr_curves.png        per class: interpolated precision against recall at IoU 0.50 and 0.75
    OUT/f1.png               F1 against the score threshold, per class and all classes, best marked
    OUT/confusion.png        true class against detected class, background included, at the best threshold
    OUT/ap_per_iou.png       AP at each IoU threshold 0.50:0.95, all classes and per class
    OUT/worst/NN_<file>.png  the images with most errors, their boxes drawn
    OUT/index.html           all of it on one self-contained page (figures embedded, no server needed)

Figures render with Agg through ``Figure`` (no pyplot), leaving the user's backend alone.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from gfocal.analysis.eval_report import ImageOutcome, outcomes_at
from gfocal.analysis.output import write_json
from gfocal.analysis.report import PAGE_CSS, draw_box
from gfocal.data.image_io import decode_image
from gfocal.fileio import atomic_write_bytes, output_path, safe_name

__all__ = [
    "pr_figure",
    "f1_figure",
    "confusion_figure",
    "ap_per_iou_figure",
    "image_figure",
    "report_html",
    "write_eval_report",
]

_TRUE, _FALSE, _MISSED = "#00c8ff", "#e01010", "#ff9900"


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and value < 0):  # pycocotools' -1: nothing to measure
        return "–"
    return f"{value:.{digits}f}" if isinstance(value, float) else html.escape(str(value))


def pr_figure(report: dict[str, Any], columns: int = 4, dpi: int = 80) -> bytes:
    """PNG: one panel per class, interpolated precision (101 recall points) at IoU 0.50 (solid) and 0.75 (dashed)."""
    rows = report["per_class"]
    grid = (max(1, -(-len(rows) // columns)), min(columns, len(rows)) or 1)
    figure = Figure(figsize=(2.6 * grid[1], 2.3 * grid[0]), dpi=dpi, layout="constrained")
    axes = np.atleast_1d(figure.subplots(*grid, squeeze=False).ravel())
    recall = report["recall_points"]
    for panel, row in zip(axes, rows):
        for iou, style in (("0.50", "-"), ("0.75", "--")):
            curve = report["pr_curves"][iou][row["class"]]
            if curve is not None:
                panel.plot(recall, curve, style, color="#1f77b4", lw=1.4, label=f"IoU {iou}")
        if row["num_gt"]:
            panel.legend(fontsize=6, frameon=False, loc="lower left")
        else:
            panel.text(0.5, 0.5, "no ground truth", ha="center", va="center", fontsize=8, color="#888")
        panel.set_title(f"{row['class']}  AP50 {_fmt(row['AP50'])}  AP75 {_fmt(row['AP75'])}", fontsize=8)
        panel.set_xlim(0, 1)
        panel.set_ylim(0, 1.02)
        panel.tick_params(labelsize=6)
        panel.set_xlabel("recall", fontsize=7)
        panel.set_ylabel("precision", fontsize=7)
    for panel in axes[len(rows) :]:
        panel.axis("off")
    return _png(figure)


def f1_figure(report: dict[str, Any], dpi: int = 90) -> bytes:
    """PNG: F1 against the score threshold (IoU 0.5), each class thin, all classes thick, the best overall marked."""
    figure = Figure(figsize=(6.4, 4.0), dpi=dpi, layout="constrained")
    axes = figure.subplots()
    curves = report["f1_curves"]
    for name, curve in curves.items():
        if name != "all":
            axes.plot(curve["threshold"], curve["f1"], lw=0.9, alpha=0.7, label=name if len(curves) <= 13 else None)
    axes.plot(curves["all"]["threshold"], curves["all"]["f1"], color="black", lw=2.4, label="all classes")
    best = report["best_score_threshold"]["overall"]
    if best is not None:
        axes.axvline(best["threshold"], color="black", ls=":", lw=1)
        axes.set_title(f"best F1 {best['f1']:.3f} at score > {best['threshold']:.3f}", fontsize=9)
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.02)
    axes.set_xlabel("score threshold (keep detections scoring above it)")
    axes.set_ylabel(f"F1 at IoU {report['best_score_threshold']['iou']}")
    axes.legend(fontsize=7, frameon=False)
    return _png(figure)


def confusion_figure(report: dict[str, Any], dpi: int = 90) -> bytes:
    """PNG: the confusion matrix, each row coloured as shares of its true class, counts written when few classes."""
    labels, matrix = report["confusion"]["labels"], np.asarray(report["confusion"]["matrix"], dtype=np.float64)
    shares = matrix / np.maximum(matrix.sum(1, keepdims=True), 1)  # [K+1, K+1]
    side = min(12.0, 2.0 + 0.45 * len(labels))
    figure = Figure(figsize=(side + 1.0, side), dpi=dpi, layout="constrained")
    axes = figure.subplots()
    image = axes.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    figure.colorbar(image, ax=axes, shrink=0.8, label="share of the true class's row")
    ticks = range(len(labels))
    axes.set_xticks(ticks, labels, rotation=60, ha="right", fontsize=7)
    axes.set_yticks(ticks, labels, fontsize=7)
    axes.set_xlabel("detected as (background: ground truth missed)")
    axes.set_ylabel("true class (background: false detection)")
    if len(labels) <= 25:
        for (i, j), count in np.ndenumerate(matrix.astype(np.int64)):
            if count:
                axes.text(j, i, str(count), ha="center", va="center", fontsize=7,
                          color="white" if shares[i, j] > 0.6 else "black")  # fmt: skip
    return _png(figure)


def ap_per_iou_figure(report: dict[str, Any], dpi: int = 90) -> bytes:
    """PNG: AP at each IoU threshold, all classes (thick) and each class (thin)."""
    figure = Figure(figsize=(6.4, 3.6), dpi=dpi, layout="constrained")
    axes = figure.subplots()
    ious = report["iou_thresholds"]
    for row in report["per_class"]:
        values = [row["AP_per_iou"][f"{v:.2f}"] for v in ious]
        axes.plot(ious, [np.nan if v is None else v for v in values], lw=0.9, alpha=0.7,
                  label=row["class"] if len(report["per_class"]) <= 12 else None)  # fmt: skip
    axes.plot(ious, [report["AP_per_iou"][f"{v:.2f}"] for v in ious], "o-", color="black", lw=2.2, label="all classes")
    axes.set_xlabel("IoU threshold")
    axes.set_ylabel("AP")
    axes.set_ylim(0, 1.02)
    axes.legend(fontsize=7, frameon=False)
    return _png(figure)


def image_figure(
    image: np.ndarray, outcome: ImageOutcome, coco_eval: Any, class_names: Sequence[str], title: str, dpi: int = 80
) -> bytes:
    """PNG: ``image`` (uint8 [H, W, 3] RGB) with an outcome's boxes (``coco_eval``'s annotations and detections):
    true positives cyan, false positives red dashed, missed ground truths orange (labels ``name score``)."""
    height, width = image.shape[:2]
    scale = 6.0 / max(height, width)
    figure = Figure(figsize=(max(2.0, width * scale), max(2.0, height * scale) + 0.4), dpi=dpi, layout="constrained")
    axes = figure.subplots()
    axes.imshow(image, interpolation="nearest")
    names = dict(zip(coco_eval.params.catIds, class_names))
    drawn = (  # false detections last: dashed, they leave a missed object under them visible
        (coco_eval.cocoGt.anns, outcome.missed, _MISSED, "-"),
        (coco_eval.cocoDt.anns, outcome.true_positives, _TRUE, "-"),
        (coco_eval.cocoDt.anns, outcome.false_positives, _FALSE, "--"),
    )
    for table, ids, colour, style in drawn:
        for annotation in (table[i] for i in ids):
            x, y, w, h = annotation["bbox"]
            draw_box(axes, (x, y, x + w, y + h), colour, style, 2.0)
            caption = names[annotation["category_id"]] + (
                f" {annotation['score']:.2f}" if "score" in annotation else ""
            )
            axes.text(x, y, caption, fontsize=6, color="black", va="bottom",
                      bbox={"facecolor": colour, "edgecolor": "none", "pad": 0.5, "alpha": 0.8})  # fmt: skip
    axes.set_xlim(0, width)
    axes.set_ylim(height, 0)
    axes.axis("off")
    axes.set_title(title, fontsize=8)
    return _png(figure)


def _img(png: bytes, alt: str) -> str:
    return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{base64.b64encode(png).decode('ascii')}'>"


def _class_table(report: dict[str, Any]) -> str:
    head = "<tr><th>class</th><th>GT</th><th>AP</th><th>AP50</th><th>AP75</th><th>threshold</th>"
    head += "<th>precision</th><th>recall</th><th>F1</th></tr>"
    body = ""
    for row in report["per_class"]:
        best = row["best_f1"] or {}
        body += (
            f"<tr><td class=l>{_fmt(row['class'])}</td><td>{row['num_gt']}</td><td>{_fmt(row['AP'])}</td>"
            f"<td>{_fmt(row['AP50'])}</td><td>{_fmt(row['AP75'])}</td><td>{_fmt(best.get('threshold'))}</td>"
            f"<td>{_fmt(best.get('precision'))}</td><td>{_fmt(best.get('recall'))}</td><td>{_fmt(best.get('f1'))}</td></tr>"
        )
    return f"<table id=classes>{head}{body}</table>"


def _confusion_table(report: dict[str, Any]) -> str:
    labels = report["confusion"]["labels"]
    head = "<tr><th>true \\ detected</th>" + "".join(f"<th>{_fmt(n)}</th>" for n in labels) + "</tr>"
    body = "".join(
        f"<tr><th>{_fmt(name)}</th>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>"
        for name, row in zip(labels, report["confusion"]["matrix"])
    )
    return f"<table id=confusion>{head}{body}</table>"


def report_html(report: dict[str, Any], figures: dict[str, bytes], worst: Sequence[tuple[dict[str, Any], bytes]],
                source: dict[str, Any], title: str = "gfocal evaluation report") -> str:  # fmt: skip
    """The self-contained page: summary, per-class table, the figures, the confusion matrix and the worst images."""
    best = report["best_score_threshold"]
    overall = best["overall"]
    suggestion = (
        f"Suggested score threshold (best F1 over all classes at IoU {best['iou']}): <b>{overall['threshold']:.3f}</b>, "
        f"precision {overall['precision']:.3f}, recall {overall['recall']:.3f}, F1 {overall['f1']:.3f}. Use it with "
        "<code>gfocal predict --score-threshold best --eval-json THIS_FOLDER</code>."
        if overall
        else "No score threshold can be suggested: no detection matched a ground truth."
    )
    ious = "".join(f"<th>{k}</th>" for k in report["AP_per_iou"])
    aps = "".join(f"<td>{_fmt(v)}</td>" for v in report["AP_per_iou"].values())
    cards = "".join(
        f"<div class=card>{_img(png, row['file_name'])}<div><b>{_fmt(row['file_name'])}</b>: {row['errors']} errors "
        f"({row['false_positives']} false detections, {row['missed']} missed)</div></div>"
        for row, png in worst
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{PAGE_CSS}</style></head>
<body><h1>{html.escape(title)}</h1>
<p class=note>Weights <code>{_fmt(source.get("weights"))}</code> on <code>{_fmt(source.get("data"))}</code>:
AP {_fmt(report["AP"])}, AP50 {_fmt(report["AP_per_iou"].get("0.50"))}, AP75 {_fmt(report["AP_per_iou"].get("0.75"))}.
Every number and picture comes from pycocotools' evaluation that gave this AP (its matches, its ranking).
{suggestion}</p>
<h2>Per class</h2><p class=note>Threshold: keeping the detections scoring above it gives the class's best F1
at IoU {best["iou"]}, with the precision and recall there. GT: ground-truth boxes that count (crowd and difficult ones do not).</p>{_class_table(report)}
<h2>Precision-recall curves</h2><p class=note>COCO's interpolated precision at 101 recall points; its mean is the
class's AP at that IoU.</p>{_img(figures["pr_curves"], "precision-recall curves")}
<h2>F1 against the score threshold</h2>{_img(figures["f1"], "F1 against score threshold")}
<h2>AP per IoU threshold</h2><table id=ap_per_iou><tr>{ious}</tr><tr>{aps}</tr></table>
{_img(figures["ap_per_iou"], "AP per IoU threshold")}
<h2>Confusion matrix</h2><p class=note>At the suggested threshold and IoU {best["iou"]}. Row background: false
detections; column background: missed ground truths. A missed object overlapped (IoU ≥ {best["iou"]}) by a false
detection of another class counts as taken for that class.</p>{_confusion_table(report)}
{_img(figures["confusion"], "confusion matrix")}
<h2>Images with most errors</h2><p class=note>At the suggested threshold: cyan = right, red dashed = false
detection, orange = missed ground truth.</p><div class=cards>{cards}</div>
</body></html>
"""


def write_eval_report(out: Path, report: dict[str, Any], records: Any, coco_eval: Any, source: dict[str, Any]) -> Path:
    """Write the files of the module doc into ``out`` (an existing folder); returns ``index.html``'s path.

    Args:
        report: :func:`~gfocal.analysis.eval_report.eval_report` of ``coco_eval``.
        records: the evaluated dataset (``DatasetRecords``: images with paths, ``class_names``).
        source: ``{"weights", "data"}``, shown on the page and stored in ``report.json``.
    """
    write_json(output_path(out, "report.json"), {**source, **report})
    figures = {
        "pr_curves": pr_figure(report),
        "f1": f1_figure(report),
        "confusion": confusion_figure(report),
        "ap_per_iou": ap_per_iou_figure(report),
    }
    for name, png in figures.items():
        atomic_write_bytes(output_path(out, f"{name}.png"), png)
    overall = report["best_score_threshold"]["overall"]
    outcomes = {o.image_id: o for o in outcomes_at(coco_eval, overall["threshold"] if overall else np.inf)}
    worst = []
    for rank, row in enumerate(report["worst_images"], 1):
        path = Path(records.images[row["image_id"]].path)
        image = decode_image(path).permute(1, 2, 0).numpy()  # [H, W, 3] uint8
        title = f"#{rank} {path.name}: {row['false_positives']} false, {row['missed']} missed"
        png = image_figure(image, outcomes[row["image_id"]], coco_eval, records.class_names, title)
        atomic_write_bytes(output_path(out, "worst", f"{rank:02d}_{safe_name(path.stem)}.png"), png)
        worst.append(({**row, "file_name": path.name}, png))
    page = report_html(report, figures, worst, source)
    return atomic_write_bytes(output_path(out, "index.html"), page.encode("utf-8"))
