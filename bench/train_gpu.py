"""GPT-2-124M training steps on one GPU, in one run: ours compiled, ours eager, a nanoGPT-style reference and
Hugging Face's GPT2LMHeadModel, all at the same shape (12 layers, d 768, 12 heads, T 1024, vocabulary 50,304),
the same micro-batch of random tokens on the device, bf16 autocast, fused AdamW and gradient clipping.

Reported per model: tokens/s, MFU against the measured bf16 matmul peak of this GPU and against its datasheet
(trainer/flops.py), peak memory, and the ratio to the nanoGPT-style reference. `ours-logits` is ours eager through
the unfused loss (full float32 logits) — the chunked linear + cross-entropy lever, measured beside the default.
The reference model is bench/train.py's RefGPT (LayerNorm, GELU, learned positions, SDPA). Each model runs in
its own process, so compile caches and the allocator's peak never leak from one to the next.

    python bench/train_gpu.py                                   # CUDA, micro-batch 16 and 32
    python bench/train_gpu.py --batch 16 --models ours-compiled,nanogpt-compiled
    python bench/train_gpu.py --device cpu --tiny --models ours-eager,ours-logits,nanogpt-eager,hf-eager

On CPU memory is the process's peak resident set above its size before the model was built (a compiled model's
includes the compiler's own); `--tiny` takes a
2-layer d-64 shape with T 64 and vocabulary 2,048 so that the whole comparison runs in seconds, `--shape small`
conf/train/small.yaml's model with an 8k vocabulary.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # trainer/ and bench/ from the checkout

from bench.train import RefGPT  # noqa: E402
from trainer.flops import datasheet_peak, matmul_peak  # noqa: E402
from trainer.model import GPT, GPTConfig  # noqa: E402

MODELS = ("ours-compiled", "ours-eager", "ours-logits", "nanogpt-compiled", "nanogpt-eager", "hf-compiled", "hf-eager")
SHAPES = {
    "gpt2": dict(vocab=50304, block=1024, layers=12, d=768, heads=12),
    # conf/train/small.yaml's model (qk_norm on) with an 8k vocabulary: the CPU figures of BENCHMARKS.md
    "small": dict(vocab=8192, block=256, layers=6, d=384, heads=6, qk_norm=True),
    "tiny": dict(vocab=2048, block=64, layers=2, d=64, heads=2),
    # GPT-2's vocabulary on a CPU-sized trunk: the loss dominates memory, as at GPT-2-124M on a GPU
    "wide-vocab": dict(vocab=50304, block=256, layers=2, d=256, heads=4),
}


def matmul_flops_per_token(model: nn.Module, vocab: int, d: int, layers: int, block: int) -> float:
    """Training FLOPs per token, one accounting for every model (PaLM's): 6 × the 2-D weights outside embeddings,
    plus the output projection (V × d, tied or not), plus 12 × layers × d × T for attention."""
    embedding = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    n = sum(p.numel() for p in model.parameters() if p.dim() == 2 and id(p) not in embedding)
    return 6 * (n + vocab * d) + 12 * layers * d * block


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def build(name: str, s: dict, device: torch.device):
    """(model, loss function of (x, y)) for one entry of MODELS."""
    family = name.split("-")[0]
    if family == "ours":
        model = GPT(GPTConfig(vocab_size=s["vocab"], block_size=s["block"], n_layer=s["layers"], n_head=s["heads"],
                              d_model=s["d"], qk_norm=s.get("qk_norm", False))).to(device)
        unfused = name == "ours-logits"
        run = torch.compile(model) if name.endswith("compiled") else model
        return model, lambda x, y: run(x, y, return_logits=unfused)[1]
    if family == "nanogpt":
        model = RefGPT(s["vocab"], s["block"], s["layers"], s["d"], s["heads"]).to(device)
        run = torch.compile(model) if name.endswith("compiled") else model
        return model, lambda x, y: run(x, y)
    from transformers import GPT2Config, GPT2LMHeadModel

    conf = GPT2Config(vocab_size=s["vocab"], n_positions=s["block"], n_embd=s["d"], n_layer=s["layers"],
                      n_head=s["heads"], resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=None,
                      eos_token_id=None)
    conf._attn_implementation = "sdpa"
    model = GPT2LMHeadModel(conf).to(device).train()
    run = torch.compile(model) if name.endswith("compiled") else model
    return model, lambda x, y: run(input_ids=x, labels=x).loss


def one(name: str, s: dict, batch: int, dtype: str, device: torch.device, warmup: int, steps: int) -> dict:
    """Time `steps` training steps of one model after `warmup` ones (compilation happens there)."""
    torch.manual_seed(0)
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.cuda.reset_peak_memory_stats(device)
    if name.startswith("hf"):
        import transformers  # noqa: F401  (its import is not the model's memory)
    rss0 = rss_bytes()
    model, loss_of = build(name, s, device)
    opt = torch.optim.AdamW(model.parameters(), lr=6e-4, betas=(0.9, 0.95), weight_decay=0.1, fused=True)
    x = torch.randint(0, s["vocab"], (batch, s["block"]), device=device)
    y = torch.randint(0, s["vocab"], (batch, s["block"]), device=device)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    ctx = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if dtype == "bfloat16" else \
        (lambda: torch.autocast(device.type, enabled=False))

    def step() -> float:
        with ctx():
            loss = loss_of(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()  # waits for the device, as the trainer's logging does

    t0 = time.perf_counter()
    for _ in range(warmup):
        step()
    sync()
    warm_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = step()
    sync()
    seconds = time.perf_counter() - t0
    peak_mem = torch.cuda.max_memory_allocated(device) if cuda else \
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss0
    return {"model": name, "batch": batch, "tokens_per_sec": batch * s["block"] * steps / seconds,
            "step_ms": 1000 * seconds / steps, "warmup_s": warm_s, "peak_memory": peak_mem, "loss": loss,
            "params": sum(p.numel() for p in model.parameters()),
            "flops_per_token": matmul_flops_per_token(model, s["vocab"], s["d"], s["layers"], s["block"])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--models", default="ours-compiled,ours-eager,ours-logits,nanogpt-compiled,hf-compiled")
    ap.add_argument("--batch", default="16,32", help="micro-batch sizes, comma-separated")
    ap.add_argument("--dtype", default=None, help="bfloat16 (CUDA default) or float32 (CPU default)")
    ap.add_argument("--shape", choices=sorted(SHAPES), default="gpt2")
    ap.add_argument("--tiny", action="store_true", help="= --shape tiny: a 2-layer d-64 shape, for CPU")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: run one model, print its JSON
    args = ap.parse_args()
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    from trainer.precision import resolve_dtype

    dtype = args.dtype or resolve_dtype("auto", device)[0]
    shape_name = "tiny" if args.tiny else args.shape
    shape = SHAPES[shape_name]
    if args.one:
        name, batch = args.one.rsplit(":", 1)
        print(json.dumps(one(name, shape, int(batch), dtype, device, args.warmup, args.steps)))
        return
    models = args.models.split(",")
    unknown = set(models) - set(MODELS)
    if unknown:
        sys.exit(f"unknown models {sorted(unknown)}; known: {', '.join(MODELS)}")
    measured = matmul_peak(torch.bfloat16 if dtype == "bfloat16" else torch.float32, reps=10, device=device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    sheet = datasheet_peak(name) if device.type == "cuda" else None
    if sheet is not None and dtype != "bfloat16":
        sheet /= 2
    print(f"{name}, torch {torch.__version__}, CUDA {torch.version.cuda}, {dtype}; shape {shape}; peak: measured "
          f"{measured / 1e12:.1f} TFLOP/s, datasheet {'n/a' if sheet is None else f'{sheet / 1e12:.0f} TFLOP/s'}",
          flush=True)
    rows = []
    for batch in (int(b) for b in args.batch.split(",")):
        for model in models:
            cmd = [sys.executable, __file__, "--one", f"{model}:{batch}", "--device", args.device, "--dtype", dtype,
                   "--warmup", str(args.warmup), "--steps", str(args.steps)]
            cmd += ["--shape", shape_name]
            cmd += ["--threads", str(args.threads)] if args.threads else []
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                print(f"{model} batch {batch}: FAILED\n{done.stderr[-2000:]}", flush=True)
                rows.append({"model": model, "batch": batch, "failed": done.stderr[-500:]})
                continue
            r = json.loads(done.stdout.strip().splitlines()[-1])
            r["mfu_measured"] = r["tokens_per_sec"] * r["flops_per_token"] / measured
            r["mfu_datasheet"] = None if sheet is None else r["tokens_per_sec"] * r["flops_per_token"] / sheet
            rows.append(r)
            print(f"{model} batch {batch}: {r['tokens_per_sec']:,.0f} tok/s, {r['peak_memory'] / 1e9:.2f} GB, "
                  f"loss {r['loss']:.3f}, warm-up {r['warmup_s']:.0f} s", flush=True)
    print()
    print("| model | batch | tokens/s | MFU vs measured | MFU vs datasheet | peak memory | × nanoGPT tokens/s |"
          " × nanoGPT memory |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        if "failed" in r:
            print(f"| {r['model']} | {r['batch']} | failed | | | | | |")
            continue
        ref = next((q for q in rows if q["model"].startswith("nanogpt") and q["batch"] == r["batch"]
                    and "failed" not in q and q["model"].endswith(r["model"].split("-")[-1])), None)
        ref = ref or next((q for q in rows if q["model"].startswith("nanogpt") and q["batch"] == r["batch"]
                           and "failed" not in q), None)
        sheet_mfu = "n/a" if r["mfu_datasheet"] is None else f"{100 * r['mfu_datasheet']:.1f} %"
        ratio = f"{r['tokens_per_sec'] / ref['tokens_per_sec']:.2f}" if ref else "n/a"
        mem = f"{r['peak_memory'] / ref['peak_memory']:.2f}" if ref and ref["peak_memory"] > 0 else "n/a"
        print(f"| {r['model']} | {r['batch']} | {r['tokens_per_sec']:,.0f} | {100 * r['mfu_measured']:.1f} % | "
              f"{sheet_mfu} | {r['peak_memory'] / 1e9:.2f} GB | {ratio} | {mem} |")
    if args.json:
        args.json.write_text(json.dumps({"device": name, "dtype": dtype, "measured_peak": measured,
                                         "datasheet_peak": sheet, "shape": shape, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
