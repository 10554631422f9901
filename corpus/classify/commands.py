"""`corpus classifier train` and `score` as functions (the CLI parses options and prints; these do the work)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from corpus.classify.fasttext_model import ClassifierError, load_classifier, train_classifier
from corpus.classify.inputs import read_texts


def train(positive: list[str], negative: list[str], out: str, *, text_field: str = "text", lang: str = "en",
          seed: int = 0, holdout: float = 0.1, max_per_class: int | None = None, **hyper) -> dict:
    """Read both sets, train, write OUT (.bin) and its card (.json); returns the card."""
    if not positive or not negative:
        raise ClassifierError("give at least one --positive and one --negative input")
    pos = read_texts(positive, text_field)
    neg = read_texts(negative, text_field)
    sources = {"positive": pos.files, "negative": neg.files, "text_field": text_field}
    try:
        classifier, card = train_classifier(pos.texts, neg.texts, lang=lang, seed=seed, holdout=holdout,
                                            max_per_class=max_per_class, sources=sources, **hyper)
    except RuntimeError as e:  # fastText's own failures (e.g. "Encountered NaN" with a too high --lr)
        raise ClassifierError(f"fastText training failed: {e}; try a lower --lr or a larger --bucket") from None
    return classifier.save(out)


def score(model: str, inputs: list[str], out: str, *, text_field: str = "text", id_field: str = "id",
          batch: int = 10_000) -> dict:
    """Write OUT (Parquet: id as given, score = P(positive) float64) for every text of the inputs."""
    classifier = load_classifier(model)
    texts = read_texts(inputs, text_field, id_field)
    scores = pa.concat_arrays([pa.array(classifier.score(texts.texts[i:i + batch]), pa.float64())
                               for i in range(0, len(texts.texts), batch)]) if texts.texts else pa.array([],
                                                                                                       pa.float64())
    try:
        ids = pa.array(texts.ids)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # ids of mixed types across files: kept, as their text
        ids = pa.array([None if i is None else str(i) for i in texts.ids], pa.string())
    table = pa.table({"id": ids, "score": scores})
    _write_parquet(table, out)
    return {"documents": table.num_rows, "files": len(texts.files), "out": out,
            "mean_score": round(float(pc.mean(scores).as_py()), 4) if table.num_rows else None}


def _write_parquet(table: pa.Table, out: str) -> None:
    import posixpath

    from corpus.io.rundir import arrow_filesystem

    fs, path = arrow_filesystem(out)
    parent = posixpath.dirname(path)
    if parent:
        fs.create_dir(parent, recursive=True)
    with fs.open_output_stream(path) as f:
        pq.write_table(table, f)
