"""The trainer on real torch and real sentencepiece shards: learning, exact resume, KV cache, errors, DDP."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO, shared_data

from corpus.tokenize.shards import ShardError, TokenDataset
from corpus.tokenize.tokenizer import train_tokenizer
from trainer import precision
from trainer.checkpoint import CheckpointError, latest_checkpoint, load_for_inference
from trainer.config import TrainConfigError, load_config
from trainer.data import ShardStream, write_shards_from_texts
from trainer.generate import generate
from trainer.model import GPT, GPTConfig, KVCache, apply_rope, rope_tables
from trainer.pretrain import pretrain

TINY = REPO / "conf" / "train" / "tiny.yaml"
# Smaller than tiny.yaml where the test is about mechanics, not learning, so each step takes milliseconds.
FAST = ["model.block_size=64", "model.d_model=64", "model.n_layer=2", "train.eval_batches=2", "train.log_interval=1"]


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def synthetic_texts(n_docs: int = 600, seed: int = 0) -> list[str]:
    """Documents from a small grammar: predictable enough that a 1M-parameter model learns it in tens of steps."""
    rng = random.Random(seed)
    names = ["Alice", "Bob", "Carol", "Dave", "Erin", "Frank"]
    verbs = ["sees", "likes", "helps", "calls", "follows"]
    things = ["the cat", "a dog", "the red ball", "my friend", "the old tree", "a small boat"]
    places = ["in the park", "at home", "by the river", "near the school"]
    return [" ".join(f"{rng.choice(names)} {rng.choice(verbs)} {rng.choice(things)} {rng.choice(places)}."
                     for _ in range(rng.randint(4, 12))) for _ in range(n_docs)]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    texts = synthetic_texts()
    (root / "sample.txt").write_text("\n".join(texts))
    model = train_tokenizer(root / "sample.txt", root / "tok", 320)
    write_shards_from_texts(texts, root / "tokens", model, shard_tokens=20_000, val_fraction=0.1)
    return root / "tokens"


@pytest.fixture(scope="module")
def shakespeare(tmp_path_factory) -> Path:
    text = shared_data("text", "tinyshakespeare.txt").read_text()
    root = tmp_path_factory.mktemp("shakespeare")
    (root / "sample.txt").write_text("\n".join(line for line in text.split("\n") if line.strip()))
    model = train_tokenizer(root / "sample.txt", root / "tok", 1024)
    paragraphs = [p for p in text.split("\n\n") if p.strip()]
    write_shards_from_texts(paragraphs, root / "tokens", model, shard_tokens=100_000, val_fraction=0.1)
    return root / "tokens"


@pytest.fixture(scope="module")
def trained(synthetic, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("runs") / "synthetic"
    cfg = load_config(TINY, ["train.max_steps=60", "train.warmup_steps=10", "train.eval_interval=30",
                             "train.log_interval=1", "train.eval_batches=4", "model.block_size=64"])
    return out, pretrain(cfg, synthetic, out, quiet=True)


def records(run: Path, kind: str) -> list[dict]:
    return [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if r["kind"] == kind]


def cli(*args: str, env: dict | None = None, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "trainer.cli", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})


# -- learning -------------------------------------------------------------------------------------------------------
def test_train_loss_falls_on_synthetic_text(trained):
    out, summary = trained
    losses = [r["loss"] for r in records(out, "train")]
    assert len(losses) == 60
    assert losses[0] > 5.0  # ≈ ln(320): the untrained model is near uniform
    assert np.mean(losses[-5:]) < 0.5 * losses[0], losses[::10]
    vals = [r["val_loss"] for r in records(out, "val")]
    assert [r["step"] for r in records(out, "val")] == [0, 30, 60] and vals[-1] < vals[0] - 2.0
    assert summary["tokens_per_sec"] > 0 and 0 < summary["mfu"] < 1.5  # peak is measured, so allow some noise
    assert latest_checkpoint(out).name == "step_0000060"
    if _has_tensorboard():
        assert list((out / "tb").glob("events.out.tfevents.*"))


def _has_tensorboard() -> bool:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return False
    return True


def test_val_loss_falls_on_tinyshakespeare(shakespeare, tmp_path):
    cfg = load_config(TINY, ["train.max_steps=50", "train.warmup_steps=10", "train.eval_interval=50",
                             "train.log_interval=10"])
    summary = pretrain(cfg, shakespeare, tmp_path / "run", quiet=True)
    vals = {r["step"]: r["val_loss"] for r in records(tmp_path / "run", "val")}
    assert set(vals) == {0, 50}
    assert vals[0] > 6.5  # ≈ ln(1024)
    assert vals[50] < vals[0] - 1.0, vals
    assert summary["val_loss"] == vals[50]


# -- checkpoints and resume -----------------------------------------------------------------------------------------
def test_resume_is_bit_exact(synthetic, tmp_path):
    # One schedule for both runs: the cosine horizon is fixed at 8 steps, the first half stops at 4.
    # Dropout makes the losses depend on the restored RNG state too.
    common = [*FAST, "train.lr_decay_steps=8", "train.warmup_steps=2", "train.grad_accum=2", "train.ckpt_interval=4",
              "train.eval_interval=4", "model.dropout=0.1"]
    pretrain(load_config(TINY, [*common, "train.max_steps=8"]), synthetic, tmp_path / "a", quiet=True)
    pretrain(load_config(TINY, [*common, "train.max_steps=4"]), synthetic, tmp_path / "b", quiet=True)
    with pytest.raises(CheckpointError, match="pass --resume"):
        pretrain(load_config(TINY, [*common, "train.max_steps=8"]), synthetic, tmp_path / "b", quiet=True)
    # Simulate a crash after step 4's checkpoint: a logged step 5 and a half-written checkpoint folder.
    with open(tmp_path / "b" / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"kind": "train", "step": 5, "loss": 123.0}) + "\n")
    (tmp_path / "b" / "ckpt" / ".tmp-step_0000006").mkdir()
    (tmp_path / "b" / "ckpt" / ".tmp-step_0000006" / "model.safetensors").write_bytes(b"partial")
    assert latest_checkpoint(tmp_path / "b").name == "step_0000004"
    pretrain(load_config(TINY, [*common, "train.max_steps=8"]), synthetic, tmp_path / "b", resume=True, quiet=True)

    losses_a = [(r["step"], r["loss"]) for r in records(tmp_path / "a", "train")]
    losses_b = [(r["step"], r["loss"]) for r in records(tmp_path / "b", "train")]
    assert [s for s, _ in losses_a] == list(range(1, 9))
    assert losses_b == losses_a  # exact float equality, step by step
    from safetensors.torch import load_file

    wa = load_file(str(tmp_path / "a" / "ckpt" / "step_0000008" / "model.safetensors"))
    wb = load_file(str(tmp_path / "b" / "ckpt" / "step_0000008" / "model.safetensors"))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    state_a = json.loads((tmp_path / "a" / "ckpt" / "step_0000008" / "state.json").read_text())
    state_b = json.loads((tmp_path / "b" / "ckpt" / "step_0000008" / "state.json").read_text())
    assert state_a["data"] == state_b["data"] and state_a["tokens_seen"] == state_b["tokens_seen"]
    # Nothing pickled: every checkpoint file is safetensors, JSON, or the sentencepiece model.
    names = {p.name for p in (tmp_path / "b" / "ckpt" / "step_0000008").iterdir()}
    assert names == {"model.safetensors", "optimizer.safetensors", "optimizer.json", "state.json", "tokenizer.model"}
    assert not list((tmp_path / "b" / "ckpt").glob(".tmp-*"))  # the crash's leftover was cleared


def test_resaving_a_step_is_crash_safe(tmp_path):
    """Re-saving an existing step keeps the old folder until the new one is in; a crash between the two renames
    (old folder aside, new one not yet in) still leaves that step's checkpoint, which the next save puts back."""
    from trainer.checkpoint import list_checkpoints, load_model_weights, save_checkpoint
    from trainer.optim import make_optimizer
    from trainer.posttrain import PostTrainConf

    model = GPT(GPTConfig(vocab_size=64, block_size=16, n_layer=1, n_head=2, d_model=16))
    opt = make_optimizer(model, PostTrainConf(), "cpu")
    tok = tmp_path / "tokenizer.model"
    tok.write_bytes(b"placeholder")
    run = tmp_path / "run"
    first = save_checkpoint(run, 1, model, opt, {"n": 1}, tok)
    with torch.no_grad():
        model.wte.weight.add_(1.0)
    again = save_checkpoint(run, 1, model, opt, {"n": 2}, tok)
    assert again == first and sorted(p.name for p in (run / "ckpt").iterdir()) == ["step_0000001"]
    assert json.loads((again / "state.json").read_text())["n"] == 2
    # The crash: the old folder renamed aside, the new one complete under its temporary name.
    os.rename(again, run / "ckpt" / ".old-step_0000001")
    shutil.copytree(run / "ckpt" / ".old-step_0000001", run / "ckpt" / ".tmp-step_0000001")
    found = latest_checkpoint(run)
    assert found is not None and found.name == ".old-step_0000001"
    fresh = GPT(model.cfg)
    load_model_weights(fresh, found)
    assert torch.equal(fresh.wte.weight, model.wte.weight)
    save_checkpoint(run, 2, model, opt, {"n": 3}, tok)
    assert [p.name for p in list_checkpoints(run)] == ["step_0000001", "step_0000002"]
    assert sorted(p.name for p in (run / "ckpt").iterdir()) == ["step_0000001", "step_0000002"]


def test_stream_is_deterministic_resumable_and_rank_split(synthetic):
    ds = TokenDataset(synthetic)
    args = dict(block_size=256, seed=5, verify_checksums=True)
    whole = ShardStream(ds, "train", batch_size=4, **args)
    ranks = [ShardStream(ds, "train", batch_size=2, rank=r, world_size=2, **args) for r in range(2)]
    for _ in range(120):  # > one epoch (~350 windows of 256 tokens), so the epoch wrap is covered
        x, y = whole.next_batch()
        parts = [s.next_batch() for s in ranks]
        assert torch.equal(x, torch.cat([p[0] for p in parts])) and torch.equal(y, torch.cat([p[1] for p in parts]))
        assert torch.equal(x[:, 1:], y[:, :-1])
    assert whole.epoch >= 1
    saved = whole.state_dict()
    expected = [whole.next_batch()[0] for _ in range(5)]
    again = ShardStream(ds, "train", batch_size=4, **args)
    again.load_state_dict(saved)
    assert all(torch.equal(a, b) for a, b in zip(expected, (again.next_batch()[0] for _ in range(5))))
    other_seed = ShardStream(ds, "train", batch_size=4, block_size=256, seed=6)
    assert not torch.equal(ShardStream(ds, "train", batch_size=4, **args).next_batch()[0], other_seed.next_batch()[0])


def test_stream_epoch_takes_every_window_once_as_in_the_shard_files(synthetic):
    # An oracle built from the shard files alone: one epoch yields each window [w·T, w·T+T+1) of each shard once.
    ds, T = TokenDataset(synthetic), 64
    expected: Counter = Counter()
    for info in ds.split("train"):
        tokens = np.fromfile(synthetic / info.name, dtype=np.uint16)[-info.tokens:]  # skip the header
        expected.update(tuple(tokens[w * T:w * T + T + 1].tolist()) for w in range((info.tokens - 1) // T))
    stream = ShardStream(ds, "train", block_size=T, batch_size=5, seed=3, vocab_size=320)
    rows: list[tuple] = []
    while len(rows) < sum(expected.values()):
        x, y = stream.next_batch()
        assert x.dtype == y.dtype == torch.int64 and x.is_contiguous() and y.is_contiguous()
        assert torch.equal(x[:, 1:], y[:, :-1])
        rows += [tuple(r) for r in torch.cat([x, y[:, -1:]], dim=1).tolist()]
    assert Counter(rows[:sum(expected.values())]) == expected


def test_token_outside_the_model_vocabulary_names_shard_and_id(synthetic):
    ds = TokenDataset(synthetic)
    # Every shard holds an id at or above this, so whichever shard the stream opens first is out of range.
    low = min(int(np.fromfile(synthetic / i.name, dtype=np.uint16)[-i.tokens:].max()) for i in ds.split("train"))
    message = rf"train_[\d_]+\.bin: token id \d+ is outside the model's vocabulary of {low}"
    with pytest.raises(ShardError, match=message):
        ShardStream(ds, "train", block_size=64, batch_size=4, vocab_size=low).next_batch()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_rope_rotates_channel_pairs_exactly(dtype):
    # The textbook form, from the angles alone: (x1, x2) -> (x1·cos - x2·sin, x1·sin + x2·cos), pair i at
    # position t turning by t/theta^(2i/hd). The model's folded-table form must give the same bits.
    cfg = GPTConfig(vocab_size=64, block_size=32, n_layer=1, n_head=2, d_model=32)
    hd = cfg.head_dim
    inv_freq = 1.0 / cfg.rope_theta ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd)
    angles = torch.arange(cfg.block_size, dtype=torch.float32)[:, None] * inv_freq
    cos, sin = angles.cos().to(dtype), angles.sin().to(dtype)
    x = torch.randn(2, cfg.n_head, cfg.block_size, hd).to(dtype)
    x1, x2 = x[..., :hd // 2], x[..., hd // 2:]
    expected = torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
    assert torch.equal(apply_rope(x, *rope_tables(cfg)), expected)


# -- generation -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", [{}, {"mlp": "relu2", "qk_norm": False, "tie_embeddings": False}])
def test_kv_cache_matches_full_recomputation(trained, variant):
    if variant:  # a second architecture, untrained but with peaked logits so greedy choices are not near-ties
        torch.manual_seed(0)
        model = GPT(GPTConfig(vocab_size=320, block_size=64, n_layer=2, n_head=4, d_model=64, **variant)).eval()
        with torch.no_grad():
            model.lm_head.weight.mul_(20)
    else:
        model, _ = load_for_inference(trained[0])
    prompt = [1, 40, 41, 42, 43, 44]
    cached = generate(model, prompt, 40, temperature=0, stop_ids=(), use_cache=True)
    full = generate(model, prompt, 40, temperature=0, stop_ids=(), use_cache=False)
    assert cached == full and len(cached) == 40
    assert len(set(cached)) > 1  # a model stuck on one token would make the comparison weak
    # Logits agree too, including a prefill in two chunks (the masked, cached path).
    seq = torch.tensor([prompt + cached[:20]])
    with torch.no_grad():
        reference, _ = model(seq, targets=seq)  # targets: logits for every position
        cache = KVCache(model.cfg, 1, "cpu")
        model(seq[:, :10], cache=cache)
        last, _ = model(seq[:, 10:], cache=cache)
    torch.testing.assert_close(last[0, -1], reference[0, -1], rtol=1e-4, atol=1e-4)


def test_generate_and_export_cli(trained, tmp_path):
    run = trained[0]
    a = cli("generate", "--ckpt", str(run), "--prompt", "Alice sees", "--temperature", "0", "--max-new-tokens", "30")
    assert a.returncode == 0, a.stderr
    assert a.stdout.startswith("Alice sees") and len(a.stdout.strip()) > len("Alice sees") + 10
    e = cli("export", "--ckpt", str(run), "--out", str(tmp_path / "export"))
    assert e.returncode == 0, e.stderr
    assert {p.name for p in (tmp_path / "export").iterdir()} == {"config.json", "model.safetensors", "tokenizer.model"}
    b = cli("generate", "--ckpt", str(tmp_path / "export"), "--prompt", "Alice sees", "--temperature", "0",
            "--max-new-tokens", "30")
    assert b.returncode == 0 and b.stdout == a.stdout
    s = cli("generate", "--ckpt", str(run), "--prompt", "Bob", "--top-k", "5", "--top-p", "0.9", "--seed", "3")
    assert s.returncode == 0 and s.stdout.startswith("Bob")


# -- bad input ------------------------------------------------------------------------------------------------------
def _copy(data: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(data, tmp_path / "tokens"))


def test_corrupt_or_truncated_shard_is_named(synthetic, tmp_path):
    data = _copy(synthetic, tmp_path)
    shard = sorted(data.glob("train_*.bin"))[0]
    raw = bytearray(shard.read_bytes())
    raw[5000] ^= 0xFF
    shard.write_bytes(bytes(raw))
    cfg = load_config(TINY, [*FAST, "train.max_steps=2"])
    with pytest.raises(ShardError, match=f"{shard.name}: sha256 does not match"):
        pretrain(cfg, data, tmp_path / "run", quiet=True)
    shard.write_bytes(bytes(raw[:-10]))
    with pytest.raises(ShardError, match=f"{shard.name}: size"):
        pretrain(cfg, data, tmp_path / "run2", quiet=True)
    r = cli("pretrain", "--config", str(TINY), "--data", str(data), "--out", str(tmp_path / "run3"), "--max-steps", "2",
            *[x for kv in FAST for x in ("--set", kv)])
    assert r.returncode == 2 and shard.name in r.stderr and "Traceback" not in r.stderr


def test_tokenizer_mismatch_with_manifest(synthetic, shakespeare, tmp_path):
    data = _copy(synthetic, tmp_path)
    shutil.copyfile(shakespeare / "tokenizer.model", data / "tokenizer.model")  # a different tokenizer
    with pytest.raises(ShardError, match="tokenizer sha256 does not match the manifest"):
        pretrain(load_config(TINY, [*FAST, "train.max_steps=1"]), data, tmp_path / "run", quiet=True)
    (data / "tokenizer.model").unlink()
    with pytest.raises(ShardError, match="tokenizer named in the manifest is missing"):
        pretrain(load_config(TINY, [*FAST, "train.max_steps=1"]), data, tmp_path / "run", quiet=True)


@pytest.mark.parametrize("override, message", [
    ("model.d_model=130", r"d_model \(130\) must be divisible by model.n_head \(4\)"),
    ("train.dtype=float16", r"train.dtype: Input should be 'float32', 'bfloat16' or 'auto' \(got 'float16'\)"),
    ("train.lrr=0.1", "train.lrr: unknown setting"),
    ("train.batch_size=0", "train.batch_size: Input should be greater than or equal to 1"),
    ("train.min_lr=1.0", r"min_lr \(1.0\) must not exceed lr"),
    ("model.mlp=gelu", "model.mlp: Input should be 'swiglu' or 'relu2'"),
    ("train", "--set expects key.path=value"),
])
def test_bad_config_value_names_the_setting(override, message):
    with pytest.raises(TrainConfigError, match=message):
        load_config(TINY, [override])


def test_bad_config_and_small_vocab_through_cli(synthetic, tmp_path):
    r = cli("pretrain", "--config", str(TINY), "--data", str(synthetic), "--out", str(tmp_path / "r"),
            "--set", "train.dtype=float16")
    assert r.returncode == 2 and "train.dtype" in r.stderr and "float16" in r.stderr
    r = cli("pretrain", "--config", str(TINY), "--data", str(synthetic), "--out", str(tmp_path / "r"),
            "--set", "model.vocab_size=100")
    assert r.returncode == 2 and "model.vocab_size=100 is smaller than the tokenizer's vocabulary (320)" in r.stderr


# -- DDP ------------------------------------------------------------------------------------------------------------
def test_dtype_auto_follows_the_hardware_and_emulated_bf16_warns(synthetic, tmp_path, monkeypatch):
    cpu = torch.device("cpu")
    native = precision.native_bf16(cpu)
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():  # an independent witness: oneDNN's bf16 kernels need AVX512-BF16 or AMX
        flags = set(cpuinfo.read_text().split())
        assert native == bool(flags & {"avx512_bf16", "amx_bf16"})
    expected = "bfloat16" if native else "float32"
    assert precision.resolve_dtype("auto", cpu) == (expected, None)
    assert precision.resolve_dtype("float32", cpu) == ("float32", None)
    pretrain(load_config(TINY, [*FAST, "train.max_steps=1", "train.dtype=auto"]), synthetic, tmp_path / "auto",
             quiet=True)
    assert json.loads((tmp_path / "auto" / "run_config.json").read_text())["resolved_dtype"] == expected
    monkeypatch.setattr(precision, "native_bf16", lambda device: False)
    dtype, warning = precision.resolve_dtype("bfloat16", cpu)
    assert dtype == "bfloat16" and "no native bf16 matmul" in warning and "train.dtype=auto or float32" in warning
    assert precision.resolve_dtype("auto", cpu) == ("float32", None)


def _torchrun() -> str | None:
    local = Path(sys.executable).parent / "torchrun"
    return str(local) if local.exists() else shutil.which("torchrun")


@pytest.mark.skipif(_torchrun() is None, reason="torchrun is not installed")
def test_ddp_two_processes_on_gloo_match_one_process(synthetic, tmp_path):
    # 2 ranks × batch 4 see the same global windows as 1 process × batch 8, so losses agree up to reduction order.
    common = [*FAST, "train.eval_interval=3", "train.ckpt_interval=3"]
    sets = [x for kv in common for x in ("--set", kv)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    r = subprocess.run([_torchrun(), "--standalone", "--nproc_per_node", "2", "-m", "trainer.cli", "pretrain",
                        "--config", str(TINY), "--data", str(synthetic), "--out", str(tmp_path / "ddp"),
                        "--max-steps", "3", "--set", "train.batch_size=4", *sets],
                       cwd=REPO, capture_output=True, text=True, timeout=180, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    pretrain(load_config(TINY, [*common, "train.max_steps=3", "train.batch_size=8"]), synthetic, tmp_path / "one",
             quiet=True)
    ddp = [x["loss"] for x in records(tmp_path / "ddp", "train")]
    one = [x["loss"] for x in records(tmp_path / "one", "train")]
    assert len(ddp) == 3
    np.testing.assert_allclose(ddp, one, rtol=1e-4)
    state = json.loads((tmp_path / "ddp" / "ckpt" / "step_0000003" / "state.json").read_text())
    assert state["world_size"] == 2 and state["tokens_seen"] == 3 * 8 * 64
