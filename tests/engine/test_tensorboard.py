"""The TensorBoard tracker's precision-recall curves and preview images, written for real (a run's events replayed
with a real evaluation) and read back with TensorBoard's own reader: the curves are the evaluation's own matches
(pycocotools' AP and recall recovered from them), the previews the same few images at every evaluation, boxes
drawn where the detections are. ``test_loggers.py`` has them from a real training run."""

import io
import logging

import numpy as np
import pytest
from PIL import Image

from gfocal.analysis.eval_report import interpolated_precision
from gfocal.data.records import Annotation, DatasetRecords, ImageRecord
from gfocal.engine import EvaluationEnded, RunEnded, RunStarted
from gfocal.engine.evaluate import Evaluation, coco_evaluation, coco_metrics
from gfocal.engine.loggers import tensorboard as tensorboard_logger
from gfocal.engine.loggers.previews import Previews, preview_indices
from gfocal.engine.loggers.tensorboard import TensorBoardLogger
from gfocal.visualize import class_colour

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402
from tensorboard.util.tensor_util import make_ndarray  # noqa: E402

CAT, DOG = 0, 1
WHITE = (255, 255, 255)
GREY = 128

# Per image: (width, height, ground truth [(box, label)], detections [(box, label, score)]). Every score of a
# class lies alone between two of the curve's thresholds (0.01 apart), so the curve holds every prefix of the
# ranking that pycocotools' AP is computed from.
SCENE = [
    (
        1024,
        512,
        [((100, 100, 300, 300), CAT), ((600, 100, 900, 400), DOG)],
        [((100, 100, 300, 300), CAT, 0.955), ((600, 100, 900, 400), DOG, 0.655), ((600, 100, 900, 400), CAT, 0.455)],
    ),
    (64, 48, [], [((10, 10, 30, 30), DOG, 0.855)]),  # a negative image: never a preview
    (64, 48, [((10, 10, 30, 30), CAT)], [((10, 10, 30, 30), CAT, 0.255)]),  # found, below the preview threshold
    (64, 48, [((20, 10, 50, 40), DOG)], [((40, 10, 70, 40), DOG, 0.755)]),  # IoU 0.2: a false positive
    # The cat found at IoU 0.67 (a true positive at IoU 0.5, not at 0.75), the dog missed.
    (64, 48, [((5, 5, 25, 25), CAT), ((30, 20, 60, 45), DOG)], [((5, 5, 25, 35), CAT, 0.555)]),
    (64, 48, [((10, 10, 40, 40), CAT)], [((10, 10, 40, 40), CAT, 0.355)]),
]


def scene_evaluation(folder, scene=SCENE):
    """A real evaluation of ``scene``: grey image files on disk, their records, the detections and pycocotools'."""
    images, detections = [], {}
    for index, (width, height, truth, found) in enumerate(scene):
        path = folder / f"img{index}.png"
        Image.new("RGB", (width, height), (GREY,) * 3).save(path)
        annotations = [Annotation(box, label) for box, label in truth]
        images.append(ImageRecord(path, width, height, index, annotations, path.name))
        detections[index] = {
            "boxes": np.asarray([box for box, _, _ in found], dtype=np.float32).reshape(-1, 4),
            "labels": np.asarray([label for _, label, _ in found], dtype=np.int64),
            "scores": np.asarray([score for _, _, score in found], dtype=np.float32),
        }
    records = DatasetRecords(images, ["cat", "dog"], folder, "coco")
    coco_eval = coco_evaluation(records, detections)
    return Evaluation(coco_metrics(coco_eval, records.class_names), records, detections, coco_eval)


def replay(out_dir, evaluation, iterations):
    """The events of a run evaluated with ``evaluation`` at each of ``iterations``, handed to a real tracker."""
    logger = TensorBoardLogger(out_dir)
    logger.on_event(RunStarted({}, out_dir, 0, 1, {}))
    for iteration in iterations:
        metrics = {k: v for k, v in evaluation.results.items() if k != "per_class"}
        logger.on_event(EvaluationEnded(iteration, float(iteration), metrics, 0.1, False, evaluation))
    logger.on_event(RunEnded(None, None, iterations[-1], "finished", evaluation.results["AP"]))


def read_back(out_dir):
    events = EventAccumulator(str(out_dir / "tensorboard"), size_guidance={"images": 0, "tensors": 0})
    events.Reload()
    return events


def curve(events, tag, step):
    """The PR curve ``tag`` at ``step`` as TensorBoard stores it: [6, thresholds] rows TP, FP, TN, FN, P, R."""
    (point,) = [p for p in events.Tensors(tag) if p.step == step]
    return make_ndarray(point.tensor_proto)


def test_pr_curves_are_the_evaluations_own_matches_at_iou_05(tmp_path):
    evaluation = scene_evaluation(tmp_path)
    replay(tmp_path / "run", evaluation, [5, 10])
    events = read_back(tmp_path / "run")

    tags = {"val/pr_curve/(all classes)", "val/pr_curve/cat", "val/pr_curve/dog"}
    assert set(events.Tags()["tensors"]) == tags
    assert all([p.step for p in events.Tensors(tag)] == [5, 10] for tag in tags)
    cat, dog, pooled = (curve(events, f"val/pr_curve/{name}", 10) for name in ("cat", "dog", "(all classes)"))
    assert cat.shape == (6, 101)
    # Every detection kept (threshold 0): cat 4 of 4 found with 1 false; dog 1 of 3 with 2 false; both pooled.
    assert cat[[0, 1, 2, 3], 0].tolist() == [4, 1, 0, 0] and cat[[4, 5], 0] == pytest.approx([0.8, 1.0])
    assert dog[[0, 1, 2, 3], 0].tolist() == [1, 2, 0, 2] and dog[[4, 5], 0] == pytest.approx([1 / 3, 1 / 3])
    assert pooled[[0, 1, 3], 0].tolist() == [5, 3, 2]
    # Above 0.50 (the model's rule, score > threshold): the cats of 0.955 and 0.555; above 0.96 none (precision 1).
    assert cat[[0, 1, 3], 50].tolist() == [2, 0, 2] and cat[[0, 1, 4, 5], 96].tolist() == [0, 0, 1, 0]
    # The recall every detection reaches is pycocotools' recall at IoU 0.5, and the 101-point interpolated
    # precision of the curve's points is its AP50: the curve and the AP come from the same matches.
    recall = evaluation.coco_eval.eval["recall"][0, :, 0, -1]  # [K] at IoU 0.5, area all, largest maxDets
    assert [cat[5, 0], dog[5, 0]] == pytest.approx(recall.tolist())
    for row, data in zip(evaluation.results["per_class"], (cat, dog)):
        kept = data[0] + data[1] > 0  # thresholds keeping some detection, recall rising as the threshold falls
        precision, found = data[4][kept][::-1], data[5][kept][::-1]
        ap50 = interpolated_precision(precision, found, evaluation.coco_eval.params.recThrs).mean()
        assert ap50 == pytest.approx(row["AP50"], rel=1e-6)


def is_colour(picture, xy, expected):
    """The stored (JPEG) picture is ``expected`` at ``xy``, give or take the few levels JPEG moves a colour by."""
    found = Image.open(io.BytesIO(picture)).convert("RGB").getpixel(xy)
    return max(abs(a - b) for a, b in zip(found, expected)) <= 8


def test_previews_are_the_same_images_each_evaluation_with_truth_and_detections_drawn(tmp_path):
    evaluation = scene_evaluation(tmp_path)
    replay(tmp_path / "run", evaluation, [5, 10])
    events = read_back(tmp_path / "run")

    # Four images spread over those holding a box (image 1 holds none), at each evaluation.
    assert set(events.Tags()["images"]) == {f"val/images/img{i}.png" for i in (0, 2, 4, 5)}
    for tag in events.Tags()["images"]:
        assert [image.step for image in events.Images(tag)] == [5, 10]
    (first, _) = events.Images("val/images/img0.png")
    assert (first.width, first.height) == (512, 256)  # shrunk to 512 on its longer side, boxes with it
    pictures = {i: events.Images(f"val/images/img{i}.png")[-1].encoded_image_string for i in (0, 2, 4, 5)}
    # A detection above 0.3 is drawn in its class colour over the ground truth's white; below 0.3 it is not.
    cat = class_colour(CAT)
    assert is_colour(pictures[5], (25, 40), cat)  # the cat of 0.355, on its ground truth
    assert is_colour(pictures[2], (20, 30), WHITE)  # the cat of 0.255 left out: only its ground truth
    assert is_colour(pictures[4], (15, 35), cat) and is_colour(pictures[4], (15, 25), WHITE)  # the truth under it
    assert is_colour(pictures[4], (45, 45), WHITE)  # the dog missed
    assert is_colour(pictures[0], (100, 150), cat)  # (200, 300) in the file, halved
    assert is_colour(pictures[4], (45, 35), (GREY,) * 3)  # inside the boxes, the image itself


@pytest.mark.parametrize(("every_s", "steps"), [(60.0, [5, 15]), (0.0, [5, 10, 15])])
def test_previews_at_most_once_a_minute_and_of_the_last_evaluation(tmp_path, monkeypatch, every_s, steps):
    monkeypatch.setattr(tensorboard_logger, "PREVIEW_EVERY_S", every_s)
    replay(tmp_path / "run", scene_evaluation(tmp_path), [5, 10, 15])  # three evaluations in far less than 60 s
    events = read_back(tmp_path / "run")
    assert [image.step for image in events.Images("val/images/img0.png")] == steps
    assert [p.step for p in events.Tensors("val/pr_curve/cat")] == [5, 10, 15]  # the curves cost next to nothing


def test_an_unreadable_preview_image_is_left_out_with_one_warning(tmp_path, caplog):
    evaluation = scene_evaluation(tmp_path)
    (tmp_path / "img2.png").write_bytes(b"not an image")
    previews = Previews()
    with caplog.at_level(logging.WARNING):
        drawn = previews.draw(evaluation)
        again = previews.draw(evaluation)
    assert [name for name, _ in drawn] == [name for name, _ in again] == ["img0.png", "img4.png", "img5.png"]
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.startswith("validation image img2.png left out of the previews:") and "cannot decode" in warning


def test_preview_images_are_spread_over_the_images_with_a_box_that_counts(tmp_path):
    def records(boxes_per_image, crowd=()):
        images = [
            ImageRecord(tmp_path, 8, 8, i, [Annotation((0, 0, 4, 4), 0, iscrowd=i in crowd)] * n, f"{i}.png")
            for i, n in enumerate(boxes_per_image)
        ]
        return DatasetRecords(images, ["a"], tmp_path, "coco")

    assert preview_indices(records([1] * 10)) == [0, 3, 6, 9]
    assert preview_indices(records([1, 0, 1, 1, 0, 1, 1]), count=3) == [0, 3, 6]
    assert preview_indices(records([1, 1, 1], crowd=(1,))) == [0, 2]  # a crowd box alone does not count
    assert preview_indices(records([0, 0])) == [0, 1]  # no box anywhere: any image
