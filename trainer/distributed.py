"""Processes and devices: the one device picker, and DDP set-up and tear-down under torchrun."""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from trainer.config import TrainConfigError


@dataclass
class Dist:
    rank: int = 0
    local_rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def wants_cuda(requested: str) -> bool:
    """Whether `train.device` (auto, cpu, cuda) asks for CUDA: cuda, or auto on a machine that has it."""
    return requested == "cuda" or (requested == "auto" and torch.cuda.is_available())


def pick_device(requested: str, local_rank: int = 0) -> torch.device:
    """The device of `train.device`: cuda (this process's GPU under torchrun), cpu, or auto (CUDA when present)."""
    if wants_cuda(requested):
        if not torch.cuda.is_available():
            raise TrainConfigError("train.device=cuda but no CUDA device is available")
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def setup_distributed(device_type: str) -> Dist:
    if "RANK" not in os.environ or int(os.environ.get("WORLD_SIZE", "1")) == 1:
        return Dist()
    d = Dist(int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", 0)), int(os.environ["WORLD_SIZE"]))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    return d


def shutdown_distributed(finished: bool = True) -> None:
    """Tear the process group down while the interpreter is fully alive.

    The DDP wrapper sits in reference cycles, so its reducer (and the gloo work objects holding tensors) would
    otherwise outlive destroy_process_group and be freed during interpreter finalization, which can abort the
    process ("terminate called without an active exception") after all work is saved. Collecting first frees them
    while the group still exists; the closing barrier keeps one rank from closing its sockets while the other still
    has a collective in flight. After a failure there is no barrier: the other ranks may never reach it.
    """
    if not dist.is_initialized():
        return
    gc.collect()
    if finished:
        dist.barrier()
    dist.destroy_process_group()
