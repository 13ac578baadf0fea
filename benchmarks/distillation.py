"""Localization distillation: gfl_nano students with and without a gfl_small teacher's edge distributions (#30).

    python benchmarks/distillation.py --datasets trees coins --seeds 0 1 2 --json docs/results/distillation.json

(the defaults: ``--teacher-epochs 300 --student-epochs 100 --teacher-minutes 60 --student-minutes 30
--unlabelled-share 0.5``). Per dataset (``small_data``'s splits: ``trees`` the real development set, whose test
split chooses nothing; ``coins`` synthetic photographs; ``shapes`` gfocal's own synthetic set, for quick runs):

1. the teacher: gfl_small trained ``--teacher-epochs`` on the whole training split (seed 0);
2. at equal student steps (``--student-epochs``, evaluated once at the end, final weights on the test split):
   ``plain`` (gfl_nano alone) and ``ld`` (``--teacher``), every seed;
3. the unlabelled-images variant: the training split cut in two (``--unlabelled-share`` of its images lose
   their boxes): ``half_plain`` on the labelled part, ``half_ld`` with the teacher, ``half_ld_unlabelled``
   with the teacher and the other part as ``--unlabelled`` images, its epochs scaled so that its steps match
   (to within one epoch's);
4. at equal total CPU time: ``plain_equal_time``, gfl_nano filling the teacher's training seconds plus the
   mean ``ld`` student's (``--time-budget``), every seed.

Also the step cost (``step_cost``): a distillation step (student forward+backward with the teacher's forward)
over a plain one, in process, at the dataset's image size, with the load average beside it (the ratio is
only meaningful on an idle machine). Prints JSON (every run, mean/std per dataset x variant, the teacher
runs, the step cost) via ``common.report``, also to ``--json`` (rewritten after each run, ``"complete":
false`` until the end); a markdown table goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from common import add_json_argument, report, time_call
from small_data import fixed_steps_args, markdown, run_gfocal, summarise

STUDENT = ["--model", "gfl_nano"]
SHAPES = "shapes"  # gfocal.data.synthetic's demo preset, written here
ERRORS = (subprocess.CalledProcessError, OSError, StopIteration, KeyError, ValueError)


def dataset_splits(root: Path, name: str, shapes_images: int = 200) -> dict[str, Path]:
    """``{"train", "val", "test"}`` COCO jsons of a dataset under ``root``, written when missing."""
    split = {s: root / name / f"{s}.json" for s in ("train", "val", "test")}
    if split["test"].is_file():
        return split
    if name == SHAPES:
        from gfocal.data.synthetic import make_synthetic_dataset

        for s, count, seed in (
            ("train", shapes_images, 0),
            ("val", shapes_images // 4, 1),
            ("test", shapes_images // 4, 2),
        ):
            make_synthetic_dataset(root / name, count, seed=seed, split=s, image_size=128, size_range=(12, 64))
    elif name.startswith("trees"):
        from real_data import write_trees

        write_trees(root)
    else:
        from small_data_sets import write_dataset  # needs scikit-image

        write_dataset(root, name)
    return split


def split_unlabelled(train_json: Path, share: float, out: Path, seed: int = 0) -> tuple[Path, Path, int, int]:
    """Cut a training split in two: ``share`` of its images (drawn with ``seed``) are copied into ``out/images`` as
    unlabelled photographs; the others stay labelled in ``out/labelled.json``. Returns (labelled json, unlabelled
    folder, labelled images, unlabelled images)."""
    import random

    coco = json.loads(train_json.read_text())
    images = sorted(coco["images"], key=lambda image: image["id"])
    random.Random(seed).shuffle(images)
    cut = round(len(images) * share)
    hidden, kept = images[:cut], images[cut:]
    folder = out / "images"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for number, image in enumerate(hidden):
        source = train_json.parent / image["file_name"]
        shutil.copy(source, folder / f"{number:06d}{source.suffix}")
    kept_ids = {image["id"] for image in kept}
    labelled = {
        **coco,
        "images": [{**image, "file_name": str((train_json.parent / image["file_name"]).resolve())} for image in kept],
        "annotations": [a for a in coco["annotations"] if a["image_id"] in kept_ids],
    }
    path = out / "labelled.json"
    path.write_text(json.dumps(labelled))
    return path, folder, len(kept), len(hidden)


def equal_step_epochs(epochs: int, labelled: int, unlabelled: int, batch_size: int) -> int:
    """Epochs over labelled + unlabelled images that take about as many steps as ``epochs`` over the labelled."""
    steps = epochs * (labelled // batch_size)
    return max(1, round(steps / ((labelled + unlabelled) // batch_size)))


def step_cost(teacher_weights: Path, image_size: int, batch_size: int = 8, repeats: int = 10) -> dict[str, Any]:
    """Seconds of a training step (forward + backward) of gfl_nano alone and with the teacher, in process."""
    import torch

    from gfocal.engine.teacher import Teacher
    from gfocal.models import gfl_nano, load_model
    from gfocal.models.distillation import DistillationSettings

    teacher = load_model(teacher_weights)
    names = teacher.config.class_names
    student = gfl_nano(num_classes=len(names), class_names=names, min_size=image_size, max_size=image_size)
    known = torch.ones(len(names), dtype=torch.bool)
    distilling = Teacher(teacher, known, {}, []).wrap(student, DistillationSettings()).train()
    generator = torch.Generator().manual_seed(0)
    images = [torch.randint(0, 255, (3, image_size, image_size), dtype=torch.uint8, generator=generator)] * batch_size
    box = torch.tensor([[image_size * 0.2, image_size * 0.3, image_size * 0.7, image_size * 0.8]])
    targets = [{"boxes": box, "labels": torch.tensor([0])}] * batch_size

    def step(model: Any) -> None:
        sum(model(images, targets).values()).backward()

    plain = time_call(lambda: step(student), warmup=2, repeats=repeats)
    with_teacher = time_call(lambda: step(distilling), warmup=2, repeats=repeats)
    return {
        "image_size": image_size,
        "batch_size": batch_size,
        "plain_ms": plain["median_ms"],
        "distillation_ms": with_teacher["median_ms"],
        "ratio": with_teacher["median_ms"] / plain["median_ms"],
        "load_average": os.getloadavg(),
        "cpus": os.cpu_count(),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["trees", "coins"], choices=["trees", "coins", SHAPES])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--teacher-epochs", type=int, default=300)
    parser.add_argument("--student-epochs", type=int, default=100)
    parser.add_argument("--teacher-minutes", type=float, default=60.0, help="a cap on the teacher's run")
    parser.add_argument("--student-minutes", type=float, default=30.0, help="a cap on each student's run")
    parser.add_argument("--unlabelled-share", type=float, default=0.5)
    parser.add_argument("--cost-repeats", type=int, default=10, help="timed steps of each kind for the step cost")
    parser.add_argument("--shapes-images", type=int, default=200, help="training images of the shapes set")
    parser.add_argument("--data-root", type=Path, default=Path("runs/small_data/data"))
    parser.add_argument("--work", type=Path, default=Path("runs/distillation"))
    add_json_argument(parser, "distillation")
    args = parser.parse_args(argv)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "json"}
    runs: list[dict[str, Any]] = []
    teachers: dict[str, Any] = {}
    costs: dict[str, Any] = {}

    def record(run: dict[str, Any], split: dict[str, Path], minutes: float, extra: list[str]) -> dict[str, Any]:
        try:
            run |= run_gfocal(
                split, args.work / run["dataset"] / run["variant"] / f"seed{run['seed']}", minutes, run["seed"], extra
            )
        except ERRORS as error:
            run["error"] = repr(error)  # the other runs still count
        runs.append(run)
        print(json.dumps(run), file=sys.stderr, flush=True)
        if args.json:
            report(
                {"complete": False, **settings, "teachers": teachers, "step_cost": costs, "runs": runs},
                args.json,
                quiet=True,
            )
        return run

    for dataset in args.datasets:
        split = dataset_splits(args.data_root, dataset, args.shapes_images)
        teacher_dir = args.work / dataset / "teacher"
        teachers[dataset] = run_gfocal(
            split,
            teacher_dir,
            args.teacher_minutes,
            0,
            ["--model", "gfl_small", *fixed_steps_args(args.teacher_epochs)],
        )
        weights = teacher_dir / "model.safetensors"
        teach = ["--teacher", str(weights)]
        from gfocal.models import load_model

        costs[dataset] = step_cost(weights, load_model(weights).config.max_size, repeats=args.cost_repeats)
        steps = fixed_steps_args(args.student_epochs)
        for seed in args.seeds:
            for variant, extra in (("plain", []), ("ld", teach)):
                record(
                    {"dataset": dataset, "variant": variant, "seed": seed},
                    split,
                    args.student_minutes,
                    [*STUDENT, *steps, *extra],
                )
        labelled, folder, kept, hidden = split_unlabelled(
            split["train"], args.unlabelled_share, args.work / dataset / "split"
        )
        half = {**split, "train": labelled}
        batch = 16  # the default recipe's
        mixed = fixed_steps_args(equal_step_epochs(args.student_epochs, kept, hidden, batch))
        for seed in args.seeds:
            for variant, extra in (
                ("half_plain", [*steps]),
                ("half_ld", [*steps, *teach]),
                ("half_ld_unlabelled", [*mixed, *teach, "--unlabelled", str(folder)]),
            ):
                record(
                    {"dataset": dataset, "variant": variant, "seed": seed},
                    half,
                    args.student_minutes,
                    [*STUDENT, *extra],
                )
        ld_seconds = [
            r["train_seconds"] for r in runs if r["dataset"] == dataset and r["variant"] == "ld" and "error" not in r
        ]
        budget = (teachers[dataset]["train_seconds"] + sum(ld_seconds) / max(len(ld_seconds), 1)) / 60
        for seed in args.seeds:
            record(
                {"dataset": dataset, "variant": "plain_equal_time", "seed": seed, "budget_minutes": budget},
                split,
                math.ceil(budget * 100) / 100,
                [*STUDENT, "--set", "eval_interval=0", "--set", "eval_share=0"],
            )
    summary = summarise(runs)
    print(markdown(summary, args.student_minutes), file=sys.stderr)
    report(
        {"complete": True, **settings, "teachers": teachers, "step_cost": costs, "summary": summary, "runs": runs},
        args.json,
    )


if __name__ == "__main__":
    main()
