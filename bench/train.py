"""Benchmark `trainer pretrain` against a nanoGPT-style reference loop, in one run, on the same data and batch.

The reference is written here in plain torch as nanoGPT's model.py/train.py do it: GPT-2 blocks (LayerNorm, GELU
MLP, learned positions, SDPA), random windows from an np.memmap, AdamW, clipping. Same layers, width, heads,
vocabulary, context and batch as our config; parameter counts differ a little (SwiGLU vs GELU MLP), so MFU
(model FLOPs per second over peak) is the like-for-like figure, tokens/s the raw one.

Peak FLOP/s for MFU is measured here with a large matmul on the same threads (the achievable peak on this CPU);
the trainer measures the same way at start-up on CPU (train.peak_tflops overrides it).

    .venv/bin/python bench/train.py --configs tiny --steps 20 --threads 1
    .venv/bin/python bench/train.py --configs small --dtypes float32 --steps 8 --threads 1 --ceiling

`--ceiling` adds the matmul+attention-only bound for our shapes and GPT-2's (see gemm_ceiling); `--compile` and
`--compile-peers` run ours and the peers through torch.compile.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # trainer/ from the checkout, whether or not the package is installed

from trainer.config import load_config  # noqa: E402
from trainer.flops import matmul_peak  # noqa: E402
from trainer.pretrain import pretrain  # noqa: E402

SHAKESPEARE = REPO.parent / "shared" / "data" / "text" / "tinyshakespeare.txt"


# -- the nanoGPT-style reference --------------------------------------------------------------------------------------
class RefBlock(nn.Module):
    def __init__(self, d: int, heads: int):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.c_attn, self.c_proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc, self.proj = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(self.ln1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, self.heads, C // self.heads).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).contiguous().view(B, T, C)
        x = x + self.c_proj(y)
        return x + self.proj(F.gelu(self.fc(self.ln2(x))))


class RefGPT(nn.Module):
    def __init__(self, vocab: int, block: int, layers: int, d: int, heads: int):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, d), nn.Embedding(block, d)
        self.blocks = nn.ModuleList(RefBlock(d, heads) for _ in range(layers))
        self.ln_f, self.lm_head = nn.LayerNorm(d), nn.Linear(d, vocab, bias=False)
        self.lm_head.weight = self.wte.weight
        self.apply(lambda m: nn.init.normal_(m.weight, std=0.02) if isinstance(m, nn.Linear | nn.Embedding) else None)
        self.layers, self.d, self.block = layers, d, block

    def forward(self, idx, targets):
        x = self.wte(idx) + self.wpe(torch.arange(idx.size(1), device=idx.device))
        for b in self.blocks:
            x = b(x)
        logits = self.lm_head(self.ln_f(x)).float()
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))

    def flops_per_token(self) -> float:  # same accounting as trainer.model.GPT.flops_per_token
        n = sum(p.numel() for p in self.parameters()) - self.wte.weight.numel() - self.wpe.weight.numel()
        return 6 * (n + self.wte.weight.numel()) + 12 * self.layers * self.d * self.block


def timed_steps(model, opt, loss_of, data: np.ndarray, cfg, dtype: str, steps: int) -> list[float]:
    """nanoGPT's train.py inner loop (random windows, accumulation, clipping); returns seconds per step."""
    m, t = cfg.model, cfg.train
    ctx = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if dtype == "bfloat16" else contextlib.nullcontext
    rng = np.random.default_rng(0)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        for _ in range(t.grad_accum):
            ix = rng.integers(0, len(data) - m.block_size - 1, t.batch_size)
            x = torch.from_numpy(np.stack([data[i:i + m.block_size] for i in ix]).astype(np.int64))
            y = torch.from_numpy(np.stack([data[i + 1:i + 1 + m.block_size] for i in ix]).astype(np.int64))
            with ctx():
                loss = loss_of(x, y)
            (loss / t.grad_accum).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss.item()
        times.append(time.perf_counter() - t0)
    return times


def reference_loop(data: np.ndarray, vocab: int, cfg, dtype: str, steps: int, compile_: bool = False):
    """nanoGPT's train.py inner loop; returns (seconds per step, FLOPs per token, parameter count)."""
    m, t = cfg.model, cfg.train
    torch.manual_seed(0)
    model = RefGPT(vocab, m.block_size, m.n_layer, m.d_model, m.n_head)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    other = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": t.weight_decay}, {"params": other, "weight_decay": 0}],
                            lr=t.lr, betas=(t.beta1, t.beta2))
    run = torch.compile(model) if compile_ else model
    times = timed_steps(model, opt, lambda x, y: run(x, y), data, cfg, dtype, steps)
    return times, model.flops_per_token(), sum(p.numel() for p in model.parameters())


def hf_gpt2_loop(data: np.ndarray, vocab: int, cfg, dtype: str, steps: int, compile_: bool = False):
    """The issue's peer: Hugging Face transformers GPT2LMHeadModel, same width/depth/heads/context, same loop."""
    from transformers import GPT2Config, GPT2LMHeadModel

    m, t = cfg.model, cfg.train
    torch.manual_seed(0)
    conf = GPT2Config(vocab_size=vocab, n_positions=m.block_size, n_embd=m.d_model, n_layer=m.n_layer,
                      n_head=m.n_head, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                      bos_token_id=None, eos_token_id=None)
    conf._attn_implementation = "sdpa"  # the fused attention kernel, as our model uses
    model = GPT2LMHeadModel(conf)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=t.lr, betas=(t.beta1, t.beta2), weight_decay=t.weight_decay)
    run = torch.compile(model) if compile_ else model
    times = timed_steps(model, opt, lambda x, y: run(input_ids=x, labels=x).loss, data, cfg, dtype, steps)
    return times


# -- the matmul-only ceiling -------------------------------------------------------------------------------------------
def _seconds(fn, reps: int) -> float:
    for _ in range(2):
        fn()
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t0) / reps


def gemm_ceiling(per_layer: list[tuple[int, int]], head: tuple[int, int], cfg, dtype: str, reps: int = 10) -> float:
    """Tokens/s of a training step that did nothing but its matmuls and attention kernels, at the step's exact shapes.

    Each (in, out) linear costs its forward GEMM and the two backward ones (input and weight gradients) on
    batch × block rows; each layer's attention costs one SDPA forward + backward. Norms, activations, RoPE, the
    loss, the optimizer and autograd bookkeeping are free here, so no model of these shapes trains faster on
    this CPU: it bounds what any kernel fusion could reach.
    """
    m, t = cfg.model, cfg.train
    dt = torch.bfloat16 if dtype == "bfloat16" else torch.float32
    rows = t.batch_size * m.block_size

    def linear(k_in: int, n_out: int) -> float:
        x, w, g = (torch.randn(r, c, dtype=dt) for r, c in ((rows, k_in), (n_out, k_in), (rows, n_out)))
        return _seconds(lambda: x @ w.t(), reps) + _seconds(lambda: g @ w, reps) + _seconds(lambda: g.t() @ x, reps)

    shape = (t.batch_size, m.n_head, m.block_size, m.d_model // m.n_head)
    q, k, v = (torch.randn(shape, dtype=dt, requires_grad=True) for _ in range(3))
    go = torch.randn(shape, dtype=dt)
    attention = _seconds(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True).backward(go), reps)
    seconds = m.n_layer * (sum(linear(*s) for s in per_layer) + attention) + linear(*head)
    return rows / seconds


def ceilings(cfg, vocab: int, dtype: str) -> tuple[float, float]:
    """Matmul-only ceilings for our model's shapes and for GPT-2's (4·d GELU MLP) at the same config."""
    d = cfg.model.d_model
    gpt = cfg.gpt_config(vocab)
    up = (2 if gpt.mlp == "swiglu" else 1) * gpt.hidden
    ours = [(d, 3 * d), (d, d), (d, up), (gpt.hidden, d)]
    gpt2 = [(d, 3 * d), (d, d), (d, 4 * d), (4 * d, d)]
    return gemm_ceiling(ours, (d, vocab), cfg, dtype), gemm_ceiling(gpt2, (d, vocab), cfg, dtype)


# -- helpers ----------------------------------------------------------------------------------------------------------
def make_data(root: Path) -> Path:
    from corpus.tokenize.tokenizer import train_tokenizer
    from trainer.data import write_shards_from_texts

    if SHAKESPEARE.exists():
        text = SHAKESPEARE.read_text()
        docs = [p for p in text.split("\n\n") if p.strip()]
    else:  # a synthetic stand-in keeps the bench runnable; speed does not depend on the text
        rng = np.random.default_rng(0)
        words = ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "far", "away", "home"]
        docs = [" ".join(rng.choice(words, 200)) + "." for _ in range(3000)]
        text = "\n".join(docs)
    (root / "sample.txt").write_text("\n".join(line for line in text.split("\n") if line.strip()))
    model = train_tokenizer(root / "sample.txt", root / "tok", 1024)
    write_shards_from_texts(docs, root / "tokens", model, shard_tokens=200_000, val_fraction=0.05)
    return root / "tokens"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", default="tiny", help="comma-separated names under conf/train/ (tiny, small)")
    ap.add_argument("--dtypes", default="float32,bfloat16")
    ap.add_argument("--steps", type=int, default=20, help="optimizer steps per measurement (first 3 not timed)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="config override for all runs")
    ap.add_argument("--compile", action="store_true", help="torch.compile our model (the peers stay eager)")
    ap.add_argument("--compile-peers", action="store_true", help="torch.compile the two peers as well")
    ap.add_argument("--ceiling", action="store_true",
                    help="also time each config's matmuls and attention alone: the fastest any fusion could go")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    load_before = os.getloadavg()[0]
    torch_dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16}
    # The peak is measured before and after each block of runs and the higher one kept: on a shared VM the cores'
    # capacity drifts, and one low reading at start-up would put MFU above 100 %.
    peaks = {dt: matmul_peak(torch_dtypes[dt], reps=8) for dt in args.dtypes.split(",")}
    print(f"threads {threads}, load average {load_before:.2f}; CPU {torch.backends.cpu.get_cpu_capability()}, "
          "matmul peak " + ", ".join(f"{dt} {v / 1e9:.1f} GFLOP/s" for dt, v in peaks.items()))

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = make_data(Path(tmp))
        train_tokens = np.concatenate([np.asarray(np.memmap(p, dtype=np.uint16, mode="r", offset=1024))
                                       for p in sorted(data_dir.glob("train_*.bin"))])
        vocab = 64 * math.ceil(json.loads((data_dir / "manifest.json").read_text())["tokenizer"]["vocab_size"] / 64)
        for name in args.configs.split(","):
            for dtype in args.dtypes.split(","):
                sets = [*args.overrides, f"train.dtype={dtype}", f"train.max_steps={args.steps}",
                        "train.eval_batches=1", f"train.eval_interval={args.steps}", "train.log_interval=1",
                        f"train.ckpt_interval={args.steps}", "train.tensorboard=false", f"train.threads={threads}",
                        f"train.compile={str(args.compile).lower()}", "train.device=cpu"]
                cfg = load_config(REPO / "conf" / "train" / f"{name}.yaml", sets)
                tokens_per_step = cfg.train.batch_size * cfg.model.block_size * cfg.train.grad_accum
                ref_times, ref_fpt, ref_params = reference_loop(train_tokens, vocab, cfg, dtype, args.steps,
                                                                args.compile_peers)
                hf_times = hf_gpt2_loop(train_tokens, vocab, cfg, dtype, args.steps, args.compile_peers)
                out = Path(tmp) / f"run-{name}-{dtype}"
                pretrain(cfg, data_dir, out, quiet=True)
                recs = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
                ours_times = [r["dt_ms"] / 1000 for r in recs if r["kind"] == "train"]
                from trainer.model import GPT

                model = GPT(cfg.gpt_config(vocab))
                peaks[dtype] = max(peaks[dtype], matmul_peak(torch_dtypes[dtype], reps=8))
                ours_rate = tokens_per_step / statistics.median(ours_times[3:])
                ref_rate = tokens_per_step / statistics.median(ref_times[3:])
                hf_rate = tokens_per_step / statistics.median(hf_times[3:])
                rows.append({
                    "config": name, "dtype": dtype, "peak_gflops": peaks[dtype] / 1e9,
                    "params_ours": model.num_params(), "params_ref": ref_params,
                    "tokens_per_step": tokens_per_step, "ours_tok_s": ours_rate, "ref_tok_s": ref_rate,
                    "ratio": ours_rate / ref_rate, "hf_tok_s": hf_rate, "hf_ratio": ours_rate / hf_rate,
                    "ours_mfu": ours_rate * model.flops_per_token() / peaks[dtype],
                    "ref_mfu": ref_rate * ref_fpt / peaks[dtype],
                })
                if args.ceiling:
                    ours_cap, gpt2_cap = ceilings(cfg, vocab, dtype)
                    rows[-1].update(ceiling_ours=ours_cap, ceiling_gpt2=gpt2_cap)
                    print(f"{name:>5} {dtype:>8} | matmul+attention-only ceiling: ours {ours_cap:,.0f} tok/s "
                          f"(MFU {100 * ours_cap * model.flops_per_token() / peaks[dtype]:.1f}%, "
                          f"{ours_cap / hf_rate:.2f}x HF measured), GPT-2 shapes {gpt2_cap:,.0f} tok/s", flush=True)
                r = rows[-1]
                print(f"{name:>5} {dtype:>8} | ours {r['ours_tok_s']:>9,.0f} tok/s mfu {100 * r['ours_mfu']:5.1f}% "
                      f"({r['params_ours'] / 1e6:.2f}M) | ref {r['ref_tok_s']:>9,.0f} tok/s mfu "
                      f"{100 * r['ref_mfu']:5.1f}% ({r['params_ref'] / 1e6:.2f}M) | ours/ref {r['ratio']:.2f} | "
                      f"HF GPT-2 {r['hf_tok_s']:>9,.0f} tok/s, ours/HF {r['hf_ratio']:.2f}",
                      flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print("\n| config | dtype | ours tok/s | ours MFU | nanoGPT-style tok/s | ref MFU | ours/ref | HF GPT-2 tok/s |"
          " ours/HF |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['config']} | {r['dtype']} | {r['ours_tok_s']:,.0f} | {100 * r['ours_mfu']:.1f}% | "
              f"{r['ref_tok_s']:,.0f} | {100 * r['ref_mfu']:.1f}% | {r['ratio']:.2f} | {r['hf_tok_s']:,.0f} | "
              f"{r['hf_ratio']:.2f} |")
    for cfg_name in sorted({r["config"] for r in rows}):
        by = {r["dtype"]: r for r in rows if r["config"] == cfg_name}
        if "float32" in by and "bfloat16" in by:
            ours = by["bfloat16"]["ours_tok_s"] / by["float32"]["ours_tok_s"]
            ref = by["bfloat16"]["ref_tok_s"] / by["float32"]["ref_tok_s"]
            print(f"{cfg_name}: bf16/fp32 tokens/s, ours {ours:.2f}, reference {ref:.2f}")


if __name__ == "__main__":
    main()
