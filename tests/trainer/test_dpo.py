"""DPO: the loss against its closed form, then training on preference pairs (margins grow) and exact resume."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch

from trainer.checkpoint import CheckpointError
from trainer.dpo import dpo_loss


def test_dpo_loss_equals_closed_form_on_hand_computed_logprobs():
    # Pair 1, β = .1: (πc - rc) - (πr - rr) = (-10 + 11) - (-12 + 11) = 2 → -log σ(.2) = log(1 + e^-.2).
    # Pair 2: (-5 + 5) - (-4 + 6) = -2 → -log σ(-.2) = log(1 + e^.2).
    stats = dpo_loss(torch.tensor([-10.0, -5.0]), torch.tensor([-12.0, -4.0]), torch.tensor([-11.0, -5.0]),
                     torch.tensor([-11.0, -6.0]), beta=0.1)
    expected = (math.log(1 + math.exp(-0.2)) + math.log(1 + math.exp(0.2))) / 2
    assert stats.loss.item() == pytest.approx(expected, rel=1e-6)
    assert stats.loss.item() == pytest.approx((0.598138869 + 0.798138869) / 2, rel=1e-6)
    assert torch.allclose(stats.chosen_rewards, torch.tensor([0.1, 0.0]))
    assert torch.allclose(stats.rejected_rewards, torch.tensor([-0.1, 0.2]))
    assert torch.allclose(stats.margins, torch.tensor([0.2, -0.2]))
    assert stats.accuracy.item() == 0.5


def test_dpo_loss_beta_and_gradient_sign():
    pc = torch.tensor([-3.0], requires_grad=True)
    pr = torch.tensor([-3.0], requires_grad=True)
    stats = dpo_loss(pc, pr, torch.tensor([-3.0]), torch.tensor([-3.0]), beta=0.5)
    assert stats.loss.item() == pytest.approx(math.log(2))  # equal log-ratios: -log σ(0)
    stats.loss.backward()
    # d/dπc of -log σ(β·x) at x = 0 is -β/2: descending raises the chosen and lowers the rejected log-prob.
    assert pc.grad.item() == pytest.approx(-0.25)
    assert pr.grad.item() == pytest.approx(0.25)


def test_sequence_logprobs_equal_the_models_cross_entropy_on_the_masked_tokens():
    from trainer.dpo import sequence_logprobs
    from trainer.model import GPT, GPTConfig

    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=64, block_size=16, n_layer=2, n_head=2, d_model=32)).eval()
    ids = torch.randint(4, 64, (3, 12))
    mask = torch.zeros_like(ids)
    mask[:, 7:] = 1  # the "response" is the last five tokens
    mask[2, 10:] = 0  # a shorter one
    total, per_token = sequence_logprobs(model, ids, mask)
    targets = torch.where(mask[:, 1:].bool(), ids[:, 1:], -1)
    logits, _ = model(ids[:, :-1], targets)
    nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets, ignore_index=-1, reduction="none")
    assert torch.allclose(total, -nll.sum(1), atol=1e-5)
    assert per_token.shape == (3, 11) and (per_token[~mask[:, 1:].bool()] == 0).all()


# -- training on the tiny base model -------------------------------------------------------------------------------
def _dpo_conf(*overrides: str):
    from conftest import REPO

    from trainer.dpo import DPOConf
    from trainer.posttrain import load_method_config

    base = ["train.threads=1", "train.tensorboard=false", "train.batch_size=4", "dpo.max_len=160"]
    return load_method_config(REPO / "conf" / "train" / "dpo.yaml", [*base, *overrides], "dpo", DPOConf)


def _metrics(run: Path, kind: str = "train") -> list[dict]:
    return [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if r["kind"] == kind]


def test_dpo_margins_grow_on_hh_rlhf_pairs(tiny_base, tmp_path):
    """Real data: the first 24 hh-rlhf harmless pairs, 5 epochs (30 steps of 4 pairs). The implicit reward margin
    β((πc−rc)−(πr−rr)) is 0 at step 0 (policy = reference) and must grow on the pairs trained on; the loss falls
    below log 2. (A 1M-parameter model does not generalize hh-rlhf preferences, so the pairs are revisited.)"""
    from conftest import shared_data

    from trainer.chat import encode_pair, load_preferences
    from trainer.checkpoint import load_base
    from trainer.dpo import pair_logps, train_dpo

    hh = tmp_path / "hh24.jsonl"
    hh.write_text("\n".join(shared_data("rlhf", "hh-rlhf-harmless-base-test-first300.jsonl")
                            .read_text().splitlines()[:24]) + "\n")
    conf, dconf = _dpo_conf("train.max_steps=30", "train.ckpt_interval=30", "dpo.val_fraction=0")
    summary = train_dpo(conf, dconf, tiny_base.ckpt, hh, tmp_path / "dpo", quiet=True)
    assert summary["pairs"] == 24 and summary["step"] == 30
    rows = _metrics(tmp_path / "dpo")
    assert len(rows) == 30
    first, last = rows[:5], rows[-5:]
    assert abs(first[0]["margin"]) < 1e-4 and first[0]["loss"] == pytest.approx(math.log(2), abs=1e-4)
    mean = lambda rs, k: sum(r[k] for r in rs) / len(rs)  # noqa: E731
    assert mean(last, "margin") > mean(first, "margin") + 1.0
    assert mean(last, "loss") < 0.7 * math.log(2)
    assert mean(last, "accuracy") > 0.75
    # Measured afresh: the final policy prefers chosen over rejected far more than the reference does.
    policy, _, sp = load_base(tmp_path / "dpo")
    ref, _, _ = load_base(tiny_base.ckpt)
    pairs = [encode_pair(p, sp, 160) for p in load_preferences(hh)[0]]
    with torch.no_grad():
        pc, pr, _ = pair_logps(policy, pairs, "cpu")
        rc, rr, _ = pair_logps(ref, pairs, "cpu")
    margins = 0.1 * ((pc - rc) - (pr - rr))
    assert margins.mean().item() > 1.0
    assert (margins > 0).float().mean().item() > 0.8


def test_dpo_resume_is_bit_exact(tiny_base, tmp_path):
    """N steps + resume for N more == 2N steps uninterrupted, per-step losses identical (CPU)."""
    from conftest import shared_data

    from trainer.dpo import train_dpo

    hh = shared_data("rlhf", "hh-rlhf-harmless-base-test-first300.jsonl")
    conf, dconf = _dpo_conf("train.max_steps=6", "train.ckpt_interval=3", "train.eval_interval=3",
                            "dpo.val_fraction=0.05")
    train_dpo(conf, dconf, tiny_base.ckpt, hh, tmp_path / "full", quiet=True)
    shutil.copytree(tmp_path / "full", tmp_path / "cut")
    shutil.rmtree(tmp_path / "cut" / "ckpt" / "step_0000006")  # as if the run died after step 3's checkpoint
    with pytest.raises(CheckpointError, match="--resume"):
        train_dpo(conf, dconf, tiny_base.ckpt, hh, tmp_path / "cut", quiet=True)
    summary = train_dpo(conf, dconf, tiny_base.ckpt, hh, tmp_path / "cut", resume=True, quiet=True)
    assert summary["step"] == 6
    full, cut = _metrics(tmp_path / "full"), _metrics(tmp_path / "cut")
    assert [r["step"] for r in cut] == list(range(1, 7))
    assert [r["loss"] for r in cut] == [r["loss"] for r in full]
    assert [r["margin"] for r in cut] == [r["margin"] for r in full]
    assert _metrics(tmp_path / "cut", "val") == _metrics(tmp_path / "full", "val")


def test_precomputed_reference_and_lora(tiny_base, tmp_path):
    """--precompute-ref gives the frozen reference's losses (cached log-probs, reused on resume); a LoRA run saves
    adapters only and changes only them."""
    from conftest import shared_data
    from safetensors.torch import load_file

    from trainer.checkpoint import load_base
    from trainer.dpo import train_dpo

    hh = shared_data("rlhf", "hh-rlhf-harmless-base-test-first300.jsonl")
    conf, dconf = _dpo_conf("train.max_steps=3", "dpo.val_fraction=0")
    train_dpo(conf, dconf, tiny_base.ckpt, hh, tmp_path / "frozen", quiet=True)
    conf_p, dconf_p = _dpo_conf("train.max_steps=3", "dpo.val_fraction=0", "dpo.precompute_ref=true")
    train_dpo(conf_p, dconf_p, tiny_base.ckpt, hh, tmp_path / "pre", quiet=True)
    assert (tmp_path / "pre" / "ref_logps.safetensors").exists()
    frozen, pre = _metrics(tmp_path / "frozen"), _metrics(tmp_path / "pre")
    assert [r["loss"] for r in pre] == pytest.approx([r["loss"] for r in frozen], abs=1e-5)

    conf_l, dconf_l = _dpo_conf("train.max_steps=3", "dpo.val_fraction=0", "train.lora_rank=4")
    train_dpo(conf_l, dconf_l, tiny_base.ckpt, hh, tmp_path / "lora", quiet=True)
    ckpt = tmp_path / "lora" / "ckpt" / "step_0000003"
    assert not (ckpt / "model.safetensors").exists()
    names = set(load_file(str(ckpt / "adapter.safetensors")))
    assert names and all(n.endswith(("lora_A", "lora_B")) for n in names)
    merged, _, _ = load_base(tmp_path / "lora")
    base, _, _ = load_base(tiny_base.ckpt)
    assert torch.equal(merged.wte.weight, base.wte.weight)  # embeddings are not a LoRA target
    assert not torch.equal(merged.blocks[0].attn.qkv.weight, base.blocks[0].attn.qkv.weight)


def test_cli_dpo_runs_resumes_and_reports_bad_input(tiny_base, tmp_path, capsys):
    from conftest import REPO, shared_data

    from trainer.cli import main

    hh = shared_data("rlhf", "hh-rlhf-harmless-base-test-first300.jsonl")
    args = ["dpo", "--config", str(REPO / "conf" / "train" / "dpo.yaml"), "--base", str(tiny_base.ckpt),
            "--data", str(hh), "--out", str(tmp_path / "d"), "--set", "train.threads=1", "--set",
            "train.tensorboard=false", "--set", "train.batch_size=2", "--set", "dpo.max_len=128",
            "--set", "dpo.val_fraction=0.02", "--precompute-ref"]
    main([*args, "--max-steps", "2"])
    assert "reward accuracy" in capsys.readouterr().out
    main([*args, "--max-steps", "3", "--resume"])
    assert "resumed from" in capsys.readouterr().out
    assert [r["step"] for r in _metrics(tmp_path / "d")] == [1, 2, 3]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "x"}\n[1]\n')
    with pytest.raises(SystemExit) as e:
        main([*args[:5], "--data", str(bad), "--out", str(tmp_path / "e")])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "no usable preference pairs" in err and "missing_chosen_or_rejected" in err


def learnable_pairs(path: Path) -> int:
    """A preference set built to be learnable, from the Alpaca seed tasks: prompt = the instruction (+ input),
    chosen = the real output, rejected = the same output with its words shuffled (seeded). Same words and
    length, only the order differs, so a preference for fluent text is the only signal. Outputs of < 4 words
    are left out (too few orders)."""
    import random

    from conftest import shared_data

    rng = random.Random(0)
    records = []
    for line in shared_data("sft", "alpaca_seed_tasks.jsonl").read_text().splitlines():
        task = json.loads(line)
        for inst in task["instances"]:
            words = inst["output"].split()
            if len(words) < 4:
                continue
            shuffled = words[:]
            while shuffled == words:
                rng.shuffle(shuffled)
            prompt = task["instruction"] + (f"\n\n{inst['input']}" if inst["input"].strip() else "")
            records.append({"prompt": prompt, "chosen": inst["output"], "rejected": " ".join(shuffled)})
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return len(records)


def test_dpo_generalizes_on_a_learnable_preference_set(tiny_base, tmp_path):
    """Held-out pairs (20 %) of the learnable set: implicit-reward accuracy goes from 0 (all ties at step 0) to
    ≥ 0.75 and the held-out margin grows, within 40 steps (measured: 0.90 and 0.59)."""
    from trainer.dpo import train_dpo

    n = learnable_pairs(tmp_path / "learnable.jsonl")
    conf, dconf = _dpo_conf("train.max_steps=40", "train.batch_size=8", "train.eval_interval=40",
                            "train.ckpt_interval=40", "dpo.val_fraction=0.2")
    summary = train_dpo(conf, dconf, tiny_base.ckpt, tmp_path / "learnable.jsonl", tmp_path / "dpo", quiet=True)
    assert summary["pairs"] == n > 100
    val = _metrics(tmp_path / "dpo", "val")
    assert [v["step"] for v in val] == [0, 40]
    assert val[0]["margin"] == pytest.approx(0.0, abs=1e-5)
    assert val[-1]["accuracy"] >= 0.75 and val[-1]["margin"] > 0.3
