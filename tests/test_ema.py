"""The EMA of the weights (`--ema DECAY`, optim.ema_decay): the average itself, what a run
evaluates and keeps as best.pt, and that a killed run resumes the average, not a fresh copy."""
import copy
from pathlib import Path

import torch
from torch import nn

from test_preemption import _start, _state, _vitkit, _wait_for
from vitkit.training.ema import ModelEma

# A 2-block tiny ViT on the tensor path; 300 training images / batch 32 = 9 steps per epoch.
TINY = ["model.name=vit_tiny_patch4_32", "model.overrides={depth: 2}", "data.workers=0", "run.progress=false",
        "optim.batch_size=32", "optim.warmup_epochs=1", "data.train_crop=pad_crop", "data.cache=memory",
        "model.patch_dropout=0.25", "run.eval_every=3"]


def test_ema_is_the_exponential_average_and_copies_integer_buffers():
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))  # BatchNorm: float and integer buffers
    start = copy.deepcopy(model.state_dict())
    ema = ModelEma(model, decay=0.9)
    assert not ema.module.training and not any(p.requires_grad for p in ema.module.parameters())
    with torch.no_grad():
        for t in model.state_dict().values():
            t.copy_(torch.full_like(t, 5)) if t.dtype.is_floating_point else t.fill_(7)
    for _ in range(3):
        ema.update(model)
    for k, e in ema.module.state_dict().items():
        if e.dtype.is_floating_point:  # e_3 = w + (e_0 - w) * 0.9^3
            torch.testing.assert_close(e, 5 + (start[k] - 5) * 0.9 ** 3, rtol=0, atol=1e-6)
        else:
            assert torch.equal(e, torch.full_like(e, 7)), k
    # the average follows the model's tensors, not copies taken when it was made
    with torch.no_grad():
        model[0].weight.fill_(-1)
    before = ema.module[0].weight.clone()
    ema.update(model)
    torch.testing.assert_close(ema.module[0].weight, 0.9 * before - 0.1, rtol=0, atol=1e-6)


def test_ema_update_keeps_tied_weights_tied():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(3, 3)
            self.b = nn.Linear(3, 3)
            self.b.weight = self.a.weight

    model = Tied()
    ema = ModelEma(model, decay=0.5)
    with torch.no_grad():
        model.a.weight.add_(1.0)
    ema.update(model)
    assert ema.module.b.weight is ema.module.a.weight
    torch.testing.assert_close(ema.module.a.weight, model.a.weight - 0.5)


def _args(data: Path, out: Path, *extra) -> list[str]:
    sets = [a for s in TINY for a in ("--set", s)]
    return ["train", "--data", str(data), "--epochs", "3", "--lr", "1e-3", "--deterministic", "--seed", "5",
            "--ema", "0.9", *sets, "--out", str(out), *map(str, extra)]


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_run_keeps_the_average_as_best_and_a_killed_run_resumes_it(cifar_small, tmp_path):
    """best.pt holds the EMA (what the run evaluated), last.pt the raw weights and the EMA; a run
    killed mid-epoch and resumed ends with the same raw weights and the same EMA as one never
    stopped (an EMA restarted from the raw weights at the resume would differ)."""
    full = tmp_path / "full"
    r = _vitkit(_args(cifar_small, full))
    assert r.returncode == 0, r.stderr
    last, best = _state(full), torch.load(full / "best.pt", weights_only=True)
    assert best["epoch"] == 2, "eval_every=3: only the last epoch is evaluated, so best.pt is its"
    assert _same(best["model_state"], last["ema_state"])
    assert not _same(last["model_state"], last["ema_state"]), "the EMA equals the raw weights"

    killed = tmp_path / "killed"
    proc = _start(_args(cifar_small, killed, "--checkpoint-every", 2))
    _wait_for(lambda: (killed / "last.pt").exists(), proc)
    proc.kill()
    proc.communicate()
    pos = _state(killed)["position"]
    assert pos[0] == 0 and 0 < pos[1] < 9, f"not killed mid-epoch 1: {pos}; the test would prove nothing"
    r = _vitkit(_args(cifar_small, killed, "--resume"))
    assert r.returncode == 0, r.stderr
    resumed = _state(killed)
    assert _same(resumed["model_state"], last["model_state"])
    assert _same(resumed["ema_state"], last["ema_state"])
