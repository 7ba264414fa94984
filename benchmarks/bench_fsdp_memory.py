"""Memory per process under DDP and FSDP2 for the same model and batch (issue 16).

    torchrun --nproc_per_node 2 benchmarks/bench_fsdp_memory.py --model vit_base_patch16_224 --strategy ddp
    torchrun --nproc_per_node 2 benchmarks/bench_fsdp_memory.py --model vit_base_patch16_224 --strategy fsdp
    torchrun --nproc_per_node 8 benchmarks/bench_fsdp_memory.py --model vit_huge_patch14_224 --strategy fsdp  # GPU

Claim checked: FSDP2 holds 1/world of parameters, gradients and AdamW state per process, so
per-process training state shrinks by ~world× while DDP replicates it. Statistic: after
`--steps` AdamW steps (state allocated) rank 0 prints the bytes of parameters + gradients +
optimizer state that live on it (local shards, counted from the tensors), the process's peak
resident memory (CPU, `ru_maxrss`) or `torch.cuda.max_memory_allocated` (GPU), and ms/step.
One line of JSON. Uses vitkit's own sharding (train/fsdp.py), not a copy.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import time

import torch
import torch.distributed as dist

import vitkit
from vitkit.hardware import describe_cpu
from vitkit.parallel.fsdp import apply_fsdp


def local_bytes(tensors) -> int:
    total = 0
    for t in tensors:
        t = getattr(t, "_local_tensor", t)  # a DTensor's shard on this rank
        total += t.numel() * t.element_size()
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="vit_base_patch16_224")
    ap.add_argument("--strategy", choices=["ddp", "fsdp"], default="fsdp")
    ap.add_argument("--batch", type=int, default=8, help="per process")
    ap.add_argument("--steps", type=int, default=3)
    args = ap.parse_args()
    cuda = torch.cuda.is_available()
    dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(dev)
    dist.init_process_group("nccl" if cuda else "gloo")
    torch.manual_seed(0)
    model = vitkit.create_model(args.model).to(dev)
    if args.strategy == "fsdp":
        apply_fsdp(model, dev, "bf16" if cuda else "fp32")
        step_model = model
    else:
        step_model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[dev.index] if cuda else None)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randn(args.batch, 3, *model.cfg.img_size, device=dev)
    y = torch.randint(0, model.cfg.num_classes, (args.batch,), device=dev)
    times = []
    for _ in range(args.steps):
        t = time.perf_counter()
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=cuda):
            loss = torch.nn.functional.cross_entropy(step_model(x), y)
        loss.backward()
        opt.step()
        state = local_bytes(p for p in model.parameters()) + local_bytes(p.grad for p in model.parameters()
                                                                          if p.grad is not None)
        state += local_bytes(v for s in opt.state.values() for v in s.values() if torch.is_tensor(v) and v.dim())
        opt.zero_grad(set_to_none=True)
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    peak = torch.cuda.max_memory_allocated(dev) if cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if dist.get_rank() == 0:
        print(json.dumps({"model": args.model, "strategy": args.strategy, "world": dist.get_world_size(),
                          "batch_per_process": args.batch, "params_M": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
                          "train_state_GiB_per_process": round(state / 2**30, 3),
                          ("peak_cuda_GiB" if cuda else "peak_rss_GiB"): round(peak / 2**30, 3),
                          "ms_per_step": round(1000 * sorted(times)[len(times) // 2], 1),
                          "device": torch.cuda.get_device_name(dev) if cuda else describe_cpu()}), flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
