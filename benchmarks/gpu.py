"""The paper's speed claims on a GPU: frames per second of GFL R-50 and X-101-32x4d-DCN at 1333 x 800.

    python benchmarks/gpu.py [--models r50 x101-dcn] [--precisions fp32 fp16 bf16] [--warmup 20] [--iterations 200]

The paper reports 19.4 FPS for GFL R-50 on a V100 and 10 FPS for X-101-32x4d-DCN on an RTX 2080 Ti (batch 1,
mmdetection's ``benchmark.py``: a loaded image through pre-processing, network and post-processing). This
times the same span of gfocal's detector: ``model([image])`` on one 3 x 800 x 1333 image already on the GPU
(normalise, pad to 800 x 1344, backbone, head, decoding, NMS), batch 1, the model prepared as ``gfocal predict``
prepares it (eval, BatchNorm folded, channels_last), after ``--warmup`` calls, ``torch.cuda.synchronize()``
around each of ``--iterations`` timed calls; in float32 and under fp16 and bf16 autocast. FPS is 1000 / the
median milliseconds. Without ``--weights`` the weights are random, and post-processing runs at its worst case
(``--score-threshold 0``: 1000 candidates per level into NMS, more than a trained model keeps); with a trained
file (``--weights r50=gfl_r50.safetensors``, e.g. a converted mmdetection zoo checkpoint) it runs as in use.
The published figures come from other GPUs: the ratio in the JSON is measured / published, not a like-for-like
comparison. Without a CUDA device it stops, in one line, before building anything.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
from common import add_json_argument, report, time_call

#: name -> (gfocal named model, published FPS, the GPU it was published on).
MODELS = {
    "r50": ("gfl_resnet50_fpn", 19.4, "Tesla V100"),
    "x101-dcn": ("gfl_resnext101_32x4d_dcn_fpn", 10.0, "GeForce RTX 2080 Ti"),
}
#: name -> autocast dtype (None: float32, no autocast).
PRECISIONS = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}
SIZE = (800, 1333)  # height, width: the paper's test scale


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=list(PRECISIONS))
    parser.add_argument("--warmup", type=_positive, default=20, help="untimed calls first (cuDNN autotuning)")
    parser.add_argument("--iterations", type=_positive, default=200, help="timed calls, each synchronised")
    parser.add_argument(
        "--score-threshold", type=float, default=0.0, help="post-processing's threshold (0: its worst case)"
    )
    parser.add_argument(
        "--weights",
        nargs="+",
        default=[],
        metavar="MODEL=FILE",
        type=_weights_entry,
        help="a trained gfocal weights file per model (default: random weights)",
    )
    add_json_argument(parser, "gpu")
    return parser.parse_args(argv)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _weights_entry(text: str) -> tuple[str, Path]:
    name, _, path = text.partition("=")
    if name not in MODELS or not path:
        raise argparse.ArgumentTypeError(f"expected MODEL=FILE with MODEL in {', '.join(MODELS)}, got {text!r}")
    return name, Path(path)


def require_cuda() -> torch.device:
    """The CUDA device, or exit 2 with one line saying there is none."""
    if not torch.cuda.is_available():
        print(
            f"benchmarks/gpu.py: no CUDA device (torch {torch.__version__}, CUDA build {torch.version.cuda}); "
            "run it on a machine with an NVIDIA GPU",
            file=sys.stderr,
        )
        raise SystemExit(2)
    return torch.device("cuda")


def build(name: str, weights: Path | None, score_threshold: float, device: torch.device) -> torch.nn.Module:
    """The named model at the paper's test settings (80 classes, 1333 x 800), prepared as ``gfocal predict`` does."""
    from gfocal.models import MODELS as NAMED
    from gfocal.models import load_model
    from gfocal.models.precision import prepare_for_inference

    factory = NAMED[MODELS[name][0]]
    if weights is None:
        model = factory(num_classes=80, score_threshold=score_threshold)
    else:
        model = load_model(weights, score_threshold=score_threshold)
    return prepare_for_inference(model.to(device), channels_last=True)


def frames_per_second(model: torch.nn.Module, image: torch.Tensor, dtype, warmup: int, iterations: int) -> dict:
    """Median, min and FPS of ``model([image])`` under autocast to ``dtype`` (None: float32)."""
    precision = contextlib.nullcontext() if dtype is None else torch.autocast("cuda", dtype=dtype)
    with torch.inference_mode(), precision:
        detections = model([image])[0]
        timing = time_call(lambda: model([image]), warmup=warmup, repeats=iterations)  # synchronises around each call
    return {**timing, "fps": 1e3 / timing["median_ms"], "detections": len(detections["boxes"])}


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    device = require_cuda()
    torch.backends.cudnn.benchmark = True  # fixed input size: let cuDNN pick its fastest kernels
    weights = dict(args.weights)
    image = torch.rand(3, *SIZE, generator=torch.Generator().manual_seed(0)).to(device)
    results = {}
    for name in args.models:
        model = build(name, weights.get(name), args.score_threshold, device)
        named, published, published_on = MODELS[name]
        runs = {
            precision: frames_per_second(model, image, PRECISIONS[precision], args.warmup, args.iterations)
            for precision in args.precisions
        }
        results[name] = {
            "model": named,
            "weights": str(weights[name]) if name in weights else "random",
            "published_fps": published,
            "published_on": published_on,
            "precisions": {p: {**run, "ratio_to_published": run["fps"] / published} for p, run in runs.items()},
        }
        del model
        torch.cuda.empty_cache()
    properties = torch.cuda.get_device_properties(device)
    report(
        {
            "gpu": properties.name,
            "gpu_memory_gib": round(properties.total_memory / 2**30, 1),
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(),
            "cudnn_benchmark": True,
            "image_size": list(SIZE),
            "batch": 1,
            "warmup": args.warmup,
            "iterations": args.iterations,
            "score_threshold": args.score_threshold,
            "models": results,
        },
        args.json,
    )


if __name__ == "__main__":
    main()
