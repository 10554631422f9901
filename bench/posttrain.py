"""Tokens/s of each post-training method on the `tiny` model shape (conf/train/tiny.yaml), in one run.

A base is pretrained briefly on the shared SFT/RLHF texts and tinyshakespeare (a tokenizer with the chat tokens,
the tiny shape with block_size 256 so hh-rlhf transcripts fit), then every method trains from it for the same
number of optimizer steps on its shared fixture. Tokens/s is the trainer's own figure: real (unpadded) input
tokens per optimizer step over its wall time, mean of the steps after the first. Methods are rows of METHODS:
a function (base checkpoint, scratch folder, steps, threads) -> the method's run summary.

    .venv/bin/python bench/posttrain.py --steps 20 --threads 1 [--methods sft,reward] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from corpus.tokenize.tokenizer import train_tokenizer  # noqa: E402
from trainer.checkpoint import latest_checkpoint  # noqa: E402
from trainer.config import load_config  # noqa: E402
from trainer.data import write_shards_from_texts  # noqa: E402
from trainer.posttrain import load_method_config  # noqa: E402
from trainer.pretrain import pretrain  # noqa: E402

DATA = REPO.parent / "shared" / "data"
ALPACA = DATA / "sft" / "alpaca_seed_tasks.jsonl"
SHAREGPT = DATA / "sft" / "fastchat_dummy_conversation.json"
HH = DATA / "rlhf" / "hh-rlhf-harmless-base-test-first300.jsonl"
SHAKESPEARE = DATA / "text" / "tinyshakespeare.txt"
BLOCK = 256  # tiny.yaml has 128; hh-rlhf prompt + response needs more


def base_texts() -> list[str]:
    texts = []
    for line in ALPACA.read_text().splitlines():
        rec = json.loads(line)
        texts.append(rec["instruction"] + "\n" + "\n".join(i["input"] + "\n" + i["output"] for i in rec["instances"]))
    texts += ["\n".join(t["value"] for t in c["conversations"]) for c in json.loads(SHAREGPT.read_text())]
    texts += [json.loads(line)["chosen"].strip() for line in HH.read_text().splitlines()]
    texts += [p for p in SHAKESPEARE.read_text().split("\n\n") if p.strip()][:3000]
    return texts


def make_base(root: Path, threads: int) -> Path:
    texts = base_texts()
    (root / "sample.txt").write_text("\n".join(t.replace("\n", " ") for t in texts))
    tok = train_tokenizer(root / "sample.txt", root / "tok", 2048)
    write_shards_from_texts(texts, root / "tokens", tok, shard_tokens=500_000, val_fraction=0.05)
    cfg = load_config(REPO / "conf" / "train" / "tiny.yaml",
                      [f"model.block_size={BLOCK}", "train.max_steps=30", "train.warmup_steps=5",
                       "train.eval_interval=30", "train.eval_batches=2", "train.ckpt_interval=30",
                       f"train.threads={threads}", "train.tensorboard=false"])
    pretrain(cfg, root / "tokens", root / "base", quiet=True)
    return latest_checkpoint(root / "base")


def common(steps: int, threads: int) -> list[str]:
    return [f"train.max_steps={steps}", f"train.threads={threads}", "train.tensorboard=false",
            "train.log_interval=1", f"train.eval_interval={10 * steps}", f"train.ckpt_interval={10 * steps}",
            "train.warmup_steps=0"]


def sft(extra: list[str]) -> Callable:
    def run(base: Path, out: Path, steps: int, threads: int) -> dict:
        from trainer.sft import SFTConf, train_sft

        conf, sconf = load_method_config(REPO / "conf" / "train" / "sft.yaml", [*common(steps, threads), *extra],
                                         "sft", SFTConf)
        return train_sft(conf, sconf, base, ALPACA, out, quiet=True)
    return run


def reward(extra: list[str]) -> Callable:
    def run(base: Path, out: Path, steps: int, threads: int) -> dict:
        from trainer.reward import RewardConf, train_reward

        conf, rconf = load_method_config(REPO / "conf" / "train" / "reward.yaml",
                                         [*common(steps, threads), *extra], "reward", RewardConf)
        return train_reward(conf, rconf, base, HH, out, quiet=True)
    return run


def dpo(extra: list[str]) -> Callable:
    def run(base: Path, out: Path, steps: int, threads: int) -> dict:
        from trainer.dpo import DPOConf, train_dpo

        conf, dconf = load_method_config(REPO / "conf" / "train" / "dpo.yaml", [*common(steps, threads), *extra],
                                         "dpo", DPOConf)
        return train_dpo(conf, dconf, base, HH, out, quiet=True)
    return run


def ppo(extra: list[str]) -> Callable:
    """Tokens here are generated tokens; a step is one rollout batch (sampling, scoring, reference and value
    passes) plus its ppo_epochs × num_minibatches optimizer steps, so the rate covers rollout + update."""
    def run(base: Path, out: Path, steps: int, threads: int) -> dict:
        from trainer.ppo import PPOConf, train_ppo

        conf, pconf = load_method_config(REPO / "conf" / "train" / "ppo.yaml",
                                         [*common(steps, threads), "train.batch_size=8", *extra], "ppo", PPOConf)
        return train_ppo(conf, pconf, base, ALPACA, out, reward_fn="count_token:,", quiet=True)
    return run


LORA = ["train.lora_rank=8", "train.lora_alpha=16"]
METHODS: dict[str, tuple[str, Callable]] = {
    "sft": ("Alpaca seed tasks, one conversation per row (padded)", sft([])),
    "sft-packed": ("Alpaca seed tasks, packed into full rows", sft(["sft.pack=true"])),
    "sft-lora": ("as sft, LoRA rank 8 on qkv/proj/up/down", sft(LORA)),
    "reward": ("hh-rlhf pairs (chosen + rejected = 2 sequences a pair)", reward([])),
    "reward-lora": ("as reward, LoRA rank 8 + head", reward(LORA)),
    "dpo": ("hh-rlhf pairs, policy + frozen reference forward (tokens = policy's chosen + rejected)", dpo([])),
    "dpo-precomputed": ("as dpo, reference log-probs computed once before training", dpo(["dpo.precompute_ref=true"])),
    "dpo-lora": ("as dpo, LoRA rank 8", dpo(LORA)),
    "ppo": ("Alpaca prompts, 8 per rollout, ≤ 24 new tokens, 4 PPO epochs (tokens = generated)", ppo([])),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        base = make_base(root, args.threads)
        for name in args.methods.split(","):
            what, run = METHODS[name]
            t0 = time.perf_counter()
            s = run(base, root / name, args.steps, args.threads)
            wall = time.perf_counter() - t0
            per_step = s["tokens_seen"] / s["step"]
            results.append({"method": name, "data": what, "steps": s["step"], "tokens_per_step": per_step,
                            "tokens_per_sec": s["tokens_per_sec"], "wall_s": wall})
            if "rollout_s" in s["train"]:  # ppo: where the last step's time went
                results[-1]["last_step_rollout_s"] = s["train"]["rollout_s"]
                results[-1]["last_step_update_s"] = s["train"]["update_s"]
    print(f"tiny shape (d_model 128, 4 layers, block {BLOCK}), vocab 2048, batch 8, {args.threads} thread(s), "
          f"{args.steps} steps; torch {torch.__version__}, {platform.processor() or platform.machine()}")
    print("| method | data | tokens/step | tokens/s |")
    print("|---|---|---:|---:|")
    for r in results:
        print(f"| {r['method']} | {r['data']} | {r['tokens_per_step']:,.0f} | {r['tokens_per_sec']:,.0f} |")
    for r in results:
        if "last_step_rollout_s" in r:
            print(f"{r['method']}: last step {r['last_step_rollout_s']:.2f} s rollout (sampling, scoring, reference "
                  f"and value passes) + {r['last_step_update_s']:.2f} s PPO update")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
