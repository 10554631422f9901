"""Content filter: per language, precision / recall / F1 of the learned toxicity classifier against the word-list
baseline, on our own held-out split of the labelled sets (corpus.build.content_training).

For each language the training split is written as toxic/clean JSONL and trained with `corpus classifier train`
(the documented recipe, docs/content-filter.md); the word-list baseline is the stage's list checks with their
defaults (C4 bad words over LDNOOBW; for zh also the porn / weapons lexicons). Also the time to score a sentence.

    .venv/bin/python bench/content_filter.py --out /tmp/content-models
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "content"


def host() -> str:
    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return f"{cpu}, capability {torch.backends.cpu.get_cpu_capability()}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="folder for the training files and the models")
    ap.add_argument("--langs", nargs="+", default=["en", "zh", "de"])
    args = ap.parse_args()

    from corpus.build.content_filter import ContentFilter
    from corpus.build.content_training import TRAIN_SETTINGS, compare, labelled, write_training_files
    from corpus.classify.fasttext_model import load_classifier
    from corpus.config import ContentFilterConf

    out = Path(args.out)
    lists = ContentFilter(ContentFilterConf(wordlists=str(DATA / "wordlists.jsonl.gz")))
    rows = []
    for lang in args.langs:
        toxic, clean = write_training_files(lang, DATA, out / "train")
        model = out / f"toxic-{lang}.bin"
        cmd = [sys.executable, "-m", "corpus.cli", "classifier", "train", "--positive", toxic, "--negative", clean,
               "--out", str(model), "--lang", lang, *(x for k, v in TRAIN_SETTINGS.items() for x in (f"--{k}", str(v)))]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
        train_s = time.perf_counter() - t0
        classifier = load_classifier(str(model))
        heldout = labelled(lang, DATA)["heldout"]
        parts = [("all", heldout)]
        if lang == "en":  # the two English sets differ: Davidson's offensive class is mostly LDNOOBW's words
            parts += [(name.split("_")[0], [r for r in heldout if r[2] == name]) for name in
                      sorted({r[2] for r in heldout})]
        for part, part_rows in parts:
            m = compare(part_rows, lang, lists, classifier)
            rows.append((lang, part, m, train_s if part == "all" else None))
        texts = [t for t, _, _ in heldout]
        t0 = time.perf_counter()
        classifier.score(texts)
        rows[-len(parts)][2]["us_per_text"] = (time.perf_counter() - t0) / len(texts) * 1e6

    print(f"host: {host()}")
    print("| lang | held-out set | n (toxic) | word lists P / R / F1 | classifier P / R / F1 | F1 margin | "
          "train s | score µs/text |")
    print("|---|---|---|---|---|---|---|---|")
    for lang, part, m, train_s in rows:
        w, c = m["wordlist"], m["classifier"]
        print(f"| {lang} | {part} | {m['n']:,} ({m['toxic']:,}) | {w['precision']:.3f} / {w['recall']:.3f} / "
              f"{w['f1']:.3f} | {c['precision']:.3f} / {c['recall']:.3f} / {c['f1']:.3f} | "
              f"{c['f1'] - w['f1']:+.3f} | {'' if train_s is None else f'{train_s:.1f}'} | "
              f"{m.get('us_per_text', 0):.1f} |".replace("| 0.0 |", "|  |"))
    (out / "bench.json").write_text(json.dumps([{"lang": a, "set": b, **m} for a, b, m, _ in rows], indent=1))


if __name__ == "__main__":
    main()
