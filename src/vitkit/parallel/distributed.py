"""One process or torchrun: rank and world from the environment, gloo on CPU, nccl on GPU.

    torchrun --nproc_per_node 2 -m vitkit train ...                       # one machine
    torchrun --nnodes 2 --node_rank R --rdzv_backend c10d \\
             --rdzv_endpoint HOST:29500 --nproc_per_node 8 -m vitkit train ...   # several
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def restart_count() -> int:
    """How many times torchrun (`--max-restarts`) has restarted this worker; 0 outside torchrun."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0)


def init(device: str = "auto") -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device == "auto" else device == "cuda"
    if use_cuda and not torch.cuda.is_available():
        from ..errors import UsageError
        raise UsageError("run.device=cuda but no CUDA device is available")
    dev = torch.device("cuda", local) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if use_cuda else "gloo"
        restart = restart_count()
        if restart > 0 and "MASTER_ADDR" in os.environ:
            # The trap: torchrun's store outlives a restart, and with it the failed attempt's peer
            # addresses under the same keys; a rank that reads one before its peer rewrites it
            # connects to a dead process ("Gloo connectFullMesh failed ... Connection refused").
            # A prefix per attempt keeps each attempt's keys apart.
            from datetime import timedelta

            agent_store = os.environ.get("TORCHELASTIC_USE_AGENT_STORE", "").lower() == "true"
            base = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), world,
                                 is_master=rank == 0 and not agent_store, timeout=timedelta(minutes=10))
            dist.init_process_group(backend, store=dist.PrefixStore(f"vitkit/attempt{restart}", base),
                                    rank=rank, world_size=world)
        else:
            dist.init_process_group(backend)
    return Dist(rank, world, local, dev)


def all_reduce_sum(t: torch.Tensor, d: Dist) -> torch.Tensor:
    if d.enabled:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def barrier(d: Dist) -> None:
    if d.enabled:
        dist.barrier()


def shutdown(d: Dist) -> None:
    if d.enabled and dist.is_initialized():
        dist.destroy_process_group()
