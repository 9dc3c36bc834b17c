"""Several processes of one run under torchrun (`--nproc N`): which one this is, waiting for the
others, and the gloo process group a run holds. Without torchrun: rank 0 of a world of 1."""

from __future__ import annotations

import os
from contextlib import contextmanager


def rank_and_world() -> tuple[int, int]:
    import sys

    if "torch" not in sys.modules:  # no process group can exist before torch is imported
        return 0, 1
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def process_rank() -> int:
    """0 for the process that writes results (the only one without torchrun)."""
    return rank_and_world()[0]


def barrier() -> None:
    """Wait for every process of the group (nothing to wait for without one)."""
    import sys

    if "torch" not in sys.modules:
        return
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


@contextmanager
def distributed_group():
    """Under torchrun (WORLD_SIZE > 1): a gloo process group for the run, CPU threads shared out."""
    world = int(os.environ.get("WORLD_SIZE", 1))
    if world <= 1:
        yield
        return
    import torch
    import torch.distributed as dist

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    dist.init_process_group("gloo")
    try:
        yield
    finally:
        dist.destroy_process_group()
