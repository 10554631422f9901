"""fastText document classifiers trained with DCLM's recipe: the library behind `corpus classifier train/score`,
the build's `quality_classifier` stage and the content filter's toxicity models.

The recipe (DCLM, Li et al. 2024, `baselines/train_fasttext_classifier.py` and its quality enricher):
fastText supervised with word bigrams (wordNgrams=2) on one line per document, the text lowercased, its lines
joined by spaces, punctuation set apart as tokens and whitespace collapsed (the fastText tutorial's normalization,
which DCLM's classifier data follow). We add, so that runs repeat exactly: a seed with one training thread (fastText
is deterministic only with thread=1), seeded class balancing (the larger class downsampled) and a seeded held-out
split whose precision, recall and ROC AUC go to the model card.

Language: fastText splits tokens on whitespace, and Chinese and Japanese have none, so a whole sentence would
become one token. For those languages every Han/kana character is its own token (jieba or SudachiPy would give
words, but they are not dependencies; characters with bigrams capture most of that). The choice is recorded in the
model card (`tokenizer`), and scoring always tokenizes with the language the model was trained for.

A model is two files: MODEL.bin (fastText) and MODEL.json beside it (the card: labels, language, tokenizer,
hyper-parameters, held-out metrics, training sources with their sha256, and the sha256 of MODEL.bin, which
`load_classifier` checks so that a truncated or foreign file is a clear error, not a crash inside fastText).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

POSITIVE = "__label__pos"
NEGATIVE = "__label__neg"
CARD_FORMAT = "corpus-fasttext-classifier/1"
PREPROCESSING = "dclm: lines joined, lowercased, punctuation as tokens, whitespace collapsed"
CHARACTER_LANGS = frozenset({"zh", "ja"})  # no spaces between words: one token per Han/kana character

# Tokens: runs of word characters, and each punctuation mark (anything neither a word character nor a space) on its
# own; for Chinese and Japanese also each Han/kana character on its own (CJK punctuation is punctuation already).
# One findall pass: measured 28% faster than substituting spaces around punctuation and splitting.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TOKENS = re.compile(r"\w+|[^\w\s]")
_TOKENS_CJK = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+|[^\w\s]")


class ClassifierError(ValueError):
    """Bad classifier input or model file; the message says which and why."""


def tokenizer_name(lang: str) -> str:
    return "characters" if lang in CHARACTER_LANGS else "words"


def tokenize_for_fasttext(text: str, lang: str) -> str:
    """One line of space-separated fastText tokens: DCLM's preprocessing plus, for Chinese and Japanese, one token
    per Han/kana character. The same function at training and at scoring."""
    pattern = _TOKENS_CJK if lang in CHARACTER_LANGS else _TOKENS
    # whitespace (newlines included) only separates tokens: lines joined, spaces collapsed
    return " ".join(pattern.findall(text.lower()))


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the ROC curve (Mann-Whitney U with tied scores given their mean rank); None for one class."""
    labels = np.asarray(labels, dtype=bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = np.asarray(scores)[order]
    ranks = np.empty(len(scores), dtype=np.float64)
    # mean rank of each run of equal scores
    _, start, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    mean_rank = start + (counts + 1) / 2.0
    ranks[order] = np.repeat(mean_rank, counts)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def binary_metrics(labels: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> dict:
    labels = np.asarray(labels, dtype=bool)
    predicted = np.asarray(scores) >= threshold
    tp = int((predicted & labels).sum())
    fp = int((predicted & ~labels).sum())
    fn = int((~predicted & labels).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    auc = roc_auc(labels, scores)
    return {"threshold": threshold, "positives": int(labels.sum()), "negatives": int((~labels).sum()),
            "precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
            "roc_auc": None if auc is None else round(auc, 4)}


class Classifier:
    """A trained binary fastText model and its card; `score` gives the probability of the positive class."""

    def __init__(self, model, card: dict):
        self.model = model
        self.card = card
        self.lang: str = card["lang"]

    def score(self, texts: Sequence[str], lang: str | None = None) -> np.ndarray:
        """P(positive) of each text (float64), tokenized for `lang` (default: the language the model was trained
        for, which is what keeps training and scoring the same)."""
        lang = lang or self.lang
        if not texts:
            return np.zeros(0, dtype=np.float64)
        lines = [tokenize_for_fasttext(t or "", lang) for t in texts]
        labels, probs = self.model.predict(lines, k=2)
        out = np.empty(len(lines), dtype=np.float64)
        for i, (labs, ps) in enumerate(zip(labels, probs)):
            pos = 0.0
            for lab, p in zip(labs, ps):
                if lab == POSITIVE:
                    pos = float(p)
            out[i] = pos
        # fastText's softmax can exceed 1 by a rounding error
        return np.clip(out, 0.0, 1.0)

    def score_one(self, text: str, lang: str | None = None) -> float:
        labels, probs = self.model.predict(tokenize_for_fasttext(text or "", lang or self.lang), k=2)
        for lab, p in zip(labels, probs):
            if lab == POSITIVE:
                return min(max(float(p), 0.0), 1.0)
        return 0.0

    def save(self, path: str) -> dict:
        """Write MODEL.bin and MODEL.json (local path or s3://...); returns the card written."""
        from corpus.io.formats import is_remote

        if not path.endswith(".bin"):
            raise ClassifierError(f"--out {path}: the model file name must end in .bin (its card goes beside it)")
        with tempfile.TemporaryDirectory(prefix="corpus-classifier-") as tmp:
            local = os.path.join(tmp, "model.bin")
            self.model.save_model(local)
            data = Path(local).read_bytes()
        self.card["model_sha256"] = hashlib.sha256(data).hexdigest()
        self.card["model_bytes"] = len(data)
        card = json.dumps(self.card, indent=2, sort_keys=True).encode() + b"\n"
        if is_remote(path):
            from corpus.io.rundir import arrow_filesystem

            fs, target = arrow_filesystem(path)
            for suffix, payload in ((".bin", data), (".json", card)):
                with fs.open_output_stream(target.removesuffix(".bin") + suffix) as f:
                    f.write(payload)
        else:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_bytes(data)
            Path(card_path(path)).write_bytes(card)
        return self.card


def card_path(model_path: str) -> str:
    return model_path.removesuffix(".bin") + ".json"


def _read_bytes(uri: str) -> bytes:
    from corpus.io.formats import is_remote
    from corpus.io.remote import open_input

    if not is_remote(uri) and not os.path.exists(uri.removeprefix("file://")):
        raise FileNotFoundError(uri)
    with open_input(uri, retries=1) as f:
        return f.read()


def _sha256_file(path: str) -> tuple[str, int]:
    h, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def load_classifier(path: str) -> Classifier:
    """Load MODEL.bin (local or s3://...) with its card MODEL.json; a missing, truncated or foreign file is a
    ClassifierError naming the file."""
    import fasttext

    from corpus.io.formats import is_remote

    try:
        card_bytes = _read_bytes(card_path(path))
    except (FileNotFoundError, OSError) as e:
        exists = False
        try:
            _read_bytes(path)
            exists = True
        except (FileNotFoundError, OSError):
            pass
        if not exists:
            raise ClassifierError(f"classifier model not found: {path}") from None
        raise ClassifierError(f"{path}: its model card {card_path(path)} is missing ({type(e).__name__}); "
                              "train models with `corpus classifier train`, which writes both") from None
    try:
        card = json.loads(card_bytes)
        if card.get("format") != CARD_FORMAT:
            raise ValueError(f"format {card.get('format')!r}, expected {CARD_FORMAT!r}")
    except ValueError as e:
        raise ClassifierError(f"{card_path(path)} is not a classifier model card: {e}") from None
    local = path.removeprefix("file://")
    with tempfile.TemporaryDirectory(prefix="corpus-classifier-") as tmp:
        if is_remote(path):  # fastText reads local files only: a remote model is copied first
            try:
                data = _read_bytes(path)
            except (FileNotFoundError, OSError):
                raise ClassifierError(f"classifier model not found: {path} (its card exists)") from None
            local = os.path.join(tmp, "model.bin")
            Path(local).write_bytes(data)
        elif not os.path.isfile(local):
            raise ClassifierError(f"classifier model not found: {path} (its card exists)")
        digest, size = _sha256_file(local)
        if digest != card.get("model_sha256"):
            raise ClassifierError(f"{path} is corrupt or not the model its card describes: its sha256 differs from "
                                  f"{card_path(path)}'s model_sha256 ({size} bytes, card says "
                                  f"{card.get('model_bytes')})")
        try:
            model = fasttext.load_model(local)
        except (ValueError, RuntimeError, MemoryError) as e:
            raise ClassifierError(f"{path}: fastText cannot load it: {e}") from None
    if sorted(model.get_labels()) != sorted([POSITIVE, NEGATIVE]):
        raise ClassifierError(f"{path}: labels {model.get_labels()}, expected {POSITIVE} and {NEGATIVE}")
    return Classifier(model, card)


def _balance(texts: Sequence[str], n: int, rng: random.Random) -> list[str]:
    """n of the texts, chosen by `rng`, in their input order (so the choice alone depends on the seed)."""
    if n >= len(texts):
        return list(texts)
    return [texts[i] for i in sorted(rng.sample(range(len(texts)), n))]


NAN_RETRIES = 20

# Run in a fresh interpreter: fastText 0.9.2 keeps state between trainings in one process, so the same file and
# seed give a different model (or "Encountered NaN") depending on what was trained before in that process. A fresh
# process trains the same bytes every time; its retries on NaN (a later try in the same process succeeds) are the
# same sequence every time too, so the model stays a function of the data and the seed.
_TRAIN_SCRIPT = """
import json, sys
import fasttext
train_file, out_file, settings, retries = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), int(sys.argv[4])
for attempt in range(retries):
    try:
        model = fasttext.train_supervised(input=train_file, verbose=0, **settings)
        break
    except RuntimeError as e:
        if "NaN" not in str(e) or attempt == retries - 1:
            sys.exit(f"fastText: {e}")
model.save_model(out_file)
"""


def _train_supervised(fasttext, train_file: str, settings: dict):
    import subprocess
    import sys

    out_file = train_file + ".bin"
    res = subprocess.run([sys.executable, "-c", _TRAIN_SCRIPT, train_file, out_file, json.dumps(settings),
                          str(NAN_RETRIES)], capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError((res.stderr.strip().splitlines() or [f"exit status {res.returncode}"])[-1])
    return fasttext.load_model(out_file)


def train_classifier(positive_texts: Sequence[str], negative_texts: Sequence[str], *, lang: str = "en",
                     seed: int = 0, holdout: float = 0.1, max_per_class: int | None = None, epoch: int = 5,
                     lr: float = 0.1, dim: int = 100, word_ngrams: int = 2, min_count: int = 1,
                     bucket: int = 200_000, sources: dict | None = None) -> tuple[Classifier, dict]:
    """Train a binary fastText classifier (positive vs negative) by DCLM's recipe; returns it and its report
    (also its card: held-out metrics, counts, settings, `sources` as given).

    The classes are balanced by downsampling the larger one (and both to `max_per_class`), seeded; `holdout` of
    each class is kept out of training for the metrics. Deterministic for a given input and seed."""
    import fasttext

    if not 0 < holdout < 1:
        raise ClassifierError(f"holdout must be a fraction in (0, 1), got {holdout}")
    pos = [t for t in positive_texts if t and t.strip()]
    neg = [t for t in negative_texts if t and t.strip()]
    for name, texts in (("positive", pos), ("negative", neg)):
        if len(texts) < 2:
            raise ClassifierError(f"the {name} set has {len(texts)} non-empty text(s): a classifier needs both "
                                  "classes, with at least 2 documents each (one for training, one held out)")
    nonempty = {"positive_nonempty": len(pos), "negative_nonempty": len(neg)}
    rng = random.Random(seed)
    n = min(len(pos), len(neg), max_per_class or len(pos) + len(neg))
    pos, neg = _balance(pos, n, rng), _balance(neg, n, rng)
    n_held = max(1, round(n * holdout))
    examples = [(1, t) for t in pos] + [(0, t) for t in neg]
    held_idx = set(rng.sample(range(n), n_held)) | {n + i for i in rng.sample(range(n), n_held)}
    train = [e for i, e in enumerate(examples) if i not in held_idx]
    held = [e for i, e in enumerate(examples) if i in held_idx]
    rng.shuffle(train)  # fastText reads its file in order: mixed classes learn evenly
    settings = {"epoch": epoch, "lr": lr, "dim": dim, "wordNgrams": word_ngrams, "minCount": min_count,
                "bucket": bucket, "loss": "softmax", "thread": 1, "seed": seed}
    with tempfile.TemporaryDirectory(prefix="corpus-classifier-") as tmp:
        train_file = os.path.join(tmp, "train.txt")
        with open(train_file, "w", encoding="utf-8") as f:
            for label, text in train:
                f.write(f"{POSITIVE if label else NEGATIVE} {tokenize_for_fasttext(text, lang)}\n")
        model = _train_supervised(fasttext, train_file, settings)
    card = {"format": CARD_FORMAT, "labels": {"positive": POSITIVE, "negative": NEGATIVE}, "lang": lang,
            "tokenizer": tokenizer_name(lang), "preprocessing": PREPROCESSING, "hyperparameters": settings,
            "counts": {"positive_in": len(positive_texts), "negative_in": len(negative_texts),
                       **nonempty,
                       "per_class": n, "train": len(train), "heldout": len(held)},
            "holdout": holdout, "max_per_class": max_per_class, "sources": sources or {}}
    classifier = Classifier(model, card)
    held_labels = np.array([label for label, _ in held], dtype=bool)
    held_scores = classifier.score([text for _, text in held])
    card["heldout"] = binary_metrics(held_labels, held_scores)
    return classifier, card
