"""The fastText classifier library and `corpus classifier train/score`, on small slices of the real quality data
(Wikipedia articles vs blog posts), with real fastText. Each training takes about a second."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import shared_data

from corpus.classify.commands import score as score_command
from corpus.classify.commands import train as train_command
from corpus.classify.fasttext_model import (
    ClassifierError,
    load_classifier,
    roc_auc,
    tokenize_for_fasttext,
    train_classifier,
)
from corpus.classify.inputs import read_texts
from corpus.cli import main

SMALL = {"dim": 16, "epoch": 5}


def _slice(src: Path, dst: Path, n: int, start: int = 0) -> Path:
    with gzip.open(src, "rt", encoding="utf-8") as f:
        lines = [line for i, line in zip(range(start + n), f) if i >= start]
    opener = gzip.open if dst.name.endswith(".gz") else open
    with opener(dst, "wt", encoding="utf-8") as f:
        f.writelines(lines)
    return dst


@pytest.fixture(scope="module")
def slices(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("slices")
    return {"wiki": _slice(shared_data("quality", "wikipedia-en.jsonl.gz"), d / "wiki.jsonl", 600),
            "blogs": _slice(shared_data("blogs", "blogs-sample.jsonl.gz"), d / "blogs.jsonl.gz", 900),
            "wiki_test": _slice(shared_data("quality", "wikipedia-en.jsonl.gz"), d / "wiki_test.jsonl", 100, 5000),
            "blogs_test": _slice(shared_data("blogs", "blogs-sample.jsonl.gz"), d / "blogs_test.jsonl", 100, 5000)}


@pytest.fixture(scope="module")
def model(slices, tmp_path_factory) -> tuple[str, dict]:
    out = str(tmp_path_factory.mktemp("model") / "quality.bin")
    card = train_command([str(slices["wiki"])], [str(slices["blogs"])], out, seed=3, **SMALL)
    return out, card


def test_tokenization_follows_dclm_preprocessing_and_splits_chinese_and_japanese_into_characters():
    assert tokenize_for_fasttext("Hello,  World!\nIt's\tfine.", "en") == "hello , world ! it ' s fine ."
    assert tokenize_for_fasttext("今天天气很好。Hello", "zh") == "今 天 天 气 很 好 。 hello"
    assert tokenize_for_fasttext("東京へ行きます", "ja") == "東 京 へ 行 き ま す"
    # other languages keep whitespace words: a Chinese run stays one token, as fastText would see it
    assert tokenize_for_fasttext("今天天气 ok", "en") == "今天天气 ok"


def test_roc_auc_matches_the_pairwise_definition_with_ties():
    rng = np.random.default_rng(0)
    labels = rng.random(200) < 0.4
    scores = np.round(rng.random(200) + labels * 0.3, 1)  # rounded: many ties
    pos, neg = scores[labels], scores[~labels]
    pairwise = ((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) / (
        len(pos) * len(neg))
    assert roc_auc(labels, scores) == pytest.approx(pairwise)
    assert roc_auc(np.ones(3, bool), np.zeros(3)) is None


def test_trained_model_separates_held_out_and_unseen_documents_and_its_card_names_the_sources(model, slices):
    path, card = model
    assert card["heldout"]["roc_auc"] >= 0.9 and card["heldout"]["precision"] > 0.8
    assert card["hyperparameters"]["wordNgrams"] == 2 and card["hyperparameters"]["thread"] == 1
    assert card["tokenizer"] == "words" and card["lang"] == "en"
    # balanced: the 900 blog posts are downsampled to the 600 articles; 10% of each class held out
    assert card["counts"]["per_class"] == 600 and card["counts"]["heldout"] == 120
    pos = card["sources"]["positive"][0]
    assert pos["sha256"] == hashlib.sha256(slices["wiki"].read_bytes()).hexdigest() and pos["texts"] == 600
    assert json.loads(Path(path.removesuffix(".bin") + ".json").read_text()) == card
    classifier = load_classifier(path)
    unseen_pos = classifier.score(read_texts([str(slices["wiki_test"])]).texts)
    unseen_neg = classifier.score(read_texts([str(slices["blogs_test"])]).texts)
    labels = np.r_[np.ones(len(unseen_pos), bool), np.zeros(len(unseen_neg), bool)]
    assert roc_auc(labels, np.r_[unseen_pos, unseen_neg]) >= 0.9
    assert classifier.score_one("A test.") == pytest.approx(classifier.score(["A test."])[0])


def test_training_is_deterministic_for_a_seed(slices, tmp_path):
    pos = read_texts([str(slices["wiki"])]).texts[:200]
    neg = read_texts([str(slices["blogs"])]).texts[:200]
    runs = [train_classifier(pos, neg, seed=7, **SMALL) for _ in range(2)]
    cards = [c.save(str(tmp_path / f"m{i}.bin")) for i, (c, _) in enumerate(runs)]
    assert cards[0]["model_sha256"] == cards[1]["model_sha256"]
    other, _ = train_classifier(pos, neg, seed=8, **SMALL)
    assert other.save(str(tmp_path / "m2.bin"))["model_sha256"] != cards[0]["model_sha256"]


def test_score_keeps_ids_as_given_in_input_order(model, tmp_path):
    rows = [{"id": 30, "text": "The river flows through the valley."}, {"id": 7, "text": "lol idk whatever"},
            {"id": 12, "text": None}]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "in.parquet")
    out = tmp_path / "scores.parquet"
    main(["classifier", "score", "--model", model[0], "-i", str(tmp_path / "in.parquet"), "--out", str(out)])
    table = pq.read_table(out)
    assert table.column("id").to_pylist() == [30, 7]  # integer ids stay integers; the null text has no score
    assert table.schema.field("score").type == pa.float64()
    expected = load_classifier(model[0]).score([r["text"] for r in rows[:2]])
    assert table.column("score").to_pylist() == pytest.approx(expected.tolist())


def test_a_run_folder_means_its_docs(model, tmp_path):
    run = tmp_path / "run"
    (run / "docs").mkdir(parents=True)
    (run / "removed").mkdir()
    (run / "config.yaml").write_text("dump: x\n")
    pq.write_table(pa.table({"id": ["a", "b"], "text": ["One kept page.", "Another one."]}),
                   run / "docs" / "part-1.parquet")
    pq.write_table(pa.table({"id": ["r"], "text_head": ["removed"]}), run / "removed" / "part-1.parquet")
    texts = read_texts([str(run)], id_field="id")
    assert texts.ids == ["a", "b"] and texts.files[0]["file"].endswith("docs/part-1.parquet")
    summary = score_command(model[0], [str(run)], str(tmp_path / "s.parquet"))
    assert summary["documents"] == 2


def _cli_error(argv, capsys) -> str:
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    return " ".join(capsys.readouterr().err.split())


def test_bad_input_gets_clear_errors(model, slices, tmp_path, capsys):
    out = str(tmp_path / "m.bin")
    # a positive set with no text field
    bad = tmp_path / "notext.jsonl"
    bad.write_text('{"id": 1, "body": "text under another name"}\n{"id": 2, "body": "more"}\n')
    err = _cli_error(["classifier", "train", "--positive", str(bad), "--negative", str(slices["blogs"]),
                      "--out", out], capsys)
    assert "no record has a 'text' field (fields: body, id)" in err
    # one class only: an empty negative set
    empty = tmp_path / "empty.jsonl"
    empty.write_text('{"id": 1, "text": ""}\n')
    err = _cli_error(["classifier", "train", "--positive", str(slices["wiki"]), "--negative", str(empty),
                      "--out", out], capsys)
    assert "the negative set has 0 non-empty text(s)" in err
    # a missing model, a model without its card, a truncated model
    err = _cli_error(["classifier", "score", "--model", str(tmp_path / "none.bin"), "-i", str(bad), "--out",
                      str(tmp_path / "s.parquet")], capsys)
    assert "classifier model not found" in err
    truncated = tmp_path / "trunc.bin"
    truncated.write_bytes(Path(model[0]).read_bytes()[:5000])
    err = _cli_error(["classifier", "score", "--model", str(truncated), "-i", str(slices["wiki_test"]),
                      "--out", str(tmp_path / "s.parquet")], capsys)
    assert "its model card" in err and "is missing" in err
    Path(str(truncated).removesuffix(".bin") + ".json").write_text(
        Path(model[0].removesuffix(".bin") + ".json").read_text())
    with pytest.raises(ClassifierError, match="is corrupt or not the model its card describes"):
        load_classifier(str(truncated))
    with pytest.raises(ClassifierError, match="WARC/WET"):
        read_texts([str(_warc(tmp_path))])


def _warc(tmp_path: Path) -> Path:
    p = tmp_path / "x.warc.gz"
    p.write_bytes(b"")
    return p


def test_train_and_score_on_s3(s3_server, slices, tmp_path):
    import boto3
    from pyarrow import fs as pafs

    from corpus.io.rundir import RunDir

    boto3.client("s3").create_bucket(Bucket="classifier-test")
    run = RunDir("s3://classifier-test/data")
    for name in ("wiki", "blogs"):
        pafs.copy_files(str(slices[name]), run.path(slices[name].name), source_filesystem=pafs.LocalFileSystem(),
                        destination_filesystem=run.fs)
    card = train_command(["s3://classifier-test/data/wiki.jsonl"], ["s3://classifier-test/data/blogs.jsonl.gz"],
                         "s3://classifier-test/models/q.bin", seed=3, **SMALL)
    assert card["sources"]["positive"][0]["file"] == "s3://classifier-test/data/wiki.jsonl"
    summary = score_command("s3://classifier-test/models/q.bin", ["s3://classifier-test/data/wiki.jsonl"],
                            "s3://classifier-test/scores/s.parquet")
    assert summary["documents"] == 600
    with run.fs.open_input_file("classifier-test/scores/s.parquet") as f:
        scores = pq.read_table(f)
    assert scores.num_rows == 600 and pc_mean(scores) > 0.5


def pc_mean(table: pa.Table) -> float:
    import pyarrow.compute as pc

    return pc.mean(table.column("score")).as_py()


def test_chinese_is_learned_from_characters_not_from_whitespace_tokens(tmp_path):
    """Instruction answers vs news sentences in Chinese: with one token per character the held-out ROC AUC is high;
    split on whitespace (no spaces in Chinese), each clause is one token seen once, and little is learned."""
    with gzip.open(shared_data("quality", "alpaca-zh.jsonl.gz"), "rt", encoding="utf-8") as f:
        answers = [json.loads(line)["output"] for _, line in zip(range(700), f)]
    news = shared_data("multilingual", "zh.txt").read_text(encoding="utf-8").splitlines()[:700]
    zh, zh_card = train_classifier(answers, news, lang="zh", seed=2, holdout=0.2, **SMALL)
    _, en_card = train_classifier(answers, news, lang="en", seed=2, holdout=0.2, **SMALL)
    assert zh_card["tokenizer"] == "characters" and en_card["tokenizer"] == "words"
    assert zh_card["heldout"]["roc_auc"] >= 0.9
    assert zh_card["heldout"]["roc_auc"] > en_card["heldout"]["roc_auc"] + 0.05
    # scoring tokenizes as the model was trained: characters, whatever language is asked by default
    assert zh.score(["你好"])[0] == pytest.approx(zh.score(["你好"], "zh")[0])
