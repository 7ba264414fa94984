"""FSDP2 (`torch.distributed.fsdp.fully_shard`) for the large sizes, with Distributed Checkpoint.

    torchrun --nproc_per_node 8 -m vitkit train --config R.yaml --data DIR --out runs/h14 --set run.strategy=fsdp
    vitkit convert runs/h14 h14/ --to vitkit        # the sharded checkpoint as one ordinary file

Each block is one FSDP unit and the root holds the rest (patch embedding, tokens, positions,
norm, head): parameters, gradients and AdamW state live 1/world per process, and a block's
weights are gathered only while it runs. On CUDA with bf16, parameters compute in bf16 and
gradients are reduced in fp32 (`MixedPrecisionPolicy`); on the CPU, autocast does as with DDP.

Checkpoints: every rank writes its shards with `torch.distributed.checkpoint` into
RUN/{last|best}-stepN.dcp/ (no all-gather to rank 0); rank 0 then writes RUN/last.pt without
weights, naming that folder, atomically: a crash mid-save leaves the previous pair valid. DCP
reshards on load, so a run resumes on another number of processes. Read by one process
(`vitkit eval`, `load_model`, `convert`), the folder is consolidated on the fly.

The trap (found wiring this in): FSDP2 gathers a block's weights in a forward *pre-hook*; a
model that calls a block's side method (`block.forward_prefix(...)`) skips the hook and meets
sharded DTensors ("mixed torch.Tensor and DTensor"). vitkit reaches every block through
`block(...)` for that reason.
"""
from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

STRATEGIES = ("ddp", "fsdp")


def ensure_process_group() -> None:
    """FSDP2 needs a process group also for one process (e.g. resuming a sharded run alone)."""
    if not dist.is_initialized():
        dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)


def apply_fsdp(model: nn.Module, device: torch.device, precision: str) -> nn.Module:
    """fully_shard each block, then the root; in place (the module is returned for clarity)."""
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    ensure_process_group()
    mp = MixedPrecisionPolicy()
    if device.type == "cuda" and precision == "bf16":
        mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    for block in getattr(model, "blocks", []):
        fully_shard(block, mp_policy=mp)
    fully_shard(model, mp_policy=mp)
    return model


def grad_sync(model: nn.Module, sync: bool):
    """A context in which backward() does (sync=True) or skips the gradient reduction, for
    gradient accumulation: DDP's no_sync(), FSDP2's set_requires_gradient_sync()."""
    if sync:
        return contextlib.nullcontext()
    if hasattr(model, "no_sync"):
        return model.no_sync()
    inner = getattr(model, "_orig_mod", model)

    @contextlib.contextmanager
    def off():
        inner.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            inner.set_requires_gradient_sync(True)
    return off()


def save_dcp(folder: Path, model: nn.Module, optimizer) -> None:
    """Every rank writes its shards of model and optimizer state into `folder`."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    msd, osd = get_state_dict(model, optimizer)
    dcp.save({"model": msd, "optim": osd}, checkpoint_id=str(folder))


def load_dcp(folder: Path, model: nn.Module, optimizer) -> None:
    """Load `folder` into a sharded model and its optimizer, resharding to this world size."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    msd, osd = get_state_dict(model, optimizer)
    state = {"model": msd, "optim": osd}
    dcp.load(state, checkpoint_id=str(folder))
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])


def remove_older(out: Path, prefix: str, keep: str) -> None:
    """Delete RUN/<prefix>-step*.dcp folders other than `keep` (after the meta file names it)."""
    for old in out.glob(f"{prefix}-step*.dcp"):
        if old.name != keep:
            shutil.rmtree(old, ignore_errors=True)


