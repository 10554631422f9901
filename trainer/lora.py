"""LoRA (Hu et al. 2021) on our GPT: y = W x + (alpha / rank) · B A x, with W frozen.

A starts random (Kaiming-uniform, as PEFT does) and B at zero, so a fresh adapter leaves the model's outputs
unchanged. Defaults follow PEFT's LoraConfig: rank 8, alpha 8, dropout 0. Target names are the last part of a
Linear's module name: "qkv", "proj" (attention), "up", "down" (MLP), or "lm_head".

Checkpoints of a LoRA run hold only the trainable tensors (adapters, plus a reward/value head when there is one)
and name the base checkpoint with its sha256; `merge_lora` folds the adapters back into plain Linears for export.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

DEFAULT_TARGETS = ("qkv", "proj", "up", "down")


class LoRALinear(nn.Module):
    def __init__(self, base: nn.Linear, rank: int, alpha: float, dropout: float = 0.0):
        super().__init__()
        if rank < 1:
            raise ValueError(f"lora rank must be at least 1, got {rank}")
        self.base = base
        self.rank, self.alpha = rank, alpha
        self.scale = alpha / rank
        w = base.weight
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_features, device=w.device, dtype=w.dtype))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank, device=w.device, dtype=w.dtype))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (self.drop(x) @ self.lora_A.t() @ self.lora_B.t()) * self.scale

    def delta(self) -> torch.Tensor:
        return (self.lora_B @ self.lora_A) * self.scale

    def merged(self) -> nn.Linear:
        with torch.no_grad():
            self.base.weight += self.delta().to(self.base.weight.dtype)
        return self.base


def _parent(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    *path, leaf = name.split(".")
    parent = model
    for part in path:
        parent = getattr(parent, part)
    return parent, leaf


def apply_lora(model: nn.Module, rank: int = 8, alpha: float = 8.0,
               targets: tuple[str, ...] | list[str] = DEFAULT_TARGETS, dropout: float = 0.0) -> nn.Module:
    """Freeze every parameter of `model` and wrap the targeted Linears with trainable adapters (in place).

    Parameters added to the model afterwards (a reward or value head) stay trainable as created.
    """
    if rank < 1:
        raise ValueError(f"lora rank must be at least 1, got {rank}")
    targets = tuple(targets)
    for p in model.parameters():
        p.requires_grad_(False)
    found = set()
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and n.split(".")[-1] in targets]
    uses: dict[int, int] = {}
    for _, p in model.named_parameters(remove_duplicate=False):
        uses[id(p)] = uses.get(id(p), 0) + 1
    for name in names:
        if uses[id(model.get_submodule(name).weight)] > 1:
            # Merging would fold the delta into the shared tensor and change the embedding too.
            raise ValueError(f"lora target {name!r} shares its weight with another module (tied embeddings); "
                             "leave it out of the targets, or train with model.tie_embeddings false")
    for name in names:
        parent, leaf = _parent(model, name)
        setattr(parent, leaf, LoRALinear(getattr(parent, leaf), rank, alpha, dropout))
        found.add(leaf)
    unknown = set(targets) - found
    if unknown:
        linears = sorted({n.split(".")[-1] for n, m in model.named_modules() if isinstance(m, nn.Linear)})
        raise ValueError(f"lora targets {sorted(unknown)} match no Linear module; choose from {linears}")
    return model


def has_lora(model: nn.Module) -> bool:
    return any(isinstance(m, LoRALinear) for m in model.modules())


def lora_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The adapter tensors only (names ending in lora_A / lora_B)."""
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()
            if k.endswith((".lora_A", ".lora_B"))}


def trainable_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every trainable tensor by name: the adapters and any head added after apply_lora."""
    return {n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if p.requires_grad}


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold each adapter into its base weight and put the plain Linear back (in place); the result has the
    base model's module names, so it saves and loads like any checkpoint of that model."""
    names = [n for n, m in model.named_modules() if isinstance(m, LoRALinear)]
    for name in names:
        parent, leaf = _parent(model, name)
        setattr(parent, leaf, getattr(parent, leaf).merged())
    return model
