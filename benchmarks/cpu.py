"""The CPU fast path: inference and training-step time in fp32, fp32 + channels_last and bf16.

    python benchmarks/cpu.py [--configs small r50] [--repeats 3] [--compile] [--inference-only]
    python benchmarks/cpu.py --configs r101 r101_dcn x101 x101_dcn --inference-only \
        [--modes fp32 fp32_channels_last bf16_channels_last]   # the paper's zoo (#32)

For each config, at its benchmark size: inference per image (eval mode, BatchNorm
folded, inference_mode) and a training step (forward + loss + backward + SGD
step) at batch 2, in each mode (``--modes``: some of them). The first call of each is the warm-up
(oneDNN builds its kernels then), then ``--repeats`` timed calls. ``--compile`` adds bf16 + channels_last with
the backbone and head under ``torch.compile``, for inference and training, and
reports the first call's time (which includes compiling). When mmdetection is
importable (``bash .ci/install_mmdet DIR``, then ``PYTHONPATH=DIR``), its
GFL with the same architecture is timed too, in float32 as it runs on CPUs: for
the zoo configs, the model of mmdetection's own config file. mmdetection's
deformable configs need mmcv's compiled ops, which ``mmcv-lite`` lacks; they are
not timed (the parity tests' stand-in for them is not mmdetection's code), and the
JSON says why.
Speed-ups are against our fp32 and against mmdetection in the same run (time ratios,
> 1 means faster: for inference, 1/x is the time ratio). Prints JSON with the CPU's bf16 capability.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import sys
import time
from pathlib import Path

import torch
from common import add_json_argument, report, time_call
from model import synthetic_batch

from gfocal.models import (
    gfl_resnet50_fpn,
    gfl_resnet101_dcn_fpn,
    gfl_resnet101_fpn,
    gfl_resnext101_32x4d_dcn_fpn,
    gfl_resnext101_32x4d_fpn,
    gfl_small,
)
from gfocal.models.precision import Precision, autocast, compile_network, cpu_has_native_bf16, prepare_for_inference

COCO_SIZE = (800, 1216)  # a 4:3 COCO image at the paper's 1333 x 800 scale
CONFIGS = {
    "small": (gfl_small, (320, 320)),
    "r50": (gfl_resnet50_fpn, COCO_SIZE),
    "r101": (gfl_resnet101_fpn, COCO_SIZE),
    "r101_dcn": (gfl_resnet101_dcn_fpn, COCO_SIZE),
    "x101": (gfl_resnext101_32x4d_fpn, COCO_SIZE),
    "x101_dcn": (gfl_resnext101_32x4d_dcn_fpn, COCO_SIZE),
}
# The same architectures in mmdetection: (depth, channels, stacked_convs) of the r50 config's layout,
# or the name of mmdetection's own zoo config (configs/gfl/).
MMDET_ARCHITECTURES: dict[str, tuple[int, int, int] | str] = {
    "small": (18, 96, 2),
    "r50": (50, 256, 4),
    "r101": "gfl_r101_fpn_ms-2x_coco",
    "x101": "gfl_x101-32x4d_fpn_ms-2x_coco",
}
MMDET_NOT_TIMED = {
    name: "mmdetection's deformable conv is a compiled mmcv op, absent from mmcv-lite (no CPU build here)"
    for name in ("r101_dcn", "x101_dcn")
}
MODES = {
    "fp32": ("fp32", False),
    "fp32_channels_last": ("fp32", True),
    "bf16": ("bf16", False),
    "bf16_channels_last": ("bf16", True),
}


def inference_time(model, image, precision: Precision, channels_last: bool, repeats: int, compiled: bool = False):
    """Median ms per image of the whole inference (pre-processing to NMS), and the first call's seconds."""
    model = prepare_for_inference(copy.deepcopy(model), channels_last=channels_last, compile=compiled)
    with torch.inference_mode(), autocast(precision):
        start = time.perf_counter()
        model([image])
        first_call_s = time.perf_counter() - start
        timing = time_call(lambda: model([image]), warmup=0, repeats=repeats)
    return timing["median_ms"], first_call_s


def train_time(model, images, targets, precision: Precision, channels_last: bool, repeats: int, compiled: bool = False):
    """Median ms per training step (forward, losses, backward, SGD step), and the first step's seconds."""
    model = copy.deepcopy(model).train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if compiled:
        compile_network(model)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-4, momentum=0.9)

    def step():
        optimizer.zero_grad(set_to_none=True)
        with autocast(precision):
            loss = sum(model(images, targets).values())
        loss.backward()
        optimizer.step()

    start = time.perf_counter()
    step()
    first_step_s = time.perf_counter() - start
    return time_call(step, warmup=0, repeats=repeats)["median_ms"], first_step_s


def mmdet_times(name: str, images, targets, repeats: int, training: bool) -> dict:
    """mmdetection's GFL: inference per image and a training step at batch 2, float32."""
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData

    # mmdetection's model is built by the parity tests' scaffolding, which the installed package does not ship
    # (tests/interop, and tests for the shared helpers it imports, as pytest's pythonpath has them).
    tests = Path(__file__).resolve().parents[1] / "tests"
    sys.path[:0] = [folder for folder in (str(tests), str(tests / "interop")) if folder not in sys.path]
    from mmdet_reference import build_mmdet_gfl, build_mmdet_zoo_gfl

    architecture = MMDET_ARCHITECTURES[name]
    model = build_mmdet_zoo_gfl(architecture) if isinstance(architecture, str) else build_mmdet_gfl(80, *architecture)
    height, width = images[0].shape[-2:]
    pad = (-height % 32, -width % 32)
    # mmdetection's data preprocessor (normalise in 0-255 units, pad) is part of its measured time.
    raw = torch.stack(images) * 255

    def samples(with_targets: bool):
        out = []
        for target in targets:
            sample = DetDataSample(
                metainfo=dict(
                    img_shape=(height, width),
                    ori_shape=(height, width),
                    scale_factor=(1.0, 1.0),
                    pad_shape=(height + pad[0], width + pad[1]),
                    batch_input_shape=(height + pad[0], width + pad[1]),
                )
            )
            if with_targets:
                sample.gt_instances = InstanceData(bboxes=target["boxes"], labels=target["labels"])
            out.append(sample)
        return out

    def preprocess(batch):
        mean = torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)
        std = torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1)
        return torch.nn.functional.pad((batch - mean) / std, (0, pad[1], 0, pad[0]))

    with torch.no_grad():
        inference = time_call(lambda: model.predict(preprocess(raw[:1]), samples(False)[:1]), warmup=1, repeats=repeats)
    if not training:
        return {"inference_ms": inference["median_ms"]}
    model.train()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-4, momentum=0.9)
    train_samples = samples(True)

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss, _ = model.parse_losses(model.loss(preprocess(raw), train_samples))
        loss.backward()
        optimizer.step()

    train = time_call(step, warmup=1, repeats=repeats)
    return {"inference_ms": inference["median_ms"], "train_step_batch2_ms": train["median_ms"]}


def benchmark(name: str, repeats: int, compile_: bool, training: bool, modes: list[str] | None = None) -> dict:
    factory, size = CONFIGS[name]
    torch.manual_seed(0)
    # mmdetection's GFL config freezes the stem and layer1 and keeps BatchNorm in eval mode
    # (frozen_stages=1, norm_eval=True); ours does the same, so both train the same parameters.
    model = factory(80, min_size=min(size), max_size=max(size), backbone_norm="frozen_bn", trainable_backbone_layers=3)
    images, targets = synthetic_batch(size, 2, 20, torch.device("cpu"))
    timed = {mode: MODES[mode] for mode in modes or MODES}
    if compile_:
        timed["bf16_channels_last_compiled"] = ("bf16", True)
    results: dict = {"image_size": list(size)}
    for mode, (precision_name, channels_last) in timed.items():
        precision = Precision(precision_name, "cpu", "benchmark")
        compiled = mode.endswith("_compiled")
        infer_ms, infer_first_s = inference_time(model, images[0], precision, channels_last, repeats, compiled)
        results[mode] = {"inference_ms": infer_ms}
        if training:
            train_ms, train_first_s = train_time(model, images, targets, precision, channels_last, repeats, compiled)
            results[mode]["train_step_batch2_ms"] = train_ms
        if compiled:  # the first call includes compiling
            results[mode]["inference_first_call_s"] = infer_first_s
            if training:
                results[mode]["train_first_step_s"] = train_first_s
    mmdet = None
    if name in MMDET_NOT_TIMED:
        results["mmdet_fp32"] = {"not_timed": MMDET_NOT_TIMED[name]}
    elif importlib.util.find_spec("mmdet"):
        mmdet = results["mmdet_fp32"] = mmdet_times(name, images, targets, repeats, training)
    for mode in timed:
        if "fp32" in results:
            results[mode]["speedup_vs_fp32"] = _ratios(results["fp32"], results[mode])
        if mmdet is not None:
            results[mode]["speedup_vs_mmdet"] = _ratios(mmdet, results[mode])
    return results


def _ratios(reference: dict, timed: dict) -> dict:
    """reference time / our time for each timing both have (> 1: we are faster)."""
    keys = ("inference_ms", "train_step_batch2_ms")
    return {key: reference[key] / timed[key] for key in keys if key in reference and key in timed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=["small", "r50"], choices=sorted(CONFIGS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile'd bf16 inference and training")
    parser.add_argument("--inference-only", action="store_true", help="skip the training steps (e.g. for more repeats)")
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=None, help="time only these (default: all)")
    add_json_argument(parser, "cpu")
    args = parser.parse_args()
    results = {
        name: benchmark(name, args.repeats, args.compile, not args.inference_only, args.modes) for name in args.configs
    }
    report({"native_bf16": cpu_has_native_bf16(), **results}, args.json)


if __name__ == "__main__":
    main()
