"""`trainer pretrain`: stream token shards into a GPT with AdamW, cosine lr, clipping, accumulation, autocast, DDP.

The glue of one pretraining run, in the order nanoGPT's train.py reads: processes and device, data, model,
optimizer, resume, then the step function handed to the one training loop (trainer/loop.py).

Run folder layout: `run_config.json` (the config as run), `tokenizer.model`, `metrics.jsonl`, `tb/` (TensorBoard),
`ckpt/step_NNNNNNN/` (see trainer/checkpoint.py). Under torchrun, rank 0 logs and writes checkpoints.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import torch
import torch.distributed as dist

from corpus.tokenize.shards import TokenDataset, sha256_file
from trainer import loop
from trainer.checkpoint import (
    CheckpointError,
    read_model_config,
    restore,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from trainer.config import Config, DistillConf, TrainConfigError
from trainer.data import ShardStream, check_tokenizer
from trainer.distill import distill_loss
from trainer.distributed import Dist, pick_device, setup_distributed, wants_cuda
from trainer.flops import peak_flops
from trainer.hf import load_init
from trainer.model import GPT
from trainer.optim import lr_at, make_optimizer
from trainer.precision import autocast as precision_autocast
from trainer.precision import resolve_dtype


def load_model_for_shards(option: str, path: str | Path, tokenizer: Path, manifest_vocab: int):
    """(model, provenance) of a model a run reads (--init-from, distillation's --teacher), after checking the shards
    were encoded with its tokenizer (sha256): ids of another vocabulary would train silently on garbage."""
    model, model_tok, info = load_init(path)
    if model_tok is None:
        raise TrainConfigError(f"{option} {path}: no tokenizer.model beside the weights, so the shards' "
                               "tokenizer cannot be checked against the model's; put the model's sentencepiece "
                               "tokenizer.model in that folder (and tokenize the corpus with it)")
    if sha256_file(model_tok) != sha256_file(tokenizer):
        raise TrainConfigError(f"{option} {path}: its tokenizer.model differs from the one the shards were "
                               f"encoded with ({tokenizer}); tokenize the corpus with the model's tokenizer "
                               f"(corpus tokens --set tokenize.tokenizer={model_tok})")
    if model.cfg.vocab_size < manifest_vocab:
        raise TrainConfigError(f"{option} {path}: its vocabulary ({model.cfg.vocab_size}) is smaller "
                               f"than the shards' ({manifest_vocab})")
    return model, info


def load_teacher(path: str | Path, tokenizer: Path, manifest_vocab: int, block_size: int):
    """(teacher, provenance) for distillation: any model --init-from takes, on the shards' tokenizer."""
    teacher, info = load_model_for_shards("--teacher", path, tokenizer, manifest_vocab)
    if teacher.cfg.block_size < block_size:
        raise TrainConfigError(f"--teacher {path}: its block_size ({teacher.cfg.block_size}) is shorter than the "
                               f"student's ({block_size}); set model.block_size <= {teacher.cfg.block_size}")
    return teacher, info


def starting_model(init_from: str | Path, tokenizer: Path, manifest_vocab: int, config: Config):
    """(model, its GPTConfig, provenance) of --init-from, after checking the shards were encoded with its
    tokenizer: continued pretraining on ids of another vocabulary would train silently on garbage."""
    init_model, info = load_model_for_shards("--init-from", init_from, tokenizer, manifest_vocab)
    # the architecture is the checkpoint's; dropout is a training choice and stays the config's
    cfg = dataclasses.replace(init_model.cfg, dropout=config.model.dropout)
    return init_model, cfg, info


@torch.no_grad()
def evaluate(model, stream: ShardStream, batches: int, device, autocast, d: Dist) -> float:
    model.eval()
    stream.reset()  # the same val batches every time, so val losses are comparable across steps
    total = torch.zeros((), device=device, dtype=torch.float64)
    for _ in range(batches):
        x, y = stream.next_batch(device)
        with autocast():
            _, loss = model(x, y, return_logits=False)
        total += loss.double()
    if d.world > 1:
        dist.all_reduce(total)
    model.train()
    return (total / (batches * d.world)).item()


def pretrain(config: Config, data: str | Path, out: str | Path, resume: bool = False, quiet: bool = False,
             init_from: str | Path | None = None, teacher_from: str | Path | None = None) -> dict:
    """Pretrain (or, with `teacher_from`, distill: trainer/distill.py) a GPT on the token shards at `data`."""
    conf = config.train
    out = Path(out)
    d = setup_distributed("cuda" if wants_cuda(conf.device) else "cpu")
    device = pick_device(conf.device, d.local_rank)

    # data and the model's vocabulary
    ds = TokenDataset(data)
    tokenizer = check_tokenizer(ds)
    manifest_vocab = int(ds.manifest["tokenizer"]["vocab_size"])
    vocab = config.model.vocab_size or 64 * math.ceil(manifest_vocab / 64)
    if vocab < manifest_vocab:
        raise TrainConfigError(f"model.vocab_size={vocab} is smaller than the tokenizer's vocabulary "
                               f"({manifest_vocab})")
    cfg = config.gpt_config(vocab)
    init_model, init_info = None, None
    if init_from is not None:
        init_model, cfg, init_info = starting_model(init_from, tokenizer, manifest_vocab, config)
    teacher, teacher_info = None, None
    if teacher_from is not None:
        teacher, teacher_info = load_teacher(teacher_from, tokenizer, manifest_vocab, cfg.block_size)

    start_ckpt, log = loop.start_run(out, resume, d.main, conf.tensorboard, quiet)
    dtype, warning = resolve_dtype(conf.dtype, device)
    if warning:
        log.print(warning)

    # model and optimizer
    if conf.threads:
        torch.set_num_threads(conf.threads)
    torch.manual_seed(conf.seed + d.rank)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    model = GPT(cfg)
    if init_model is not None and start_ckpt is None:
        model.load_state_dict(init_model.state_dict())
        log.print(f"initialized from {init_info['path']} ({init_info['format']}): the config's model section "
                  "is not used")
    del init_model
    model = model.to(device)
    if teacher is not None:
        teacher = teacher.to(device).eval().requires_grad_(False)
    opt = make_optimizer(model, conf, device)
    stream_args = dict(block_size=cfg.block_size, batch_size=conf.batch_size, rank=d.rank, world_size=d.world,
                       verify_checksums=conf.verify_checksums, vocab_size=vocab)
    train = ShardStream(ds, "train", seed=conf.seed, shuffle=True, **stream_args)
    val = ShardStream(ds, "val", seed=conf.seed, shuffle=False, **stream_args) if ds.split("val") else None
    manifest_sha = sha256_file(ds.manifest_path)

    # resume: weights, optimizer, data cursor and every rank's RNG states
    step, tokens_seen = 0, 0
    if start_ckpt is not None:
        if read_model_config(start_ckpt) != cfg:
            hint = "" if init_from is not None else " (was the run started with --init-from? pass it again)"
            raise CheckpointError(f"{start_ckpt} holds another model than this run would build: "
                                  f"{read_model_config(start_ckpt)} vs {cfg}{hint}")
        state = restore(start_ckpt, model, opt)
        if state.get("manifest_sha256") != manifest_sha:
            raise CheckpointError(f"{start_ckpt} was trained on a different manifest than {ds.manifest_path}")
        if state.get("teacher") != teacher_info:
            raise CheckpointError(f"{start_ckpt} was trained with teacher {state.get('teacher')}, this run with "
                                  f"{teacher_info}; pass the same --teacher (or none) to resume")
        step, tokens_seen = state["step"], state["tokens_seen"]
        try:
            train.load_state_dict(state["data"])
        except ValueError as e:
            raise CheckpointError(f"{start_ckpt}: {e}") from None
        rngs = state["rng"]
        set_rng_state(rngs[d.rank] if d.rank < len(rngs) else rngs[0])  # more ranks than saved: rank 0's
        log.print(f"resumed from {start_ckpt} at step {step}")
    if d.main:
        loop.write_run_files(out, {**config.model_dump(), "resolved_model": cfg.to_dict(), "resolved_dtype": dtype,
                                   **({"init_from": init_info} if init_info else {}),
                                   **({"teacher": teacher_info} if teacher_info else {})}, tokenizer)

    raw = model
    if conf.compile:
        model = torch.compile(model)
    if d.world > 1:
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[d.local_rank] if device.type == "cuda"
                                                          else None)

    def autocast():
        return precision_autocast(dtype, device)

    tokens_per_step = conf.batch_size * cfg.block_size * conf.grad_accum * d.world
    peak = peak_flops(device, conf, d.world, dtype)
    flops_per_token = raw.flops_per_token()
    log.print(f"model {raw.num_params() / 1e6:.2f}M params ({raw.num_params(True) / 1e6:.2f}M non-embedding), "
              f"vocab {vocab}, {tokens_per_step:,} tokens/step on {d.world}× {device.type} {dtype}; "
              f"peak for MFU: {peak.describe()}")

    def rate_metrics(rate: float) -> dict[str, float]:
        out = {"mfu": rate * flops_per_token / peak.value}
        if peak.datasheet is not None and peak.measured is not None:  # a GPU: MFU against both figures
            out["mfu_measured"] = rate * flops_per_token / peak.measured
        return out

    tokens_per_micro = conf.batch_size * cfg.block_size * d.world
    dconf = config.distill or DistillConf()

    def forward() -> tuple[torch.Tensor, dict, int]:
        """One micro-batch's loss: the next-token cross-entropy, or distillation's mix of it with the KL to the
        teacher. The training loss of every pretraining run is formed here."""
        x, y = train.next_batch(device)
        if teacher is None:
            _, loss = model(x, y, return_logits=False)
            return loss, {}, tokens_per_micro
        logits, ce = model(x, y)
        with torch.inference_mode():  # under train_step's autocast, as the student
            teacher_logits = teacher.lm_head(teacher.hidden(x)).float()
        # a normal tensor again: the KL's backward keeps the teacher's probabilities, which an inference tensor
        # may not be; the vocabulary is the tokenizer's (padding rows of either model are no tokens)
        loss, kl = distill_loss(logits[..., :manifest_vocab], teacher_logits[..., :manifest_vocab].clone(), y, ce,
                                dconf.alpha, dconf.temperature)
        return loss, {"ce": ce.detach(), "kl": kl.detach()}, tokens_per_micro

    def reduce(sums: dict[str, torch.Tensor]) -> None:
        for value in sums.values():  # the metrics of every rank, averaged
            dist.all_reduce(value)
            value /= d.world

    def run_eval() -> dict[str, float]:
        return {"val_loss": evaluate(model, val, conf.eval_batches, device, autocast, d)}

    def checkpoint(step: int, tokens_seen: int) -> None:
        rngs = [rng_state()]
        if d.world > 1:  # every rank's generators, so dropout masks also resume exactly under DDP
            rngs = [None] * d.world
            dist.all_gather_object(rngs, rng_state())
        if d.main:
            state = {"tokens_seen": tokens_seen, "data": train.state_dict(), "rng": rngs, "teacher": teacher_info,
                     "config": config.model_dump(), "manifest_sha256": manifest_sha, "world_size": d.world}
            path = save_checkpoint(out, step, raw, opt, state, tokenizer, conf.keep_last)
            log.print(f"step {step:>6} | checkpoint {path}")
        if d.world > 1:
            dist.barrier()

    def describe(r: dict) -> str:
        kd = f" (ce {r['ce']:.4f}, kl {r['kl']:.4f})" if "kl" in r else ""
        return (f"step {r['step']:>6}/{conf.max_steps} | loss {r['loss']:.4f}{kd} | lr {r['lr']:.2e} | "
                f"norm {r['grad_norm']:.2f} | {r['tokens_per_sec']:,.0f} tok/s | mfu {100 * r['mfu']:.2f}%"
                + (f" ({100 * r['mfu_measured']:.2f}% of measured)" if "mfu_measured" in r else "")
                + f" | {r['dt_ms']:.0f} ms")

    model.train()
    task = loop.Task(opt=opt, lr=lambda s: lr_at(s, conf), forward=forward, params=list(raw.parameters()),
                     aux_loss=loop.model_aux(raw), grad_accum=conf.grad_accum, grad_clip=conf.grad_clip,
                     autocast=autocast,
                     no_sync=model.no_sync if d.world > 1 else None, reduce=reduce if d.world > 1 else None,
                     checkpoint=checkpoint, evaluate=run_eval if val is not None else None, describe=describe,
                     describe_val=lambda s, m: f"step {s:>6} | val loss {m['val_loss']:.4f}",
                     rate_metrics=rate_metrics)
    summary = loop.run(task, conf, log, step, tokens_seen)
    mean_rate = summary["tokens_per_sec"]
    return {"step": summary["step"], "train_loss": summary["train"].get("loss", float("nan")),
            "val_loss": summary["val"]["val_loss"] if summary["val"] else None, "tokens_seen": summary["tokens_seen"],
            "tokens_per_sec": mean_rate, **rate_metrics(mean_rate), "peak_flops": peak.value,
            "peak_flops_measured": peak.measured, "out": str(out)}
