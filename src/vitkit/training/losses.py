"""Classification and DeiT distillation losses.

    loss = DistillationLoss(kind="hard", teacher=resnet, alpha=0.5, tau=1.0)(outputs, targets, images)

`outputs` is a tensor (a plain ViT: the teacher supervises the class head, DeiT's ablation) or
(cls_logits, dist_logits) from a distilled ViT in training mode. Targets are class indices or
soft (B, C) targets from MixUp/CutMix.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

KINDS = ("none", "soft", "hard")


def classification_loss(logits: torch.Tensor, targets: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy for index or probability targets (F.cross_entropy takes both)."""
    return F.cross_entropy(logits.float(), targets, label_smoothing=label_smoothing)


class DistillationLoss(nn.Module):
    """DeiT (Touvron et al. 2021), eq. 2 and 3.

    hard: (1-α)·CE(cls, y) + α·CE(dist, argmax teacher)    — α = ½ gives DeiT's ½ + ½
    soft: (1-α)·CE(cls, y) + α·τ²·KL(softmax(teacher/τ) ‖ softmax(dist/τ))
    none: CE on the class head; a distilled model's second head is trained on the labels too
          (mean of both), so that its eval-mode average of the two heads is meaningful.

    The soft KL uses DeiT's own reduction: the sum over the batch divided by B·C
    (`outputs_kd.numel()`), not 'batchmean' (÷B). That makes the soft term C times smaller than a
    textbook KL, which is what DeiT's published α = 0.1, τ = 3 were tuned with; we keep it for
    reproducibility.
    """

    def __init__(self, kind: str = "none", teacher: nn.Module | None = None, alpha: float = 0.5,
                 tau: float = 1.0, label_smoothing: float = 0.0):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"distillation kind {kind!r} is not one of {', '.join(KINDS)}")
        if kind != "none" and teacher is None:
            raise ValueError(f"distillation kind {kind!r} needs a teacher")
        self.kind, self.alpha, self.tau, self.label_smoothing = kind, alpha, tau, label_smoothing
        self.teacher = teacher
        if teacher is not None:
            teacher.eval()
            for p in teacher.parameters():
                p.requires_grad_(False)

    def train(self, mode: bool = True):  # the teacher stays in eval mode whatever the student does
        super().train(mode)
        if self.teacher is not None:
            self.teacher.eval()
        return self

    @torch.no_grad()
    def teacher_logits(self, images: torch.Tensor) -> torch.Tensor:
        on_cuda = images.is_cuda
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=on_cuda):
            return self.teacher(images).float()

    def forward(self, outputs, targets: torch.Tensor, images: torch.Tensor | None = None) -> torch.Tensor:
        if isinstance(outputs, (tuple, list)):
            cls_out, kd_out = outputs
        else:
            cls_out, kd_out = outputs, outputs
        base = classification_loss(cls_out, targets, self.label_smoothing)
        if self.kind == "none":
            if kd_out is cls_out:
                return base
            return 0.5 * (base + classification_loss(kd_out, targets, self.label_smoothing))
        t = self.teacher_logits(images)
        kd_out = kd_out.float()
        if self.kind == "hard":
            kd = F.cross_entropy(kd_out, t.argmax(dim=1))
        else:
            T = self.tau
            kd = F.kl_div(F.log_softmax(kd_out / T, dim=1), F.log_softmax(t / T, dim=1),
                          reduction="sum", log_target=True) * (T * T) / kd_out.numel()
        return (1 - self.alpha) * base + self.alpha * kd
