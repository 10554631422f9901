"""Mixture-of-experts against a dense model with the same active parameters, at equal tokens, on CPU.

Both are `conf/train/tiny.yaml` (4 layers, d_model 128) trained by `trainer pretrain` on the same tinyshakespeare
shards, batch and steps. The dense MLP has hidden 384; the MoE layers have `--experts` SwiGLU experts of hidden
384 / top_k, top_k of them active per token, so each token uses the same MLP parameters (plus the router's
d_model × experts). Reported: parameters (total and active), mean tokens/s (the first step left out), the final
held-out loss (the same validation batches for both), and the MoE's last logged expert loads and auxiliary losses.

    .venv/bin/python bench/moe.py --steps 300 --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # trainer/ from the checkout, whether or not the package is installed
sys.path.insert(0, str(REPO / "bench"))

from train import make_data  # noqa: E402  (bench/train.py: tokenizer + shards from tinyshakespeare)

from trainer.config import load_config  # noqa: E402
from trainer.model import GPT  # noqa: E402
from trainer.pretrain import pretrain  # noqa: E402


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--experts", type=int, default=4)
    ap.add_argument("--top-k", type=int, default=2)
    ap.add_argument("--hidden", type=int, default=384, help="the dense MLP's hidden size")
    ap.add_argument("--eval-batches", type=int, default=20)
    args = ap.parse_args()
    if args.hidden % args.top_k:
        raise SystemExit("--hidden must be divisible by --top-k")
    torch.set_num_threads(args.threads)
    print(f"host: {cpu_name()}, torch CPU capability {torch.backends.cpu.get_cpu_capability()}, "
          f"{args.threads} thread(s), load average {os.getloadavg()[0]:.2f}")
    common = [f"train.max_steps={args.steps}", f"train.eval_interval={args.steps}",
              f"train.eval_batches={args.eval_batches}", f"train.ckpt_interval={args.steps}", "train.log_interval=1",
              "train.tensorboard=false", f"train.threads={args.threads}", "train.device=cpu", "train.dtype=float32",
              f"train.warmup_steps={max(1, args.steps // 10)}"]
    runs = {
        "dense": [f"model.mlp_hidden={args.hidden}"],
        f"moe {args.experts}x top-{args.top_k}": [
            f"model.mlp_hidden={args.hidden // args.top_k}",
            f"model.moe={{experts: {args.experts}, top_k: {args.top_k}, every: 1}}"],
    }
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = make_data(Path(tmp))
        for name, sets in runs.items():
            cfg = load_config(REPO / "conf" / "train" / "tiny.yaml", [*common, *sets])
            out = Path(tmp) / name.replace(" ", "_")
            result = pretrain(cfg, data, out, quiet=True)
            vocab = json.loads((out / "run_config.json").read_text())["resolved_model"]["vocab_size"]
            model = GPT(cfg.gpt_config(vocab))
            last = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()
                    if json.loads(x)["kind"] == "train"][-1]
            rows.append({"model": name, "params": model.num_params(), "active_params": model.num_params(active=True),
                         "tokens": result["tokens_seen"], "tokens_per_sec": result["tokens_per_sec"],
                         "val_loss": result["val_loss"],
                         "moe": {k: round(v, 4) for k, v in last.items() if k.startswith(("moe_", "expert_"))}})
    print(f"{'model':<16} {'params':>9} {'active':>9} {'tokens':>9} {'tok/s':>8} {'val loss':>9}")
    for r in rows:
        print(f"{r['model']:<16} {r['params']:>9,} {r['active_params']:>9,} {r['tokens']:>9,} "
              f"{r['tokens_per_sec']:>8,.0f} {r['val_loss']:>9.4f}")
        if r["moe"]:
            print(f"  last step: {r['moe']}")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
