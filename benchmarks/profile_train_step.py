"""Where the training step's time goes, op by op, and what a model variant costs per image.

    python benchmarks/profile_train_step.py --recipe recipes/cifar10_speedrun_cpu.yaml
    python benchmarks/profile_train_step.py --no-profile \
        --set 'model.overrides={depth: 6, mlp_ratio: 2.0, pool: mean, class_token: false, pos_embed: sincos}'  # no stem
    python benchmarks/profile_train_step.py --no-profile --channels-last \
        --set model.name=resnet18_cifar_w32 --set 'model.overrides={width: 16}'  # a CNN teacher, NHWC
    python benchmarks/profile_train_step.py --no-profile --recipe recipes/cifar10_vit_cpu_60min.yaml \
        --set optim.ema_decay=0.999  # also what the EMA update adds to each step
    # prints img/s of forward+backward+AdamW at each size the recipe trains at (progressive sizes,
    # PatchDropout as configured), GFLOP/s from the model's matmul count, and (unless
    # --no-profile) the top ops by self CPU time: matmuls vs everything else.

Speed depends on the CPU (flags printed first); compare figures from one machine only.
"""
import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from vitkit.factory import create_model  # noqa: E402
from vitkit.hardware import autocast, describe_cpu, resolve_attention, resolve_precision  # noqa: E402
from vitkit.training.config import load_train_config  # noqa: E402
from vitkit.training.ema import ModelEma  # noqa: E402
from vitkit.training.losses import DistillationLoss  # noqa: E402
from vitkit.training.optim import build_optimizer  # noqa: E402


def build(cfg):
    overrides = dict(cfg.model.overrides, num_classes=10)
    model = create_model(cfg.model.name, drop_path_rate=cfg.model.drop_path_rate,
                         patch_dropout=cfg.model.patch_dropout, **overrides).train()
    dev = torch.device("cpu")
    if hasattr(model, "set_attention_impl"):  # a ViT; a CNN teacher (resnet18_cifar_w32, ...) has none
        model.set_attention_impl(resolve_attention(cfg.run.attention, dev))
    return model, build_optimizer(model, cfg.optim), DistillationLoss("none", None, label_smoothing=0.1)


def make_step(model, opt, crit, x, y, precision):
    def one():
        with autocast(torch.device("cpu"), precision):
            loss = crit(model(x), y, x)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    return one


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--recipe", default=str(ROOT / "recipes" / "cifar10_speedrun_cpu.yaml"))
    ap.add_argument("--set", action="append", default=[], help="dotted recipe option, as vitkit train --set")
    ap.add_argument("--steps", type=int, default=15)
    ap.add_argument("--no-profile", action="store_true")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model (compile time printed apart)")
    ap.add_argument("--channels-last", action="store_true",
                    help="model and batches in channels-last memory format (the conv stem's layout for oneDNN)")
    args = ap.parse_args()
    cfg = load_train_config(args.recipe, args.set)
    precision = resolve_precision(cfg.run.precision, torch.device("cpu"))
    model, opt, crit = build(cfg)
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    if args.compile:
        model = torch.compile(model)
    bs = cfg.optim.batch_size
    switched = cfg.few_epochs.options.get("data.progressive") or []  # the sizes a short run switches to
    sizes = sorted(set(cfg.data.progressive or []) | set(switched) | {model.cfg.img_size[0]})
    layout = "channels-last" if args.channels_last else "contiguous"
    print(describe_cpu(), "|", precision, "|", layout, "| batch", bs, "| patch_dropout", cfg.model.patch_dropout,
          "| params", f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M", flush=True)
    for size in sizes:
        x, y = torch.randn(bs, 3, size, size).to(memory_format=fmt), torch.randint(0, 10, (bs,))
        one = make_step(model, opt, crit, x, y, precision)
        t0 = time.perf_counter()
        for _ in range(2):
            one()
        warm = time.perf_counter() - t0
        if args.compile:  # FlopCounterMode cannot see inside a compiled graph: count the eager module
            with FlopCounterMode(display=False) as fc:
                crit(model._orig_mod(x), y, x).backward()
            opt.zero_grad(set_to_none=True)
        else:
            with FlopCounterMode(display=False) as fc:
                one()
        flops = fc.get_total_flops()
        t = time.perf_counter()
        for _ in range(args.steps):
            one()
        dt = (time.perf_counter() - t) / args.steps
        print(f"{size} px: {bs / dt:7.1f} img/s, {flops / bs / 1e9:.3f} GFLOP/img (matmul+conv, fwd+bwd), "
              f"{flops / dt / 1e9:.1f} GFLOP/s (first two steps {warm:.1f} s)", flush=True)
        if cfg.optim.ema_decay:  # the update runs once per optimizer step, after AdamW
            ema = ModelEma(getattr(model, "_orig_mod", model), cfg.optim.ema_decay)
            ema.update(model)
            t = time.perf_counter()
            for _ in range(200):
                ema.update(model)
            ema_s = (time.perf_counter() - t) / 200
            print(f"  EMA update: {ema_s * 1e3:.2f} ms per step, {100 * ema_s / dt:.1f}% of the step", flush=True)
        if args.no_profile:
            continue
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            for _ in range(3):
                one()
        events = prof.key_averages()
        total = sum(e.self_cpu_time_total for e in events)
        mm = sum(e.self_cpu_time_total for e in events if any(k in e.key for k in ("mm", "addmm", "bmm", "linear",
                                                                                   "convolution", "matmul")))
        print(f"  matmul/conv share of self CPU time: {100 * mm / total:.1f}%; top ops:")
        for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:12]:
            print(f"    {e.key:45s} {100 * e.self_cpu_time_total / total:5.1f}%  calls {e.count}")


if __name__ == "__main__":
    main()
