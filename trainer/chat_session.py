"""Chat-aware generation: a reply to a conversation through the chat template, and the `trainer chat` loop.

The prompt is render_prompt(messages) (BOS, the turns, then <|assistant|>); generation stops at <|end|> (the
template's end of a reply), EOS or BOS. A conversation longer than the model's context keeps its system message
and drops its oldest turns, so a long session keeps going instead of failing.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

import torch

from corpus.tokenize.tokenizer import BOS_ID, load_tokenizer
from trainer.chat import Message, check_chat_tokens, render_prompt
from trainer.checkpoint import CheckpointError
from trainer.generate import generate
from trainer.model import GPT


def load_chat_model(ckpt: str | Path, device: str = "cpu") -> tuple[GPT, object]:
    """A policy (LoRA checkpoints merged) and its tokenizer, which must have the chat tokens."""
    from trainer.hf import _load_policy

    model, folder = _load_policy(ckpt)
    tok = folder / "tokenizer.model"
    if not tok.exists():
        raise CheckpointError(f"{folder}: tokenizer.model missing (checkpoints and exports carry a copy)")
    sp = load_tokenizer(tok)
    check_chat_tokens(sp)
    return model.to(device).eval(), sp


def stop_ids(sp) -> tuple[int, ...]:
    return (check_chat_tokens(sp)["<|end|>"], sp.eos_id(), BOS_ID)


def fit_conversation(messages: list[Message], sp, block_size: int, room: int) -> list[int]:
    """Prompt ids of the conversation, dropping its oldest non-system turns until `room` tokens are left for the
    reply (at least the last message is kept; a last message too long on its own is an error)."""
    messages = list(messages)
    while True:
        ids = render_prompt(messages, sp)
        if len(ids) + room <= block_size:
            return ids
        first = 1 if messages and messages[0].role == "system" else 0
        if len(messages) - first <= 1:
            if len(ids) < block_size:
                return ids  # the reply gets what room is left
            raise ValueError(f"the message is {len(ids)} tokens with the template; the model's context is "
                             f"{block_size}")
        del messages[first]


def chat_reply(model: GPT, sp, messages: list[Message], max_new_tokens: int = 200, temperature: float = 0.8,
               top_k: int | None = 200, top_p: float | None = None,
               generator: torch.Generator | None = None) -> str:
    """The assistant's next reply to `messages`."""
    room = min(max_new_tokens, model.cfg.block_size // 2)
    prompt = fit_conversation(messages, sp, model.cfg.block_size, room)
    new = generate(model, prompt, max_new_tokens, temperature, top_k, top_p, stop_ids=stop_ids(sp),
                   generator=generator, vocab_limit=sp.vocab_size())
    return sp.decode(new)


def _generator(seed: int | None) -> torch.Generator:
    gen = torch.Generator()
    gen.manual_seed(seed if seed is not None else torch.seed())
    return gen


def chat_text(ckpt: str | Path, prompt: str, system: str | None = None, max_new_tokens: int = 200,
              temperature: float = 0.8, top_k: int | None = 200, top_p: float | None = None,
              seed: int | None = None, device: str = "cpu") -> str:
    """`trainer generate --chat`: one user message (after an optional system message), the reply."""
    model, sp = load_chat_model(ckpt, device)
    messages = ([Message("system", system)] if system else []) + [Message("user", prompt)]
    return chat_reply(model, sp, messages, max_new_tokens, temperature, top_k, top_p, _generator(seed))


HELP = "commands: /reset (forget the conversation), /exit (or end of input)"


def chat_loop(model: GPT, sp, lines: Iterable[str], out: TextIO = sys.stdout, system: str | None = None,
              max_new_tokens: int = 200, temperature: float = 0.8, top_k: int | None = 200,
              top_p: float | None = None, seed: int | None = None, interactive: bool = False) -> int:
    """Read user turns from `lines`, print each reply; returns the number of replies."""
    gen = _generator(seed)
    start = [Message("system", system)] if system else []
    messages = list(start)
    replies = 0
    if interactive:
        print(f"chatting with a {model.num_params():,}-parameter model; {HELP}", file=out)
    for line in lines:
        text = line.rstrip("\n")
        if text.strip() in ("/exit", "/quit"):
            break
        if text.strip() == "/reset":
            messages = list(start)
            print("(conversation reset)", file=out, flush=True)
            continue
        if not text.strip():
            continue
        messages.append(Message("user", text))
        reply = chat_reply(model, sp, messages, max_new_tokens, temperature, top_k, top_p, gen)
        messages.append(Message("assistant", reply))
        print(f"assistant> {reply}", file=out, flush=True)
        replies += 1
        if interactive:
            print("you> ", end="", file=out, flush=True)
    return replies


def interactive_lines(stream: TextIO, out: TextIO) -> Iterable[str]:
    if stream.isatty():
        print("you> ", end="", file=out, flush=True)
    yield from stream
