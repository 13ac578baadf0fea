"""Faults during training: SIGKILL at random moments (during checkpoint writes too) and a full disk.

The trainer under test is the engine tests' stand-in run (``standin_run.config``/``data`` with
``standin.TinyDetector``), checkpointing every step. Killed runs are forked from this process,
which has torch imported already: a fresh interpreter would spend seconds importing per run.
A non-finite loss is covered by ``tests/engine/test_trainer.py::test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint``.
"""

from __future__ import annotations

import errno
import io
import json
import multiprocessing
import random
import time
from collections import Counter
from pathlib import Path

import pytest
import torch

from gfocal.engine import CheckpointError, checkpoint, load_checkpoint, train
from support import standin_run
from support.standin import TinyDetector

pytestmark = pytest.mark.slow  # kills and resumes training runs many times over

TOTAL_ITERS = 24  # support.standin_run: 3 epochs of 16 images in batches of 2
FORK = multiprocessing.get_context("fork")
OUTCOMES: Counter = Counter()  # what the kills hit, for docs/reliability.md (printed with -s)


@pytest.fixture(scope="module", autouse=True)
def _print_outcomes():
    """After the module: what the random kills interrupted (run with -s); the figures go to docs/reliability.md."""
    yield
    if OUTCOMES:
        print(f"\nfault-injection outcomes: {dict(OUTCOMES)} (total {sum(OUTCOMES.values())})")


def config(out_dir: Path, resume: str = ""):
    return standin_run.config(str(out_dir), resume).replace(checkpoint_interval=1)


def _slow_save(seconds: float):
    """torch.save that writes half the file, pauses, then the rest: a window to kill it mid-write."""
    real_save = torch.save

    def save(obj, path):
        buffer = io.BytesIO()
        real_save(obj, buffer)
        data = buffer.getvalue()
        with open(path, "wb") as handle:
            handle.write(data[: len(data) // 2])
            handle.flush()
            time.sleep(seconds)
            handle.write(data[len(data) // 2 :])

    return save


def _child(out_dir: Path, resume: str, sleep_s: float, slow_write_s: float) -> None:
    torch.set_num_threads(1)
    if slow_write_s:
        checkpoint.torch.save = _slow_save(slow_write_s)  # this forked process only
    torch.manual_seed(0)
    train(config(out_dir, resume), model=TinyDetector(sleep_s=sleep_s), data=standin_run.data())


def start(out_dir: Path, resume: str = "", sleep_s: float = 0.03, slow_write_s: float = 0.0):
    process = FORK.Process(target=_child, args=(out_dir, resume, sleep_s, slow_write_s), daemon=True)
    process.start()
    return process


def temporaries(out_dir: Path) -> list[Path]:
    return sorted(out_dir.glob(".*.tmp")) if out_dir.is_dir() else []


def kill_and_check(process, out_dir: Path) -> str:
    """SIGKILL, then check the invariants; returns what the kill interrupted."""
    finished = not process.is_alive()
    process.kill()
    process.join()
    left = temporaries(out_dir)
    mid_write = any(p.name.startswith((".last.pt.", ".best.pt.")) for p in left)
    last = out_dir / "last.pt"
    if not last.is_file():
        return (
            "finished before the kill"
            if finished
            else "before the first checkpoint" + (" (during its write)" if mid_write else "")
        )
    saved = load_checkpoint(last)["iteration"]  # never corrupt: raises if it were
    rows = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines() if line.endswith("}")]
    logged = max((r["iteration"] for r in rows), default=0)
    assert logged - saved <= 1, f"{logged - saved} steps lost with checkpoint_interval=1"
    if finished:
        return "finished before the kill"
    if mid_write:
        return "during a checkpoint write"
    return "during another file write (config, log, eval, weights)" if left else "between checkpoints"


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("reference")
    torch.manual_seed(0)
    train(config(out), model=TinyDetector(), data=standin_run.data())
    return load_checkpoint(out / "last.pt")


def assert_same_run(out_dir: Path, expected: dict) -> None:
    actual = load_checkpoint(out_dir / "last.pt")
    assert actual["iteration"] == expected["iteration"] == TOTAL_ITERS
    for name, tensor in expected["model"].items():
        torch.testing.assert_close(actual["model"][name], tensor, rtol=0, atol=1e-6)
    for name, tensor in expected["ema"]["module"].items():
        torch.testing.assert_close(actual["ema"]["module"][name], tensor, rtol=0, atol=1e-6)
    rows = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows if r["kind"] == "train"] == list(range(1, TOTAL_ITERS + 1))
    assert temporaries(out_dir) == []


@pytest.mark.parametrize("chain", range(3))
def test_random_sigkills_never_corrupt_the_checkpoint_and_resume_exactly(tmp_path, reference, chain):
    """Four seeded random kills in a row on one run folder, then a resume to the end equals an uninterrupted run."""
    rng = random.Random(1000 + chain)
    out = tmp_path / "run"
    for _ in range(4):
        process = start(out, resume="auto")
        time.sleep(rng.uniform(0.05, 0.5))
        OUTCOMES[kill_and_check(process, out)] += 1
    torch.manual_seed(0)
    train(config(out, "auto"), model=TinyDetector(), data=standin_run.data())
    assert_same_run(out, reference)


@pytest.mark.parametrize("after_first", [False, True], ids=["first-write", "later-write"])
def test_sigkill_during_a_checkpoint_write_keeps_the_previous_one(tmp_path, reference, after_first):
    out = tmp_path / "run"
    process = start(out, slow_write_s=0.4)
    deadline = time.time() + 30
    while not (list(out.glob(".last.pt.*.tmp")) and ((out / "last.pt").is_file() or not after_first)):
        assert process.is_alive() and time.time() < deadline
        time.sleep(0.01)
    previous = load_checkpoint(out / "last.pt")["iteration"] if after_first else None
    assert kill_and_check(process, out).endswith(("during a checkpoint write", "(during its write)"))
    OUTCOMES["during a checkpoint write (forced)"] += 1
    assert temporaries(out), "the half-written temporary is what the kill left"
    if after_first:
        assert load_checkpoint(out / "last.pt")["iteration"] == previous
    else:
        assert not (out / "last.pt").exists()
    torch.manual_seed(0)
    train(config(out, "auto"), model=TinyDetector(), data=standin_run.data())
    assert_same_run(out, reference)


def test_full_disk_keeps_the_previous_checkpoint_and_stops_with_a_clear_message(tmp_path, reference, monkeypatch):
    real_save, calls = torch.save, []

    def fills_the_disk(obj, path):
        calls.append(path)
        if len(calls) <= 5:
            return real_save(obj, path)
        with open(path, "wb") as handle:
            handle.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint.torch, "save", fills_the_disk)
    out = tmp_path / "run"
    torch.manual_seed(0)
    with pytest.raises(
        CheckpointError,
        match=r"could not write checkpoint .*last\.pt: No space left on device; the previous file is unchanged",
    ):
        train(config(out), model=TinyDetector(), data=standin_run.data())
    monkeypatch.undo()
    assert load_checkpoint(out / "last.pt")["iteration"] == 5 and temporaries(out) == []
    torch.manual_seed(0)  # space freed: the run resumes and ends as if nothing happened
    train(config(out, "auto"), model=TinyDetector(), data=standin_run.data())
    assert_same_run(out, reference)


def test_full_disk_at_the_command_line_is_one_line_and_exit_status_2(tmp_path, capsys, monkeypatch):
    from gfocal.cli.main import main
    from support.files import box, coco, image

    images = [{"id": i, "file_name": image(tmp_path / f"{i}.png", (32, 24)).name} for i in (1, 2)]
    data = coco(tmp_path / "train.json", images=images, annotations=[box([2, 2, 12, 12], i, i) for i in (1, 2)])

    def full_disk(obj, path):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint.torch, "save", full_disk)
    argv = [
        "train",
        "--data",
        str(data),
        "--out",
        str(tmp_path / "run"),
        "--model",
        "gfl_small",
        "--epochs",
        "1",
        "--batch-size",
        "2",
        "--workers",
        "0",
        "--precision",
        "fp32",
        "--set",
        "model_overrides.min_size=32",
        "--set",
        "model_overrides.max_size=32",
        "--set",
        "warmup_iters=1",
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("gfocal train: error: could not write checkpoint")
        and "No space left" in err
        and "Traceback" not in err
    )
