"""The peer of ``benchmarks/small_data.py``: ultralytics YOLOv8n trained from scratch on a COCO split, on the CPU, offline.

    python3 -m venv /work/yolo-venv && /work/yolo-venv/bin/pip install ultralytics   # its own venv: not a gfocal dependency
    /work/yolo-venv/bin/python benchmarks/yolo_peer.py --train D/train.json --val D/val.json --test D/test.json \\
        --minutes 5 --seed 0 --work RUN > RUN/yolo.json     # or --epochs N: equal steps, whatever the load

Converts the COCO splits to ultralytics' layout under ``RUN/data`` (images
symlinked, one ``class cx cy w h`` label file each; crowd boxes dropped),
trains ``YOLO("yolov8n.yaml")`` (built from the yaml, no pretrained weights)
with ultralytics' defaults except: ``time`` = the budget in hours (ultralytics
stops within it, re-fitting its epochs and LR schedule after each epoch),
``imgsz``, ``batch=16``, ``workers=2``, ``device=cpu``, ``seed``,
``plots=False``, ``amp=False`` and ``pretrained=False``. ``val`` keeps its
default, True: the val split is scored after each epoch and picks
``best.pt``; the time budget pays for it, as gfocal's does for its per-epoch
evaluation (``--no-val`` turns it off). On a CPU ultralytics loads the data
in the training process whatever ``workers`` says (its own choice, kept).

Then predicts the test split with the final weights (``last.pt``, the honest
comparison) and with ``best.pt``, at ``conf=0.001``, ``iou=0.7``,
``max_det=100`` and the same ``imgsz``, and prints JSON: training time (of
``model.train()``, its set-up and final validation included), batches of 16
and epochs (fractional) done, versions, and the detections in original image
pixels, ``{"detections": {"last": {file_name: {"boxes": [[x1, y1, x2, y2],
...], "scores": [...], "labels": [...]}}, "best": {...}}}``, labels 0..C-1 in
increasing category id order (gfocal's). Scoring is left to the harness
(gfocal's own COCO evaluation).

Offline, with nothing downloaded:
- ``YOLO_OFFLINE=1`` (ultralytics' online check answers False without a DNS
  probe), ``YOLO_AUTOINSTALL=0`` and ``ULTRALYTICS_SKIP_REQUIREMENTS_CHECKS=1``
  (no pip installs of missing extras);
- a scratch ``YOLO_CONFIG_DIR`` under RUN whose settings turn off ``sync``
  (usage events) and the logging integrations, so the user's own settings
  are neither read nor changed;
- ``amp=False``: no AMP check, which downloads yolo26n.pt on a GPU (on a
  CPU this version returns before that: AMP is for accelerators only);
- the dataset check looks for ``Arial.ttf`` and, missing, asks the network
  for it: matplotlib's DejaVuSans.ttf is copied into the scratch config dir
  under that name;
- a guard refuses any socket connection or DNS look-up and lists the attempts
  in the JSON (``network_attempts``; empty when nothing tried).

Threads: on a CPU ultralytics sets torch to ``min(8, cores - 1)`` threads, 1
on a 2-core machine, where the second core then idles (no data workers on a
CPU); ``--threads`` (default: all cores, as gfocal uses) overrides it. On 2
cores (AMD EPYC, idle, coins, 1 minute, no val): 13 batches with 1 thread, 21
with 2.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import sys
import time
from pathlib import Path
from typing import Any

NETWORK_ATTEMPTS: list[str] = []


def _refuse_network() -> None:
    """Make every connection and DNS look-up fail, and note what was tried."""

    def refuse(what: str):
        def blocked(*args: Any, **kwargs: Any) -> Any:
            NETWORK_ATTEMPTS.append(f"{what} {args[1:2] if what == 'connect' else args[:1]}")
            raise OSError(f"yolo_peer: network access refused ({what})")

        return blocked

    socket.socket.connect = refuse("connect")  # type: ignore[method-assign]
    socket.getaddrinfo = refuse("getaddrinfo")  # type: ignore[assignment]


def _offline_environment(config_dir: Path, threads: int) -> None:
    """Environment and files that keep ultralytics offline; call before importing it."""
    import matplotlib

    os.environ.update(
        {
            "YOLO_OFFLINE": "1",
            "YOLO_AUTOINSTALL": "0",
            "ULTRALYTICS_SKIP_REQUIREMENTS_CHECKS": "1",
            "YOLO_CONFIG_DIR": str(config_dir),
            "OMP_NUM_THREADS": str(threads),
        }
    )
    fonts = config_dir / "Ultralytics"
    fonts.mkdir(parents=True, exist_ok=True)
    for name in ("Arial.ttf", "Arial.Unicode.ttf"):
        if not (fonts / name).exists():
            shutil.copy(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf", fonts / name)


def _read_coco(path: Path) -> tuple[dict[str, Any], list[int]]:
    coco = json.loads(path.read_text())
    return coco, sorted(int(c["id"]) for c in coco["categories"])


def write_yolo_layout(splits: dict[str, Path], root: Path) -> Path:
    """``root/images/<split>/`` (symlinks), ``root/labels/<split>/*.txt`` and ``root/data.yaml``; returns the yaml."""
    names: list[str] = []
    for split, path in splits.items():
        coco, category_ids = _read_coco(path)
        label_of = {c: k for k, c in enumerate(category_ids)}
        names = [n for _, n in sorted((int(c["id"]), str(c["name"])) for c in coco["categories"])]
        images, labels = root / "images" / split, root / "labels" / split
        shutil.rmtree(images, ignore_errors=True)
        shutil.rmtree(labels, ignore_errors=True)
        images.mkdir(parents=True)
        labels.mkdir(parents=True)
        rows: dict[int, list[str]] = {image["id"]: [] for image in coco["images"]}
        size = {image["id"]: (image["width"], image["height"]) for image in coco["images"]}
        for ann in coco.get("annotations", []):
            if ann.get("iscrowd"):
                continue
            (x, y, w, h), (width, height) = ann["bbox"], size[ann["image_id"]]
            rows[ann["image_id"]].append(
                f"{label_of[int(ann['category_id'])]} {(x + w / 2) / width:.6f} "
                f"{(y + h / 2) / height:.6f} {w / width:.6f} {h / height:.6f}"
            )
        for index, image in enumerate(coco["images"]):
            source = (path.parent / image["file_name"]).resolve()
            if not source.is_file():
                raise SystemExit(f"{path}: image {image['file_name']} not found at {source}")
            stem = f"{index:06d}"
            (images / f"{stem}{source.suffix}").symlink_to(source)
            (labels / f"{stem}.txt").write_text("\n".join(rows[image["id"]]) + "\n" * bool(rows[image["id"]]))
    data = {"path": str(root.resolve()), "train": "images/train", "val": "images/val", "names": names}
    (root / "data.yaml").write_text(json.dumps(data))  # JSON is YAML
    return root / "data.yaml"


def predict(weights: Path, test_json: Path, imgsz: int) -> dict[str, dict[str, list[Any]]]:
    """Detections of ``weights`` on every image of ``test_json``, keyed by its ``file_name``, in image pixels."""
    from ultralytics import YOLO

    coco, _ = _read_coco(test_json)
    model = YOLO(str(weights))
    detections = {}
    for image in coco["images"]:
        result = model.predict(
            str(test_json.parent / image["file_name"]),
            imgsz=imgsz,
            conf=0.001,
            iou=0.7,
            max_det=100,
            device="cpu",
            verbose=False,
        )[0]
        detections[image["file_name"]] = {
            "boxes": result.boxes.xyxy.tolist(),
            "scores": result.boxes.conf.tolist(),
            "labels": [int(c) for c in result.boxes.cls.tolist()],
        }
    return detections


def train(data_yaml: Path, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    import ultralytics.utils.torch_utils
    from ultralytics import YOLO, settings

    settings.update(
        {
            "sync": False,
            "clearml": False,
            "comet": False,
            "dvc": False,
            "mlflow": False,
            "raytune": False,
            "tensorboard": False,
            "wandb": False,
            "runs_dir": str(work / "runs"),
            "weights_dir": str(work / "weights"),
            "datasets_dir": str(work),
        }
    )
    ultralytics.utils.torch_utils.NUM_THREADS = args.threads  # select_device() sets torch's threads to it
    batches = [0]
    model = YOLO("yolov8n.yaml")
    model.add_callback("on_train_batch_end", lambda trainer: batches.__setitem__(0, batches[0] + 1))
    started = time.perf_counter()
    model.train(
        data=str(data_yaml),
        **training_length(args.epochs, args.minutes),
        imgsz=args.imgsz,
        batch=16,
        workers=2,
        device="cpu",
        seed=args.seed,
        plots=False,
        amp=False,
        pretrained=False,
        val=not args.no_val,
        project=str(work / "runs"),
        name="train",
        exist_ok=True,
    )
    trainer = model.trainer
    return {
        "train_seconds": time.perf_counter() - started,
        "epochs": round(batches[0] / len(trainer.train_loader), 2),
        "batches": batches[0],
        "images_seen": batches[0] * 16,
        "torch_threads": args.threads,
        "weights_dir": str(trainer.save_dir / "weights"),
    }


def training_length(epochs: int | None, minutes: float | None) -> dict[str, float]:
    """ultralytics' ``train()`` arguments for the run's length: exactly ``epochs`` (equal steps however busy the
    machine is, for comparisons at equal steps) or its own time budget of ``minutes`` (equal CPU time)."""
    if (epochs is None) == (minutes is None):
        raise ValueError("give either epochs or minutes")
    return {"epochs": epochs} if epochs is not None else {"time": minutes / 60}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", required=True, type=Path, help="COCO json of the training split")
    parser.add_argument("--val", required=True, type=Path, help="COCO json of the validation split")
    parser.add_argument("--test", required=True, type=Path, help="COCO json of the test split (predicted, not scored)")
    parser.add_argument("--work", required=True, type=Path, help="scratch folder: converted data, runs, settings")
    budget = parser.add_mutually_exclusive_group(required=True)
    budget.add_argument("--minutes", type=float, help="training time budget")
    budget.add_argument(
        "--epochs", type=int, help="train exactly this many epochs instead (equal steps, whatever the load)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--imgsz", type=int, default=416)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads (default: all cores)")
    parser.add_argument("--no-val", action="store_true", help="no per-epoch validation (best.pt is then last.pt)")
    args = parser.parse_args()
    work = args.work.resolve()
    _refuse_network()
    _offline_environment(work / "config", args.threads)
    data_yaml = write_yolo_layout({"train": args.train, "val": args.val}, work / "data")
    stdout = sys.stdout
    sys.stdout = sys.stderr  # ultralytics prints progress; stdout is for the JSON
    try:
        import torch
        import ultralytics

        result = train(data_yaml, work, args)
        weights = Path(result["weights_dir"])
        started = time.perf_counter()
        detections = {
            name: predict(weights / f"{name}.pt", args.test, args.imgsz)
            for name in ("last", "best")
            if (weights / f"{name}.pt").is_file()
        }
        result["predict_seconds"] = time.perf_counter() - started
    finally:
        sys.stdout = stdout
    print(
        json.dumps(
            {
                "minutes": args.minutes,
                "epochs_asked": args.epochs,
                "seed": args.seed,
                "imgsz": args.imgsz,
                "val": not args.no_val,
                "ultralytics": ultralytics.__version__,
                "torch": torch.__version__,
                "network_attempts": NETWORK_ATTEMPTS,
                **result,
                "detections": detections,
            }
        )
    )


if __name__ == "__main__":
    main()
