"""The one training loop of every run — pretraining, SFT, reward, DPO and PPO — and the run folder around it.

A run hands the loop a `Task`: its optimizer, its learning-rate schedule, and a step function that does one
optimizer step's work (pretraining: the micro-batches of gradient accumulation, clipping and `opt.step()`; PPO:
a rollout and then several optimizer updates over it) and returns its metrics and the tokens it trained on. The
loop owns what every run shares: setting the learning rate, timing, tokens/s, the finite-loss check, logging,
evaluation and checkpoint intervals. Resuming is exact because the loop itself draws no random numbers and
everything a step consumes (data cursor, RNG states, optimizer) is in the checkpoint the task writes.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
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


@dataclass
class Task:
    """What a run gives the loop.

    `step()` does one step's work at the learning rate the loop has set and returns (metrics, tokens trained on);
    `checkpoint(step, tokens_seen)` saves; `evaluate()` returns val metrics, or is None. `describe(record)` is the
    console line of a train record, `describe_val(step, metrics)` that of an evaluation; `rate_metrics(tokens/s)`
    adds metrics derived from the speed (MFU). `finite` names the metrics that must stay finite.
    """

    opt: torch.optim.Optimizer
    lr: Callable[[int], float]
    step: Callable[[], tuple[dict[str, float], int]]
    checkpoint: Callable[[int, int], None]
    evaluate: Callable[[], dict[str, float]] | None = None
    describe: Callable[[dict], str] | None = None
    describe_val: Callable[[int, dict], str] | None = None
    rate_metrics: Callable[[float], dict[str, float]] | None = None
    finite: tuple[str, ...] = ("loss",)


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
        metrics, tokens = task.step()
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
