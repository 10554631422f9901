"""Knowledge distillation's loss: `trainer distill` is pretraining (trainer/pretrain.py, the same loop and step)
with a teacher whose next-token distribution the student also learns.

    loss = (1 − α)·CE(student, targets) + α·T²·KL(teacher_T ‖ student_T)

KL(p ‖ q) = Σ_v p(v)·(log p(v) − log q(v)) per position, over the temperature-softened distributions
(softmax(logits / T)), averaged over the positions whose target is not ignored (-1): torchtune's ForwardKLLoss
and TRL's GKD (β = 0) up to the teacher's entropy, a constant that changes the value, not the gradients. T² keeps
the gradients' scale independent of T (Hinton et al. 2015), so α means the same at any temperature.
"""

from __future__ import annotations

import torch


def forward_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, targets: torch.Tensor,
               temperature: float = 1.0, ignore_index: int = -1) -> torch.Tensor:
    """Mean over non-ignored positions of KL(softmax(teacher/T) ‖ softmax(student/T)); logits (..., V)."""
    s = torch.log_softmax(student_logits.float() / temperature, dim=-1)
    t = torch.log_softmax(teacher_logits.float() / temperature, dim=-1)
    per_token = (t.exp() * (t - s)).sum(-1)
    keep = (targets != ignore_index).to(per_token.dtype)
    return (per_token * keep).sum() / keep.sum().clamp(min=1)


def distill_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, targets: torch.Tensor,
                 ce: torch.Tensor, alpha: float, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss to minimize, the KL term) from the student's cross-entropy `ce` on the same targets."""
    kl = forward_kl(student_logits, teacher_logits, targets, temperature)
    return (1 - alpha) * ce + alpha * temperature ** 2 * kl, kl
