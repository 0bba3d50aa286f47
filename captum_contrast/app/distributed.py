"""The one owner of the ``torchrun`` process group: set up, shard, gather, tear down.

A command runs inside :func:`session`; everything else receives the :class:`Session` and
never touches ``torch.distributed`` setup itself. Outside ``torchrun`` (``WORLD_SIZE``
unset or 1) the session is a single process and no group is created.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Session:
    """This process's place in the run: its rank, the number of ranks, its device."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """Rank 0, the rank that writes files and prints."""
        return self.rank == 0

    def barrier(self) -> None:
        """Wait for every rank (a no-op in a single process)."""
        if self.world_size > 1:
            dist.barrier()

    def all_gather(self, value: Any) -> list[Any]:
        """Every rank's ``value``, in rank order (``[value]`` in a single process)."""
        if self.world_size == 1:
            return [value]
        gathered: list[Any] = [None] * self.world_size
        dist.all_gather_object(gathered, value)
        return gathered


@contextmanager
def session() -> Iterator[Session]:
    """The :class:`Session` of this process, from torchrun's environment.

    When ``WORLD_SIZE > 1`` a process group is created (NCCL with one GPU per local rank
    when CUDA is available, Gloo on the CPU otherwise) unless one exists already, and it is
    destroyed on exit: after a barrier when the body succeeded, at once when it raised (a
    barrier would wait forever for a rank that failed). A group created by the caller is
    left to the caller.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    device = torch.device(f"cuda:{local_rank}" if cuda else "cpu")
    if cuda:
        torch.cuda.set_device(device)
    if world_size <= 1:
        yield Session(0, 1, device)
        return
    created = not dist.is_initialized()
    if created:
        dist.init_process_group("nccl" if cuda else "gloo")
    try:
        yield Session(dist.get_rank(), dist.get_world_size(), device)
        if created:
            dist.barrier()
    finally:
        if created:
            dist.destroy_process_group()
