"""`trainer eval --task / --text`: standard benchmarks scored by log-likelihood, and bits per byte on plain text.

Task files are llm-foundry's in-context-learning JSONL; the kind is read from the first record's keys and every
record must have the same shape:

    multiple choice   {"query": str, "choices": [str, ...], "gold": int}          (piqa, arc_easy, hellaswag)
    cloze             {"context": str, "continuation": str}                        (lambada_openai)
    schema            {"context_options": [str, ...], "continuation": str, "gold": int}   (winogrande)

The definitions are lm-evaluation-harness's (lm_eval/api/model.py `_encode_pair`, api/task.py multiple_choice):
the request is (context + delimiter, continuation); whitespace at the end of the context moves to the start of
the continuation; the continuation's tokens are those of encode(context + continuation) after the first
len(encode(context)); inputs start with BOS (our shards put BOS before every document; lm_eval adds it through
the exported tokenizer); a sequence longer than block_size + 1 keeps its last tokens (and a continuation longer
than block_size is scored on its last block_size tokens). Metrics per task:

    acc            the choice with the largest summed log-probability is the gold one (cloze: the continuation is
                   the greedy argmax at every one of its tokens, lm_eval's lambada `acc`)
    acc_norm       the same after dividing each log-probability by the choice's length in UTF-8 bytes
                   (lm_eval's byte-normalized accuracy; equal to its acc_norm on ASCII text); cloze: = acc
    logprob_gold   the mean over examples of the gold continuation's summed log-probability (nats): DataDecide's
                   continuous metric, which ranks data at small scale far better than accuracy does

`--text FILE`: the file is encoded as one sequence after a BOS and cut into windows of block_size predicted tokens,
each predicted from the window before it (lm_eval's rolling log-likelihood, context_len 1). loss = nats per
token; bpb = total nats / ln 2 / UTF-8 bytes of the file, which compares models with different tokenizers.

Scoring is batched: requests are sorted by length (longest first, ties by their order) so that a batch pads
little, and only the continuation positions go through the output projection. The order and the batches depend
on the data alone, so the numbers are the same on every run. A multiple-choice example's choices share their
context, but the contexts of these tasks are short next to a batch of whole sequences on a CPU, so no KV cache is
kept across choices.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

KINDS = {
    "multiple_choice": ("query", "choices", "gold"),
    "cloze": ("context", "continuation"),
    "schema": ("context_options", "continuation", "gold"),
}


class BenchmarkDataError(ValueError):
    """A task or text file that cannot be scored (format, content); the CLI prints it without a traceback."""


@dataclass
class Example:
    contexts: list[str]  # one per choice (multiple choice: the same query each time)
    continuations: list[str]
    gold: int
    norm: list[float] = field(default_factory=list)  # UTF-8 bytes of each choice, for acc_norm


@dataclass
class BenchmarkTask:
    name: str
    kind: str
    examples: list[Example]


def _kind_of(rec: dict, where: str) -> str:
    for kind, keys in KINDS.items():
        if all(k in rec for k in keys):
            return kind
    raise BenchmarkDataError(
        f"{where}: not an llm-foundry ICL task record (keys {sorted(rec)}); expected multiple choice "
        "{query, choices, gold}, cloze {context, continuation} or schema {context_options, continuation, gold}")


def _check_gold(rec: dict, n: int, where: str) -> int:
    gold = rec["gold"]
    if isinstance(gold, bool) or not isinstance(gold, int) or not 0 <= gold < n:
        raise BenchmarkDataError(f"{where}: gold {gold!r} is not an index into its {n} options")
    return gold


def _strings(value, where: str, key: str) -> list[str]:
    if not isinstance(value, list) or len(value) < 2 or not all(isinstance(s, str) for s in value):
        raise BenchmarkDataError(f"{where}: {key} must be a list of at least 2 strings")
    return value


def load_task(path: str | Path, delimiter: str = " ", limit: int | None = None) -> BenchmarkTask:
    """Read a task file (first `limit` examples); the task's name is the file's stem."""
    path = Path(path)
    if not path.is_file():
        raise BenchmarkDataError(f"{path}: no such task file")
    kind, examples = None, []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if limit is not None and len(examples) >= limit:
                break
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise BenchmarkDataError(f"{where}: not JSON ({e.msg}); task files are JSON lines") from None
            if not isinstance(rec, dict):
                raise BenchmarkDataError(f"{where}: a task record must be a JSON object")
            this = _kind_of(rec, where)
            if kind is None:
                kind = this
            elif this != kind:
                raise BenchmarkDataError(f"{where}: a {this} record in a {kind} task file")
            if kind == "multiple_choice":
                if not isinstance(rec["query"], str):
                    raise BenchmarkDataError(f"{where}: query must be a string")
                choices = _strings(rec["choices"], where, "choices")
                gold = _check_gold(rec, len(choices), where)
                examples.append(Example([rec["query"] + delimiter] * len(choices), choices, gold,
                                        [float(len(c.encode("utf-8"))) for c in choices]))
            elif kind == "cloze":
                if not isinstance(rec["context"], str) or not isinstance(rec["continuation"], str) \
                        or not rec["continuation"]:
                    raise BenchmarkDataError(f"{where}: context and continuation must be strings, the "
                                             "continuation non-empty")
                examples.append(Example([rec["context"] + delimiter], [rec["continuation"]], 0, [1.0]))
            else:
                options = _strings(rec["context_options"], where, "context_options")
                if not isinstance(rec["continuation"], str) or not rec["continuation"]:
                    raise BenchmarkDataError(f"{where}: continuation must be a non-empty string")
                gold = _check_gold(rec, len(options), where)
                n = float(len(rec["continuation"].encode("utf-8")))
                examples.append(Example([o + delimiter for o in options], [rec["continuation"]] * len(options),
                                        gold, [n] * len(options)))
    if not examples:
        raise BenchmarkDataError(f"{path}: no examples")
    return BenchmarkTask(path.stem, kind, examples)


# -- the scoring engine ------------------------------------------------------------------------------------------------
class Encoder:
    """lm_eval's `_encode_pair` over our sentencepiece model, with BOS first and the contexts' ids cached."""

    def __init__(self, sp):
        self.sp, self.bos = sp, sp.bos_id()
        self._cache: dict[str, list[int]] = {}

    def encode(self, text: str) -> list[int]:
        ids = self._cache.get(text)
        if ids is None:
            ids = self._cache[text] = [self.bos, *self.sp.encode(text)]
        return ids

    def pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        spaces = len(context) - len(context.rstrip())
        if spaces:
            context, continuation = context[:-spaces], context[-spaces:] + continuation
        whole = [self.bos, *self.sp.encode(context + continuation)]
        ctx = self.encode(context)
        return ctx, whole[len(ctx):]


@torch.no_grad()
def score_requests(model, requests: list[tuple[list[int], list[int]]], batch_size: int = 32,
                   device: str | torch.device = "cpu") -> list[tuple[float, bool]]:
    """(summed log-probability of the continuation, whether it is the greedy argmax at every token) per request."""
    block = model.cfg.block_size
    rows = []
    for i, (ctx, cont) in enumerate(requests):
        if not cont:
            raise BenchmarkDataError(f"request {i}: the continuation encodes to no tokens")
        seq = (ctx + cont)[-(block + 1):]
        n = min(len(cont), len(seq) - 1)  # a continuation longer than block_size: its last block_size tokens
        rows.append((seq[:-1], n, cont[len(cont) - n:], i))
    order = sorted(range(len(rows)), key=lambda i: (-len(rows[i][0]), i))
    out: list[tuple[float, bool]] = [(0.0, False)] * len(rows)
    for start in range(0, len(order), batch_size):
        batch = [rows[i] for i in order[start:start + batch_size]]
        width = len(batch[0][0])
        x = torch.zeros((len(batch), width), dtype=torch.long)
        for r, (inp, *_) in enumerate(batch):
            x[r, :len(inp)] = torch.as_tensor(inp)
        hidden = model.hidden(x.to(device))
        for r, (inp, n, cont, i) in enumerate(batch):
            # the last n inputs predict the continuation's n tokens (causal: the padding after them is not seen)
            logits = model.lm_head(hidden[r, len(inp) - n:len(inp)]).float()
            logp = F.log_softmax(logits, dim=-1)
            target = torch.as_tensor(cont, device=logp.device)
            ll = logp.gather(1, target[:, None]).sum().item()
            out[i] = (ll, bool((logits.argmax(-1) == target).all()))
    return out


def evaluate_task(model, sp, task: BenchmarkTask, batch_size: int = 32, device: str | torch.device = "cpu") -> dict:
    enc = Encoder(sp)
    requests, owner = [], []
    for e, ex in enumerate(task.examples):
        for ctx, cont in zip(ex.contexts, ex.continuations):
            requests.append(enc.pair(ctx, cont))
            owner.append(e)
    scores = score_requests(model, requests, batch_size, device)
    per_example: list[list[tuple[float, bool]]] = [[] for _ in task.examples]
    for e, s in zip(owner, scores):
        per_example[e].append(s)
    acc = acc_norm = logprob = 0.0
    for ex, res in zip(task.examples, per_example):
        lls = [ll for ll, _ in res]
        logprob += lls[ex.gold]
        if task.kind == "cloze":
            hit = float(res[0][1])
            acc, acc_norm = acc + hit, acc_norm + hit
            continue
        # first maximum on ties, as numpy's argmax in lm_eval
        acc += float(max(range(len(lls)), key=lambda k: (lls[k], -k)) == ex.gold)
        normed = [ll / n for ll, n in zip(lls, ex.norm)]
        acc_norm += float(max(range(len(normed)), key=lambda k: (normed[k], -k)) == ex.gold)
    n = len(task.examples)
    return {"kind": task.kind, "n": n, "acc": acc / n, "acc_norm": acc_norm / n, "logprob_gold": logprob / n}


@torch.no_grad()
def evaluate_text(model, sp, path: str | Path, batch_size: int = 16, device: str | torch.device = "cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise BenchmarkDataError(f"{path}: no such text file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise BenchmarkDataError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    if not text.strip():
        raise BenchmarkDataError(f"{path}: empty text")
    seq = torch.as_tensor([sp.bos_id(), *sp.encode(text)], dtype=torch.long)
    T = model.cfg.block_size
    starts = list(range(0, len(seq) - 1, T))
    total = torch.zeros((), dtype=torch.float64)
    for b in range(0, len(starts), batch_size):
        chunk = starts[b:b + batch_size]
        width = min(T, len(seq) - 1 - chunk[0])
        x = torch.zeros((len(chunk), width), dtype=torch.long)
        y = torch.full((len(chunk), width), -1, dtype=torch.long)
        for r, s in enumerate(chunk):
            k = min(T, len(seq) - 1 - s)
            x[r, :k], y[r, :k] = seq[s:s + k], seq[s + 1:s + k + 1]
        logits = model.lm_head(model.hidden(x.to(device))).float()
        total += F.cross_entropy(logits.transpose(1, 2), y.to(device), ignore_index=-1, reduction="sum").double().cpu()
    tokens, nbytes = len(seq) - 1, len(text.encode("utf-8"))
    nats = total.item()
    return {"tokens": tokens, "bytes": nbytes, "loss": nats / tokens, "bpb": nats / math.log(2) / nbytes}


# -- models --------------------------------------------------------------------------------------------------------
def load_scoring_model(path: str | Path, device: str | torch.device = "cpu"):
    """(model in eval mode, tokenizer) of one of our checkpoints / run folders / exports, or of a transformers
    folder written by `trainer export --format hf` (its tokenizer.model is the sentencepiece original)."""
    from corpus.tokenize.tokenizer import load_tokenizer
    from trainer.checkpoint import CheckpointError, load_base
    from trainer.hf import is_hf_folder, load_hf

    path = Path(path)
    if is_hf_folder(path):
        if not (path / "tokenizer.model").exists():
            raise CheckpointError(f"{path}: a transformers folder without tokenizer.model (the sentencepiece model "
                                  "`trainer export --format hf` copies there)")
        model, sp = load_hf(path), load_tokenizer(path / "tokenizer.model")
    else:
        model, _, sp = load_base(path, device)
    model = model.to(device).eval()
    model.requires_grad_(False)
    return model, sp


def run_benchmarks(model, sp, tasks: list[tuple[str | Path, str]] | None = None,
                   texts: list[str | Path] | None = None, limit: int | None = None, batch_size: int = 32,
                   device: str | torch.device = "cpu") -> dict:
    """{"tasks": {stem: metrics}, "text": {stem: metrics}} for (task file, delimiter) pairs and text files."""
    loaded = [load_task(p, d, limit) for p, d in (tasks or [])]  # every file checked before any scoring
    names = [t.name for t in loaded] + [Path(p).stem for p in texts or []]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise BenchmarkDataError(f"two files share the name {dup[0]!r} (a task's name is its file's stem)")
    return {"tasks": {t.name: evaluate_task(model, sp, t, batch_size, device) for t in loaded},
            "text": {Path(p).stem: evaluate_text(model, sp, p, max(1, batch_size // 2), device) for p in texts or []}}
