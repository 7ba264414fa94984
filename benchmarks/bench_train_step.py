"""Data overhead: the model step alone vs `vitkit train` end to end, same recipe, same machine.

    python benchmarks/bench_train_step.py --data /tmp/c10 --recipe recipes/cifar10_speedrun_cpu.yaml
    # prints img/s of (a) forward+backward+AdamW on one in-memory batch, repeated, and (b) the
    # steady-state img/s that `vitkit train` logs (data path, augmentation, logging included),
    # with their ratio; and, with --attention, the SDPA vs explicit attention step in fp32 and bf16.

Both at the recipe's final size without progressive resizing or PatchDropout, so they do the
same work per image; the goal (issue #12) is (b) within 5% of (a).
"""
import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import torch  # noqa: E402

from vitkit.hardware import autocast, describe_cpu, resolve_attention, resolve_precision  # noqa: E402
from vitkit.factory import create_model  # noqa: E402
from vitkit.training.config import load_train_config  # noqa: E402
from vitkit.training.losses import DistillationLoss  # noqa: E402
from vitkit.training.optim import build_optimizer  # noqa: E402


def step_alone(cfg, precision: str, fused: bool, steps: int) -> float:
    overrides = dict(cfg.model.overrides, num_classes=10)
    model = create_model(cfg.model.name, drop_path_rate=cfg.model.drop_path_rate, **overrides)
    model.set_attention_impl(fused)
    opt = build_optimizer(model, cfg.optim)
    crit = DistillationLoss("none", None, label_smoothing=cfg.data.label_smoothing)
    bs, size = cfg.optim.batch_size, model.cfg.img_size[0]
    x, y = torch.randn(bs, 3, size, size), torch.randint(0, 10, (bs,))
    dev = torch.device("cpu")

    def one():
        with autocast(dev, precision):
            loss = crit(model(x), y, x)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    for _ in range(3):
        one()
    t = time.perf_counter()
    for _ in range(steps):
        one()
    return steps * bs / (time.perf_counter() - t)


def end_to_end(recipe: str, data: str, steps: int) -> float:
    from vitkit.training.loop import train

    with tempfile.TemporaryDirectory() as tmp:
        sets = [f"run.out={tmp}/run", f"data.path={data}", f"run.max_steps={steps}", "run.log_every=10",
                "run.progress=false", "data.progressive=null", "model.patch_dropout=0.0"]
        cfg = load_train_config(recipe, sets)
        cfg.optim.epochs = 1
        train(cfg)
        rows = [json.loads(x) for x in (Path(tmp) / "run" / "metrics.jsonl").read_text().splitlines()]
        ips = [r["img_s"] for r in rows if r.get("kind") == "step" and r["step"] > 10]  # after warm-up
        return sum(ips) / len(ips)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--recipe", default=str(ROOT / "recipes" / "cifar10_speedrun_cpu.yaml"))
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--attention", action="store_true", help="also compare attention paths and precisions")
    a = ap.parse_args()
    cfg = load_train_config(a.recipe)
    dev = torch.device("cpu")
    precision = resolve_precision(cfg.run.precision, dev)
    fused = resolve_attention(cfg.run.attention, dev)
    print(f"CPU: {describe_cpu()}")
    print(f"recipe {a.recipe}: batch {cfg.optim.batch_size}, {precision}, {'SDPA' if fused else 'explicit'} attention")
    if a.attention:
        for prec in ("fp32", "bf16"):
            for f in (True, False):
                print(f"  step alone, {prec:>4}, {'SDPA' if f else 'explicit':>8}: "
                      f"{step_alone(cfg, prec, f, max(a.steps // 4, 5)):7.1f} img/s", flush=True)
    alone = step_alone(cfg, precision, fused, a.steps // 2)
    e2e = end_to_end(a.recipe, a.data, a.steps)
    print(f"step alone: {alone:.1f} img/s   vitkit train end to end: {e2e:.1f} img/s   "
          f"ratio {e2e / alone:.3f}")


if __name__ == "__main__":
    main()
