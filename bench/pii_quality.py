"""PII quality: our recognizers vs Presidio's defaults, per entity type, on labelled data and on real web text.

Labelled data: our seeded generator (corpus/synth/pii_eval.py) and presidio-research's generated_small.json.
Real text: ../shared/data/docs and the AEB ground-truth article texts (language from the pipeline's fastText
model, phone regions from language + TLD as in `corpus pii`), the multilingual Leipzig sentences and
WikiText-2's test articles; every finding there is listed in
--findings-out for reading by hand (docs/pii.md has the classification).

    .venv/bin/python bench/pii_quality.py --records 2000 --seed 0 --findings-out /tmp/f.jsonl --leniency-table
    .venv/bin/python bench/pii_quality.py --mixed-locale 2000 --findings-out /tmp/phones.jsonl

--mixed-locale N: phone recall on N generated documents in seven languages whose numbers come from a region
unrelated to the language and the domain (corpus.synth.pii_eval.generate_mixed_locale_phones), and phone findings
per MB on real multilingual text (the real text above plus Chinese Wikipedia, Chinese reviews, Japanese and
German news), every finding listed for reading by hand.
"""

from __future__ import annotations

import argparse
import gzip
import json
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
ENTITIES = ["EMAIL_ADDRESS", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS", "US_SSN", "PHONE_NUMBER"]


def real_texts() -> list[dict]:
    docs = []
    for path in sorted((DATA / "docs").glob("*.json*.gz")):
        with gzip.open(path, "rt") as f:
            for line in f:
                if line.strip():
                    d = json.loads(line)
                    url = d["id"] if str(d.get("id", "")).startswith("http") else None  # dolma ids are URLs here
                    docs.append({"text": d["text"], "url": url, "language": "en", "source": path.name})
    truth = json.loads((DATA / "html" / "aeb" / "ground-truth.json").read_text())
    for key, item in sorted(truth.items()):
        docs.append({"text": item.get("articleBody") or "", "url": item.get("url"), "language": None,
                     "source": f"aeb/{key}"})
    return docs


def more_real_texts() -> list[dict]:
    """Real sentences of the Leipzig corpora in seven languages (40 per document) and WikiText-2's test
    articles: more real text for the false-positive rate (these have no URL)."""
    docs = []
    for path in sorted((DATA / "multilingual").glob("*.txt")):
        lines = path.read_text().splitlines()
        for i in range(0, len(lines), 40):
            docs.append({"text": "\n".join(lines[i : i + 40]), "url": None, "language": path.stem,
                         "source": f"multilingual/{path.name}:{i + 1}"})
    article: list[str] = []
    for line in (DATA / "text" / "wikitext-2-raw-test.txt").read_text().splitlines() + [" = end = "]:
        if line.startswith(" = ") and not line.startswith(" = = ") and article:
            docs.append({"text": "\n".join(article), "url": None, "language": "en",
                         "source": f"wikitext/{article[0].strip()[:40]}"})
            article = []
        article.append(line)
    return docs


def with_language(docs: list[dict]) -> list[dict]:
    """Fill in the language the pipeline's fastText model gives (AEB pages come without one)."""
    from corpus.build.language_id import LanguageId
    from corpus.config import LanguageConf

    lid = LanguageId(LanguageConf())
    return [dict(d, language=d["language"] or lid.predict(d["text"])[0]) for d in docs]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--findings-out", default=None)
    ap.add_argument("--leniency-table", action="store_true", help="also compare phone leniencies")
    ap.add_argument("--mixed-locale", type=int, default=0, help="only the mixed-locale phone measurement, N docs")
    args = ap.parse_args()
    if args.mixed_locale:
        mixed_locale(args.mixed_locale, args.seed, args.findings_out)
        return

    from corpus.config import PiiConf
    from corpus.pii.scrubber import PiiScrubber
    from corpus.synth.pii_eval import evaluate, generate_records

    ours = PiiScrubber(PiiConf())
    presidio = PiiScrubber(PiiConf(recognizers="presidio"))
    generated = generate_records(args.records, args.seed)
    small = json.loads((DATA / "pii" / "generated_small.json").read_text())
    for name, records in ((f"generated (seed {args.seed}, {len(generated)} documents)", generated),
                          ("presidio-research generated_small.json", small)):
        a, b = evaluate(presidio, records, ENTITIES), evaluate(ours, records, ENTITIES)
        print(f"\n{name}")
        print("| entity | gold | recall Presidio | recall ours | span precision Presidio | span precision ours |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        for e in ENTITIES:
            if a[e]["gold"] or a[e]["tp"] + a[e]["fp"] or b[e]["tp"] + b[e]["fp"]:
                print(f"| {e} | {a[e]['gold']} | {a[e]['recall']} | {b[e]['recall']} | {a[e]['precision']} "
                      f"({a[e]['fp']} fp) | {b[e]['precision']} ({b[e]['fp']} fp) |")

    real = with_language(real_texts()) + more_real_texts()
    mb = sum(len(d["text"].encode()) for d in real) / 1e6
    counts = {"presidio": Counter(), "ours": Counter()}
    rows = []
    for d in real:
        for who, scrubber in (("presidio", presidio), ("ours", ours)):
            _, replaced = scrubber.scrub(d["text"], d["language"], d["url"])
            for f, value in replaced:
                counts[who][f.entity_type] += 1
                rows.append({"who": who, "source": d["source"], "type": f.entity_type, "value": value,
                             "context": d["text"][max(0, f.start - 50) : f.end + 50]})
    print(f"\nreal text (docs, AEB, multilingual, WikiText-2): {len(real)} documents, {mb:.2f} MB; findings per MB "
          "(after the same keep-policy)")
    print("| entity | Presidio | ours |")
    print("| --- | ---: | ---: |")
    for e in ENTITIES:
        print(f"| {e} | {counts['presidio'][e] / mb:.1f} ({counts['presidio'][e]}) | "
              f"{counts['ours'][e] / mb:.1f} ({counts['ours'][e]}) |")
    if args.findings_out:
        Path(args.findings_out).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    if args.leniency_table:
        leniency_table(generated, small, real, mb)


def leniency_table(generated: list[dict], small: list[dict], real: list[dict], mb: float) -> None:
    """Phone recall/precision and findings on real text for each phonenumbers leniency (docs/pii.md)."""
    from corpus.config import PiiConf
    from corpus.pii.scrubber import PiiScrubber
    from corpus.synth.pii_eval import evaluate

    print("\n| phone_leniency | phone_context_leniency | recall (generated) | span precision (generated) | "
          "recall (generated_small) | phone findings per MB of real text |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for leniency, context in ((0, None), (1, None), (1, 0), (2, 0), (2, None), (3, 0)):
        scrubber = PiiScrubber(PiiConf(phone_leniency=leniency, phone_context_leniency=context))
        a = evaluate(scrubber, generated, ["PHONE_NUMBER"])["PHONE_NUMBER"]
        b = evaluate(scrubber, small, ["PHONE_NUMBER"])["PHONE_NUMBER"]
        n = sum(f.entity_type == "PHONE_NUMBER" for d in real
                for f, _ in scrubber.scrub(d["text"], d["language"], d["url"])[1])
        print(f"| {leniency} | {context} | {a['recall']} | {a['precision']} ({a['fp']} fp) | {b['recall']} | "
              f"{n / mb:.1f} ({n}) |")



def multilingual_real_texts(max_chars: int = 1_500_000) -> list[dict]:
    """Real Chinese, Japanese and German documents (up to `max_chars` per file, in file order)."""
    docs = []
    for name, lang in (("zhwiki.jsonl.gz", "zh"), ("zh-reviews.jsonl.gz", "zh"), ("livedoor-ja.jsonl.gz", "ja"),
                       ("news-de.jsonl.gz", "de")):
        total = 0
        with gzip.open(DATA / "multilingual" / name, "rt") as f:
            for line in f:
                d = json.loads(line)
                docs.append({"text": d["text"], "url": d.get("url"), "language": lang, "source": f"{name}:{d['id']}"})
                total += len(d["text"])
                if total >= max_chars:
                    break
    return docs


def mixed_locale(n: int, seed: int, findings_out: str | None) -> None:
    from corpus.config import PiiConf
    from corpus.pii.scrubber import PiiScrubber
    from corpus.synth.pii_eval import evaluate, generate_mixed_locale_phones

    ours, presidio = PiiScrubber(PiiConf()), PiiScrubber(PiiConf(recognizers="presidio"))
    records = generate_mixed_locale_phones(n, seed)
    a, b = evaluate(presidio, records, ["PHONE_NUMBER"]), evaluate(ours, records, ["PHONE_NUMBER"])
    print(f"mixed-locale phones (seed {seed}, {n} documents in 7 languages, regions unrelated to language and domain)")
    print("| | recall | span precision |\n| --- | ---: | ---: |")
    print(f"| Presidio | {a['PHONE_NUMBER']['recall']} | {a['PHONE_NUMBER']['precision']} |")
    print(f"| ours | {b['PHONE_NUMBER']['recall']} | {b['PHONE_NUMBER']['precision']} |")
    real = with_language(real_texts()) + more_real_texts() + multilingual_real_texts()
    mb = sum(len(d["text"].encode()) for d in real) / 1e6
    rows = []
    for d in real:
        _, replaced = ours.scrub(d["text"], d["language"], d["url"])
        rows += [{"source": d["source"], "language": d["language"], "value": value,
                  "context": d["text"][max(0, f.start - 50) : f.end + 50]}
                 for f, value in replaced if f.entity_type == "PHONE_NUMBER"]
    print(f"real text: {len(real)} documents, {mb:.2f} MB; phone findings {len(rows)} ({len(rows) / mb:.2f} per MB)")
    if findings_out:
        Path(findings_out).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


if __name__ == "__main__":
    main()
