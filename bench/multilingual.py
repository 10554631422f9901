"""Per-language filtering: our stages against datatrove's filters given `language=`, on the shared multilingual text.

For each language: decisions of our quality stages (quality.preset fineweb2; English by the FineWeb sections) and of
datatrove's own filter classes with FineWeb-2's recipe (fineweb-2-pipeline.py step 5: GopherRepetition,
FineWebQuality, GopherQuality, no C4; English: FineWeb's four), the share of equal decisions, both keep rates, the
seconds each side took. `--zhwiki N`: keep rate on the first N Chinese Wikipedia articles that lid.176 calls
Chinese (above language.threshold), today's English rules (quality.preset english) beside FineWeb-2's.

    PYTHONPATH=. .venv/bin/python bench/multilingual.py --docs 300 --zhwiki 1000 --zhwiki-min-chars 0 300
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
DATA = REPO.parent / "shared" / "data" / "multilingual"

LANGS = {"en": "eng_Latn", "zh": "cmn_Hani", "ja": "jpn_Jpan", "de": "deu_Latn", "fr": "fra_Latn",
         "es": "spa_Latn", "ru": "rus_Cyrl"}
JSONL = {"zh": ["zhwiki.jsonl.gz"], "ja": ["livedoor-ja.jsonl.gz"], "de": ["news-de.jsonl.gz"]}


def documents(lang: str, limit: int) -> list[str]:
    """Real documents of `lang`: sentences of {lang}.txt grouped 2..25 to a document (one per line, so both keeps
    and drops occur), then the language's JSONL corpora and its wiki paragraphs, `limit` in all, in file order."""
    docs: list[str] = []
    sentences = (DATA / f"{lang}.txt").read_text(encoding="utf-8").splitlines()
    i, size = 0, 2
    while i < len(sentences) and len(docs) < limit // 2:
        docs.append("\n".join(sentences[i:i + size]))
        i += size
        size = size % 25 + 2
    for name in [*JSONL.get(lang, []), "wiki-paragraphs.jsonl.gz"]:
        with gzip.open(DATA / name, "rt", encoding="utf-8") as f:
            for line in f:
                if len(docs) >= limit:
                    return docs
                row = json.loads(line)
                doc_lang = row.get("lang") or row["id"].split("-")[1] if name.startswith("wiki") else lang
                if doc_lang == lang or (lang == "zh" and row["id"].startswith("cmrc")):
                    docs.append(row["text"])
    return docs


def our_filters(lang: str, preset: str = "fineweb2", **quality):
    """Our quality stages for documents of lid.176 label `lang`: a function text -> reason or None."""
    from corpus.build.stages import build_stages
    from corpus.config import load_config

    overrides = [f"quality.preset={preset}", *(f"quality.{k}={v}" for k, v in quality.items())]
    stages = [s for s in build_stages(load_config(overrides=overrides)) if hasattr(s, "filter_for")]
    chain = [f for f in (s.filter_for(lang) for s in stages) if f is not None]

    def decide(text: str) -> str | None:
        for f in chain:
            reason, text = f.check(text)
            if reason is not None:
                return reason
        return None

    return decide


def datatrove_filters(lang: str):
    """datatrove's filter classes as FineWeb-2 runs them for `lang` (English: FineWeb's), text -> reason or None."""
    from datatrove.data import Document

    from corpus.build.fineweb2 import datatrove_reference_chain

    chain = datatrove_reference_chain(LANGS[lang])

    def decide(text: str) -> str | None:
        doc = Document(text=text, id="0")
        for f in chain:
            verdict = f.filter(doc)
            if verdict is not True:
                return verdict[1] if isinstance(verdict, tuple) else "dropped"
        return None

    return decide


def parity(lang: str, docs: list[str]) -> dict:
    ours, theirs = our_filters(lang), datatrove_filters(lang)
    ours(docs[0]), theirs(docs[0])  # tokenizers built before timing
    t0 = time.perf_counter()
    a = [ours(d) is None for d in docs]
    t1 = time.perf_counter()
    b = [theirs(d) is None for d in docs]
    t2 = time.perf_counter()
    same = sum(x == y for x, y in zip(a, b, strict=True))
    return {"lang": lang, "docs": len(docs), "same": same / len(docs), "keep_ours": sum(a) / len(docs),
            "keep_datatrove": sum(b) / len(docs), "s_ours": round(t1 - t0, 2), "s_datatrove": round(t2 - t1, 2)}


def zhwiki(n: int, min_chars: int = 0) -> dict:
    """Keep rates on the first `n` zhwiki articles of at least `min_chars` characters that lid.176 calls Chinese
    above 0.65."""
    from corpus.build.language_id import LanguageId
    from corpus.config import LanguageConf

    lid = LanguageId(LanguageConf(languages=["zh"]))
    docs = []
    with gzip.open(DATA / "zhwiki.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            text = json.loads(line)["text"]
            if len(text) >= min_chars and lid.predict(text)[2]:
                docs.append(text)
                if len(docs) >= n:
                    break
    english, fw2, fw2_char = our_filters("zh", "english"), our_filters("zh"), our_filters("zh", char_ngrams="true")
    fw2_cjk = our_filters("zh", cjk_line_end="true")
    datatrove = datatrove_filters("zh")
    rates = {name: sum(f(d) is None for d in docs) / len(docs) for name, f in
             [("english_rules", english), ("fineweb2", fw2), ("fineweb2_char_ngrams", fw2_char),
              ("fineweb2_cjk_line_end", fw2_cjk), ("datatrove_cmn_Hani", datatrove)]}
    return {"zhwiki_docs": len(docs), "min_chars": min_chars, **rates}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=300, help="documents per language")
    ap.add_argument("--langs", default=",".join(LANGS))
    ap.add_argument("--zhwiki", type=int, default=0, help="also the keep rates on this many zhwiki articles")
    ap.add_argument("--zhwiki-min-chars", type=int, nargs="*", default=[0], help="... of at least these lengths")
    args = ap.parse_args()
    for lang in args.langs.split(","):
        print(json.dumps(parity(lang, documents(lang, args.docs))), flush=True)
    if args.zhwiki:
        for min_chars in args.zhwiki_min_chars:
            print(json.dumps(zhwiki(args.zhwiki, min_chars)), flush=True)


if __name__ == "__main__":
    main()
