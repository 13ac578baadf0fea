"""Distributed data-parallel set-up for ``torchrun`` and SLURM, and the few collectives the engine uses.

Launch with ``torchrun --nproc-per-node=K ...`` (which sets RANK, WORLD_SIZE,
LOCAL_RANK, MASTER_ADDR, MASTER_PORT) or with ``srun`` (SLURM_PROCID,
SLURM_NTASKS, SLURM_LOCALID; the master address defaults to the first node of
SLURM_NODELIST, the port to 29500). The backend is NCCL on CUDA and gloo on
CPU. Without those variables everything runs in one process and every helper
here is a cheap no-op.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

__all__ = [
    "DistInfo",
    "setup_distributed",
    "cleanup_distributed",
    "all_gather_objects",
    "broadcast_object",
    "all_reduce_mean",
    "barrier",
    "rank_and_world",
]


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_process_group: bool = False

    @property
    def is_main(self) -> bool:
        """Only the main process (rank 0) writes files and shows progress."""
        return self.rank == 0


def _launch_env() -> tuple[int, int, int] | None:
    """(rank, world size, local rank) from torchrun's or SLURM's variables, or ``None`` for one process."""
    env = os.environ
    if "RANK" in env and "WORLD_SIZE" in env:
        return int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", 0))
    if int(env.get("SLURM_NTASKS", "1")) > 1 and "SLURM_PROCID" in env:
        env.setdefault("MASTER_ADDR", _slurm_master(env.get("SLURM_NODELIST", "")))
        return int(env["SLURM_PROCID"]), int(env["SLURM_NTASKS"]), int(env.get("SLURM_LOCALID", 0))
    return None


def _slurm_master(nodelist: str) -> str:
    if not nodelist:
        return "127.0.0.1"
    try:
        names = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True, check=True)
        return names.stdout.split()[0]
    except (OSError, subprocess.CalledProcessError, IndexError):
        return nodelist.split(",")[0]


def resolve_device(request: str | torch.device | None = None, local_rank: int = 0) -> torch.device:
    """The device every command runs on: "auto" or None is ``cuda:<local rank>`` when CUDA is available,
    else the CPU; anything else is taken as named (``cpu``, ``cuda:1``)."""
    if request is None or request == "auto":
        request = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(request)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
    return device


def setup_distributed(device_request: str = "auto") -> tuple[DistInfo, torch.device]:
    """Join the process group described by the environment (if any) and pick this process's device."""
    if dist.is_available() and dist.is_initialized():  # set up by the caller
        info = DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
        return info, resolve_device(device_request, info.local_rank)
    launch = _launch_env()
    if launch is None or launch[1] == 1:
        return DistInfo(), resolve_device(device_request, 0)
    rank, world_size, local_rank = launch
    device = resolve_device(device_request, local_rank)
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29500")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(
        backend="nccl" if device.type == "cuda" else "gloo",
        init_method="env://",
        rank=rank,
        world_size=world_size,
    )
    return DistInfo(rank, world_size, local_rank, owns_process_group=True), device


def cleanup_distributed(info: DistInfo) -> None:
    """Leave the process group if :func:`setup_distributed` created it."""
    if info.owns_process_group and dist.is_initialized():
        dist.destroy_process_group()


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) of the current process group, (0, 1) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def all_gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order (``[obj]`` in one process)."""
    if not _active():
        return [obj]
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def broadcast_object(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not _active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """Mean of ``tensor`` over ranks (a new tensor; the input is unchanged)."""
    if not _active():
        return tensor
    reduced = tensor.clone()
    dist.all_reduce(reduced)
    return reduced / dist.get_world_size()


def barrier() -> None:
    if _active():
        dist.barrier()
