"""``gfocal export onnx WEIGHTS OUT.onnx``: export a gfocal model for deployment."""

from __future__ import annotations

import argparse

from gfocal.cli.common import CommandError, user_errors


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("export", help="export a model for deployment")
    parser.add_argument("format", choices=["onnx"], help="export format")
    parser.add_argument("weights", help="gfocal weights file (.safetensors)")
    parser.add_argument("output", help="file to write (.onnx)")
    parser.add_argument(
        "--form", choices=["raw", "decoded"], default="decoded", help="raw head outputs, or boxes after NMS (default)"
    )
    parser.add_argument(
        "--opset", type=int, default=None, help="ONNX opset (>= 17; default 18, or 19 for deformable convs)"
    )
    parser.add_argument(
        "--no-optimize", action="store_true", help="skip onnxscript's graph optimisation (faster export)"
    )
    parser.add_argument(
        "--edge-std",
        action="store_true",
        help="decoded form: also output edge_std [N, D, 4], each box edge's std in input pixels",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from gfocal.export import export_onnx
    from gfocal.export.onnx import resolve_opset
    from gfocal.models import load_model

    with user_errors():
        model = load_model(args.weights)
    try:
        opset = resolve_opset(model, args.opset)
    except ValueError as error:  # an opset too old for the model
        raise CommandError(str(error)) from error
    if args.edge_std and (args.form != "decoded" or not model.head.box_coding.has_distributions):
        raise CommandError("--edge-std needs --form decoded and a model with box='dfl' (learned distributions)")
    path = export_onnx(
        model, args.output, form=args.form, opset=opset, optimize=not args.no_optimize, edge_std=args.edge_std
    )
    print(f"wrote {path} ({args.form} form, opset {opset}): input 'images' float32 [N, 3, H, W] RGB 0-255")
    return 0
