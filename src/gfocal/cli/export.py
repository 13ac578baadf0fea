"""``gfocal export onnx WEIGHTS OUT.onnx``: export a gfocal model for deployment."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("export", help="export a model for deployment")
    parser.add_argument("format", choices=["onnx"], help="export format")
    parser.add_argument("weights", help="gfocal weights file (.safetensors)")
    parser.add_argument("output", help="file to write (.onnx)")
    parser.add_argument(
        "--form", choices=["raw", "decoded"], default="decoded", help="raw head outputs, or boxes after NMS (default)"
    )
    parser.add_argument("--opset", type=int, default=18, help="ONNX opset (>= 17)")
    parser.add_argument(
        "--no-optimize", action="store_true", help="skip onnxscript's graph optimisation (faster export)"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from gfocal.export import export_onnx
    from gfocal.models import load_model

    model = load_model(args.weights)
    path = export_onnx(model, args.output, form=args.form, opset=args.opset, optimize=not args.no_optimize)
    print(f"wrote {path} ({args.form} form, opset {args.opset}): input 'images' float32 [N, 3, H, W] RGB 0-255")
    return 0
