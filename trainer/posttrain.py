"""What SFT, reward and DPO share: config, device set-up, example order, batching, and `run_method`, which hands a
method's micro-batch loss to the one training step and loop (trainer/loop.py). Each method stays one module that
says only what is its own. PPO shares the config, the set-up, the step and the loop, but its step is a rollout and
then one `train_step` per minibatch, so it builds its loop.Task itself rather than calling `run_method`.

Config files (conf/train/sft.yaml, reward.yaml, ...) hold a `train:` section (PostTrainConf, below) and a section
named after the method with that method's settings; `--set section.key=value` overrides either.

Run folder layout, as pretraining's: `run_config.json`, `tokenizer.model`, `metrics.jsonl`, `tb/`, and
`ckpt/step_NNNNNNN/` (trainer/checkpoint.py) holding model.safetensors (full fine-tuning) or adapter.safetensors
(LoRA: trainable tensors only), the optimizer, tokenizer.model, and state.json with the step, model config,
method, base {path, sha256}, lora settings or null, data position, data sha256, RNG states and config.

A full checkpoint of a GPT is also a pretraining-style checkpoint: `trainer generate` and `trainer export` read it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn as nn
from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from corpus.yamlconf import apply_override, read_mapping, validate
from trainer import loop
from trainer.checkpoint import CheckpointError, restore, rng_state, save_checkpoint, set_rng_state
from trainer.config import Beta, Count, NonNeg, NonNegInt, Positive, StepConf, TrainConfigError
from trainer.distributed import pick_device
from trainer.lora import DEFAULT_TARGETS, apply_lora, has_lora
from trainer.model import pad_right
from trainer.optim import lr_for, make_optimizer
from trainer.precision import autocast as precision_autocast
from trainer.precision import resolve_dtype


class PostTrainDataError(ValueError):
    """Training data that leaves nothing to train on; the message names the file and the skip reasons."""


# -- configuration -----------------------------------------------------------------------------------------------
class PostTrainConf(StepConf):
    """The `train:` section of SFT, reward, DPO and PPO: the settings every method shares (trainer/config.py),
    with TRL's defaults (via transformers' TrainingArguments) where TRL has one and it suits any model size:
    AdamW betas (0.9, 0.999), weight decay 0, max grad norm 1.0, batch 8, no accumulation, no warmup, linear
    decay. TRL's learning rates (SFT 2e-5, DPO 1e-6, reward 5e-5) are tuned for billion-parameter models and
    barely move a 1M-parameter one, so the default here is 1e-4 and conf/train/*.yaml set the tiny-model rates.
    """

    lr: Positive = 1e-4
    min_lr: NonNeg = 0.0  # where linear / cosine decay ends (TRL: 0)
    lr_schedule: Literal["linear", "cosine", "constant"] = "linear"  # TRL: linear
    warmup_steps: NonNegInt = 0  # TRL: 0
    max_steps: Count = 100
    weight_decay: NonNeg = 0.0  # TRL: 0
    beta2: Beta = 0.999
    seed: int = 42  # TRL: 42
    keep_last: Count = 2
    # LoRA (PEFT's LoraConfig defaults: r 8, alpha 8, dropout 0); lora_rank 0 = full fine-tuning.
    lora_rank: int = Field(0, ge=0)
    lora_alpha: float = Field(8.0, gt=0)
    lora_targets: list[str] = Field(default_factory=lambda: list(DEFAULT_TARGETS))
    lora_dropout: float = Field(0.0, ge=0, lt=1)

    @property
    def lr_decay_steps(self) -> int:  # what trainer.optim.lr_at reads
        return self.max_steps

    @model_validator(mode="after")
    def _targets(self) -> PostTrainConf:
        if not self.lora_targets:
            raise ValueError("lora_targets must name at least one module")
        return self


def load_method_config(path: str | Path | None, overrides: list[str] | None, method: str,
                       method_conf: type[BaseModel]) -> tuple[PostTrainConf, Any]:
    """(train settings, method settings) from a YAML with `train:` and `<method>:` sections, plus overrides."""
    data: dict[str, Any] = read_mapping(Path(path), TrainConfigError) if path is not None else {}
    for assignment in overrides or []:
        apply_override(data, assignment, TrainConfigError)
    schema = create_model(f"{method.capitalize()}Config", __config__=ConfigDict(extra="forbid"),
                          train=(PostTrainConf, PostTrainConf()), **{method: (method_conf, method_conf())})
    cfg = validate(schema, data, f"invalid {method} configuration {path or '(defaults)'}", TrainConfigError)
    return cfg.train, getattr(cfg, method)


def config_dump(conf: PostTrainConf, method: str, method_conf: BaseModel) -> dict:
    return {"train": conf.model_dump(), method: method_conf.model_dump()}


def setup(conf: PostTrainConf) -> torch.device:
    """Threads, seed and device; call before building models so a fresh run is a function of train.seed."""
    if conf.threads:
        torch.set_num_threads(conf.threads)
    torch.manual_seed(conf.seed)
    np.random.seed(conf.seed)
    return pick_device(conf.device)


def autocast(conf: PostTrainConf, device: torch.device):
    return precision_autocast(resolve_dtype(conf.dtype, device)[0], device)


# -- data order and batches --------------------------------------------------------------------------------------
class ExampleOrder:
    """Indices of n examples in a seeded permutation per epoch; the cursor (epoch, pos) is the whole state."""

    def __init__(self, n: int, seed: int, shuffle: bool = True):
        if n < 1:
            raise PostTrainDataError("no usable examples")
        self.n, self.seed, self.shuffle = n, seed, shuffle
        self.epoch, self.pos = 0, 0
        self._perm = self._permutation()

    def _permutation(self) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.n)
        return np.random.default_rng([self.seed, self.epoch]).permutation(self.n)

    def next(self, k: int) -> list[int]:
        out = []
        while len(out) < k:
            if self.pos == self.n:
                self.epoch, self.pos = self.epoch + 1, 0
                self._perm = self._permutation()
            take = min(k - len(out), self.n - self.pos)
            out += self._perm[self.pos:self.pos + take].tolist()
            self.pos += take
        return out

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "pos": self.pos, "n": self.n}

    def load_state_dict(self, state: dict) -> None:
        if state["n"] != self.n:
            raise CheckpointError(f"the checkpoint's data had {state['n']} examples, this run's has {self.n}")
        self.epoch, self.pos = state["epoch"], state["pos"]
        self._perm = self._permutation()


def split_indices(n: int, fraction: float, seed: int, salt: int) -> tuple[list[int], list[int]]:
    """(train, held-out) indices of n examples: a seeded permutation, its last round(n·fraction) held out. The salt
    keeps each method's split its own (SFT 11, reward and DPO 7), so changing one never moves another's."""
    perm = np.random.default_rng([seed, salt]).permutation(n).tolist()
    n_held = round(n * fraction)
    return perm[:n - n_held], perm[n - n_held:]


def lm_batch(rows: list[tuple[list[int], list[int]]]) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y) for next-token loss from (ids, mask) rows: y is -1 wherever the mask is 0 or there is padding."""
    x = pad_right([ids[:-1] for ids, _ in rows])
    y = pad_right([[t if m else -1 for t, m in zip(ids[1:], mask[1:])] for ids, mask in rows], value=-1)
    return x, y


def maybe_lora(model: nn.Module, conf: PostTrainConf) -> nn.Module:
    if conf.lora_rank:
        apply_lora(model, conf.lora_rank, conf.lora_alpha, conf.lora_targets, conf.lora_dropout)
    return model


def lora_settings(conf: PostTrainConf) -> dict | None:
    if not conf.lora_rank:
        return None
    return {"rank": conf.lora_rank, "alpha": conf.lora_alpha, "targets": list(conf.lora_targets),
            "dropout": conf.lora_dropout}


# -- the methods' step for the loop ------------------------------------------------------------------------------
def run_method(*, name: str, model: nn.Module, n_examples: int,
               loss: Callable[[list[int]], tuple[torch.Tensor, dict[str, float], int]],
               evaluate: Callable[[], dict[str, float]] | None, state: dict,
               check_resume: Callable[[dict], None] | None, conf: PostTrainConf, config: dict, out: str | Path,
               tokenizer: Path, device: torch.device, resume: bool = False, quiet: bool = False) -> dict:
    """Train `model` (LoRA applied already when used) for conf.max_steps optimizer steps in the training loop, and
    resume exactly. What the method brings: `loss(indices)` — (loss to minimize, float metrics, tokens processed)
    of one micro-batch of example indices; `evaluate()` — val metrics, or None; `state` — saved into state.json
    (base, lora, data sha256, ...); `check_resume(state)` — raises CheckpointError if a saved state does not fit."""
    out = Path(out)
    start, log = loop.start_run(out, resume, True, conf.tensorboard, quiet)
    model = model.to(device)
    model.train()
    opt = make_optimizer(model, conf, device)
    order = ExampleOrder(n_examples, conf.seed)
    step, tokens_seen = 0, 0
    if start is not None:
        saved = restore(start, model, opt)
        set_rng_state(saved["rng"][0])
        if check_resume is not None:
            check_resume(saved)
        order.load_state_dict(saved["data"])
        step, tokens_seen = saved["step"], saved["tokens_seen"]
        log.print(f"resumed from {start} at step {step}")
    loop.write_run_files(out, config, tokenizer)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    dtype, warning = resolve_dtype(conf.dtype, device)
    log.print(f"{name}: {n_examples} examples, {trainable:,} of {total:,} parameters trainable"
              f"{' (LoRA)' if has_lora(model) else ''}, {device.type} {dtype}")
    if warning:
        log.print(warning)

    def run_eval() -> dict[str, float]:
        model.eval()
        with torch.no_grad(), autocast(conf, device):
            metrics = evaluate()
        model.train()
        return metrics

    def checkpoint(step: int, tokens_seen: int) -> None:
        saved = {**state, "method": name, "data": order.state_dict(), "tokens_seen": tokens_seen,
                 "rng": [rng_state()], "config": config}
        path = save_checkpoint(out, step, model, opt, saved, tokenizer, conf.keep_last)
        log.print(f"step {step:>6} | checkpoint {path}")

    def describe(r: dict) -> str:
        shown = " | ".join(f"{k} {r[k]:.4f}" for k in r if k not in loop.LOOP_KEYS and k != "grad_norm")
        return f"step {r['step']:>6}/{conf.max_steps} | {shown} | lr {r['lr']:.2e} | {r['tokens_per_sec']:,.0f} tok/s"

    task = loop.Task(opt=opt, lr=lambda s: lr_for(s, conf), forward=lambda: loss(order.next(conf.batch_size)),
                     params=[p for p in model.parameters() if p.requires_grad], aux_loss=loop.model_aux(model),
                     grad_accum=conf.grad_accum,
                     grad_clip=conf.grad_clip, autocast=lambda: autocast(conf, device), checkpoint=checkpoint,
                     evaluate=run_eval if evaluate is not None else None, describe=describe)
    summary = loop.run(task, conf, log, step, tokens_seen)
    train = {k: v for k, v in summary["train"].items() if k != "grad_norm"}
    return {"step": summary["step"], "train": train, "val": summary["val"], "tokens_seen": summary["tokens_seen"],
            "tokens_per_sec": summary["tokens_per_sec"], "out": str(out)}


def data_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
