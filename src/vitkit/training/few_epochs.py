"""Settings for a run that its time budget gives few epochs, switched once by the clock.

    few_epochs: {below: 36, options: {data.progressive_end: 0.7, model.patch_dropout_end: 0.85}}

A budgeted recipe (budget.py) runs on machines that differ 4× in speed, and what pays differs
with the epochs it gets: a longer 24-px phase and the last 15% on every token (no PatchDropout)
gained 0.67 points at 21-23 epochs on an fp32 stand-in for the AVX2 kind and +0.43 ± 0.80 over
three seeds of the speed run on a slow bf16 VM (20-23 epochs), while the every-token finish alone
cost 0.47 at 37 (docs/results.md, issue 23). So the run can measure what the budget buys, then
pick. recipes/cifar10_vit_cpu_60min.yaml sets it (below 36): on a two-core AVX2 stand-in the
pair gave 80.51% against 79.96% (27 epochs, ~30 projected), and every bf16 60-minute run kept
projects 46.5 or more, so the bf16 figures keep the schedule they were measured with.

When: at the first point of the run where an option would make a difference, the smallest of
each option's configured and switched value (0.5 for the pair above: before it both
schedules are identical), the run projects the epochs the whole budget buys at its pace so far,
`step / steps_per_epoch / progress`, and decides once, for the rest of the run. Without a
budget `progress` is `step / total_steps`, so the projection is `optim.epochs` exactly.

The trap: "at the pace so far" is the pace of the cheap early steps (24 px, PatchDropout), so the
projection runs ~1.2× the epochs the run ends with (kept curves: 22-29 projected at
progress 0.5 for 20-23 epochs done; 42.6-46.2 for 37-40) — `below` is in projected epochs, and the
line the run prints gives both. Every rank computes the same value (step and the all-reduced
clock), and the decision is kept in last.pt: a resumed run goes on with it rather than
deciding again at another pace.
"""
from __future__ import annotations

from dataclasses import dataclass

from .config import SWITCHABLE, TrainConfig, option_value


@dataclass
class FewEpochs:
    below: float | None  # None: off
    options: dict  # {"model.patch_dropout_end": 0.85, ...}: keys from config.SWITCHABLE
    at: float  # the progress at which the decision is taken
    short: bool | None = None  # None: not decided yet
    projected: float | None = None  # epochs the budget buys, at the pace when decided

    @classmethod
    def from_config(cls, cfg: TrainConfig) -> "FewEpochs":
        fe = cfg.few_epochs
        at = min((min(float(option_value(cfg, k)), float(v)) for k, v in fe.options.items()), default=1.0)
        return cls(below=fe.below, options=dict(fe.options), at=at)

    def decide(self, step: int, steps_per_epoch: int, progress: float) -> bool:
        """Decide at the first step at or after `at`; True on the step it happens."""
        if self.below is None or self.short is not None or progress < self.at or step < 1:
            return False
        self.projected = step / max(steps_per_epoch, 1) / progress
        self.short = self.projected < self.below
        return True

    def value(self, cfg: TrainConfig, key: str):
        """The value of a SWITCHABLE option at this point of the run."""
        assert key in SWITCHABLE, key  # the engine reads only these per step
        return self.options[key] if self.short and key in self.options else option_value(cfg, key)

    def describe(self, step: int, steps_per_epoch: int) -> str:
        what = ", ".join(f"{k}={v:g}" for k, v in self.options.items())
        verdict = (f"(< {self.below:g}): {what} from here on" if self.short else
                   f"(>= {self.below:g}): the configured schedule goes on ({what} not applied)")
        return (f"few epochs: {step / max(steps_per_epoch, 1):.1f} epochs done, ~{self.projected:.1f} in the "
                f"budget at this pace {verdict}")

    def state(self) -> dict | None:
        """What last.pt keeps (None: not decided)."""
        return None if self.short is None else {"short": self.short, "projected": self.projected}

    def restore(self, state: dict | None) -> None:
        if state:
            self.short, self.projected = bool(state["short"]), float(state["projected"])
