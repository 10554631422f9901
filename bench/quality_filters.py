"""Time datatrove's four English quality filters against corpus.build.quality_filters on the same real docs.

Usage: .venv/bin/python bench/quality_filters.py [--repeats N]

Docs: ../shared/data/docs/*.gz (dolma schema, ``text`` field). Filters use the FineWeb recipe settings
(C4 with ``filter_no_terminal_punct=False``). Per-filter figures run one filter over all docs at a time;
"ours cold" is the first pass of the whole chain with empty tokenizer caches (every word chunk goes
through spaCy), "ours warm" is the steady state where frequent chunks are memoized. Decisions are
compared on every run and the script fails loudly on any difference.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from datatrove.data import Document  # noqa: E402
from datatrove.pipeline import filters as dt_filters  # noqa: E402

from corpus.build import quality_filters as ours  # noqa: E402
from corpus.build import word_tokenizer as words  # noqa: E402

DOCS_DIR = REPO.parent / "shared" / "data" / "docs"
STAGES = ("gopher_repetition", "gopher_quality", "c4", "fineweb")
KWARGS = {
    "gopher_repetition": {},
    "gopher_quality": {},
    "c4": {"filter_no_terminal_punct": False},
    "fineweb": {},
}
DT_CLASSES = {
    "gopher_repetition": dt_filters.GopherRepetitionFilter,
    "gopher_quality": dt_filters.GopherQualityFilter,
    "c4": dt_filters.C4QualityFilter,
    "fineweb": dt_filters.FineWebQualityFilter,
}


def load_docs() -> list[str]:
    texts = []
    for path in sorted(DOCS_DIR.glob("*.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            texts += [json.loads(line)["text"] for line in f if line.strip()]
    return texts


def datatrove_check(flt, text: str) -> tuple[str | None, str]:
    doc = Document(text=text, id="bench")
    result = flt.filter(doc)
    if isinstance(result, tuple):
        return result[1], text
    return (None, doc.text) if result else ("<no reason>", text)


def clear_caches() -> None:
    words._CHUNKS.clear()
    words._words.cache_clear()
    words._spacy_data()._kinds.clear()


def time_per_doc(fn, texts: list[str], repeats: int) -> tuple[float, list]:
    """Best-of-``repeats`` ms/doc of ``fn`` over ``texts``, plus the results of the last pass."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        results = [fn(t) for t in texts]
        best = min(best, time.perf_counter() - start)
    return best * 1000 / len(texts), results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    texts = load_docs()
    if not texts:
        sys.exit(f"no documents under {DOCS_DIR}")
    print(f"{len(texts)} docs, mean {sum(map(len, texts)) / len(texts):.0f} chars, best of {args.repeats}")

    chain = ours.QualityChain(KWARGS)
    words.word_tokenize("warm up")  # load spaCy outside the timings, like datatrove's first call below
    for stage in STAGES:
        datatrove_check(DT_CLASSES[stage](**KWARGS[stage]), texts[0])
    clear_caches()
    cold, _ = time_per_doc(chain.check, texts, 1)

    rows = []
    for stage in STAGES:
        dt_filter, our_filter = DT_CLASSES[stage](**KWARGS[stage]), chain.stages[STAGES.index(stage)][1]
        dt_ms, dt_results = time_per_doc(lambda t, f=dt_filter: datatrove_check(f, t), texts, args.repeats)
        our_ms, our_results = time_per_doc(our_filter.check, texts, args.repeats)
        if dt_results != our_results:
            sys.exit(f"PARITY FAILURE in {stage}")
        rows.append((stage, dt_ms, our_ms))

    print(f"{'filter':<20}{'datatrove ms/doc':>18}{'ours warm ms/doc':>18}{'speed-up':>10}")
    for stage, dt_ms, our_ms in rows:
        print(f"{stage:<20}{dt_ms:>18.2f}{our_ms:>18.3f}{dt_ms / our_ms:>9.1f}x")
    dt_total, our_total = sum(r[1] for r in rows), sum(r[2] for r in rows)
    print(f"{'total (4 filters)':<20}{dt_total:>18.2f}{our_total:>18.3f}{dt_total / our_total:>9.1f}x")
    warm_chain, _ = time_per_doc(chain.check, texts, args.repeats)
    print(f"ours QualityChain per doc: cold caches {cold:.2f} ms, warm {warm_chain:.3f} ms")
    print("decisions and rewritten texts identical on all docs")


if __name__ == "__main__":
    main()
