"""The labelled toxicity sets of the content filter's classifiers, their held-out split, and the measurement of a
classifier against the word-list baseline (bench/content_filter.py, tests/corpus/build/test_content_training.py).

Per language (files under ../shared/data/content/, SOURCES.md there), toxic = positive:
- en: Davidson et al. (hate_speech or offensive_language) and OLID / OffensEval 2019 (OFF);
- zh: COLD (label 1);
- de: GermEval 2018 (OFFENSE).
The split is our own, the same for every set: a record is held out when sha1 of its id is 0 mod 5 (20 %), so the
datasets' own splits (COLD's, OLID's) do not decide it and Davidson, which has none, gets one too.

The recipe trains with `corpus classifier train` on the positive / negative JSONL files `write_training_files`
writes (docs/content-filter.md has the commands).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

from corpus.build.content_lists import ContentFilterError

LABELLED_SETS: dict[str, list[tuple[str, Callable[[dict], bool]]]] = {
    "en": [("davidson_hate_offensive_en.jsonl.gz", lambda r: r["label"] != "neither"),
           ("olid_offenseval2019_en.jsonl.gz", lambda r: r["label"] == "OFF")],
    "zh": [("cold_offensive_zh.jsonl.gz", lambda r: r["label"] == 1)],
    "de": [("germeval2018_offensive_de.jsonl.gz", lambda r: r["label"] == "OFFENSE")],
}
HELDOUT_MOD = 5
# The training settings the recipe uses (passed to `corpus classifier train`): tweets are short and few (GermEval:
# 5,000), so more epochs than DCLM's 5 help; measured on the held-out split, bench/content_filter.py.
TRAIN_SETTINGS = {"epoch": 25, "lr": 0.2}


def is_heldout(record_id: str) -> bool:
    return int(hashlib.sha1(record_id.encode("utf-8")).hexdigest(), 16) % HELDOUT_MOD == 0


def labelled(lang: str, root: str | os.PathLike) -> dict[str, list[tuple[str, bool, str]]]:
    """{"train": [...], "heldout": [...]} of (text, toxic, set file) for `lang`, in file order."""
    if lang not in LABELLED_SETS:
        raise ContentFilterError(f"no labelled toxicity set for {lang!r}; have {sorted(LABELLED_SETS)}")
    out: dict[str, list[tuple[str, bool, str]]] = {"train": [], "heldout": []}
    for name, is_toxic in LABELLED_SETS[lang]:
        path = Path(root) / name
        if not path.is_file():
            raise ContentFilterError(f"labelled set not found: {path} (see ../shared/data/SOURCES.md)")
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for line in f:
                r = json.loads(line)
                out["heldout" if is_heldout(r["id"]) else "train"].append((r["text"], is_toxic(r), name))
    return out


def write_training_files(lang: str, root: str | os.PathLike, out_dir: str | os.PathLike) -> tuple[str, str]:
    """The training split as toxic.jsonl and clean.jsonl (`{"text": ...}` lines) in out_dir/lang, for
    `corpus classifier train --positive toxic.jsonl --negative clean.jsonl --lang LANG`."""
    folder = Path(out_dir) / lang
    folder.mkdir(parents=True, exist_ok=True)
    paths = (str(folder / "toxic.jsonl"), str(folder / "clean.jsonl"))
    rows = labelled(lang, root)["train"]
    for path, want in zip(paths, (True, False), strict=True):
        with open(path, "w", encoding="utf-8") as f:
            f.writelines(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t, toxic, _ in rows if toxic == want)
    return paths


def prf(labels: list[bool], predicted: list[bool]) -> dict[str, float]:
    tp = sum(a and b for a, b in zip(labels, predicted, strict=True))
    fp = sum(b and not a for a, b in zip(labels, predicted, strict=True))
    fn = sum(a and not b for a, b in zip(labels, predicted, strict=True))
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0}


def compare(rows: list[tuple[str, bool, str]], lang: str, content_filter, classifier, threshold: float = 0.5) -> dict:
    """Precision, recall and F1 on `rows` of the word-list checks (the stage's list part: a document any of them
    would drop is predicted toxic) and of the classifier (score >= threshold)."""
    labels = [toxic for _, toxic, _ in rows]
    words = [content_filter.check_lists(None, text, lang)[0] is not None for text, _, _ in rows]
    scores = classifier.score([text for text, _, _ in rows])
    return {"n": len(rows), "toxic": sum(labels), "wordlist": prf(labels, words),
            "classifier": prf(labels, [bool(s >= threshold) for s in scores])}
