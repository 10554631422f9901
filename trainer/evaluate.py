"""`trainer eval`: one number to compare checkpoints — the mean reward of their replies to a held-out prompt set.

Each prompt is rendered with the chat template (`render_prompt`), a reply is generated with the KV cache (greedy by
default; `--temperature T --seed S` samples reproducibly), and the reward model scores prompt + reply (the reply
closed by `<|end|>` when the model stopped). A built-in reward function (`--reward-fn count_token:<piece>`) can
stand in for a reward model. With `--val-data` (conversations), the assistant-token loss is reported as well.
The JSON written holds the settings, the mean and every prompt's reply and score.

Prompt files (`load_prompts`): text (one prompt per line), or JSON/JSONL records with "prompt" (text or messages),
preference records (their shared prompt), or conversations (Alpaca, ShareGPT, messages: the turns before the
last assistant reply).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import torch

from corpus.tokenize.tokenizer import BOS_ID, EOS_ID
from trainer.chat import (
    Malformed,
    Message,
    end_token,
    parse_conversation,
    parse_file,
    parse_messages,
    parse_preference,
)
from trainer.config import TrainConfigError

Scorer = Callable[[list[list[int]], list[list[int]]], torch.Tensor]


# -- prompts -----------------------------------------------------------------------------------------------------------
def _prompt_of(record) -> list[list[Message]]:
    if not isinstance(record, dict):
        raise Malformed("not_an_object")
    if "prompt" in record and not ("chosen" in record and "rejected" in record):
        prompt = record["prompt"]
        if isinstance(prompt, str):
            if not prompt.strip():
                raise Malformed("empty_turn")
            return [[Message("user", prompt)]]
        msgs = parse_messages(prompt)
        if msgs[-1].role == "assistant":
            raise Malformed("prompt_ends_with_assistant")
        return [msgs]
    if "chosen" in record and "rejected" in record:
        return [parse_preference(record).prompt]
    convs = []
    for conv in parse_conversation(record):
        last = max(i for i, m in enumerate(conv) if m.role == "assistant")
        if last == 0:
            raise Malformed("empty_prompt")
        convs.append(conv[:last])
    return convs


def load_prompts(path: str | Path) -> tuple[list[list[Message]], Counter]:
    """Prompts (each a conversation to be answered by the assistant) and the skipped records by reason."""
    path = Path(path)
    if path.suffix == ".txt":
        if not path.exists():
            raise FileNotFoundError(f"prompt file not found: {path}")
        lines = path.read_text().splitlines()
        return [[Message("user", line.strip())] for line in lines if line.strip()], Counter()
    return parse_file(path, _prompt_of)


def fit_prompt(ids: list[int], max_len: int) -> tuple[list[int], bool]:
    """A prompt longer than max_len keeps BOS and its last max_len - 1 tokens (the turns nearest the reply)."""
    if len(ids) <= max_len:
        return ids, False
    return [ids[0], *ids[len(ids) - max_len + 1:]] if ids[0] == BOS_ID else ids[-max_len:], True


def stop_ids(sp) -> tuple[int, ...]:
    """A reply ends at <|end|>; EOS and BOS too, since a base model ends a document with them."""
    return (end_token(sp), EOS_ID, BOS_ID)


# -- scoring -----------------------------------------------------------------------------------------------------------
def count_token_reward(sp, piece: str) -> Scorer:
    """Reward = how many times `piece` occurs among the response tokens (a toy reward for tests and demos)."""
    tid = sp.piece_to_id(piece)
    if tid == sp.unk_id() or sp.id_to_piece(tid) != piece:
        raise TrainConfigError(f"count_token: {piece!r} is not a piece of the tokenizer (pieces look like "
                         f"{[sp.id_to_piece(i) for i in range(10, 16)]})")
    return lambda prompts, responses: torch.tensor([float(sum(t == tid for t in r)) for r in responses])


REWARD_FUNCTIONS = {"count_token": count_token_reward}


def reward_function(name: str, sp) -> Scorer:
    """A built-in reward by name: `count_token:<piece>`."""
    kind, _, arg = name.partition(":")
    if kind not in REWARD_FUNCTIONS or not arg:
        raise TrainConfigError(f"unknown reward function {name!r}; built in: count_token:<piece>")
    return REWARD_FUNCTIONS[kind](sp, arg)


def reward_model_scorer(path: str | Path, tokenizer: Path, device) -> tuple[Scorer, Path]:
    """Scores from a `trainer reward` checkpoint, which must share the policy's tokenizer."""
    from corpus.tokenize.shards import sha256_file
    from trainer.checkpoint import CheckpointError
    from trainer.reward import load_reward_model

    rm, folder, _ = load_reward_model(path, device)
    rm.requires_grad_(False)
    if sha256_file(folder / "tokenizer.model") != sha256_file(tokenizer):
        raise CheckpointError(f"the reward model {folder} uses another tokenizer than the policy ({tokenizer})")
    block = rm.cfg.block_size

    def score(prompts: list[list[int]], responses: list[list[int]]) -> torch.Tensor:
        seqs = [fit_prompt(p + r, block)[0] for p, r in zip(prompts, responses)]
        return rm.score(seqs).cpu()

    return score, folder


# -- evaluation --------------------------------------------------------------------------------------------------------
@torch.no_grad()
def conversation_loss(model, path: str | Path, sp, batch_size: int, device) -> tuple[float, int]:
    """Mean next-token loss on the assistant tokens of a conversation file (SFT's val loss), and the count."""
    from trainer.chat import load_conversations, render, truncate
    from trainer.posttrain import PostTrainDataError, lm_batch

    convs, _ = load_conversations(path)
    rows = [truncate(*render(c, sp), model.cfg.block_size + 1)[:2] for c in convs]
    rows = [r for r in rows if sum(r[1][1:]) > 0]
    if not rows:
        raise PostTrainDataError(f"{path}: no conversation with assistant tokens")
    total, count = 0.0, 0
    for i in range(0, len(rows), batch_size):
        x, y = lm_batch(rows[i:i + batch_size])
        logits = model.lm_head(model.hidden(x.to(device))).float()
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), y.to(device), ignore_index=-1,
                                                reduction="sum")
        total, count = total + nll.item(), count + int((y >= 0).sum())
    return total / count, len(rows)


def evaluate_checkpoint(ckpt: str | Path, prompts: str | Path, reward_model: str | Path | None = None,
                        reward_fn: str | None = None, n: int | None = None, max_new_tokens: int = 64,
                        temperature: float = 0.0, top_k: int | None = None, seed: int = 0,
                        val_data: str | Path | None = None, out: str | Path | None = None, batch_size: int = 16,
                        device: str = "cpu") -> dict:
    """Generate for the first `n` prompts (file order), score, and return (and write) the report."""
    from trainer.chat import render_prompt
    from trainer.posttrain import PostTrainDataError, load_base
    from trainer.ppo import sample_responses

    if (reward_model is None) == (reward_fn is None):
        raise TrainConfigError("give exactly one of a reward model (--reward-model) or a reward function (--reward-fn)")
    policy, folder, sp = load_base(ckpt, device)
    policy.requires_grad_(False)
    if reward_model is not None:
        scorer, rm_folder = reward_model_scorer(reward_model, folder / "tokenizer.model", device)
        scored_by = str(rm_folder)
    else:
        scorer, scored_by = reward_function(reward_fn, sp), reward_fn
    messages, skipped = load_prompts(prompts)
    messages = messages[:n] if n is not None else messages
    if not messages:
        raise PostTrainDataError(f"{prompts}: no usable prompts (skipped: {dict(skipped)})")
    limit = policy.cfg.block_size - max_new_tokens
    if limit < 2:
        raise TrainConfigError(f"--max-new-tokens {max_new_tokens} leaves no room for a prompt in block_size "
                         f"{policy.cfg.block_size}")
    fitted = [fit_prompt(render_prompt(m, sp), limit) for m in messages]
    prompt_ids = [ids for ids, _ in fitted]
    gen = torch.Generator(device=device).manual_seed(seed)
    responses: list[list[int]] = []
    for i in range(0, len(prompt_ids), batch_size):
        responses += sample_responses(policy, prompt_ids[i:i + batch_size], max_new_tokens, temperature, gen,
                                      stop_ids(sp), vocab_limit=sp.vocab_size(), top_k=top_k)
    scores = torch.cat([scorer(prompt_ids[i:i + batch_size], responses[i:i + batch_size])
                        for i in range(0, len(prompt_ids), batch_size)]).tolist()
    stops = set(stop_ids(sp))
    report = {
        "ckpt": str(folder), "prompts": str(prompts), "scored_by": scored_by, "n": len(scores),
        "mean_reward": sum(scores) / len(scores), "max_new_tokens": max_new_tokens, "temperature": temperature,
        "top_k": top_k, "seed": seed, "skipped": dict(skipped), "truncated_prompts": sum(t for _, t in fitted),
        "mean_response_tokens": sum(len(r) for r in responses) / len(responses), "val_loss": None,
        "per_prompt": [{"prompt": m[-1].content, "response": sp.decode([t for t in r if t not in stops]),
                        "stopped": bool(r) and r[-1] in stops, "score": s}
                       for m, r, s in zip(messages, responses, scores)],
    }
    if not all(math.isfinite(s) for s in scores):
        raise FloatingPointError("the reward model returned a non-finite score")
    if val_data is not None:
        report["val_loss"], report["val_conversations"] = conversation_loss(policy, val_data, sp, batch_size, device)
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(report, indent=1, ensure_ascii=False))
    return report
