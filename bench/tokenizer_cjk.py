"""Tokens per character on Chinese (and English) for sentencepiece models trained as `corpus tokenize` trains them
(corpus.tokenize.tokenizer.train_tokenizer), by share of Chinese in the sample and character_coverage.

A character outside the vocabulary is byte-fallback: 3 tokens for one Chinese character. Too low a coverage (or too
little Chinese in the sample) turns Chinese into that noise; this measures where.

    .venv/bin/python bench/tokenizer_cjk.py --zh-share 0.1 0.5 --coverage 0.9995 0.99995 1.0 --vocab 32000
"""

from __future__ import annotations

import argparse
import gzip
import json
import tempfile
from pathlib import Path

import sentencepiece as spm

from corpus.tokenize.tokenizer import BOS_ID, TokenizerError, train_tokenizer

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def texts(name: str, limit_chars: int, skip: int = 0) -> list[str]:
    out, total = [], 0
    with gzip.open(DATA / "multilingual" / name, "rt") as f:
        for i, line in enumerate(f):
            if i < skip:
                continue
            t = json.loads(line)["text"]
            out.append(t)
            total += len(t)
            if total >= limit_chars:
                break
    return out


def english(limit_chars: int, skip_chars: int = 0) -> list[str]:
    text = (DATA / "text" / "wikitext-2-raw-test.txt").read_text()
    part = text[skip_chars : skip_chars + limit_chars]
    return [p for p in part.split("\n") if p.strip()]


def per_char(sp: spm.SentencePieceProcessor, docs: list[str]) -> tuple[float, float]:
    """(tokens per character, share of tokens that are byte-fallback)."""
    chars = sum(len(d) for d in docs)
    ids = [i for d in docs for i in sp.encode(d) if i != BOS_ID]
    byte = sum(1 for i in ids if sp.is_byte(i))
    return len(ids) / chars, byte / max(len(ids), 1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sample-chars", type=int, default=1_000_000)
    ap.add_argument("--zh-share", type=float, nargs="+", default=[0.1, 0.5])
    ap.add_argument("--coverage", type=float, nargs="+", default=[0.9995, 0.99995, 1.0])
    ap.add_argument("--vocab", type=int, default=16000)
    args = ap.parse_args()
    held_zh = texts("zhwiki.jsonl.gz", 200_000, skip=20_000)
    held_en = english(200_000, skip_chars=1_000_000)
    print(f"sample {args.sample_chars:,} chars, vocab {args.vocab:,}; held out: 200k chars of zhwiki (articles "
          "20,000+), 200k chars of WikiText-2")
    print("| Chinese share | character_coverage | zh tokens/char | zh byte-fallback share | en tokens/char |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for share in args.zh_share:
        sample = texts("zhwiki.jsonl.gz", int(args.sample_chars * share)) + english(
            int(args.sample_chars * (1 - share)))
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "s.txt").write_text("\n".join(s.replace("\n", " ") for s in sample))
            for cov in args.coverage:
                try:
                    model = train_tokenizer(Path(tmp) / "s.txt", Path(tmp) / f"m{cov}", args.vocab, cov)
                except TokenizerError as e:
                    print(f"| {share} | {cov} | {e} | | |")
                    continue
                sp = spm.SentencePieceProcessor(model_file=str(model))
                zh, zh_bytes = per_char(sp, held_zh)
                en, _ = per_char(sp, held_en)
                print(f"| {share} | {cov} | {zh:.3f} | {zh_bytes:.3f} | {en:.3f} |")


if __name__ == "__main__":
    main()
