"""The optimizer of every training run: the AdamW builder and the learning-rate schedules."""

from __future__ import annotations

import math

import torch
import torch.nn as nn


def make_optimizer(model: nn.Module, conf, device: torch.device | str) -> torch.optim.AdamW:
    """AdamW over the trainable parameters with decay on matrices only: norms' gains and biases are left alone
    (nanoGPT's split). `conf` has lr, weight_decay, beta1, beta2 (TrainConf and PostTrainConf both do)."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": conf.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    device_type = device.type if isinstance(device, torch.device) else str(device).split(":")[0]
    # Fused on CPU as well: one kernel per parameter instead of a dozen (4x faster steps on the small config).
    return torch.optim.AdamW(groups, lr=conf.lr, betas=(conf.beta1, conf.beta2),
                             fused=device_type in ("cpu", "cuda"))


def lr_at(step: int, conf) -> float:
    """Learning rate for the optimizer step taken after `step` completed steps: linear warmup, then cosine down
    to min_lr over lr_decay_steps (default max_steps)."""
    decay = conf.lr_decay_steps or conf.max_steps
    if step < conf.warmup_steps:
        return conf.lr * (step + 1) / conf.warmup_steps
    if step >= decay:
        return conf.min_lr
    ratio = (step - conf.warmup_steps) / max(1, decay - conf.warmup_steps)
    return conf.min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (conf.lr - conf.min_lr)


def lr_for(step: int, conf) -> float:
    """Post-training's schedules (conf.lr_schedule): linear warmup, then cosine (as `lr_at`), linear decay to
    min_lr at max_steps, or constant."""
    if conf.lr_schedule == "cosine":
        return lr_at(step, conf)
    if step < conf.warmup_steps:
        return conf.lr * (step + 1) / conf.warmup_steps
    if conf.lr_schedule == "constant":
        return conf.lr
    ratio = min(1.0, (step - conf.warmup_steps) / max(1, conf.max_steps - conf.warmup_steps))
    return conf.lr + ratio * (conf.min_lr - conf.lr)
