"""The one training loop of every run — pretraining, SFT, reward, DPO and PPO — and the run folder around it.

A run hands the loop a `Task`: its optimizer, its learning-rate schedule, and the forward of one micro-batch,
which `train_step` (below: forward, backward, clip, optimizer step) turns into one optimizer step; PPO gives a
whole step instead, a rollout and then a `train_step` per minibatch. The loop owns what every run shares:
setting the learning rate, timing, tokens/s, the finite-loss check, logging, evaluation and checkpoint intervals.
Resuming is exact because the loop itself draws no random numbers and everything a step consumes (data cursor, RNG
states, optimizer) is in the checkpoint the task writes.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

import torch

from trainer.checkpoint import CheckpointError, latest_checkpoint, step_of
from trainer.metrics import Logger

# The keys the loop itself puts in each train record, around the step's own metrics.
LOOP_KEYS = ("kind", "step", "lr", "tokens", "tokens_per_sec", "dt_ms")


def start_run(out: Path, resume: bool, main: bool = True, tensorboard: bool = True,
              quiet: bool = False) -> tuple[Path | None, Logger]:
    """The checkpoint to resume from (or None) and the run's logger. An earlier run's checkpoints without --resume
    are an error; a fresh start (including --resume before any checkpoint was written) drops an earlier
    attempt's log lines."""
    latest = latest_checkpoint(out) if out.exists() else None
    if latest is not None and not resume:
        raise CheckpointError(f"{out} already holds checkpoints: pass --resume to continue, or use a new --out")
    if main:
        out.mkdir(parents=True, exist_ok=True)
    log = Logger(out, main, tensorboard, -1 if latest is None else step_of(latest), quiet)
    if resume and latest is None:
        log.print(f"no checkpoint in {out}: starting from step 0")
    return latest, log


def write_run_files(out: Path, config: dict, tokenizer: Path) -> None:
    """`run_config.json` (the config as run) and a copy of the tokenizer in the run folder."""
    (out / "run_config.json").write_text(json.dumps(config, indent=1))
    if not (out / "tokenizer.model").exists():
        shutil.copyfile(tokenizer, out / "tokenizer.model")


def _line(record: dict) -> str:
    return " | ".join(f"{k} {v:.4f}" for k, v in record.items())


@dataclass(kw_only=True)
class Task:
    """What a run hands the loop, every field by name.

    The step: `forward()` computes one micro-batch's loss — (loss to minimize, float or 0-d tensor metrics, tokens
    trained on) — and `train_step` runs `grad_accum` of them, clips the gradients of `params` and steps `opt`.
    A run whose step is more than that (PPO: a rollout, then several `train_step`s over minibatches of it) gives
    `step` instead, which returns (metrics, tokens) itself.

    Around the step: `lr(step)` is the learning rate the loop sets before each step; `checkpoint(step, tokens_seen)`
    saves; `evaluate()` returns val metrics, or is None. `describe(record)` is the console line of a train record,
    `describe_val(step, metrics)` that of an evaluation; `rate_metrics(tokens/s)` adds metrics derived from the
    speed (MFU). `finite` names the metrics that must stay finite.
    """

    opt: torch.optim.Optimizer
    lr: Callable[[int], float]
    checkpoint: Callable[[int, int], None]
    forward: Callable[[], tuple[torch.Tensor, dict, int]] | None = None
    params: list[torch.Tensor] = field(default_factory=list)  # what clipping sees (the trainable parameters)
    grad_accum: int = 1
    grad_clip: float = 0.0  # 0 disables clipping
    autocast: Callable[[], AbstractContextManager] = contextlib.nullcontext
    no_sync: Callable[[], AbstractContextManager] | None = None  # DDP: skip the all-reduce of early micro-steps
    reduce: Callable[[dict[str, torch.Tensor]], None] | None = None  # DDP: all-reduce the step's metrics in place
    step: Callable[[], tuple[dict[str, float], int]] | None = None
    evaluate: Callable[[], dict[str, float]] | None = None
    describe: Callable[[dict], str] | None = None
    describe_val: Callable[[int, dict], str] | None = None
    rate_metrics: Callable[[float], dict[str, float]] | None = None
    finite: tuple[str, ...] = ("loss",)
    # A mixture-of-experts model's auxiliary losses of the last forward and their metrics (model_aux): added to the
    # loss that is minimized, while the logged `loss` stays the method's own. None for a dense model.
    aux_loss: Callable[[], tuple[torch.Tensor, dict]] | None = None

    def __post_init__(self):
        if (self.forward is None) == (self.step is None):
            raise ValueError("a Task gives exactly one of forward (a micro-batch loss) or step (a whole step)")


def model_aux(model) -> Callable[[], tuple[torch.Tensor, dict]] | None:
    """The Task.aux_loss of a model with mixture-of-experts layers (its weighted auxiliary losses and their
    metrics after each forward), None for any other model: dense training stays bit for bit what it was."""
    layers = getattr(model, "moe_layers", None)
    if layers is None or not layers():
        return None
    return lambda: (model.aux_loss(), model.moe_metrics())


def train_step(task: Task, forward: Callable[[], tuple[torch.Tensor, dict, int]] | None = None
               ) -> tuple[dict[str, float], int]:
    """One optimizer step of every method: forward and backward over `grad_accum` micro-batches (the loss scaled
    so the gradients are those of their mean), clip, step. `forward` replaces task.forward (PPO's minibatches).
    Returns the micro-batches' mean metrics with the loss and the gradient norm, and the tokens trained on."""
    forward = forward or task.forward
    sums: dict[str, torch.Tensor | float] = {}
    tokens = 0
    for micro in range(task.grad_accum):
        last = micro == task.grad_accum - 1
        with (task.no_sync() if task.no_sync and not last else contextlib.nullcontext()), task.autocast():
            loss, metrics, n = forward()  # the loss is formed here, by the method
        if task.aux_loss is not None:
            aux, aux_metrics = task.aux_loss()
            ((loss + aux) / task.grad_accum).backward()
            metrics = {**metrics, **aux_metrics}
        else:
            (loss / task.grad_accum).backward()
        tokens += n
        for key, value in {"loss": loss.detach(), **metrics}.items():
            sums[key] = sums.get(key, 0.0) + value
    grad_norm = torch.nn.utils.clip_grad_norm_(task.params, task.grad_clip if task.grad_clip > 0 else 1e30)
    task.opt.step()
    task.opt.zero_grad(set_to_none=True)
    if task.reduce is not None:
        task.reduce(sums)
    # float() once per metric at the end, not per micro-step: each is a device sync
    return {**{k: float(v) / task.grad_accum for k, v in sums.items()}, "grad_norm": float(grad_norm)}, tokens


def run(task: Task, conf, log: Logger, step: int = 0, tokens_seen: int = 0) -> dict:
    """Train from `step` to conf.max_steps; log every conf.log_interval steps, evaluate every eval_interval (and
    before the first step of a fresh run), checkpoint every ckpt_interval, all three at the last step. Closes `log`.

    Returns step, the last train metrics and record, the last val metrics, tokens seen and the mean tokens/s (the
    first step, which pays for allocation, compilation and page faults, left out)."""

    def run_eval() -> dict[str, float] | None:
        if task.evaluate is None:
            return None
        metrics = task.evaluate()
        log.log({"kind": "val", "step": step, **metrics})
        log.print(task.describe_val(step, metrics) if task.describe_val else f"step {step:>6} | val {_line(metrics)}")
        return metrics

    val = run_eval() if step == 0 else None
    rates: list[float] = []
    metrics: dict[str, float] = {}
    record: dict = {}
    while step < conf.max_steps:
        t0 = time.perf_counter()
        lr = task.lr(step)
        for group in task.opt.param_groups:
            group["lr"] = lr
        metrics, tokens = task.step() if task.step is not None else train_step(task)
        dt = time.perf_counter() - t0
        step += 1
        tokens_seen += tokens
        for key in task.finite:
            if not math.isfinite(metrics[key]):
                raise FloatingPointError(f"{key} is {metrics[key]} at step {step}; lower train.lr or check the data")
        rate = tokens / dt
        if step > 1:
            rates.append(rate)
        record = {"kind": "train", "step": step, **metrics, "lr": lr, "tokens": tokens_seen, "tokens_per_sec": rate,
                  "dt_ms": dt * 1000, **(task.rate_metrics(rate) if task.rate_metrics else {})}
        if step % conf.log_interval == 0 or step == conf.max_steps:
            log.log(record)
            log.print(task.describe(record) if task.describe else
                      f"step {step:>6}/{conf.max_steps} | {_line(metrics)} | lr {lr:.2e} | {rate:,.0f} tok/s")
        if step % conf.eval_interval == 0 or step == conf.max_steps:
            val = run_eval()
        if step % conf.ckpt_interval == 0 or step == conf.max_steps:
            task.checkpoint(step, tokens_seen)
    log.close()
    return {"step": step, "train": metrics, "record": record, "val": val, "tokens_seen": tokens_seen,
            "tokens_per_sec": sum(rates) / len(rates) if rates else float("nan")}
