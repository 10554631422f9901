"""PPO: the math against hand-computed examples, then the RL loop on the tiny model (reward rises, resume)."""

from __future__ import annotations

import math

import pytest
import torch

from trainer.ppo import gae, kl_rewards, masked_whiten, ppo_losses


def test_gae_matches_hand_computed_example():
    # γ = 1, λ = 0.95; reward 1 on the last token. δ2 = 1 - .7 = .3; δ1 = .7 - .6 = .1, A1 = .1 + .95·.3 = .385;
    # δ0 = .6 - .5 = .1, A0 = .1 + .95·.385 = .46575.
    adv, ret = gae(torch.tensor([[0.0, 0.0, 1.0]]), torch.tensor([[0.5, 0.6, 0.7]]), torch.ones(1, 3), 1.0, 0.95)
    assert torch.allclose(adv, torch.tensor([[0.46575, 0.385, 0.3]]), atol=1e-6)
    assert torch.allclose(ret, torch.tensor([[0.96575, 0.985, 1.0]]), atol=1e-6)


def test_gae_ignores_padding_after_the_response():
    # γ = .9, λ = .5, last token padding (its reward 9.9 and value 5 must not leak in): δ1 = 1 + 0 - .4 = .6,
    # A1 = .6; δ0 = .2 + .9·.4 - .1 = .46, A0 = .46 + .45·.6 = .73.
    adv, ret = gae(torch.tensor([[0.2, 1.0, 9.9]]), torch.tensor([[0.1, 0.4, 5.0]]), torch.tensor([[1, 1, 0]]),
                   0.9, 0.5)
    assert torch.allclose(adv, torch.tensor([[0.73, 0.6, 0.0]]), atol=1e-6)
    assert torch.allclose(ret, torch.tensor([[0.83, 1.0, 0.0]]), atol=1e-6)


def test_kl_rewards_put_the_score_on_the_last_response_token():
    logp = torch.tensor([[-1.0, -2.0, -3.0], [-1.0, -1.0, -1.0]])
    ref = torch.tensor([[-1.5, -2.0, -2.0], [-1.0, -2.0, -1.0]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    rewards, kl = kl_rewards(logp, ref, torch.tensor([2.0, -1.0]), mask, kl_coef=0.05)
    assert torch.allclose(kl, torch.tensor([[0.5, 0.0, 0.0], [0.0, 1.0, 0.0]]))
    assert torch.allclose(rewards, torch.tensor([[-0.025, 2.0, 0.0], [0.0, -0.05, -1.0]]))


def test_ppo_losses_clip_as_hand_computed():
    # Token 1: A = 1, ratio 1.5 → clipped to 1.2, loss -1.2. Token 2: A = -1, ratio 0.9 (inside) → loss 0.9.
    # Values: old 0, new (.5, -.1), returns (1, 0): clipped (.2, -.1); max squared errors (.64, .01) → vf .1625.
    mask = torch.ones(1, 2)
    new = torch.tensor([[math.log(1.5), math.log(0.9)]], requires_grad=True)
    out = ppo_losses(new, torch.zeros(1, 2), torch.tensor([[1.0, -1.0]]), torch.tensor([[0.5, -0.1]]),
                     torch.zeros(1, 2), torch.tensor([[1.0, 0.0]]), mask, 0.2, 0.2, 0.1)
    assert out["pg_loss"].item() == pytest.approx(-0.15)
    assert out["vf_loss"].item() == pytest.approx(0.1625)
    assert out["loss"].item() == pytest.approx(-0.15 + 0.1 * 0.1625)
    assert out["clipfrac"].item() == pytest.approx(0.5)
    assert out["approx_kl"].item() == pytest.approx(0.25 * (math.log(1.5) ** 2 + math.log(0.9) ** 2))
    out["loss"].backward()
    assert new.grad[0, 0].item() == 0.0  # the clipped token passes no gradient
    assert new.grad[0, 1].item() == pytest.approx(0.9 / 2)  # d/dlogp of -A·ratio/2 = ratio/2 for A = -1


def test_masked_whiten_uses_only_masked_entries():
    x = torch.tensor([[1.0, 2.0, 100.0], [3.0, 4.0, -50.0]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 0]])
    w = masked_whiten(x, mask)
    ref = torch.tensor([1.0, 2.0, 3.0, 4.0])
    expected = (ref - ref.mean()) / ref.std()  # unbiased std, as TRL
    assert torch.allclose(w[:, :2].flatten(), expected, atol=1e-5)
    assert (w[:, 2] == 0).all()


def _random_gpt(seed: int = 0):
    from trainer.model import GPT, GPTConfig

    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=64, block_size=32, n_layer=2, n_head=2, d_model=32)).eval()


def test_batched_greedy_sampling_equals_the_kv_cache_generator():
    from trainer.generate import generate, sample_responses

    torch.set_num_threads(1)
    model = _random_gpt()
    prompts = [[1, 5, 9], [1, 7, 7], [1, 4], [1, 5, 9, 11, 13]]
    stop = (2,)
    got = sample_responses(model, prompts, 10, 0.0, None, stop)
    for p, r in zip(prompts, got):
        ref = generate(model, p, 10, temperature=0.0, stop_ids=stop)
        assert r[:len(ref)] == ref
        assert r == ref or (len(r) == len(ref) + 1 and r[-1] in stop)  # we keep the sampled stop id


def test_sampling_is_reproducible_with_a_seeded_generator():
    from trainer.generate import sample_responses

    model = _random_gpt()
    prompts = [[1, 5, 9], [1, 7, 7], [1, 4]]
    a = sample_responses(model, prompts, 12, 1.0, torch.Generator().manual_seed(3), (2,), vocab_limit=60)
    b = sample_responses(model, prompts, 12, 1.0, torch.Generator().manual_seed(3), (2,), vocab_limit=60)
    assert a == b
    assert all(t < 60 for r in a for t in r)


def test_response_frame_logprobs_match_full_sequence_logprobs():
    from trainer.dpo import sequence_logprobs
    from trainer.ppo import pad_sequences, response_logits_values

    model = _random_gpt()
    prompts, responses = [[1, 5, 9], [1, 4]], [[7, 8, 2], [3, 3, 3, 3]]
    ids, index, mask = pad_sequences(prompts, responses, pad_id=0)
    logp, logits, values = response_logits_values(model, None, ids, index)
    seq_mask = torch.zeros_like(ids)
    for b, (p, r) in enumerate(zip(prompts, responses)):
        seq_mask[b, len(p):len(p) + len(r)] = 1
    total, _ = sequence_logprobs(model, ids, seq_mask)
    assert torch.allclose((logp * mask).sum(1), total, atol=1e-5)
    assert logits.shape == (2, 4, 64) and values.shape == (2, 4)


# -- the RL loop on the tiny base model ------------------------------------------------------------------------------
def _ppo_conf(*overrides: str):
    from conftest import REPO

    from trainer.posttrain import load_method_config
    from trainer.ppo import PPOConf

    base = ["train.threads=1", "train.tensorboard=false"]
    return load_method_config(REPO / "conf" / "train" / "ppo.yaml", [*base, *overrides], "ppo", PPOConf)


def _metrics(run) -> list[dict]:
    import json

    return [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if r["kind"] == "train"]


def test_ppo_raises_a_token_count_reward_with_finite_kl(tiny_base, tmp_path):
    """Toy reward = number of "," tokens in the reply to Alpaca seed-task prompts (the base model writes ~0.8 per
    24-token reply). Within 20 rollout batches of 16 the RL loop must clearly raise it, with KL to the reference
    finite and positive (the policy moved) and the logged diagnostics present."""
    from conftest import shared_data

    from trainer.ppo import train_ppo

    prompts = shared_data("sft", "alpaca_seed_tasks.jsonl")
    conf, pconf = _ppo_conf("train.max_steps=20", "train.ckpt_interval=20")
    summary = train_ppo(conf, pconf, tiny_base.ckpt, prompts, tmp_path / "ppo", reward_fn="count_token:,",
                        quiet=True)
    assert summary["step"] == 20 and summary["prompts"] == 175
    rows = _metrics(tmp_path / "ppo")
    first, last = rows[:5], rows[-5:]
    mean = lambda rs, k: sum(r[k] for r in rs) / len(rs)  # noqa: E731
    assert mean(last, "reward") > mean(first, "reward") + 0.75, [r["reward"] for r in rows]
    assert all(math.isfinite(r["kl"]) for r in rows)
    assert rows[0]["kl"] == pytest.approx(0.0, abs=1e-4)  # first rollout: policy == reference
    assert 0 < mean(last, "kl") < 50
    for key in ("entropy", "clipfrac", "vf_loss", "pg_loss", "approx_kl", "response_tokens"):
        assert all(math.isfinite(r[key]) for r in rows), key
    assert mean(last, "entropy") > 0


def test_ppo_resume_is_bit_exact(tiny_base, tmp_path):
    """N rollout batches + resume N == 2N: the policy, value head, optimizer, sampler and prompt order all
    resume, so every logged reward, KL and loss is identical."""
    import shutil

    from conftest import shared_data

    from trainer.checkpoint import CheckpointError
    from trainer.ppo import train_ppo

    prompts = shared_data("sft", "alpaca_seed_tasks.jsonl")
    conf, pconf = _ppo_conf("train.max_steps=4", "train.ckpt_interval=2", "train.batch_size=8",
                            "ppo.num_minibatches=2", "ppo.ppo_epochs=2")
    train_ppo(conf, pconf, tiny_base.ckpt, prompts, tmp_path / "full", reward_fn="count_token:,", quiet=True)
    shutil.copytree(tmp_path / "full", tmp_path / "cut")
    shutil.rmtree(tmp_path / "cut" / "ckpt" / "step_0000004")
    with pytest.raises(CheckpointError, match="--resume"):
        train_ppo(conf, pconf, tiny_base.ckpt, prompts, tmp_path / "cut", reward_fn="count_token:,", quiet=True)
    train_ppo(conf, pconf, tiny_base.ckpt, prompts, tmp_path / "cut", reward_fn="count_token:,", resume=True,
              quiet=True)
    drop = ("tokens_per_sec", "dt_ms", "rollout_s", "update_s")
    strip = lambda rows: [{k: v for k, v in r.items() if k not in drop} for r in rows]  # noqa: E731
    full, cut = strip(_metrics(tmp_path / "full")), strip(_metrics(tmp_path / "cut"))
    assert [r["step"] for r in cut] == [1, 2, 3, 4]
    assert cut == full
    # The checkpoint is a plain GPT checkpoint: the policy loads for generation and evaluation.
    from trainer.checkpoint import load_base

    load_base(tmp_path / "cut")


def test_ppo_against_a_trained_reward_model(tiny_base, tmp_path):
    """Smoke run with a reward model trained on hh-rlhf pairs (trainer reward) as the scorer."""
    from conftest import REPO, shared_data

    from trainer.posttrain import load_method_config
    from trainer.ppo import train_ppo
    from trainer.reward import RewardConf, train_reward

    hh = shared_data("rlhf", "hh-rlhf-harmless-base-test-first300.jsonl")
    rconf, rr = load_method_config(REPO / "conf" / "train" / "reward.yaml" if (REPO / "conf" / "train" /
                                   "reward.yaml").exists() else None,
                                   ["train.threads=1", "train.tensorboard=false", "train.max_steps=3",
                                    "train.batch_size=4"], "reward", RewardConf)
    train_reward(rconf, rr, tiny_base.ckpt, hh, tmp_path / "rm", quiet=True)
    conf, pconf = _ppo_conf("train.max_steps=2", "train.batch_size=4", "ppo.ppo_epochs=1")
    summary = train_ppo(conf, pconf, tiny_base.ckpt, hh, tmp_path / "ppo", reward_model=tmp_path / "rm",
                        quiet=True)
    rows = _metrics(tmp_path / "ppo")
    assert summary["step"] == 2 and all(math.isfinite(r["reward"]) and math.isfinite(r["loss"]) for r in rows)
    with pytest.raises(ValueError, match="exactly one"):
        train_ppo(conf, pconf, tiny_base.ckpt, hh, tmp_path / "x", quiet=True)
    with pytest.raises(ValueError, match="not a piece"):
        train_ppo(conf, pconf, tiny_base.ckpt, hh, tmp_path / "y", reward_fn="count_token:no-such-piece", quiet=True)


def test_cli_ppo_and_eval_chain(tiny_base, tmp_path, capsys):
    """The README chain on the shared fixtures: ppo with a reward function, then eval of the result."""
    from conftest import REPO, shared_data

    from trainer.cli import main

    prompts = shared_data("sft", "alpaca_seed_tasks.jsonl")
    args = ["ppo", "--config", str(REPO / "conf" / "train" / "ppo.yaml"), "--policy", str(tiny_base.ckpt),
            "--prompts", str(prompts), "--out", str(tmp_path / "p"), "--reward-fn", "count_token:,",
            "--set", "train.threads=1", "--set", "train.tensorboard=false", "--set", "train.batch_size=4",
            "--set", "ppo.ppo_epochs=1", "--max-steps", "2"]
    main(args)
    assert "clipfrac" in capsys.readouterr().out
    main(["eval", "--ckpt", str(tmp_path / "p"), "--prompts", str(prompts), "--reward-fn", "count_token:,",
          "--n", "4", "--max-new-tokens", "8", "--out", str(tmp_path / "e.json")])
    assert "mean reward" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        main([*args[:9], "--max-steps", "1"])  # neither --reward-model nor --reward-fn
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        main([*args[:5], "--out", str(tmp_path / "q"), "--reward-fn", "count_token:,", "--prompts",
              str(tmp_path / "none.jsonl")])
    assert e.value.code == 2 and "not found" in capsys.readouterr().err


def test_ppo_and_dpo_run_under_bfloat16_autocast(tiny_base, tmp_path):
    from conftest import REPO, shared_data

    from trainer.dpo import DPOConf, train_dpo
    from trainer.posttrain import load_method_config
    from trainer.ppo import train_ppo

    conf, pconf = _ppo_conf("train.max_steps=2", "train.batch_size=4", "ppo.ppo_epochs=1", "train.dtype=bfloat16")
    s = train_ppo(conf, pconf, tiny_base.ckpt, shared_data("sft", "alpaca_seed_tasks.jsonl"), tmp_path / "p",
                  reward_fn="count_token:,", quiet=True)
    assert all(math.isfinite(s["train"][k]) for k in ("loss", "kl", "reward", "entropy"))
    dconf_t, dconf = load_method_config(REPO / "conf" / "train" / "dpo.yaml",
                                        ["train.threads=1", "train.tensorboard=false", "train.max_steps=2",
                                         "train.batch_size=2", "train.dtype=bfloat16", "dpo.max_len=128"],
                                        "dpo", DPOConf)
    s = train_dpo(dconf_t, dconf, tiny_base.ckpt, shared_data("rlhf", "hh-rlhf-harmless-base-test-first300.jsonl"),
                  tmp_path / "d", quiet=True)
    assert math.isfinite(s["train"]["loss"])
