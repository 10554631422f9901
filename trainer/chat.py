"""Post-training data: conversation, preference and prompt loaders, and the one chat template.

Formats read (JSON array, a JSON object holding one record, or JSONL; told apart by content):

    Alpaca         {"instruction", "input"?, "output"}; also the seed-task form {"instruction", "instances":
                   [{"input", "output"}, ...]} (one conversation per instance)
    ShareGPT       {"conversations": [{"from": "human"|"gpt"|"system", "value"}, ...]}
    messages       {"messages": [{"role": "system"|"user"|"assistant", "content"}, ...]}
    preferences    {"prompt": str | messages, "chosen": str | messages, "rejected": str | messages}; without
                   "prompt", chosen/rejected are whole conversations and the prompt is their common prefix
    hh-rlhf        {"chosen": "\\n\\nHuman: ...\\n\\nAssistant: ...", "rejected": "..."} (Anthropic transcripts)

A record that cannot be used is skipped and counted under a reason (`Counter`), never silently dropped.

Template (token ids; every turn's content is encoded on its own, so the loss mask is exact):

    BOS  <|system|> text <|end|>  <|user|> text <|end|>  <|assistant|> text <|end|>  ...
    mask: 1 exactly on the assistant text tokens and their closing <|end|> (so the model learns to stop),
          0 on BOS, role tokens, and system/user turns.

Literal "<|end|>"-like strings inside content are encoded as plain text, never as the control token, so a user
cannot forge a turn boundary.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from corpus.tokenize.tokenizer import BOS_ID, CHAT_TOKENS, EOS_ID, TokenizerError

ROLES = ("system", "user", "assistant")
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "system": "system"}
END_PIECE = "<|end|>"


@dataclass(frozen=True)
class Message:
    role: str  # "system" | "user" | "assistant"
    content: str


@dataclass(frozen=True)
class PreferencePair:
    prompt: list[Message]  # the conversation so far; the responses are the next assistant turn
    chosen: str
    rejected: str


class Malformed(ValueError):
    """A record that cannot be used; args[0] is the reason it is counted under."""


# -- reading records ------------------------------------------------------------------------------------------------
def read_records(path: str | Path, skipped: Counter) -> list:
    """Records of a JSON array, a single JSON object, or JSONL (a bad JSONL line counts as "bad_json")."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"data file not found: {path}")
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = None
        records = []
        for line in text.splitlines():
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                skipped["bad_json"] += 1
        return records
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        for key in ("data", "records", "examples"):  # a wrapper object around the list
            if isinstance(data.get(key), list):
                return data[key]
        return [data]
    return [data]


def _text(value, reason: str) -> str:
    if not isinstance(value, str):
        raise Malformed(reason)
    if not value.strip():
        raise Malformed("empty_turn")
    return value


def _messages(turns, role_key: str, content_key: str, role_map: dict[str, str]) -> list[Message]:
    if not isinstance(turns, list) or not turns:
        raise Malformed("empty_conversation")
    out = []
    for turn in turns:
        if not isinstance(turn, dict):
            raise Malformed("bad_turn")
        role = role_map.get(turn.get(role_key)) if isinstance(turn.get(role_key), str) else None
        if role is None:
            raise Malformed("bad_role")
        if role == "system" and out:
            raise Malformed("system_not_first")
        out.append(Message(role, _text(turn.get(content_key), "missing_content")))
    return out


def parse_messages(turns) -> list[Message]:
    """A `messages` list ({"role", "content"}) or a ShareGPT list ({"from", "value"})."""
    if isinstance(turns, list) and turns and isinstance(turns[0], dict) and "from" in turns[0]:
        return _messages(turns, "from", "value", SHAREGPT_ROLES)
    return _messages(turns, "role", "content", {r: r for r in ROLES})


def _alpaca_prompt(instruction: str, inp) -> str:
    if inp is None or (isinstance(inp, str) and not inp.strip()):
        return instruction
    if not isinstance(inp, str):
        raise Malformed("bad_input")
    return f"{instruction}\n\n{inp}"


def parse_conversation(record) -> list[list[Message]]:
    """The conversations in one record (an Alpaca seed task may hold several instances)."""
    if not isinstance(record, dict):
        raise Malformed("not_an_object")
    if "messages" in record:
        convs = [parse_messages(record["messages"])]
    elif "conversations" in record:
        convs = [parse_messages(record["conversations"])]
    elif "instruction" in record:
        instruction = _text(record["instruction"], "missing_instruction")
        if "instances" in record:
            if not isinstance(record["instances"], list) or not record["instances"]:
                raise Malformed("missing_output")
            pairs = [(inst.get("input"), inst.get("output")) if isinstance(inst, dict) else (None, None)
                     for inst in record["instances"]]
        else:
            pairs = [(record.get("input"), record.get("output"))]
        convs = []
        for inp, output in pairs:
            if output is None:
                raise Malformed("missing_output")
            convs.append([Message("user", _alpaca_prompt(instruction, inp)),
                          Message("assistant", _text(output, "missing_output"))])
    else:
        raise Malformed("unknown_format")
    for conv in convs:
        if not any(m.role == "assistant" for m in conv):
            raise Malformed("no_assistant_turn")
    return convs


def parse_file(path: str | Path, parse: Callable[[Any], list]) -> tuple[list, Counter]:
    """Every item `parse(record)` yields over a file's records; a record raising Malformed is counted under
    its reason (as is a JSONL line that is not JSON)."""
    skipped: Counter = Counter()
    out: list = []
    for record in read_records(path, skipped):
        try:
            out.extend(parse(record))
        except Malformed as e:
            skipped[e.args[0]] += 1
    return out, skipped


def load_conversations(path: str | Path) -> tuple[list[list[Message]], Counter]:
    """Conversations from an Alpaca, ShareGPT or `messages` file, and the skipped records counted by reason."""
    return parse_file(path, parse_conversation)


# -- preferences -------------------------------------------------------------------------------------------------
HH_TURN = re.compile(r"\n\n(Human|Assistant): ?")


def parse_hh(transcript) -> list[Message]:
    """An Anthropic hh-rlhf transcript ("\\n\\nHuman: ...\\n\\nAssistant: ...") as messages."""
    if not isinstance(transcript, str):
        raise Malformed("bad_transcript")
    parts = HH_TURN.split(transcript)
    if len(parts) < 3 or parts[0].strip():
        raise Malformed("bad_transcript")  # text before the first turn marker, or no marker at all
    msgs = []
    for speaker, content in zip(parts[1::2], parts[2::2]):
        content = content.strip()
        if not content:
            raise Malformed("empty_turn")
        msgs.append(Message("user" if speaker == "Human" else "assistant", content))
    return msgs


def _split_pair(chosen: list[Message], rejected: list[Message]) -> PreferencePair:
    """Shared prompt = the common prefix of turns; each response = the final assistant turn after it."""
    if not chosen or not rejected or chosen[-1].role != "assistant" or rejected[-1].role != "assistant":
        raise Malformed("no_assistant_turn")
    prefix = 0
    while prefix < min(len(chosen), len(rejected)) - 1 and chosen[prefix] == rejected[prefix]:
        prefix += 1
    if prefix != len(chosen) - 1 or prefix != len(rejected) - 1:
        raise Malformed("prompts_differ")  # the transcripts diverge before their final assistant turns
    if not chosen[:prefix]:
        raise Malformed("empty_prompt")
    return PreferencePair(chosen[:prefix], chosen[-1].content, rejected[-1].content)


def _response(value) -> str:
    """A response given as text, or as messages whose last turn is the assistant's reply."""
    if isinstance(value, str):
        return _text(value, "missing_response")
    msgs = parse_messages(value)
    if msgs[-1].role != "assistant":
        raise Malformed("no_assistant_turn")
    return msgs[-1].content


def parse_preference(record) -> PreferencePair:
    if not isinstance(record, dict):
        raise Malformed("not_an_object")
    if "chosen" not in record or "rejected" not in record:
        raise Malformed("missing_chosen_or_rejected")
    chosen, rejected = record["chosen"], record["rejected"]
    if "prompt" in record:
        prompt = record["prompt"]
        prompt_msgs = [Message("user", _text(prompt, "missing_prompt"))] if isinstance(prompt, str) \
            else parse_messages(prompt)
        if prompt_msgs[-1].role == "assistant":
            raise Malformed("prompt_ends_with_assistant")
        pair = PreferencePair(prompt_msgs, _response(chosen), _response(rejected))
    elif isinstance(chosen, str) and isinstance(rejected, str):
        pair = _split_pair(parse_hh(chosen), parse_hh(rejected))
    else:
        pair = _split_pair(parse_messages(chosen), parse_messages(rejected))
    if pair.chosen == pair.rejected:
        raise Malformed("identical_responses")  # no preference signal: zero gradient, a coin flip for accuracy
    return pair


def load_preferences(path: str | Path) -> tuple[list[PreferencePair], Counter]:
    """Preference pairs from a prompt/chosen/rejected or hh-rlhf file, and the skipped records by reason."""
    return parse_file(path, lambda record: [parse_preference(record)])


# -- the template ---------------------------------------------------------------------------------------------------
def check_chat_tokens(sp) -> dict[str, int]:
    """Ids of the reserved chat pieces; a tokenizer trained without them cannot render conversations."""
    ids = {piece: sp.piece_to_id(piece) for piece in CHAT_TOKENS}
    missing = [p for p, i in ids.items() if i == sp.unk_id() or sp.id_to_piece(i) != p]
    if missing:
        raise TokenizerError(f"the tokenizer has no chat tokens {missing}: post-training needs a tokenizer trained by "
                             "corpus tokenize (corpus.tokenize.tokenizer.CHAT_TOKENS are reserved as user-defined "
                             "symbols)")
    return ids


def end_token(sp) -> int:
    return check_chat_tokens(sp)[END_PIECE]


END_TOKEN = end_token  # the id lookup by name: END_TOKEN(sp) == sp.piece_to_id("<|end|>")

_CHAT_PIECE = re.compile("|".join(re.escape(p) for p in CHAT_TOKENS))


def encode_text(sp, text: str) -> list[int]:
    """Plain-text ids: a chat piece written inside the text is split ("<|" + "end|>") so it stays text."""
    ids: list[int] = []
    pos = 0
    for m in _CHAT_PIECE.finditer(text):
        if m.start() > pos:
            ids += sp.encode(text[pos:m.start()])
        ids += sp.encode(m.group()[:2]) + sp.encode(m.group()[2:])
        pos = m.end()
    if pos < len(text):
        ids += sp.encode(text[pos:])
    return ids


def render(messages: list[Message], sp, add_generation_prompt: bool = False) -> tuple[list[int], list[int]]:
    """Token ids of a conversation and its loss mask (1 on assistant reply tokens and their <|end|>)."""
    tok = check_chat_tokens(sp)
    ids, mask = [BOS_ID], [0]
    for m in messages:
        if m.role not in ROLES:
            raise ValueError(f"unknown role {m.role!r}; roles are {ROLES}")
        content = encode_text(sp, m.content)
        on = 1 if m.role == "assistant" else 0
        ids += [tok[f"<|{m.role}|>"], *content, tok[END_PIECE]]
        mask += [0, *[on] * len(content), on]
    if add_generation_prompt:
        ids.append(tok["<|assistant|>"])
        mask.append(0)
    return ids, mask


def render_prompt(messages: list[Message], sp) -> list[int]:
    """Ids of the conversation followed by <|assistant|>: where generation of the next reply starts."""
    return render(messages, sp, add_generation_prompt=True)[0]


def render_response(text: str, sp) -> list[int]:
    """Ids of an assistant reply and its <|end|>: render_prompt(p) + render_response(r) == render(p + [r])."""
    return [*encode_text(sp, text), end_token(sp)]


# -- length limits ----------------------------------------------------------------------------------------------------
def truncate(ids: list[int], mask: list[int], max_len: int) -> tuple[list[int], list[int], bool]:
    """Keep the first max_len tokens (TRL's SFT "keep_start"): the prompt side survives, the reply's tail goes.

    Returns (ids, mask, truncated). A sequence whose kept part has no masked token teaches nothing; callers
    drop those (and count them) rather than train on them.
    """
    if len(ids) <= max_len:
        return ids, mask, False
    return ids[:max_len], mask[:max_len], True


@dataclass(frozen=True)
class EncodedPair:
    prompt: list[int]  # render_prompt ids (BOS ... <|assistant|>)
    chosen: list[int]  # render_response ids (... <|end|>)
    rejected: list[int]
    truncated: bool


def fit_prompt_response(prompt: list[int], response: list[int], max_len: int,
                        max_prompt_len: int) -> tuple[list[int], list[int], bool]:
    """Fit prompt + response into max_len tokens.

    Policy (TRL's DPO defaults): when too long, the prompt first keeps its LAST max_prompt_len tokens (the
    recent turns matter most; BOS stays at the front), then the response is cut from its end to fit.
    """
    if len(prompt) + len(response) <= max_len:
        return prompt, response, False
    if len(prompt) > max_prompt_len:
        prompt = [prompt[0], *prompt[len(prompt) - max_prompt_len + 1:]] if prompt[0] == BOS_ID \
            else prompt[-max_prompt_len:]
    return prompt, response[:max(0, max_len - len(prompt))], True


def encode_pair(pair: PreferencePair, sp, max_len: int, max_prompt_len: int | None = None) -> EncodedPair:
    """A preference pair as ids, each of prompt+chosen and prompt+rejected fitting into max_len tokens."""
    max_prompt_len = max_prompt_len if max_prompt_len is not None else max_len // 2
    prompt = render_prompt(pair.prompt, sp)
    p1, chosen, t1 = fit_prompt_response(prompt, render_response(pair.chosen, sp), max_len, max_prompt_len)
    p2, rejected, t2 = fit_prompt_response(prompt, render_response(pair.rejected, sp), max_len, max_prompt_len)
    if p1 != p2:  # one response fit without cutting the prompt and the other did not: cut both the same way
        p1 = p2 = p1 if len(p1) < len(p2) else p2
        chosen, rejected = chosen[:max_len - len(p1)], rejected[:max_len - len(p1)]
    return EncodedPair(p1, chosen, rejected, t1 or t2)


# -- prompts to be answered (PPO rollouts, eval) -----------------------------------------------------------
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
