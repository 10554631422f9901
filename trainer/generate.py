"""Sampling from a model, a checkpoint or an export: KV cache, temperature, top-k, top-p, stop ids; one prompt
(`generate`) or a batch of prompts at once (`sample_responses`, for PPO rollouts and eval).

A sampling generator lives on the model's device: `torch.multinomial` on CUDA takes only a CUDA generator.
"""

from __future__ import annotations

from pathlib import Path

import torch

from corpus.tokenize.tokenizer import BOS_ID, EOS_ID, load_tokenizer
from trainer.checkpoint import CheckpointError, load_for_inference
from trainer.model import GPT, KVCache


def filter_logits(logits: torch.Tensor, top_k: int | None = None, top_p: float | None = None) -> torch.Tensor:
    """Set to -inf everything outside the top-k and outside the smallest set whose probability reaches top-p."""
    if top_k is not None and 0 < top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and 0.0 < top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        drop = cum - sorted_logits.softmax(-1) >= top_p  # keep a token if the mass before it is still under top_p
        logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    return logits


@torch.no_grad()
def generate(model: GPT, prompt: list[int], max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
             top_p: float | None = None, stop_ids: tuple[int, ...] = (EOS_ID,), use_cache: bool = True,
             generator: torch.Generator | None = None, vocab_limit: int | None = None) -> list[int]:
    """New token ids after `prompt` (temperature 0 = greedy). Stops at a stop id (not returned) or at block_size.

    `vocab_limit` masks the padding rows of a vocabulary rounded up past the tokenizer's size.
    """
    if not prompt:
        raise ValueError("the prompt must hold at least one token")
    device = next(model.parameters()).device
    limit = model.cfg.block_size - len(prompt)
    if limit <= 0:
        raise ValueError(f"the prompt has {len(prompt)} tokens; the model's block_size is {model.cfg.block_size}")
    ids = torch.tensor([prompt], dtype=torch.long, device=device)
    cache = KVCache(model.cfg, 1, device) if use_cache else None
    out: list[int] = []
    feed = ids
    for _ in range(min(max_new_tokens, limit)):
        # With a cache only the new token goes through the model; without, the whole sequence is recomputed.
        logits, _ = model(feed if use_cache else ids, cache=cache)
        logits = logits[:, -1]
        if vocab_limit is not None:
            logits[:, vocab_limit:] = float("-inf")
        if temperature <= 0:
            nxt = logits.argmax(-1, keepdim=True)
        else:
            probs = filter_logits(logits / temperature, top_k, top_p).softmax(-1)
            nxt = torch.multinomial(probs, 1, generator=generator)
        token = int(nxt)
        if token in stop_ids:
            break
        out.append(token)
        ids = torch.cat([ids, nxt], dim=1)
        feed = nxt
    return out


@torch.no_grad()
def sample_responses(model, prompts: list[list[int]], max_new_tokens: int, temperature: float,
                     generator: torch.Generator | None, stop_ids: tuple[int, ...], vocab_limit: int | None = None,
                     top_k: int | None = None) -> list[list[int]]:
    """Sampled responses for many prompts in one batch through the KV cache (temperature 0 = greedy).

    Our attention takes no padding mask, so prompts of different lengths are not padded: every row starts at the
    shortest prompt's length, and a row whose prompt is longer is fed its own next prompt token (teacher forcing)
    until its prompt is used up, then its samples. Each row is thus one contiguous sequence, exactly what the
    one-prompt generator would see, at the cost of (longest − shortest prompt) extra decode steps. A response
    ends with the stop id it sampled (kept: stopping is an action the policy is trained on), or after
    max_new_tokens, or at block_size.
    """
    if not prompts:
        return []
    if any(not p for p in prompts):
        raise ValueError("a prompt must hold at least one token")
    device = next(model.parameters()).device
    B, block = len(prompts), model.cfg.block_size
    lens = torch.tensor([len(p) for p in prompts], device=device)
    if int(lens.max()) >= block:
        raise ValueError(f"a prompt has {int(lens.max())} tokens; the model's block_size is {block}")
    limits = torch.clamp(block - lens, max=max_new_tokens)  # new tokens each row may take
    longest, shortest = int(lens.max()), int(lens.min())
    forced = torch.zeros(B, longest, dtype=torch.long, device=device)
    for b, p in enumerate(prompts):
        forced[b, :len(p)] = torch.tensor(p, dtype=torch.long)
    stops = torch.tensor(stop_ids, device=device)
    cache = KVCache(model.cfg, B, device)
    feed = forced[:, :shortest]
    pos = shortest  # the position the next token fills
    n_new = torch.zeros(B, dtype=torch.long, device=device)
    done = limits <= 0
    new = []
    while not bool(done.all()):
        logits = model(feed, cache=cache)[0][:, -1]
        if vocab_limit is not None:
            logits[:, vocab_limit:] = float("-inf")
        if temperature <= 0:
            nxt = logits.argmax(-1)
        else:
            probs = filter_logits(logits / temperature, top_k, None).softmax(-1)
            nxt = torch.multinomial(probs, 1, generator=generator)[:, 0]
        in_prompt = pos < lens
        generating = ~in_prompt & ~done
        new.append(torch.where(generating, nxt, -1))
        n_new += generating.long()
        done |= generating & (torch.isin(nxt, stops) | (n_new >= limits))
        if pos < longest:
            nxt = torch.where(in_prompt, forced[:, pos], nxt)
        feed = nxt[:, None]
        pos += 1
    tokens = torch.stack(new, dim=1).tolist() if new else [[] for _ in prompts]
    return [[t for t in row if t >= 0] for row in tokens]


def generate_text(ckpt: str | Path, prompt: str, max_new_tokens: int = 200, temperature: float = 0.8,
                  top_k: int | None = 200, top_p: float | None = None, seed: int | None = None,
                  device: str = "cpu") -> str:
    model, folder = load_for_inference(ckpt, device)
    tok_path = folder / "tokenizer.model"
    if not tok_path.exists():
        raise CheckpointError(f"{folder}: tokenizer.model missing (checkpoints and exports carry a copy)")
    sp = load_tokenizer(tok_path)
    # Training documents start with BOS, so a prompt does too: generation continues a document's start.
    prompt_ids = [BOS_ID, *sp.encode(prompt)]
    gen = torch.Generator(device=device)
    gen.manual_seed(seed if seed is not None else torch.seed())
    # Our shards separate documents with BOS only, so a model ends a document by predicting BOS: stop there too.
    new = generate(model, prompt_ids, max_new_tokens, temperature, top_k, top_p, stop_ids=(sp.eos_id(), BOS_ID),
                   generator=gen, vocab_limit=sp.vocab_size())
    return prompt + sp.decode(new)
