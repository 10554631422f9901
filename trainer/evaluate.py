"""`trainer eval`: one number to compare checkpoints — the mean reward of their replies to a held-out prompt set.

Each prompt is rendered with the chat template (`render_prompt`), a reply is generated with the KV cache (greedy by
default; `--temperature T --seed S` samples reproducibly), and the reward model scores prompt + reply (the reply
closed by `<|end|>` when the model stopped). A built-in reward function (`--reward-fn count_token:<piece>`) can
stand in for a reward model. With `--val-data` (conversations), the assistant-token loss is reported as well.
The JSON written holds the settings, the mean and every prompt's reply and score.

Prompt files are read by `trainer.chat.load_prompts`, scorers come from trainer/reward.py and sampling from
trainer/generate.py.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from trainer.chat import fit_prompt, load_conversations, load_prompts, render, render_prompt, stop_ids, truncate
from trainer.checkpoint import load_base
from trainer.config import TrainConfigError
from trainer.generate import sample_responses
from trainer.posttrain import PostTrainDataError, lm_batch
from trainer.reward import reward_function, reward_model_scorer


# -- evaluation --------------------------------------------------------------------------------------------------------
@torch.no_grad()
def conversation_loss(model, path: str | Path, sp, batch_size: int, device) -> tuple[float, int]:
    """Mean next-token loss on the assistant tokens of a conversation file (SFT's val loss), and the count."""
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
