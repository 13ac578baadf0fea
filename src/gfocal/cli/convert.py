"""``gfocal convert mmdet CHECKPOINT OUT.safetensors``: import another codebase's checkpoint."""

from __future__ import annotations

import argparse

from gfocal.cli.common import user_errors


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("convert", help="convert a checkpoint from another codebase to gfocal weights")
    parser.add_argument("source", choices=["mmdet"], help="the codebase the checkpoint comes from")
    parser.add_argument("checkpoint", help="mmdetection GFL checkpoint (.pth)")
    parser.add_argument("output", help="gfocal weights file to write (.safetensors)")
    parser.add_argument("--class-names", help="comma-separated class names to store with the model")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from gfocal.interop import from_mmdet
    from gfocal.models import save_weights

    overrides = {"class_names": tuple(args.class_names.split(","))} if args.class_names else {}
    with user_errors():  # a missing, unreadable or foreign checkpoint: one line, no traceback
        model = from_mmdet(args.checkpoint, **overrides)
        path = save_weights(model, args.output, metadata={"converted_from": f"mmdet:{args.checkpoint}"})
    config = model.config
    print(
        f"wrote {path}: {config.backbone} FPN, {config.num_classes} classes, reg_max={config.reg_max}, stacked_convs={config.stacked_convs}"
    )
    return 0
