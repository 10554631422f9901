"""Session fixtures for post-training tests: a tiny pretrained base model with a chat-token tokenizer.

`tiny_base` trains a sentencepiece model (vocab 1024, with the reserved chat tokens) on the shared SFT/RLHF files
and tinyshakespeare, writes token shards, and pretrains a 2-layer d_model-64 GPT (block 256) for 60 steps, on
one thread. Tests reuse it read-only: train into their own tmp folders with `--base tiny_base.ckpt`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from conftest import REPO, shared_data

ALPACA = ("sft", "alpaca_seed_tasks.jsonl")
SHAREGPT = ("sft", "fastchat_dummy_conversation.json")
HH = ("rlhf", "hh-rlhf-harmless-base-test-first300.jsonl")

# The base model's shape for post-training tests; `tiny.yaml` shrunk so that a step takes milliseconds.
BASE_OVERRIDES = ["model.d_model=64", "model.n_layer=2", "model.n_head=4", "model.block_size=256",
                  "train.batch_size=8", "train.max_steps=60", "train.warmup_steps=10", "train.eval_interval=60",
                  "train.eval_batches=2", "train.ckpt_interval=60", "train.log_interval=10", "train.threads=1",
                  "train.tensorboard=false", "train.lr=3e-3"]


@dataclass(frozen=True)
class TinyBase:
    ckpt: Path  # the pretraining checkpoint folder (ckpt/step_0000060)
    tokenizer: Path  # its tokenizer.model (has the chat tokens)
    run_dir: Path  # the pretraining run folder


def fixture_texts() -> list[str]:
    """Documents from the shared post-training files and tinyshakespeare paragraphs."""
    texts = []
    for line in shared_data(*ALPACA).read_text().splitlines():
        rec = json.loads(line)
        texts.append(rec["instruction"] + "\n" + "\n".join(i["input"] + "\n" + i["output"] for i in rec["instances"]))
    for conv in json.loads(shared_data(*SHAREGPT).read_text()):
        texts.append("\n".join(t["value"] for t in conv["conversations"]))
    for line in shared_data(*HH).read_text().splitlines():
        texts.append(json.loads(line)["chosen"].strip())
    shakespeare = shared_data("text", "tinyshakespeare.txt").read_text()
    texts += [p for p in shakespeare.split("\n\n") if p.strip()][:3000]
    return texts


@pytest.fixture(scope="session")
def chat_tokenizer(tmp_path_factory) -> Path:
    """A sentencepiece model (vocab 1024, chat tokens reserved) trained on the fixture texts."""
    from corpus.tokenize.tokenizer import train_tokenizer

    root = tmp_path_factory.mktemp("chat_tokenizer")
    (root / "sample.txt").write_text("\n".join(t.replace("\n", " ") for t in fixture_texts()))
    return train_tokenizer(root / "sample.txt", root / "tok", 1024)


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory, chat_tokenizer) -> TinyBase:
    from trainer.checkpoint import latest_checkpoint
    from trainer.config import load_config
    from trainer.data import write_shards_from_texts
    from trainer.pretrain import pretrain

    root = tmp_path_factory.mktemp("tiny_base")
    write_shards_from_texts(fixture_texts(), root / "tokens", chat_tokenizer, shard_tokens=200_000,
                            val_fraction=0.05)
    threads = torch.get_num_threads()
    try:
        cfg = load_config(REPO / "conf" / "train" / "tiny.yaml", BASE_OVERRIDES)
        pretrain(cfg, root / "tokens", root / "run", quiet=True)
    finally:
        torch.set_num_threads(threads)
    ckpt = latest_checkpoint(root / "run")
    return TinyBase(ckpt=ckpt, tokenizer=ckpt / "tokenizer.model", run_dir=root / "run")


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory, tiny_base) -> TinyBase:
    """`tiny_base`'s shape without QK-norm (so it maps onto transformers' Llama), pretrained 30 steps on its
    shards; for the Hugging Face export/import and TRL-parity tests."""
    from trainer.checkpoint import latest_checkpoint
    from trainer.config import load_config
    from trainer.pretrain import pretrain

    root = tmp_path_factory.mktemp("tiny_llama")
    threads = torch.get_num_threads()
    try:
        cfg = load_config(REPO / "conf" / "train" / "tiny.yaml",
                          [*BASE_OVERRIDES, "model.qk_norm=false", "model.tie_embeddings=false", "train.max_steps=30",
                           "train.eval_interval=30", "train.ckpt_interval=30"])
        pretrain(cfg, tiny_base.run_dir.parent / "tokens", root / "run", quiet=True)
    finally:
        torch.set_num_threads(threads)
    ckpt = latest_checkpoint(root / "run")
    return TinyBase(ckpt=ckpt, tokenizer=ckpt / "tokenizer.model", run_dir=root / "run")
