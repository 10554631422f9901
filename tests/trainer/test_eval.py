"""trainer eval: held-out prompts → replies → reward-model scores; one finite, reproducible number."""

from __future__ import annotations

import json
import math

import pytest
from conftest import REPO, shared_data

HH = ("rlhf", "hh-rlhf-harmless-base-test-first300.jsonl")


@pytest.fixture(scope="module")
def reward_run(tiny_base, tmp_path_factory):
    """A reward model trained for a few steps on hh-rlhf pairs (its quality does not matter here)."""
    from trainer.posttrain import load_method_config
    from trainer.reward import RewardConf, train_reward

    path = REPO / "conf" / "train" / "reward.yaml"
    conf, rconf = load_method_config(path if path.exists() else None,
                                     ["train.threads=1", "train.tensorboard=false", "train.max_steps=3",
                                      "train.batch_size=4"], "reward", RewardConf)
    out = tmp_path_factory.mktemp("eval") / "rm"
    train_reward(conf, rconf, tiny_base.ckpt, shared_data(*HH), out, quiet=True)
    return out


def test_eval_gives_a_finite_reproducible_score(tiny_base, reward_run, tmp_path):
    from trainer.evaluate import evaluate_checkpoint

    hh = shared_data(*HH)
    args = dict(reward_model=reward_run, n=12, max_new_tokens=16)
    greedy = evaluate_checkpoint(tiny_base.ckpt, hh, out=tmp_path / "greedy.json", **args)
    assert greedy["n"] == 12 and math.isfinite(greedy["mean_reward"])
    assert greedy["mean_reward"] == pytest.approx(sum(p["score"] for p in greedy["per_prompt"]) / 12)
    written = json.loads((tmp_path / "greedy.json").read_text())
    assert written["mean_reward"] == greedy["mean_reward"] and len(written["per_prompt"]) == 12
    assert evaluate_checkpoint(tiny_base.ckpt, hh, **args)["mean_reward"] == greedy["mean_reward"]
    a = evaluate_checkpoint(tiny_base.ckpt, hh, temperature=1.0, seed=7, **args)
    b = evaluate_checkpoint(tiny_base.ckpt, hh, temperature=1.0, seed=7, **args)
    c = evaluate_checkpoint(tiny_base.ckpt, hh, temperature=1.0, seed=8, **args)
    assert a["mean_reward"] == b["mean_reward"] and a["per_prompt"] == b["per_prompt"]
    assert [p["response"] for p in c["per_prompt"]] != [p["response"] for p in a["per_prompt"]]


def test_eval_reports_val_loss_and_reward_functions(tiny_base, tmp_path):
    from trainer.evaluate import evaluate_checkpoint

    alpaca = shared_data("sft", "alpaca_seed_tasks.jsonl")
    report = evaluate_checkpoint(tiny_base.ckpt, alpaca, reward_fn="count_token:,", n=8, max_new_tokens=12,
                                 val_data=shared_data("sft", "fastchat_dummy_conversation.json"))
    assert report["n"] == 8 and report["scored_by"] == "count_token:,"
    assert all(p["score"] == int(p["score"]) >= 0 for p in report["per_prompt"])
    assert math.isfinite(report["val_loss"]) and report["val_loss"] > 0 and report["val_conversations"] > 0
    with pytest.raises(ValueError, match="exactly one"):
        evaluate_checkpoint(tiny_base.ckpt, alpaca, n=2)


def test_load_prompts_reads_every_format_and_counts_bad_records(tmp_path):
    from trainer.chat import load_prompts

    txt = tmp_path / "p.txt"
    txt.write_text("What is a cat?\n\nName three colours.\n")
    prompts, skipped = load_prompts(txt)
    assert [p[0].content for p in prompts] == ["What is a cat?", "Name three colours."] and not skipped
    hh, _ = load_prompts(shared_data(*HH))
    assert len(hh) > 250 and all(p[-1].role == "user" for p in hh)
    alpaca, skipped = load_prompts(shared_data("sft", "alpaca_seed_tasks.jsonl"))
    assert len(alpaca) == 175 and not skipped and all(len(p) == 1 for p in alpaca)
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text("\n".join([
        json.dumps({"prompt": "Say hi."}),
        json.dumps({"prompt": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
                               {"role": "user", "content": "Again?"}]}),
        json.dumps({"prompt": ""}),
        json.dumps([1, 2]),
        "{not json",
        json.dumps({"prompt": [{"role": "wizard", "content": "x"}]}),
    ]) + "\n")
    prompts, skipped = load_prompts(mixed)
    assert len(prompts) == 2 and prompts[1][-1].content == "Again?"
    assert skipped == {"empty_turn": 1, "not_an_object": 1, "bad_json": 1, "bad_role": 1}


def test_cli_eval_writes_the_report(tiny_base, reward_run, tmp_path, capsys):
    from trainer.cli import main

    out = tmp_path / "eval.json"
    main(["eval", "--ckpt", str(tiny_base.ckpt), "--reward-model", str(reward_run), "--prompts",
          str(shared_data(*HH)), "--n", "4", "--max-new-tokens", "8", "--out", str(out)])
    report = json.loads(out.read_text())
    assert report["n"] == 4 and math.isfinite(report["mean_reward"])
    assert "mean reward" in capsys.readouterr().out


def test_eval_refuses_a_reward_model_with_another_tokenizer(tiny_base, reward_run, tmp_path):
    import shutil

    from corpus.tokenize.tokenizer import train_tokenizer
    from trainer.checkpoint import CheckpointError, latest_checkpoint
    from trainer.evaluate import evaluate_checkpoint

    text = shared_data("text", "tinyshakespeare.txt").read_text().splitlines()[:3000]
    (tmp_path / "t.txt").write_text("\n".join(line for line in text if line.strip()))
    other = train_tokenizer(tmp_path / "t.txt", tmp_path / "other", 600)
    rm = tmp_path / "rm"
    shutil.copytree(latest_checkpoint(reward_run), rm)
    shutil.copyfile(other, rm / "tokenizer.model")
    with pytest.raises(CheckpointError, match="another tokenizer"):
        evaluate_checkpoint(tiny_base.ckpt, shared_data(*HH), reward_model=rm, n=2, max_new_tokens=4)
