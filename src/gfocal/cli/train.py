"""``gfocal train``: train a detector on a COCO, VOC or YOLO dataset."""

from __future__ import annotations

import argparse
from pathlib import Path

from gfocal.cli.common import CommandError, add_compile_option, add_precision_option, positive_int, user_errors
from gfocal.engine.recipes import RECIPES
from gfocal.models.variants import VARIANTS

# CLI flags that map one-to-one onto TrainConfig fields.
_FIELDS = {
    "data": "train_data",
    "val_data": "val_data",
    "images": "train_images",
    "val_images": "val_images",
    "out": "out_dir",
    "model": "model",
    "variant": "variant",
    "image_size": "image_size",
    "epochs": "epochs",
    "batch_size": "batch_size",
    "lr": "lr",
    "time_budget": "time_budget_minutes",
    "workers": "workers",
    "precision": "precision",
    "compile": "compile",
    "device": "device",
    "seed": "seed",
    "weights": "weights",
    "teacher": "teacher",
    "unlabelled": "unlabelled",
    "backbone_weights": "backbone_weights",
    "tile": "tile",
    "patience": "patience",
    "loggers": "loggers",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a detector on your dataset",
        description="Train a GFL detector. DATA is a COCO .json (images next to it unless --images), a Pascal "
        "VOC folder, or a YOLO data .yaml (its val split is used for evaluation unless --val-data). Every "
        "field of the training config can be set with --set key=value (model options: "
        "--set model_overrides.reg_max=8); the resolved config is saved as OUT/config.yaml.",
    )
    parser.add_argument("--data", required=True, help="training dataset (COCO json, VOC folder or YOLO yaml)")
    parser.add_argument("--val-data", default=None, help="validation dataset, evaluated after each epoch")
    parser.add_argument("--images", default=None, help="images folder of the training set (COCO/VOC)")
    parser.add_argument("--val-images", default=None, help="images folder of the validation set")
    parser.add_argument("--out", required=True, help="run folder: checkpoints, weights, metrics, plots")
    parser.add_argument(
        "--model",
        default=None,
        help="gfl_nano, gfl_small, gfl_resnet18_fpn, gfl_resnet50_fpn, gfl_mobilenetv3_fpn, the paper's zoo "
        "(gfl_resnet101_fpn, gfl_resnet101_dcn_fpn, gfl_resnext101_32x4d_fpn, gfl_resnext101_32x4d_dcn_fpn), or auto (default): "
        "gfl_nano on a CPU, gfl_resnet50_fpn on a GPU",
    )
    parser.add_argument(
        "--variant",
        default=None,
        metavar="ID",
        help="a detector or variant by id, on the model's backbone and head: "
        + ", ".join(VARIANTS)
        + " (default: GFL on ATSS's assignment; docs/ablation.md)",
    )
    parser.add_argument(
        "--image-size",
        type=positive_int,
        default=None,
        metavar="PIXELS",
        help="longer side of the network input (stored with the weights; default: the model's, 416 for gfl_nano)",
    )
    parser.add_argument(
        "--recipe",
        choices=list(RECIPES),
        default=None,
        help="; ".join(f"{name}: {recipe.summary}" for name, recipe in RECIPES.items()),
    )
    parser.add_argument(
        "--weights",
        default=None,
        metavar="FILE",
        help="start from a pretrained detector: a gfocal .safetensors, a gfocal checkpoint (last.pt) "
        "or an mmdetection GFL .pth; its architecture unless --model; classes matched by name "
        "(report in OUT/pretrained.json)",
    )
    parser.add_argument(
        "--teacher",
        default=None,
        metavar="FILE",
        help="localization distillation: a trained detector (gfocal .safetensors, gfocal checkpoint or mmdetection "
        "GFL .pth) at the same strides, whose box-edge distributions the model learns beside its own losses "
        "(loss_ld; docs/distillation.md); any backbone, size or reg_max, classes matched by name",
    )
    parser.add_argument(
        "--unlabelled",
        default=None,
        metavar="DIR",
        help="with --teacher: a folder of images without annotations mixed into the batches; only distillation "
        "trains on them, around the teacher's confident detections (--set ld_pseudo_score=0.5)",
    )
    parser.add_argument(
        "--backbone-weights",
        default=None,
        metavar="FILE_OR_NAME",
        help="ImageNet weights of the body (ResNet, MobileNetV3): a file, or a torchvision weights name (DEFAULT, "
        "IMAGENET1K_V1, ResNet50_Weights.IMAGENET1K_V2) from the torch hub cache (downloaded when "
        "online)",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="passes over the data (default 100); with --time-budget and no --epochs, the run is "
        "planned to fill the budget",
    )
    parser.add_argument("--batch-size", type=int, default=None, help="total images per step (lr scales with it)")
    parser.add_argument(
        "--lr",
        type=float,
        default=None,
        help="learning rate for a batch of 16 (default: the recipe's, 0.002; --recipe finetune: 0.001)",
    )
    parser.add_argument(
        "--time-budget",
        type=float,
        default=None,
        metavar="MINUTES",
        help="train for this many minutes, final evaluation and save included: the schedule is planned from the "
        "measured speed to fill them (with --epochs: a cap that squeezes the schedule to fit)",
    )
    parser.add_argument(
        "--tile",
        type=positive_int,
        default=None,
        metavar="PIXELS",
        help="train on random tiles of this size cut from large images (most centred on an object; boxes a tile "
        "cuts kept unless less than min_visible of them is inside) and validate on whole images predicted on "
        "tiles; --set tile_overlap=0.2 tile_object_bias=0.75 eval_max_detections=100",
    )
    parser.add_argument(
        "--log",
        dest="loggers",
        type=_names,
        default=None,
        metavar="NAMES",
        help="trackers besides OUT/metrics.jsonl, comma-separated: tensorboard (OUT/tensorboard), mlflow "
        "(MLFLOW_TRACKING_URI, else OUT/mlruns); csv (OUT/results.csv, a row per evaluation) is always written. "
        'Each needs its extra: pip install "gfocal[tensorboard,mlflow]"',
    )
    parser.add_argument(
        "--patience",
        type=int,
        default=None,
        metavar="N",
        help="stop early after N evaluations in a row without a better validation AP (0: off, the default); "
        "OUT/model_best.safetensors keeps the best weights",
    )
    parser.add_argument("--workers", type=int, default=None, help="data-loading processes (default 2)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--config", default=None, help="a YAML training config; flags and --set override it")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any training config field (repeatable)",
    )
    parser.add_argument(
        "--resume",
        nargs="?",
        const="auto",
        default="",
        metavar="CHECKPOINT",
        help="continue a run exactly: OUT/last.pt, or the checkpoint given",
    )
    parser.add_argument("--overwrite", action="store_true", help="start afresh in a folder holding an earlier run")
    add_precision_option(parser)
    add_compile_option(parser)
    parser.set_defaults(run=run)


def training_config(args: argparse.Namespace):
    """The TrainConfig named by the flags: YAML file, then flags, then --set."""
    from gfocal.data import detect_format
    from gfocal.engine import load_config

    # Typed values go into the config as they are: a path such as "runs #2/x" or "[old].json" is not YAML.
    fields = {field: value for flag, field in _FIELDS.items() if (value := getattr(args, flag, None)) is not None}
    if args.val_data is None and detect_format(args.data) == "yolo":
        fields |= {"val_data": args.data, "val_split": "val"}
    if args.resume:
        fields["resume"] = args.resume
    if args.time_budget is not None and args.epochs is None and not _sets_epochs(args):
        fields["epochs"] = None  # a budget without epochs is a target to fill
    try:
        return load_config(args.config, args.overrides, recipe=args.recipe, fields=fields)
    except ValueError as error:
        raise CommandError(str(error)) from error


def _names(text: str) -> tuple[str, ...]:
    """``"csv, tensorboard"`` -> ``("csv", "tensorboard")``; the names are checked when the run starts."""
    return tuple(name.strip() for name in text.split(",") if name.strip())


def _sets_epochs(args: argparse.Namespace) -> bool:
    """Does the YAML config or a --set name the number of epochs?"""
    import yaml

    if any(item.partition("=")[0].strip() == "epochs" for item in args.overrides):
        return True
    if args.config is None:
        return False
    loaded = yaml.safe_load(Path(args.config).read_text(encoding="utf-8"))
    return isinstance(loaded, dict) and "epochs" in loaded


def check_run_folder(out: Path, resume: str, overwrite: bool) -> None:
    """An earlier run is never overwritten by accident."""
    if (out / "last.pt").exists() and not resume and not overwrite:
        raise CommandError(
            f"{out} holds an earlier run (last.pt); pass --resume to continue it or --overwrite to start afresh"
        )


def run(args: argparse.Namespace) -> int:
    from gfocal.engine import CheckpointError, TrainingDiverged, TrainSetupError, format_results, train

    with user_errors():
        config = training_config(args)
        check_run_folder(Path(config.out_dir), config.resume, args.overwrite)
        try:
            result = train(config)
        except (TrainingDiverged, TrainSetupError, CheckpointError) as error:
            # A diverged run, a config that does not fit, a damaged checkpoint or a full disk: say which, stop.
            raise CommandError(str(error)) from error
    if result.final_metrics is not None:
        print(format_results(result.final_metrics))
    if result.stop_reason == "early stop":
        why = f" (stopped early: no better validation AP in {config.patience} evaluations)"
    else:
        why = " (time budget reached)" if result.stopped_by_time_budget else ""
    print(f"trained {result.iterations} iterations, {result.epochs:g} epochs{why}")
    print(f"weights: {result.weights} (final)")
    if result.best_weights is not None:
        print(f"best on validation: {result.best_weights} (picked on the validation set: report AP on another split)")
    print(f"run folder: {result.out_dir}")
    return 0
