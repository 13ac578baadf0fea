import json
import socket

import pytest
import torch
import torch.multiprocessing as mp

from gfocal.engine import distributed, load_checkpoint
from support.standin_run import ddp_worker


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_gloo_processes_match_one_process_with_the_same_global_batch(tmp_path, monkeypatch):
    for key in ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK"):  # restored after the test
        monkeypatch.setenv(key, "")
    ddp_worker(0, 1, free_port(), str(tmp_path / "single"))
    mp.spawn(ddp_worker, args=(2, free_port(), str(tmp_path / "ddp")), nprocs=2, join=True)
    single, ddp = (load_checkpoint(tmp_path / run / "last.pt") for run in ("single", "ddp"))
    assert single["iteration"] == ddp["iteration"] == 24
    assert len(ddp["rng"]) == 2  # every rank's RNG state is kept
    for name, tensor in single["model"].items():
        torch.testing.assert_close(ddp["model"][name], tensor, rtol=1e-5, atol=1e-6)
    rows = [json.loads(line) for line in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows if r["kind"] == "train"] == list(range(1, 25))  # rank 0 logs alone
    assert [r["AP"] for r in rows if r["kind"] == "eval"] == [
        r["AP"]
        for r in map(json.loads, (tmp_path / "single" / "metrics.jsonl").read_text().splitlines())
        if r["kind"] == "eval"
    ]  # evaluation sharded over both ranks sees every image


@pytest.mark.parametrize(
    "env, expected",
    [
        ({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}, (3, 4, 1)),
        ({"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1"}, (5, 8, 1)),
        ({"SLURM_PROCID": "0", "SLURM_NTASKS": "1"}, None),
        ({}, None),
    ],
)
def test_launch_environment(monkeypatch, env, expected):
    for key in (
        "RANK",
        "WORLD_SIZE",
        "LOCAL_RANK",
        "SLURM_PROCID",
        "SLURM_NTASKS",
        "SLURM_LOCALID",
        "SLURM_NODELIST",
        "MASTER_ADDR",
    ):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert distributed._launch_env() == expected


def test_single_process_helpers_are_no_ops():
    info, device = distributed.setup_distributed("cpu")
    assert info.is_main and info.world_size == 1 and device.type == "cpu"
    assert distributed.all_gather_objects(3) == [3] and distributed.broadcast_object(4) == 4
