"""``gfocal bench ablation``: the paper's ablation at an equal budget, as a table."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from gfocal.cli.common import CommandError, user_errors
from gfocal.models.variants import PAPER_VARIANTS, SWEEPS, VARIANTS


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bench", help="benchmarks: the paper's ablation", description="Benchmarks.")
    commands = parser.add_subparsers(dest="bench_command", metavar="SUBCOMMAND", required=True)
    ablation = commands.add_parser(
        "ablation",
        help="ATSS baseline vs QFL vs DFL vs GFL vs centerness label vs GFLv2, several seeds, equal budget",
        description="Train and evaluate the paper's variants (and the reg_max / QFL-beta sweeps) with the same "
        "data, schedule, iterations and seeds; print and save mean ± std of AP, AP50, AP75, AP_small, training "
        "time per iteration and inference time per image. By default on the synthetic 'hard' preset, sized for "
        "a 2-core CPU; --full uses the paper's ResNet-50 FPN settings on your COCO-format data (for a GPU).",
    )
    ablation.add_argument("--out", default="runs/ablation", help="run folder (default: runs/ablation)")
    ablation.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ablation.add_argument("--epochs", type=int, default=None, help="epochs per run (default: 5, --full: 12)")
    ablation.add_argument("--num-train", type=int, default=400, help="synthetic training images (default: 400)")
    ablation.add_argument("--num-val", type=int, default=100, help="synthetic validation images (default: 100)")
    ablation.add_argument("--no-sweeps", action="store_true", help="only the variants, not reg_max/beta sweeps")
    ablation.add_argument(
        "--variants",
        nargs="+",
        metavar="ID",
        default=None,
        help=f"only these variants, in this order, by id: {', '.join(VARIANTS)}, and the sweeps "
        f"{', '.join(SWEEPS)} (default: the paper's, {', '.join(PAPER_VARIANTS)}, and the sweeps)",
    )
    ablation.add_argument("--smoke", action="store_true", help="a seconds-long check that everything runs (CI)")
    ablation.add_argument("--full", action="store_true", help="ResNet-50 FPN at 1333x800, 12 epochs: needs --data")
    ablation.add_argument("--data", default=None, help="with --full: training set (COCO json)")
    ablation.add_argument("--val-data", default=None, help="with --full: validation set (COCO json)")
    ablation.add_argument("--markdown", default=None, help="also write the table to this markdown file")
    ablation.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), default="auto")
    ablation.add_argument("--workers", type=int, default=2)
    ablation.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from gfocal.data import DetectionDataset, load_dataset
    from gfocal.data.synthetic import make_synthetic_splits
    from gfocal.engine.ablation import AblationSettings, ablation_base, markdown_table, run_ablation
    from gfocal.fileio import atomic_write_bytes

    out = Path(args.out)
    known = {**VARIANTS, **SWEEPS}
    variants = dict(PAPER_VARIANTS) if args.no_sweeps or args.smoke else {**PAPER_VARIANTS, **SWEEPS}
    if args.variants:
        unknown = [v for v in args.variants if v not in known]
        if unknown:
            raise CommandError(f"unknown variant id(s) {', '.join(unknown)}; choose from {', '.join(known)}")
        variants = {v: known[v] for v in args.variants}
    if args.full:
        if not (args.data and args.val_data):
            raise CommandError("--full needs --data and --val-data (COCO-format training and validation sets)")
        train_json, val_json = args.data, args.val_data
        recipe, training = "paper", {"epochs": args.epochs or 12}
    else:
        counts = (8, 4) if args.smoke else (args.num_train, args.num_val)
        train_json, val_json = make_synthetic_splits(out / "data", "hard", 0, *counts)
        recipe, training = "ablation", {"epochs": 1 if args.smoke else (args.epochs or 5)}
        if args.smoke:
            training.update(model_overrides={"min_size": 64, "max_size": 64}, batch_size=4, warmup_iters=1)
            variants = dict(list(variants.items())[:2])
    base = ablation_base(
        str(train_json),
        str(val_json),
        str(out / "runs"),
        recipe,
        workers=args.workers,
        precision=args.precision,
        **training,
    )
    settings = AblationSettings(base, tuple(args.seeds[:1] if args.smoke else args.seeds), variants)
    with user_errors():
        records = load_dataset(val_json, warn=False)
    images = [DetectionDataset(records)[i][0] for i in range(min(20, len(records.images)))]
    results = run_ablation(settings, images)
    table = markdown_table(results)
    atomic_write_bytes(
        out / "ablation.json", json.dumps({"settings": repr(settings), "results": results}, indent=2).encode()
    )
    if args.markdown:
        atomic_write_bytes(args.markdown, (table + "\n").encode())
    print(table)
    print(f"saved: {out / 'ablation.json'}")
    return 0
