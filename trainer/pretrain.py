"""`trainer pretrain`: stream token shards into a GPT with AdamW, cosine lr, clipping, accumulation, autocast, DDP.

Run folder layout: `run_config.json` (the config as run), `tokenizer.model`, `metrics.jsonl`, `tb/` (TensorBoard),
`ckpt/step_NNNNNNN/` (see trainer/checkpoint.py). Under torchrun, rank 0 logs and writes checkpoints.
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from corpus.tokenize.shards import TokenDataset, sha256_file
from trainer.checkpoint import (
    CheckpointError,
    latest_checkpoint,
    load_training_state,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from trainer.config import Config, TrainConf, TrainConfigError
from trainer.data import ShardStream, check_tokenizer
from trainer.model import GPT
from trainer.precision import autocast as precision_autocast
from trainer.precision import resolve_dtype

# bf16 dense peaks per GPU (TF32 is half of it); MFU needs some peak and these are the published figures.
GPU_PEAK_BF16 = {"H100": 989e12, "A100": 312e12, "L40": 181e12, "L4": 121e12, "A10": 125e12, "4090": 165e12,
                 "3090": 71e12, "V100": 125e12, "T4": 65e12}


@dataclass
class Dist:
    rank: int = 0
    local_rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device_type: str) -> Dist:
    if "RANK" not in os.environ or int(os.environ.get("WORLD_SIZE", "1")) == 1:
        return Dist()
    d = Dist(int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", 0)), int(os.environ["WORLD_SIZE"]))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    return d


def shutdown_distributed(finished: bool = True) -> None:
    """Tear the process group down while the interpreter is fully alive.

    The DDP wrapper sits in reference cycles, so its reducer (and the gloo work objects holding tensors) would
    otherwise outlive destroy_process_group and be freed during interpreter finalization, which can abort the
    process ("terminate called without an active exception") after all work is saved. Collecting first frees them
    while the group still exists; the closing barrier keeps one rank from closing its sockets while the other still
    has a collective in flight. After a failure there is no barrier: the other ranks may never reach it.
    """
    if not dist.is_initialized():
        return
    gc.collect()
    if finished:
        dist.barrier()
    dist.destroy_process_group()


def pick_device(conf: TrainConf, d: Dist) -> torch.device:
    if conf.device == "cuda" or (conf.device == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise TrainConfigError("train.device=cuda but no CUDA device is available")
        torch.cuda.set_device(d.local_rank)
        return torch.device("cuda", d.local_rank)
    return torch.device("cpu")


def lr_at(step: int, conf: TrainConf) -> float:
    """Learning rate for the optimizer step taken after `step` completed steps: linear warmup, then cosine."""
    decay = conf.lr_decay_steps or conf.max_steps
    if step < conf.warmup_steps:
        return conf.lr * (step + 1) / conf.warmup_steps
    if step >= decay:
        return conf.min_lr
    ratio = (step - conf.warmup_steps) / max(1, decay - conf.warmup_steps)
    return conf.min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (conf.lr - conf.min_lr)


def matmul_peak(dtype: torch.dtype, n: int = 1024, reps: int = 4) -> float:
    """Best FLOP/s of an n×n CPU matmul on the current threads: the achievable peak of this CPU for that dtype."""
    gen = torch.Generator().manual_seed(0)  # a private generator: the run's RNG stream must not move
    a, b = (torch.randn(n, n, generator=gen).to(dtype) for _ in range(2))
    a @ b  # first call pays for packing buffers and thread start-up
    best = 0.0
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ b
        best = max(best, 2 * n**3 / (time.perf_counter() - t0))
    return best


def peak_flops(device: torch.device, conf: TrainConf, world: int, dtype: str) -> tuple[float, str]:
    """Peak FLOP/s of the hardware this run uses, and where the figure comes from.

    GPUs: datasheet dense bf16 (TF32 = half). CPUs publish no usable figure (clock and SIMD width vary by
    SKU and VM), so the peak is measured with a matmul at start-up; MFU on CPU is relative to that.
    """
    if conf.peak_tflops:
        return conf.peak_tflops * 1e12 * world, "train.peak_tflops"
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        peak = next((v for k, v in GPU_PEAK_BF16.items() if k in name), 312e12)
        return (peak if dtype == "bfloat16" else peak / 2) * world, f"{name} datasheet"
    per_process = matmul_peak(torch.bfloat16 if dtype == "bfloat16" else torch.float32)
    return per_process * world, f"measured {dtype} matmul, {torch.get_num_threads()} thread(s) × {world}"


class Logger:
    """Console + metrics.jsonl + TensorBoard (when installed); a no-op off rank 0."""

    def __init__(self, out: Path, enabled: bool, tensorboard: bool, resume_step: int, quiet: bool = False):
        self.enabled, self.quiet, self.tb = enabled, quiet, None
        if not enabled:
            return
        self.path = out / "metrics.jsonl"
        if self.path.exists():
            # Lines after the checkpoint belong to steps that will be redone: drop them so the log stays one run.
            kept = [ln for ln in self.path.read_text().splitlines() if ln and json.loads(ln)["step"] <= resume_step]
            self.path.write_text("".join(ln + "\n" for ln in kept))
        self.file = open(self.path, "a")
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(out / "tb"))
            except ImportError:
                self.print("note: tensorboard is not installed; logging to console and metrics.jsonl only")

    def print(self, msg: str) -> None:
        if self.enabled and not self.quiet:
            print(msg, flush=True)

    def log(self, record: dict) -> None:
        if not self.enabled:
            return
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        if self.tb is not None:
            for key, value in record.items():
                if key not in ("step", "kind") and isinstance(value, int | float):
                    self.tb.add_scalar(f"{record['kind']}/{key}", value, record["step"])

    def close(self) -> None:
        if self.enabled:
            self.file.close()
            if self.tb is not None:
                self.tb.close()


@torch.no_grad()
def evaluate(model, stream: ShardStream, batches: int, device, autocast, d: Dist) -> float:
    model.eval()
    stream.reset()  # the same val batches every time, so val losses are comparable across steps
    total = torch.zeros((), device=device, dtype=torch.float64)
    for _ in range(batches):
        x, y = stream.next_batch(device)
        with autocast():
            _, loss = model(x, y)
        total += loss.double()
    if d.world > 1:
        dist.all_reduce(total)
    model.train()
    return (total / (batches * d.world)).item()


def pretrain(config: Config, data: str | Path, out: str | Path, resume: bool = False, quiet: bool = False) -> dict:
    conf = config.train
    out = Path(out)
    device_type = "cuda" if conf.device == "cuda" or (conf.device == "auto" and torch.cuda.is_available()) else "cpu"
    d = setup_distributed(device_type)
    device = pick_device(conf, d)

    ds = TokenDataset(data)
    tokenizer = check_tokenizer(ds)
    manifest_vocab = int(ds.manifest["tokenizer"]["vocab_size"])
    vocab = config.model.vocab_size or 64 * math.ceil(manifest_vocab / 64)
    if vocab < manifest_vocab:
        raise TrainConfigError(f"model.vocab_size={vocab} is smaller than the tokenizer's vocabulary "
                               f"({manifest_vocab})")
    cfg = config.gpt_config(vocab)

    start_ckpt = None
    if out.exists() and latest_checkpoint(out) is not None:
        if not resume:
            raise CheckpointError(f"{out} already holds checkpoints: pass --resume to continue, or use a new --out")
        start_ckpt = latest_checkpoint(out)
    if d.main:
        out.mkdir(parents=True, exist_ok=True)
    # A fresh start (including --resume before any checkpoint was written) drops an earlier attempt's log lines.
    log = Logger(out, d.main, conf.tensorboard, -1 if start_ckpt is None else _step_of(start_ckpt), quiet)
    if resume and start_ckpt is None:
        log.print(f"no checkpoint in {out}: starting from step 0")
    dtype, warning = resolve_dtype(conf.dtype, device)
    if warning:
        log.print(warning)

    if conf.threads:
        torch.set_num_threads(conf.threads)
    torch.manual_seed(conf.seed + d.rank)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    model = GPT(cfg).to(device)
    opt = model.configure_optimizer(conf.lr, conf.weight_decay, (conf.beta1, conf.beta2), device.type)
    stream_args = dict(block_size=cfg.block_size, batch_size=conf.batch_size, rank=d.rank, world_size=d.world,
                       verify_checksums=conf.verify_checksums, vocab_size=vocab)
    train = ShardStream(ds, "train", seed=conf.seed, shuffle=True, **stream_args)
    val = ShardStream(ds, "val", seed=conf.seed, shuffle=False, **stream_args) if ds.split("val") else None
    manifest_sha = sha256_file(ds.manifest_path)

    step, tokens_seen = 0, 0
    if start_ckpt is not None:
        state = load_training_state(start_ckpt, model, opt)
        if state.get("manifest_sha256") != manifest_sha:
            raise CheckpointError(f"{start_ckpt} was trained on a different manifest than {ds.manifest_path}")
        step, tokens_seen = state["step"], state["tokens_seen"]
        try:
            train.load_state_dict(state["data"])
        except ValueError as e:
            raise CheckpointError(f"{start_ckpt}: {e}") from None
        rngs = state["rng"]
        set_rng_state(rngs[d.rank] if d.rank < len(rngs) else rngs[0])  # more ranks than saved: rank 0's
        log.print(f"resumed from {start_ckpt} at step {step}")

    if d.main:
        resolved = {**config.model_dump(), "resolved_model": cfg.to_dict(), "resolved_dtype": dtype}
        (out / "run_config.json").write_text(json.dumps(resolved, indent=1))
        if not (out / "tokenizer.model").exists():
            (out / "tokenizer.model").write_bytes(tokenizer.read_bytes())

    raw = model
    if conf.compile:
        model = torch.compile(model)
    if d.world > 1:
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[d.local_rank] if device.type == "cuda"
                                                          else None)

    def autocast():
        return precision_autocast(dtype, device)

    tokens_per_step = conf.batch_size * cfg.block_size * conf.grad_accum * d.world
    peak, peak_source = peak_flops(device, conf, d.world, dtype)
    flops_per_token = raw.flops_per_token()
    log.print(f"model {raw.num_params() / 1e6:.2f}M params ({raw.num_params(True) / 1e6:.2f}M non-embedding), "
              f"vocab {vocab}, {tokens_per_step:,} tokens/step on {d.world}× {device.type} {dtype}; "
              f"peak for MFU: {peak / 1e12:.2f} TFLOP/s ({peak_source})")

    def run_eval() -> float | None:
        if val is None:
            return None
        loss = evaluate(model, val, conf.eval_batches, device, autocast, d)
        log.log({"kind": "val", "step": step, "val_loss": loss})
        log.print(f"step {step:>6} | val loss {loss:.4f}")
        return loss

    def checkpoint() -> None:
        rngs = [rng_state()]
        if d.world > 1:  # every rank's generators, so dropout masks also resume exactly under DDP
            rngs = [None] * d.world
            dist.all_gather_object(rngs, rng_state())
        if d.main:
            state = {"tokens_seen": tokens_seen, "data": train.state_dict(), "rng": rngs,
                     "config": config.model_dump(), "manifest_sha256": manifest_sha, "world_size": d.world}
            path = save_checkpoint(out, step, raw, opt, state, tokenizer, conf.keep_last)
            log.print(f"step {step:>6} | checkpoint {path}")
        if d.world > 1:
            dist.barrier()

    val_loss = run_eval() if step == 0 else None
    model.train()
    rates: list[float] = []
    loss_value = float("nan")
    while step < conf.max_steps:
        t0 = time.perf_counter()
        lr = lr_at(step, conf)
        for group in opt.param_groups:
            group["lr"] = lr
        loss_sum = torch.zeros((), device=device)
        for micro in range(conf.grad_accum):
            x, y = train.next_batch(device)
            # Only the last micro-step all-reduces gradients under DDP.
            sync = micro == conf.grad_accum - 1 or d.world == 1
            with (contextlib.nullcontext() if sync else model.no_sync()), autocast():
                _, loss = model(x, y)
            (loss / conf.grad_accum).backward()
            loss_sum += loss.detach()
        grad_norm = torch.nn.utils.clip_grad_norm_(raw.parameters(), conf.grad_clip if conf.grad_clip > 0 else 1e30)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if d.world > 1:
            dist.all_reduce(loss_sum)
        loss_value = loss_sum.item() / (conf.grad_accum * d.world)  # .item() also waits for the device
        dt = time.perf_counter() - t0
        step += 1
        tokens_seen += tokens_per_step
        if not math.isfinite(loss_value):
            raise FloatingPointError(f"loss is {loss_value} at step {step}; lower train.lr or check the data")
        rate = tokens_per_step / dt
        if step > 1:  # the first step pays for allocation, compilation and page faults
            rates.append(rate)
        mfu = rate * flops_per_token / peak
        if step % conf.log_interval == 0 or step == conf.max_steps:
            log.log({"kind": "train", "step": step, "loss": loss_value, "lr": lr, "grad_norm": float(grad_norm),
                     "tokens": tokens_seen, "tokens_per_sec": rate, "mfu": mfu, "dt_ms": dt * 1000})
            log.print(f"step {step:>6}/{conf.max_steps} | loss {loss_value:.4f} | lr {lr:.2e} | "
                      f"norm {float(grad_norm):.2f} | {rate:,.0f} tok/s | mfu {100 * mfu:.2f}% | {dt * 1000:.0f} ms")
        if step % conf.eval_interval == 0 or step == conf.max_steps:
            val_loss = run_eval()
        if step % conf.ckpt_interval == 0 or step == conf.max_steps:
            checkpoint()

    log.close()
    mean_rate = sum(rates) / len(rates) if rates else float("nan")
    return {"step": step, "train_loss": loss_value, "val_loss": val_loss, "tokens_seen": tokens_seen,
            "tokens_per_sec": mean_rate, "mfu": mean_rate * flops_per_token / peak, "out": str(out)}


def _step_of(ckpt: Path) -> int:
    return int(ckpt.name.split("_")[1])
