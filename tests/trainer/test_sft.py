"""SFT on real torch, our tiny pretrained base and the shared Alpaca / ShareGPT files."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

import pytest
import torch
from conftest import REPO, shared_data
from posttrain_fixtures import ALPACA, SHAREGPT
from safetensors.torch import load_file

from corpus.tokenize.tokenizer import TokenizerError, load_tokenizer
from trainer.chat import Message, load_conversations, render
from trainer.checkpoint import CheckpointError, latest_checkpoint, load_base, load_for_inference
from trainer.config import TrainConfigError
from trainer.posttrain import lm_batch, load_method_config
from trainer.sft import SFTConf, pack_rows, rows_from, train_sft

SFT_YAML = REPO / "conf" / "train" / "sft.yaml"
FAST = ["train.threads=1", "train.tensorboard=false", "train.log_interval=1", "train.eval_interval=1000",
        "train.ckpt_interval=1000"]


def config(*overrides: str):
    return load_method_config(SFT_YAML, [*FAST, *overrides], "sft", SFTConf)


def train_losses(run) -> list[float]:
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in lines if r["kind"] == "train"]


def test_labels_are_exactly_the_assistant_tokens(tiny_base):
    sp = load_tokenizer(tiny_base.tokenizer)
    conv = [Message("user", "Give me a word."), Message("assistant", "Apple."), Message("user", "Another?"),
            Message("assistant", "Pear.")]
    ids, mask = render(conv, sp)
    x, y = lm_batch([(ids, mask), (ids[:5], mask[:5])])
    # Hand-built: targets are the assistant replies and their <|end|>, each predicted from the token before it.
    end = sp.piece_to_id("<|end|>")
    expected = [*sp.encode("Apple."), end, *sp.encode("Pear."), end]
    assert [t for t in y[0].tolist() if t != -1] == expected
    assert torch.equal(x[0], torch.tensor(ids[:-1]))
    for pos, target in enumerate(y[0].tolist()):
        assert target == (ids[pos + 1] if mask[pos + 1] else -1)
    assert y[1].tolist() == [-1] * len(y[1])  # a row cut before any reply has no target (and padding is -1)


def test_packing_keeps_every_target_once(tiny_base):
    sp = load_tokenizer(tiny_base.tokenizer)
    convs, _ = load_conversations(shared_data(*SHAREGPT))
    rows = rows_from(convs[:40], sp, 10_000, Counter())
    packed = pack_rows(rows, 65)
    assert all(len(ids) == 65 for ids, _ in packed[:-1])
    targets = [t for ids, mask in rows for t, m in zip(ids[1:], mask[1:]) if m]
    # rows are concatenated, so the first token of each later row becomes a target position too (mask 0 on BOS)
    packed_targets = [t for ids, mask in packed for t, m in zip(ids[1:], mask[1:]) if m]
    assert packed_targets == targets


def test_loss_falls_on_alpaca_seed_tasks(tiny_base, tmp_path):
    """~3 epochs over the 166 seed tasks. The base saw only 60 pretraining steps, so the assistant-token loss
    starts near 5.9 nats; it must drop by at least 0.75 nats (first 10 vs last 10 steps; ~1.0 measured), and the
    held-out conversations' loss by 0.3 (~0.6 measured)."""
    conf, sconf = config("train.max_steps=150", "train.eval_interval=75")
    s = train_sft(conf, sconf, tiny_base.ckpt, shared_data(*ALPACA), tmp_path / "sft", quiet=True)
    losses = train_losses(tmp_path / "sft")
    assert len(losses) == 150
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < first - 0.75, (first, last)
    metrics = [json.loads(line) for line in (tmp_path / "sft" / "metrics.jsonl").read_text().splitlines()]
    val = [r["loss"] for r in metrics if r["kind"] == "val"]
    assert len(val) == 3 and val[-1] < val[0] - 0.3, val  # held-out conversations too
    # Every conversation is a row, or is counted: a few seed tasks have prompts longer than a whole row.
    assert s["conversations"] > 150 and set(s["skipped"]) <= {"no_target_after_truncation"}
    assert s["rows"] + s["skipped"].get("no_target_after_truncation", 0) == s["conversations"]
    # A full SFT checkpoint is a plain GPT checkpoint: generation and export read it.
    model, _ = load_for_inference(tmp_path / "sft")
    assert model.cfg == load_base(tiny_base.ckpt)[0].cfg


@pytest.mark.parametrize("lora", [False, True])
def test_resume_is_bit_exact(tiny_base, tmp_path, lora):
    extra = ["train.lora_rank=4", "train.lora_alpha=8"] if lora else []
    data = shared_data(*SHAREGPT)
    conf, sconf = config("train.max_steps=8", "train.ckpt_interval=4", "train.batch_size=4", *extra)
    train_sft(conf, sconf, tiny_base.ckpt, data, tmp_path / "straight", quiet=True)
    conf4, _ = config("train.max_steps=4", "train.ckpt_interval=4", "train.batch_size=4", *extra)
    train_sft(conf4, sconf, tiny_base.ckpt, data, tmp_path / "resumed", quiet=True)
    with pytest.raises(CheckpointError, match="pass --resume"):
        train_sft(conf, sconf, tiny_base.ckpt, data, tmp_path / "resumed", quiet=True)
    train_sft(conf, sconf, tiny_base.ckpt, data, tmp_path / "resumed", resume=True, quiet=True)
    assert train_losses(tmp_path / "resumed") == train_losses(tmp_path / "straight")
    ckpt = latest_checkpoint(tmp_path / "resumed")
    if lora:
        assert not (ckpt / "model.safetensors").exists()
        assert all(".lora_" in k for k in load_file(str(ckpt / "adapter.safetensors")))
        merged, _, _ = load_base(ckpt)
        straight, _, _ = load_base(tmp_path / "straight")
        for (k, a), b in zip(merged.state_dict().items(), straight.state_dict().values()):
            assert torch.equal(a, b), k


def test_cli_lora_sft_merge_and_generate(tiny_base, tmp_path):
    run = [sys.executable, "-m", "trainer.cli"]
    common = ["--set", "train.threads=1", "--set", "train.tensorboard=false"]
    r = subprocess.run([*run, "sft", "--base", str(tiny_base.run_dir), "--data", str(shared_data(*ALPACA)),
                        "--out", str(tmp_path / "sft"), "--max-steps", "3", "--lora-rank", "4", "--pack", *common],
                       capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr
    assert "done: step 3" in r.stdout
    r = subprocess.run([*run, "merge-lora", "--ckpt", str(tmp_path / "sft"), "--out", str(tmp_path / "export")],
                       capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([*run, "generate", "--ckpt", str(tmp_path / "export"), "--prompt", "Hello",
                        "--max-new-tokens", "5", "--seed", "1"], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0 and r.stdout.startswith("Hello"), r.stderr
    r = subprocess.run([*run, "sft", "--base", str(tiny_base.ckpt), "--data", str(shared_data(*ALPACA)),
                        "--out", str(tmp_path / "bad"), "--set", "train.lr=-1"], capture_output=True, text=True,
                       cwd=REPO)
    assert r.returncode == 2 and "train.lr" in r.stderr


def test_bad_inputs_error_clearly(tiny_base, tmp_path):
    with pytest.raises(TrainConfigError, match="sft.pack"):
        config("sft.pack=maybe")
    with pytest.raises(TrainConfigError, match="unknown setting"):
        config("train.lora_rnk=4")
    (tmp_path / "empty.jsonl").write_text('{"text": "no conversation here"}\n')
    conf, sconf = config("train.max_steps=1")
    with pytest.raises(ValueError, match="unknown_format"):
        train_sft(conf, sconf, tiny_base.ckpt, tmp_path / "empty.jsonl", tmp_path / "e", quiet=True)
    # A base whose tokenizer has no chat tokens cannot be post-trained.
    import shutil

    import sentencepiece as spm

    (tmp_path / "s.txt").write_text("\n".join(f"plain line number {i} of text" for i in range(200)))
    spm.SentencePieceTrainer.train(input=str(tmp_path / "s.txt"), model_prefix=str(tmp_path / "plain"),
                                   vocab_size=60, model_type="bpe", minloglevel=2)
    shutil.copytree(tiny_base.ckpt, tmp_path / "base")
    shutil.copyfile(tmp_path / "plain.model", tmp_path / "base" / "tokenizer.model")
    with pytest.raises(TokenizerError, match="chat tokens"):
        load_base(tmp_path / "base")
    (tmp_path / "base" / "tokenizer.model").unlink()
    with pytest.raises(CheckpointError, match="tokenizer.model missing"):
        load_base(tmp_path / "base")
    # A LoRA checkpoint names its base by sha256: a changed base is refused, not silently merged into.
    shutil.copytree(tiny_base.ckpt, tmp_path / "base2")
    conf, sconf = config("train.max_steps=1", "train.lora_rank=2")
    train_sft(conf, sconf, tmp_path / "base2", shared_data(*ALPACA), tmp_path / "lora", quiet=True)
    load_base(tmp_path / "lora")
    shutil.copyfile(tmp_path / "lora" / "ckpt" / "step_0000001" / "adapter.safetensors",
                    tmp_path / "base2" / "model.safetensors")
    with pytest.raises(CheckpointError, match="has changed"):
        load_base(tmp_path / "lora")
