"""The content filter's learned classifiers against the word-list baseline on our held-out split (a slice, so that
it stays quick; bench/content_filter.py measures the whole split), and the classifier inside the stage: sentence
removal with counts, the toxic-share drop, and a missing model as a clear error."""

from __future__ import annotations

import pytest
from conftest import shared_data

from corpus.build.content_filter import ContentFilter
from corpus.build.content_lists import ContentFilterError
from corpus.build.content_training import TRAIN_SETTINGS, compare, is_heldout, labelled, write_training_files
from corpus.classify.commands import train
from corpus.config import ContentFilterConf

TRAIN_PER_CLASS = 3000  # of the training split; the held-out slice below is the first 1,000 held-out records


@pytest.fixture(scope="module")
def data():
    shared_data("content", "wordlists.jsonl.gz")
    return shared_data("content")


@pytest.fixture(scope="module")
def word_lists(data):
    return ContentFilter(ContentFilterConf(wordlists=str(data / "wordlists.jsonl.gz")))


@pytest.fixture(scope="module")
def models(data, tmp_path_factory):
    """One model per language, trained as the recipe does (`corpus classifier train`'s function) on a slice."""
    out = tmp_path_factory.mktemp("content-models")
    paths = {}
    for lang in ("zh", "de"):
        toxic, clean = write_training_files(lang, data, out)
        paths[lang] = str(out / f"toxic-{lang}.bin")
        train([toxic], [clean], paths[lang], lang=lang, max_per_class=TRAIN_PER_CLASS, **TRAIN_SETTINGS)
    return paths


def test_split_is_by_id_and_disjoint(data):
    sets = labelled("de", data)
    assert sets["heldout"] and sets["train"]
    assert 0.15 < len(sets["heldout"]) / (len(sets["heldout"]) + len(sets["train"])) < 0.25
    assert is_heldout("germeval2018-train-0") == is_heldout("germeval2018-train-0")
    with pytest.raises(ContentFilterError, match="no labelled toxicity set for 'xx'"):
        labelled("xx", data)


@pytest.mark.parametrize("lang", ["zh", "de"])
def test_classifier_beats_the_word_lists_by_03_f1(lang, data, word_lists, models):
    from corpus.classify.fasttext_model import load_classifier

    heldout = labelled(lang, data)["heldout"][:1000]
    m = compare(heldout, lang, word_lists, load_classifier(models[lang]))
    assert m["classifier"]["f1"] - m["wordlist"]["f1"] >= 0.3, m


def test_sentence_level_removes_toxic_sentences_and_drops_by_share(data, models):
    conf = dict(wordlists=None, badwords=False, categories=[], models={"zh": models["zh"]}, threshold=0.5)
    content = ContentFilter(ContentFilterConf(**conf, max_toxic_share=0.9))
    held = labelled("zh", data)["heldout"]
    scores = content.models["zh"].score([t for t, _, _ in held[:400]])
    def one_sentence(t):
        return not any(c in t for c in "。！？.!?…\n")

    toxic = next(t for (t, y, _), s in zip(held, scores, strict=False) if y and s > 0.9 and one_sentence(t))
    clean = [t for (t, y, _), s in zip(held, scores, strict=False) if not y and s < 0.1 and one_sentence(t)][:3]
    text = "。".join([clean[0], toxic, clean[1], clean[2]]) + "。"
    reason, kept, cols = content.score(text, "zh")
    assert reason is None and cols["toxic_sentences"] == 1 and cols["content_score"] > 0.9
    assert toxic not in kept and all(c in kept for c in clean)
    assert cols["toxic_share"] == pytest.approx((len(toxic) + 1) / len(text))
    strict = ContentFilter(ContentFilterConf(**conf, max_toxic_share=0.01))
    assert strict.score(text, "zh")[0] == "toxic_share"
    document = ContentFilter(ContentFilterConf(**conf, level="document"))
    assert document.score(toxic, "zh")[0] == "toxic_score"
    assert document.score(clean[0], "zh")[0] is None
    assert content.score(text, "en") == (None, text, {"content_score": None, "toxic_sentences": None,
                                                      "toxic_share": None})  # no model for en: not scored


def test_missing_or_corrupt_model_is_a_clear_error(tmp_path, models):
    conf = dict(badwords=False, categories=[])
    with pytest.raises(ContentFilterError, match=r"models.de: classifier model not found: .*nope.bin"):
        ContentFilter(ContentFilterConf(**conf, models={"de": str(tmp_path / "nope.bin")}))
    broken = tmp_path / "broken.bin"
    broken.write_bytes(open(models["de"], "rb").read()[:1000])
    (tmp_path / "broken.json").write_bytes(open(models["de"].removesuffix(".bin") + ".json", "rb").read())
    with pytest.raises(ContentFilterError, match="models.de: .*corrupt"):
        ContentFilter(ContentFilterConf(**conf, models={"de": str(broken)}))
