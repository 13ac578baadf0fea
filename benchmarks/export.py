"""Per-image latency of the exported ONNX model (onnxruntime, CPU) against PyTorch eager.

    python benchmarks/export.py [--configs small r50] [--repeats 5] [--form decoded]

Prints JSON. Both runtimes get the same already-resized 0-255 image batch of one image:
``small`` is gfl_small at 320x320, ``r50`` is gfl_resnet50_fpn at 800x1333 (slow on a few
cores: keep repeats low). PyTorch eager runs the same export wrapper (normalise, pad, network,
and the same post-processing), so the numbers compare runtimes, not code paths.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import onnxruntime as ort
import torch
from common import add_json_argument, report, time_call

from gfocal.export import ExportedDetector, export_onnx
from gfocal.models import gfl_resnet50_fpn, gfl_small

CONFIGS = {
    "small": (lambda: gfl_small(80), (320, 320)),
    "r50": (lambda: gfl_resnet50_fpn(80), (800, 1333)),
}


def bench(name: str, form: str, repeats: int) -> dict:
    factory, (height, width) = CONFIGS[name]
    torch.manual_seed(0)
    model = factory().eval()
    images = torch.rand(1, 3, height, width) * 255
    with tempfile.TemporaryDirectory() as directory:
        path = export_onnx(model, Path(directory) / f"{name}.onnx", form=form)
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        feed = {"images": images.numpy()}
        onnx_time = time_call(lambda: session.run(None, feed), warmup=1, repeats=repeats)
    wrapper = ExportedDetector(model, form)
    with torch.inference_mode():
        eager_time = time_call(lambda: wrapper(images), warmup=1, repeats=repeats)
    return {
        "config": name,
        "input": [1, 3, height, width],
        "form": form,
        "onnxruntime_ms": onnx_time,
        "pytorch_eager_ms": eager_time,
        "speedup": eager_time["median_ms"] / onnx_time["median_ms"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", choices=sorted(CONFIGS), default=["small", "r50"])
    parser.add_argument("--form", choices=["raw", "decoded"], default="decoded")
    parser.add_argument("--repeats", type=int, default=5)
    add_json_argument(parser, "export")
    args = parser.parse_args()
    results = [bench(name, args.form, args.repeats) for name in args.configs]
    report({"onnxruntime": ort.__version__, "results": results}, args.json)


if __name__ == "__main__":
    main()
