"""Settings for a run that its time budget gives few epochs, switched once by the clock.

    few_epochs: {below: 40, at: 0.05, options: {data.progressive: [16, 24, 32]}}
    few_epochs: {below: 36, options: {data.progressive_end: 0.7, model.patch_dropout_end: 0.85}}

A budgeted recipe (budget.py) runs on machines that differ 4× in speed, and what pays differs
with the epochs it gets. On an fp32 stand-in for the AVX2 kind (27-29 epochs in the 60-minute
recipe) a 16-px first quarter buys 36-39 epochs instead (16 px is ~2× the img/s of 24 px) and
gave 81.63 ± 0.28% over two seeds against plain's 80.04 ± 0.12 (81.34 ± 0.60 over three, as the
recipe switches it at 5%, against plain's 79.99 ± 0.12: +1.35 ± 0.62 paired); on bf16 machines
the hour already buys 39-88 epochs and the figures were measured without it. So the run
measures what the budget buys, then picks (recipes/cifar10_vit_cpu_60min.yaml;
docs/results.md, issue 23). The second form, a longer 24-px phase and an every-token finish,
was that recipe's switch before (-0.11 ± 0.57 points over three pairs: no measured gain).

When: at `at`, else at the first point of the run where an option would make a difference, the
smallest of each option's configured and switched value (0.5 for the pair above: before it both
schedules are identical), the run projects the epochs the whole budget buys at its pace so far,
`step / steps_per_epoch / progress`, and decides once, for the rest of the run. Sizes
(`data.progressive`) differ from the first step on, so they need `at`: the steps before it run at
the configured sizes (24 px above), and a short run takes the switched sizes from there (16 px to
0.25). Without a budget `progress` is `step / total_steps`, so the projection is `optim.epochs`.

The trap: "at the pace so far" is the pace of the cheap early steps (small images, PatchDropout),
and before 2-3% the decoding of the data weighs in; so the projection is not the epochs the run
ends with (kept curves at progress 0.05: 26-37 projected for 27-28 epochs done on the AVX2
stand-in, 45-57 for 39-42 on the slower bf16 VMs, 88-111 for 69-88 on the AMX Xeon; at 0.5:
22-29 for 20-23, 42.6-46.2 for 37-40) — `below` is in projected epochs, and the line the run
prints gives both. Every rank computes the same value (step and the all-reduced clock), and the
decision is kept in last.pt: a resumed run goes on with it rather than deciding again at another
pace.
"""
from __future__ import annotations

from dataclasses import dataclass

from .config import SWITCHABLE, TrainConfig, option_value


@dataclass
class FewEpochs:
    below: float | None  # None: off
    options: dict  # {"model.patch_dropout_end": 0.85, "data.progressive": [16, 24, 32]}: config.SWITCHABLE
    at: float  # the progress at which the decision is taken
    short: bool | None = None  # None: not decided yet
    projected: float | None = None  # epochs the budget buys, at the pace when decided

    @classmethod
    def from_config(cls, cfg: TrainConfig) -> "FewEpochs":
        fe = cfg.few_epochs
        if fe.at is not None:
            at = float(fe.at)
        else:  # config.validate: data.progressive, which differs from the start, comes with `at`
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
        what = ", ".join(f"{k}={v if isinstance(v, list) else format(v, 'g')}" for k, v in self.options.items())
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
