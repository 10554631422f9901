"""Languages as configuration, FineWeb-2's per-language recipe, and datatrove's per-language tokenizers.

Parity: for each of the seven languages our quality stages (quality.preset fineweb2) decide as datatrove's own
filter classes given `language=<iso3_Script>` and FineWeb-2's thresholds, on real text from shared/data.
"""

from __future__ import annotations

import gzip
import json
import logging

import pytest
from conftest import shared_data
from datatrove.data import Document
from datatrove.utils.word_tokenizers import load_word_tokenizer

from corpus.build import fineweb2
from corpus.build.lang_words import MissingTokenizerError, check_tokenizers, word_splitter
from corpus.build.language_id import LanguageId, check_languages, language_thresholds
from corpus.build.pipeline import BuildPipeline
from corpus.build.stages import build_stages
from corpus.build.word_tokenizer import words_tuple
from corpus.config import ConfigError, LanguageConf, load_config
from corpus.languages import fineweb2_name, resolve

DATA = shared_data("multilingual")
SEVEN = {"en": "eng_Latn", "zh": "cmn_Hani", "ja": "jpn_Jpan", "de": "deu_Latn", "fr": "fra_Latn",
         "es": "spa_Latn", "ru": "rus_Cyrl"}
CORPORA = {"zh": "zhwiki.jsonl.gz", "ja": "livedoor-ja.jsonl.gz", "de": "news-de.jsonl.gz"}
DOCS_PER_LANGUAGE = 120


def _jsonl(name: str, keep=lambda row: True):
    with gzip.open(DATA / name, "rt", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            if keep(row):
                yield row["text"]


def documents(lang: str, limit: int = DOCS_PER_LANGUAGE) -> list[str]:
    """Sentences of {lang}.txt grouped 1..12 per document (one per line: short and long documents, so both verdicts
    occur), then the language's news/wiki corpus and its Wikipedia paragraphs."""
    docs: list[str] = []
    sentences = (DATA / f"{lang}.txt").read_text(encoding="utf-8").splitlines()
    i, size = 0, 1
    while i < len(sentences) and len(docs) < limit // 2:
        docs.append("\n".join(sentences[i:i + size]))
        i, size = i + size, size % 12 + 1
    streams = [_jsonl(CORPORA[lang])] if lang in CORPORA else []
    prefix = "cmrc" if lang == "zh" else f"xquad-{lang}-"
    streams.append(_jsonl("wiki-paragraphs.jsonl.gz", lambda row: row["id"].startswith(prefix)))
    for stream in streams:
        for text in stream:
            if len(docs) >= limit:
                return docs
            docs.append(text)
    return docs


def datatrove_decisions(lang: str, docs: list[str]) -> list[bool]:
    """datatrove's filters as FineWeb-2 runs them (fineweb-2-pipeline.py, step 5; English: FineWeb's four)."""
    chain = fineweb2.datatrove_reference_chain(SEVEN[lang])
    out = []
    for i, text in enumerate(docs):
        doc = Document(text=text, id=str(i))  # one Document through the chain: C4 rewrites its text
        out.append(all(f.filter(doc) is True for f in chain))
    return out


def our_decisions(lang: str, docs: list[str], overrides=()) -> list[bool]:
    """Our quality stages, as the build runs them for a document whose language stage said `lang`."""
    stages = [s for s in build_stages(load_config(overrides=list(overrides))) if hasattr(s, "filter_for")]
    chain = [f for f in (s.filter_for(lang) for s in stages) if f is not None]
    out = []
    for text in docs:
        for f in chain:
            reason, text = f.check(text)
            if reason is not None:
                break
        out.append(reason is None)
    return out


@pytest.mark.parametrize("lang", list(SEVEN))
def test_filter_decisions_match_datatrove_per_language(lang):
    docs = documents(lang)
    assert len(docs) >= 60
    ours, theirs = our_decisions(lang, docs), datatrove_decisions(lang, docs)
    same = sum(a == b for a, b in zip(ours, theirs, strict=True)) / len(docs)
    assert same >= 0.995, (lang, same)
    assert 0 < sum(ours) < len(docs), "the sample holds documents of both verdicts"


def test_the_zh_trap_tokenizer_is_picked_by_fineweb2_name():
    text = "我们在北京大学学习中文。今天天气很好。"
    # datatrove given "zh" silently returns its multi-language tokenizer: no Chinese segmentation
    assert len(load_word_tokenizer("zh").word_tokenize(text)) <= 4
    words = word_splitter(fineweb2_name("zh"))(text)
    assert words == tuple(load_word_tokenizer("cmn_Hani").word_tokenize(text))
    assert "北京大学" in words and len(words) >= 8
    assert word_splitter("eng_Latn") is words_tuple  # English keeps the fast path
    assert word_splitter("cmn_Hani", True)("我们 好") == ("我", "们", "好")
    assert word_splitter("deu_Latn", True)("Guten Tag") == ("Guten", "Tag")  # spaced scripts keep words


def test_language_names():
    assert [fineweb2_name(c) for c in SEVEN] == list(SEVEN.values())
    assert fineweb2_name("__label__cmn_Hani") == "cmn_Hani"  # a GlotLID label is already one
    assert fineweb2_name("it") == "ita_Latn"  # beyond the table: datatrove's default script for the code
    assert fineweb2_name("xx") is None and resolve("all") == "all"
    with pytest.raises(ConfigError, match="unknown language code 'klingon'"):
        load_config(overrides=["language.languages=[en, klingon]"])
    with pytest.raises(ConfigError, match="expected a list of language codes or 'all'"):
        load_config(overrides=["language.languages=every"])
    assert load_config(overrides=["language.languages=all"]).language.languages == "all"


def test_missing_tokenizer_package_is_a_clear_error():
    with pytest.raises(MissingTokenizerError, match="vie_Latn word tokenizer needs pyvi: pip install pyvi"):
        check_tokenizers(["vie_Latn"])
    with pytest.raises(MissingTokenizerError, match="pyvi"):
        check_languages(load_config(overrides=["language.languages=[en, vi]"]))


def test_language_without_thresholds_falls_back_with_a_warning(caplog):
    fineweb2._warned.discard("ita_Latn")
    with caplog.at_level(logging.WARNING, logger="corpus.build.fineweb2"):
        check_languages(load_config(overrides=["language.languages=[it]"]))
    assert "no FineWeb-2 thresholds shipped for ita_Latn" in caplog.text
    kwargs = fineweb2.stage_kwargs("gopher_quality", "ita_Latn")
    assert kwargs["min_stop_words"] is None and kwargs["max_avg_word_length"] == 10
    text = "\n".join((DATA / "es.txt").read_text(encoding="utf-8").splitlines()[:5])  # any spaced text tokenizes
    assert our_decisions("it", [text]) in ([True], [False])


def test_per_language_scores_and_all():
    conf = load_config(overrides=["language.languages=[en, zh, de]"])
    assert language_thresholds(conf) == {"cmn_Hani": 0.692, "deu_Latn": 0.821}
    lid = LanguageId(conf.language, language_thresholds(conf))
    zh = "\n".join((DATA / "zh.txt").read_text(encoding="utf-8").splitlines()[:20])
    lang, score, keep = lid.predict(zh)
    assert lang == "zh" and keep == (score > 0.692)
    ja = "\n".join((DATA / "ja.txt").read_text(encoding="utf-8").splitlines()[:20])
    assert lid.predict(ja)[2] is False  # not wanted
    everything = LanguageId(LanguageConf(languages="all"))
    assert everything.predict(ja)[0] == "ja" and everything.predict(ja)[2] is True


def test_mixed_build_keeps_each_language_by_its_recipe(tmp_path):
    rows = [{"id": f"{lang}-{i}", "text": text, "url": f"https://example.com/{lang}/{i}"}
            for lang in SEVEN for i, text in enumerate(documents(lang, 30)[15:30])]
    path = tmp_path / "mixed.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    langs = "language.languages=[en, zh, ja, de, fr, es, ru]"
    kept = BuildPipeline(load_config(overrides=[langs])).process_file(str(path)).docs
    by_lang = {d["language"] for d in kept}
    assert {"zh", "ja", "de", "ru", "es"} <= by_lang
    for d in kept:  # each kept document carries its language, and its source says it was that language
        assert d["id"].rsplit("/", 1)[-1].startswith(d["language"])
    # English rules for every language (today's behaviour) keep no Chinese or Japanese document
    english = BuildPipeline(load_config(overrides=[langs, "quality.preset=english"])).process_file(str(path)).docs
    assert not {"zh", "ja"} & {d["language"] for d in english}


def test_chinese_options(tmp_path):
    rows = [{"id": f"zh-{i}", "text": t} for i, t in enumerate(_first(_jsonl("zhwiki.jsonl.gz"), 40))]
    path = tmp_path / "zh.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    base = ["language.languages=[zh]"]
    plain = {d["id"]: d["text"] for d in BuildPipeline(load_config(overrides=base)).process_file(str(path)).docs}
    assert plain and any("於" in t or "為" in t for t in plain.values())  # traditional text kept as it is
    conv = BuildPipeline(load_config(overrides=[*base, "normalize.chinese_script=t2s"])).process_file(str(path)).docs
    assert {d["id"] for d in conv} == set(plain)  # filters decide before the conversion
    assert not any("於" in d["text"] or "為" in d["text"] for d in conv)
    # … ends a line for FineWeb's line-punctuation ratio only with cjk_line_end
    fw = [s for s in build_stages(load_config(overrides=[*base, "quality.cjk_line_end=true"]))
          if s.name == "fineweb"][0]
    text = "这是一个很长的句子，但是没有说完…\n" * 3 + "这一句说完了。"
    assert fw.filter_for("zh").metrics(text)["line_punct_ratio"] == 1.0
    plain_fw = [s for s in build_stages(load_config(overrides=base)) if s.name == "fineweb"][0]
    assert plain_fw.filter_for("zh").metrics(text)["line_punct_ratio"] == 0.25


def _first(it, n):
    return [x for _, x in zip(range(n), it, strict=False)]
