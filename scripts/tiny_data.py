"""Tiny, deterministic training data for scripts/gpu_check.sh, built without Spark or Java.

Writes into OUT: `tokens/` (a sentencepiece BPE model with the chat tokens, trained on synthetic text, and token
shards + manifest.json cut by corpus.tokenize.shards.ShardCutter through trainer.data.write_shards_from_texts),
`sft.jsonl` (messages conversations), `prefs.jsonl` (prompt / chosen / rejected), `prompts.txt`.

The text is arithmetic and small stories from a seeded generator: learnable in a few dozen steps, the same bytes
on every machine, and nothing read from outside the repository.

    python scripts/tiny_data.py OUT [--docs 3000] [--vocab 512]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a file from a bare checkout

from corpus.tokenize.tokenizer import train_tokenizer  # noqa: E402
from trainer.data import write_shards_from_texts  # noqa: E402

NAMES = ["Alice", "Bob", "Carol", "Dave", "Erin", "Frank", "Grace", "Heidi"]
THINGS = ["apples", "books", "coins", "shells", "stamps", "marbles"]
WORDS = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
         "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen"]


def story(rng: random.Random) -> str:
    a, b = rng.sample(NAMES, 2)
    n, m = rng.randint(1, 9), rng.randint(1, 9)
    thing = rng.choice(THINGS)
    return (f"{a} has {WORDS[n - 1]} {thing}. {b} gives {a} {WORDS[m - 1]} more. "
            f"Now {a} has {WORDS[n + m - 1]} {thing}. {b} is happy to share.")


def question(rng: random.Random) -> tuple[str, str, str]:
    """(question, right answer, wrong answer)."""
    n, m = rng.randint(1, 9), rng.randint(1, 9)
    wrong = rng.choice([k for k in range(2, 19) if k != n + m])
    q = f"What is {WORDS[n - 1]} plus {WORDS[m - 1]}?"
    return q, f"{WORDS[n - 1].capitalize()} plus {WORDS[m - 1]} is {WORDS[n + m - 1]}.", \
        f"{WORDS[n - 1].capitalize()} plus {WORDS[m - 1]} is {WORDS[wrong - 1]}."


def build(out: Path, docs: int = 3000, vocab: int = 512, seed: int = 0) -> dict:
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    texts = [" ".join(story(rng) for _ in range(rng.randint(3, 12))) for _ in range(docs)]
    qa = [question(rng) for _ in range(400)]
    texts += [f"{q} {a}" for q, a, _ in qa]
    sample = out / "sample.txt"
    sample.write_text("\n".join(texts))
    tok = train_tokenizer(sample, out / "tok", vocab)
    manifest = write_shards_from_texts(texts, out / "tokens", tok, shard_tokens=100_000, val_fraction=0.05)
    with open(out / "sft.jsonl", "w") as f:
        for q, a, _ in qa[:300]:
            f.write(json.dumps({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]})
                    + "\n")
    with open(out / "prefs.jsonl", "w") as f:
        for q, a, wrong in qa[:300]:
            f.write(json.dumps({"prompt": q, "chosen": a, "rejected": wrong}) + "\n")
    (out / "prompts.txt").write_text("".join(q + "\n" for q, _, _ in qa[300:]))
    return {"tokens": str(manifest.parent), "tokenizer": str(tok), "documents": len(texts)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--docs", type=int, default=3000)
    ap.add_argument("--vocab", type=int, default=512)
    args = ap.parse_args()
    print(json.dumps(build(args.out, args.docs, args.vocab)))


if __name__ == "__main__":
    main()
