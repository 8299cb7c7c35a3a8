"""Several processes on one or several machines, with PyTorch's own engine.

Processes are started by ``torchrun`` (``torch.distributed.run``, see :mod:`.launch`) and talk
through ``torch.distributed``: ``gloo`` for tensors on the CPU, ``nccl`` for tensors on CUDA
GPUs. The training code of the project calls the helpers below whether or not it runs in such a
job: outside one (the notebook kernel, a plain script) the world is one process, every
collective returns its input, and nothing is imported from torch.distributed's launcher.
That is what keeps one code path for 1..N processes.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import distributed as dist

T = TypeVar("T")


@dataclass(frozen=True)
class World:
    """This process's place in the job: global ``rank`` of ``size``, and its ``local_rank``
    (its GPU) on its machine. Outside a job: rank 0 of 1."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes outputs and shows progress."""
        return self.rank == 0


def world() -> World:
    """The current process group's view of this process (rank 0 of 1 outside a job)."""
    if not (dist.is_available() and dist.is_initialized()):
        return World()
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def is_main() -> bool:
    """True in rank 0 and outside a job."""
    return world().is_main


def backend_for(cuda: bool) -> str:
    """``gloo`` for CPU tensors; with CUDA also ``nccl`` for tensors on the GPU.

    One process group serves both (PyTorch's ``"cpu:gloo,cuda:nccl"`` form): the job's settings
    travel as Python objects on the CPU before anyone knows whether it trains on a GPU.
    """
    return "cpu:gloo,cuda:nccl" if cuda else "gloo"


@contextlib.contextmanager
def process_group() -> Iterator[World]:
    """Join the job torchrun started this process in (its ``RANK``, ``WORLD_SIZE``,
    ``MASTER_ADDR`` ... environment); leave it on the way out."""
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        if name not in os.environ:
            raise RuntimeError(
                f"environment variable {name} is not set: this entry point runs under torchrun "
                "(python -m torch.distributed.run ... -m cxrlib.distributed)"
            )
    cuda = torch.cuda.is_available()
    if cuda:
        # one GPU per process, chosen before NCCL sees any tensor
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]) % torch.cuda.device_count())
    dist.init_process_group(backend_for(cuda))
    try:
        yield world()
    finally:
        dist.destroy_process_group()


def device_for(device: str) -> torch.device:
    """The device this process computes on: its own GPU (``cuda:<local_rank>``) or the CPU."""
    if device == "cuda" or (device == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ValueError("device = 'cuda' but no CUDA GPU is visible; use 'auto' or 'cpu'")
        return torch.device("cuda", world().local_rank % torch.cuda.device_count())
    return torch.device("cpu")


# --- collectives: the identity in a world of one process ---------------------------------------
def broadcast_object(obj: T, src: int = 0) -> T:
    """``obj`` of rank ``src`` on every rank (pickled; for settings and small results)."""
    if world().size == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_gather_objects(obj: T) -> list[T]:
    """Every rank's ``obj``, in rank order, on every rank."""
    if world().size == 1:
        return [obj]
    out: list[Any] = [None] * world().size
    dist.all_gather_object(out, obj)
    return out


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over the ranks, in place (and returned)."""
    if world().size > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def barrier() -> None:
    """Wait until every rank gets here."""
    if world().size > 1:
        dist.barrier()


def sync_buffers(module: torch.nn.Module) -> None:
    """Give every rank rank 0's buffers (batch-norm running statistics).

    DDP does this before each training forward, but each rank then updates its own running
    statistics from its own batch; evaluation and checkpoints must see one set.
    """
    if world().size == 1:
        return
    for buffer in module.buffers():
        dist.broadcast(buffer.data, src=0)
