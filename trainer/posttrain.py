"""What every post-training method shares: config, base model loading, example order, batching, checkpoints,
and one optimizer loop. SFT, reward, DPO and PPO each stay one module that says only what is its own.

Config files (conf/train/sft.yaml, reward.yaml, ...) hold a `train:` section (PostTrainConf, below) and a section
named after the method with that method's settings; `--set section.key=value` overrides either.

Run folder layout, as pretraining's: `run_config.json`, `tokenizer.model`, `metrics.jsonl`, `tb/`, and
`ckpt/step_NNNNNNN/` holding

    model.safetensors      all weights (full fine-tuning)       | adapter.safetensors  trainable tensors only (LoRA)
    optimizer.safetensors, optimizer.json, tokenizer.model
    state.json             step, model config, method, base {path, sha256}, lora settings or null, data position,
                           data sha256, RNG states, config

A full checkpoint of a GPT is also a pretraining-style checkpoint: `trainer generate` and `trainer export` read it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn as nn
from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator
from safetensors.torch import load_file, load_model, save_file, save_model

from corpus.tokenize.shards import sha256_file
from corpus.tokenize.tokenizer import PAD_ID, TokenizerError, load_tokenizer
from corpus.yamlconf import apply_override, read_mapping, validate
from trainer.chat import check_chat_tokens
from trainer.checkpoint import (
    STEP_DIR,
    CheckpointError,
    latest_checkpoint,
    list_checkpoints,
    load_for_inference,
    optimizer_from_flat,
    optimizer_to_flat,
    resolve,
    rng_state,
    set_rng_state,
)
from trainer.config import TrainConfigError
from trainer.lora import DEFAULT_TARGETS, apply_lora, has_lora, merge_lora, trainable_state_dict
from trainer.model import GPT
from trainer.precision import autocast as precision_autocast
from trainer.precision import resolve_dtype
from trainer.pretrain import Logger, lr_at


class PostTrainDataError(ValueError):
    """Training data that leaves nothing to train on; the message names the file and the skip reasons."""


# -- configuration -----------------------------------------------------------------------------------------------
class PostTrainConf(BaseModel):
    """Optimizer-loop settings common to every method.

    Defaults are TRL's (via transformers' TrainingArguments) where TRL has one and it suits any model size:
    AdamW betas (0.9, 0.999), weight decay 0, max grad norm 1.0, batch 8, no accumulation, no warmup, linear
    decay. TRL's learning rates (SFT 2e-5, DPO 1e-6, reward 5e-5) are tuned for billion-parameter models and
    barely move a 1M-parameter one, so the default here is 1e-4 and conf/train/*.yaml set the tiny-model rates.
    """

    model_config = ConfigDict(extra="forbid")
    lr: float = Field(1e-4, gt=0)
    min_lr: float = Field(0.0, ge=0)  # where linear / cosine decay ends (TRL: 0)
    lr_schedule: Literal["linear", "cosine", "constant"] = "linear"  # TRL: linear
    warmup_steps: int = Field(0, ge=0)  # TRL: 0
    max_steps: int = Field(100, ge=1)
    batch_size: int = Field(8, ge=1)  # examples (SFT rows, preference pairs, prompts) per micro-batch; TRL: 8
    grad_accum: int = Field(1, ge=1)
    weight_decay: float = Field(0.0, ge=0)  # TRL: 0
    beta1: float = Field(0.9, ge=0, lt=1)
    beta2: float = Field(0.999, ge=0, lt=1)
    grad_clip: float = Field(1.0, ge=0)  # 0 disables; TRL: 1.0
    # bfloat16 = autocast (weights and optimizer stay float32); auto = bfloat16 where the hardware has native bf16
    # matmuls (CUDA Ampere+, CPUs with AVX512-BF16/AMX), else float32. See trainer/precision.py.
    dtype: Literal["float32", "bfloat16", "auto"] = "float32"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    seed: int = 42  # TRL: 42
    threads: int | None = Field(None, ge=1)  # CPU intra-op threads (1 when the cores are shared)
    eval_interval: int = Field(50, ge=1)
    eval_batches: int = Field(10, ge=1)  # SFT: at most this many val batches; reward scores every held-out pair
    log_interval: int = Field(1, ge=1)
    ckpt_interval: int = Field(100, ge=1)
    keep_last: int = Field(2, ge=1)
    tensorboard: bool = True
    # LoRA (PEFT's LoraConfig defaults: r 8, alpha 8, dropout 0); lora_rank 0 = full fine-tuning.
    lora_rank: int = Field(0, ge=0)
    lora_alpha: float = Field(8.0, gt=0)
    lora_targets: list[str] = Field(default_factory=lambda: list(DEFAULT_TARGETS))
    lora_dropout: float = Field(0.0, ge=0, lt=1)

    @property
    def lr_decay_steps(self) -> int:  # what trainer.pretrain.lr_at reads
        return self.max_steps

    @model_validator(mode="after")
    def _check(self) -> PostTrainConf:
        if self.min_lr > self.lr:
            raise ValueError(f"min_lr ({self.min_lr}) must not exceed lr ({self.lr})")
        if not self.lora_targets:
            raise ValueError("lora_targets must name at least one module")
        return self


def lr_for(step: int, conf: PostTrainConf) -> float:
    """Learning rate for the optimizer step after `step` completed steps: linear warmup, then the schedule."""
    if conf.lr_schedule == "cosine":
        return lr_at(step, conf)
    if step < conf.warmup_steps:
        return conf.lr * (step + 1) / conf.warmup_steps
    if conf.lr_schedule == "constant":
        return conf.lr
    ratio = min(1.0, (step - conf.warmup_steps) / max(1, conf.max_steps - conf.warmup_steps))
    return conf.lr + ratio * (conf.min_lr - conf.lr)


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
    if conf.device == "cuda" or (conf.device == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise TrainConfigError("train.device=cuda but no CUDA device is available")
        return torch.device("cuda")
    return torch.device("cpu")


def autocast(conf: PostTrainConf, device: torch.device):
    return precision_autocast(resolve_dtype(conf.dtype, device)[0], device)


# -- loading models ----------------------------------------------------------------------------------------------
def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint folder (full or adapter-only), an export folder, or a run folder (its latest checkpoint)."""
    path = Path(path)
    if (path / "state.json").exists() and (path / "adapter.safetensors").exists():
        return path
    return resolve(path)


def read_state(folder: Path) -> dict:
    path = folder / "state.json"
    return json.loads(path.read_text()) if path.exists() else {}


def weights_sha256(folder: Path) -> str:
    """Identity of a checkpoint's weights: its model.safetensors, or its adapter.safetensors (which names its
    own base in turn)."""
    for name in ("model.safetensors", "adapter.safetensors"):
        if (folder / name).exists():
            return sha256_file(folder / name)
    raise CheckpointError(f"{folder}: no model.safetensors or adapter.safetensors")


def base_reference(folder: Path) -> dict:
    return {"path": str(folder.resolve()), "sha256": weights_sha256(folder)}


def check_base(ref: dict, what: Path) -> Path:
    """The base checkpoint a LoRA checkpoint was trained on, after checking it is unchanged."""
    base = Path(ref["path"])
    if not base.exists():
        raise CheckpointError(f"{what}: its base checkpoint {base} is missing (LoRA checkpoints hold adapters only)")
    if weights_sha256(base) != ref["sha256"]:
        raise CheckpointError(f"{what}: base checkpoint {base} has changed since the adapters were trained "
                              "(sha256 differs)")
    return base


def load_tokenizer_of(folder: Path, model_vocab: int):
    path = folder / "tokenizer.model"
    if not path.exists():
        raise CheckpointError(f"{folder}: tokenizer.model missing (checkpoints and exports carry a copy)")
    sp = load_tokenizer(path)
    check_chat_tokens(sp)
    if sp.vocab_size() > model_vocab:
        raise TokenizerError(f"{path}: vocabulary of {sp.vocab_size()} exceeds the model's {model_vocab}")
    return sp


def load_trainable(model: nn.Module, folder: Path) -> None:
    """Put an adapter checkpoint's tensors into a model that has the same adapters (and heads)."""
    tensors = load_file(str(folder / "adapter.safetensors"))
    expected = set(trainable_state_dict(model))
    if set(tensors) != expected:
        raise CheckpointError(f"{folder}: adapter tensors do not fit the model (missing "
                              f"{sorted(expected - set(tensors))}, unexpected {sorted(set(tensors) - expected)})")
    model.load_state_dict(tensors, strict=False)


def load_full(model: nn.Module, folder: Path) -> None:
    missing, unexpected = load_model(model, str(folder / "model.safetensors"), strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{folder}: weights do not fit the model (missing {missing}, unexpected {unexpected})")


def load_base(path: str | Path, device: str | torch.device = "cpu") -> tuple[GPT, Path, Any]:
    """A GPT from a pretraining checkpoint, run folder, export, or a post-trained policy checkpoint (a LoRA one
    is rebuilt from its base and merged). Returns (model in eval mode, resolved folder, tokenizer)."""
    folder = resolve_checkpoint(path)
    state = read_state(folder)
    if state.get("method") == "reward":
        raise CheckpointError(f"{folder} is a reward model checkpoint; use trainer.reward.load_reward_model")
    if state.get("lora"):
        base, _, _ = load_base(check_base(state["base"], folder), device)
        lora = state["lora"]
        apply_lora(base, lora["rank"], lora["alpha"], lora["targets"], lora["dropout"])
        load_trainable(base, folder)
        model = merge_lora(base)
    else:
        model, _ = load_for_inference(folder, device)
    model = model.to(device).eval()
    for p in model.parameters():
        p.requires_grad_(True)  # whatever merge_lora froze: the caller decides what trains
    return model, folder, load_tokenizer_of(folder, model.cfg.vocab_size)


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


def pad_right(seqs: list[list[int]], value: int = PAD_ID, length: int | None = None) -> torch.Tensor:
    """(B, T) long tensor, each row padded on the right. Causal attention means padding never changes the
    real positions' outputs, so no attention mask is needed."""
    length = length or max(len(s) for s in seqs)
    out = torch.full((len(seqs), length), value, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, :len(s)] = torch.as_tensor(s, dtype=torch.long)
    return out


def lm_batch(rows: list[tuple[list[int], list[int]]]) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y) for next-token loss from (ids, mask) rows: y is -1 wherever the mask is 0 or there is padding."""
    x = pad_right([ids[:-1] for ids, _ in rows])
    y = pad_right([[t if m else -1 for t, m in zip(ids[1:], mask[1:])] for ids, mask in rows], value=-1)
    return x, y


# -- checkpoints -------------------------------------------------------------------------------------------------
def save_posttrain_checkpoint(out: Path, step: int, model: nn.Module, opt: torch.optim.Optimizer, state: dict,
                              tokenizer: Path, keep_last: int) -> Path:
    """Like trainer.checkpoint.save_checkpoint, but a LoRA model saves only its trainable tensors."""
    root = out / "ckpt"
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(".tmp-step_*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp, final = root / f".tmp-step_{step:07d}", root / f"step_{step:07d}"
    tmp.mkdir()
    if has_lora(model):
        save_file(trainable_state_dict(model), str(tmp / "adapter.safetensors"))
    else:
        save_model(model, str(tmp / "model.safetensors"))
    tensors, meta = optimizer_to_flat(opt)
    save_file(tensors, str(tmp / "optimizer.safetensors"))
    (tmp / "optimizer.json").write_text(json.dumps(meta))
    (tmp / "state.json").write_text(json.dumps({**state, "step": step, "model": model.cfg.to_dict()}, indent=1))
    shutil.copyfile(tokenizer, tmp / "tokenizer.model")
    for f in tmp.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    if final.exists():
        shutil.rmtree(final)
    os.rename(tmp, final)
    for old in list_checkpoints(out)[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def restore_checkpoint(folder: Path, model: nn.Module, opt: torch.optim.Optimizer) -> dict:
    state = read_state(folder)
    if state.get("model") != model.cfg.to_dict():
        raise CheckpointError(f"{folder}: saved model config differs from this run's")
    if has_lora(model) != bool(state.get("lora")):
        raise CheckpointError(f"{folder}: LoRA settings differ from this run's (lora_rank 0 means full fine-tuning)")
    (load_trainable if has_lora(model) else load_full)(model, folder)
    opt.load_state_dict(optimizer_from_flat(load_file(str(folder / "optimizer.safetensors")),
                                            json.loads((folder / "optimizer.json").read_text())))
    set_rng_state(state["rng"][0])
    return state


def make_optimizer(model: nn.Module, conf: PostTrainConf, device: torch.device) -> torch.optim.AdamW:
    """AdamW over the trainable parameters, decay on matrices only (as pretraining)."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": conf.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=conf.lr, betas=(conf.beta1, conf.beta2), fused=device.type in ("cpu", "cuda"))


def maybe_lora(model: nn.Module, conf: PostTrainConf) -> nn.Module:
    if conf.lora_rank:
        apply_lora(model, conf.lora_rank, conf.lora_alpha, conf.lora_targets, conf.lora_dropout)
    return model


def lora_settings(conf: PostTrainConf) -> dict | None:
    if not conf.lora_rank:
        return None
    return {"rank": conf.lora_rank, "alpha": conf.lora_alpha, "targets": list(conf.lora_targets),
            "dropout": conf.lora_dropout}


def step_of(ckpt: Path) -> int:
    return int(STEP_DIR.match(ckpt.name).group(1))


def start_checkpoint(out: Path, resume: bool) -> Path | None:
    """The checkpoint to resume from, or None; an earlier run's checkpoints without --resume are an error."""
    latest = latest_checkpoint(out) if out.exists() else None
    if latest is not None and not resume:
        raise CheckpointError(f"{out} already holds checkpoints: pass --resume to continue, or use a new --out")
    return latest


# -- the loop ------------------------------------------------------------------------------------------------------
@dataclass
class Method:
    """What a method gives the loop. `loss(indices)` returns (loss to minimize, float metrics, tokens processed)
    for one micro-batch of example indices; `evaluate()` returns val metrics (or is None)."""

    name: str
    model: nn.Module  # has .cfg (GPTConfig); LoRA applied already when used
    n_examples: int
    loss: Callable[[list[int]], tuple[torch.Tensor, dict[str, float], int]]
    evaluate: Callable[[], dict[str, float]] | None = None
    state: dict = field(default_factory=dict)  # saved into state.json (base, lora, data sha256, ...)
    check_resume: Callable[[dict], None] | None = None  # raise CheckpointError if a saved state does not fit


def run_loop(method: Method, conf: PostTrainConf, config: dict, out: str | Path, tokenizer: Path,
             device: torch.device, resume: bool = False, quiet: bool = False) -> dict:
    """Train `method.model` for conf.max_steps optimizer steps; log, evaluate, checkpoint, resume exactly."""
    out = Path(out)
    start = start_checkpoint(out, resume)
    out.mkdir(parents=True, exist_ok=True)
    log = Logger(out, True, conf.tensorboard, -1 if start is None else step_of(start), quiet)
    if resume and start is None:
        log.print(f"no checkpoint in {out}: starting from step 0")
    model = method.model.to(device)
    model.train()
    opt = make_optimizer(model, conf, device)
    order = ExampleOrder(method.n_examples, conf.seed)
    step, tokens_seen = 0, 0
    if start is not None:
        state = restore_checkpoint(start, model, opt)
        if method.check_resume is not None:
            method.check_resume(state)
        order.load_state_dict(state["data"])
        step, tokens_seen = state["step"], state["tokens_seen"]
        log.print(f"resumed from {start} at step {step}")
    (out / "run_config.json").write_text(json.dumps(config, indent=1))
    if not (out / "tokenizer.model").exists():
        shutil.copyfile(tokenizer, out / "tokenizer.model")
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    dtype, warning = resolve_dtype(conf.dtype, device)
    log.print(f"{method.name}: {method.n_examples} examples, {trainable:,} of {total:,} parameters trainable"
              f"{' (LoRA)' if has_lora(model) else ''}, {device.type} {dtype}")
    if warning:
        log.print(warning)

    def run_eval() -> dict[str, float] | None:
        if method.evaluate is None:
            return None
        model.eval()
        with torch.no_grad(), autocast(conf, device):
            metrics = method.evaluate()
        model.train()
        log.log({"kind": "val", "step": step, **metrics})
        log.print(f"step {step:>6} | val " + " | ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
        return metrics

    def checkpoint() -> None:
        state = {**method.state, "method": method.name, "data": order.state_dict(), "tokens_seen": tokens_seen,
                 "rng": [rng_state()], "config": config}
        path = save_posttrain_checkpoint(out, step, model, opt, state, tokenizer, conf.keep_last)
        log.print(f"step {step:>6} | checkpoint {path}")

    val = run_eval() if step == 0 else None
    rates: list[float] = []
    metrics: dict[str, float] = {}
    while step < conf.max_steps:
        t0 = time.perf_counter()
        lr = lr_for(step, conf)
        for group in opt.param_groups:
            group["lr"] = lr
        sums: dict[str, float] = {}
        tokens = 0
        for _ in range(conf.grad_accum):
            with autocast(conf, device):
                loss, micro, n_tok = method.loss(order.next(conf.batch_size))
            (loss / conf.grad_accum).backward()
            tokens += n_tok
            for k, v in {"loss": loss.item(), **micro}.items():
                sums[k] = sums.get(k, 0.0) + v
        params = [p for p in model.parameters() if p.requires_grad]
        grad_norm = torch.nn.utils.clip_grad_norm_(params, conf.grad_clip if conf.grad_clip > 0 else 1e30)
        opt.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        tokens_seen += tokens
        metrics = {k: v / conf.grad_accum for k, v in sums.items()}
        if not math.isfinite(metrics["loss"]):
            raise FloatingPointError(f"loss is {metrics['loss']} at step {step}; lower train.lr or check the data")
        dt = time.perf_counter() - t0
        rate = tokens / dt
        if step > 1:
            rates.append(rate)
        if step % conf.log_interval == 0 or step == conf.max_steps:
            log.log({"kind": "train", "step": step, **metrics, "lr": lr, "grad_norm": float(grad_norm),
                     "tokens": tokens_seen, "tokens_per_sec": rate, "dt_ms": dt * 1000})
            log.print(f"step {step:>6}/{conf.max_steps} | " + " | ".join(f"{k} {v:.4f}" for k, v in metrics.items())
                      + f" | lr {lr:.2e} | {rate:,.0f} tok/s")
        if step % conf.eval_interval == 0 or step == conf.max_steps:
            val = run_eval()
        if step % conf.ckpt_interval == 0 or step == conf.max_steps:
            checkpoint()
    log.close()
    return {"step": step, "train": metrics, "val": val, "tokens_seen": tokens_seen,
            "tokens_per_sec": sum(rates) / len(rates) if rates else float("nan"), "out": str(out)}


def data_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def export_merged(path: str | Path, out: str | Path) -> Path:
    """A plain export (config.json, model.safetensors, tokenizer.model) of a policy checkpoint; LoRA adapters are
    merged into the weights. `trainer generate` and `load_base` read the result.

    A reward model checkpoint becomes a full reward checkpoint instead (model.safetensors with trunk and head,
    state.json naming method "reward"), which `load_reward_model` reads without the base."""
    out = Path(out)
    folder = resolve_checkpoint(path)
    if read_state(folder).get("method") == "reward":
        from trainer.reward import load_reward_model

        reward, folder, _ = load_reward_model(folder)
        out.mkdir(parents=True, exist_ok=True)
        save_model(reward, str(out / "model.safetensors"))
        (out / "state.json").write_text(json.dumps({"method": "reward", "model": reward.cfg.to_dict(), "lora": None,
                                                    "merged_from": base_reference(folder)}, indent=1))
        shutil.copyfile(folder / "tokenizer.model", out / "tokenizer.model")
        return out
    model, folder, _ = load_base(folder)
    out.mkdir(parents=True, exist_ok=True)
    save_model(model, str(out / "model.safetensors"))
    (out / "config.json").write_text(json.dumps(model.cfg.to_dict(), indent=1))
    shutil.copyfile(folder / "tokenizer.model", out / "tokenizer.model")
    return out
