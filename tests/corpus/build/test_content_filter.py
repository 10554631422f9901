"""Content filter: C4's bad-words rule in parity with datatrove's C4BadWordsFilter, the Chinese lexicons and the
illegal-URL list by category (political groups off by default), the stage in the pipeline, and clear errors."""

from __future__ import annotations

import gzip
import itertools
import json

import pytest
from conftest import shared_data

from corpus.build.content_filter import ContentFilter, check_content_filter, split_sentences
from corpus.build.content_lists import (
    C4BadWords,
    ContentFilterError,
    UrlList,
    read_wordlists,
)
from corpus.build.pipeline import BuildPipeline
from corpus.config import ConfigError, ContentFilterConf, load_config
from corpus.io.readers import Page
from corpus.schema import DOC_SCHEMA


@pytest.fixture(scope="module")
def wordlists():
    return str(shared_data("content", "wordlists.jsonl.gz"))


@pytest.fixture(scope="module")
def lists(wordlists):
    return read_wordlists(wordlists)


def _texts(name: str, lang: str, n: int):
    with gzip.open(shared_data(*name.split("/")), "rt", encoding="utf-8") as f:
        for line in itertools.islice(f, n):
            yield lang, json.loads(line)["text"]


def test_c4_badwords_decide_as_datatrove_on_real_text(lists, tmp_path, monkeypatch):
    """datatrove downloads its lists at run time: here it reads the same lists from local files instead (its
    download function is pointed at them), so both sides decide with identical words."""
    from datatrove.data import Document
    from datatrove.pipeline.filters import c4_filters

    obscene = {lang: terms for (group, lang), terms in lists.items() if group == "obscene"}
    for lang, terms in obscene.items():
        (tmp_path / lang).write_text("".join(t + "\n" for t in sorted(terms)), encoding="utf-8")
    monkeypatch.setattr(c4_filters, "cached_asset_path_or_download",
                        lambda url, **kw: str(tmp_path / url.rsplit("/", 1)[1]))
    reference = c4_filters.C4BadWordsFilter()
    ours = C4BadWords(obscene)
    texts = itertools.chain(_texts("blogs/blogs-sample.jsonl.gz", "en", 2000),
                            _texts("content/davidson_hate_offensive_en.jsonl.gz", "en", 1000),
                            _texts("content/olid_offenseval2019_en.jsonl.gz", "en", 1000),
                            _texts("content/cold_offensive_zh.jsonl.gz", "zh", 1000),
                            _texts("content/germeval2018_offensive_de.jsonl.gz", "de", 1000))
    decisions = {True: 0, False: 0}
    for lang, text in texts:
        theirs = reference.filter(Document(text=text, id="x", metadata={"language": lang})) is True
        assert theirs == (not ours.find(text, lang)), (lang, ours.find(text, lang), text[:200])
        decisions[theirs] += 1
    assert min(decisions.values()) > 100  # both outcomes are exercised


def test_word_boundaries_and_languages_without_spaces():
    words = C4BadWords({"en": {"ass", "two words"}, "zh": {"色情", "性"}})
    assert words.find("an ass.", "en") == ["ass"]
    assert words.find("ASS", "en") == ["ass"]  # the text is lower-cased, as in C4
    assert words.find("class assignment", "en") == []  # only flanked by non-word characters
    assert words.find("say two words now", "en") == ["two words"]
    assert words.find("这是色情网站", "zh") == ["色情"]  # no boundaries for zh
    assert words.find("性别", "zh") == []  # C4's allowlist
    assert words.find("an ass", "fr") == []  # no list for the language: passes


def _first_term(lists, group, lang="zh", exclude=()):
    return sorted(lists[(group, lang)] - set().union(*exclude))[0]


def test_lexicon_groups_political_ones_off_by_default(lists, wordlists):
    harm = [t for (g, _), terms in lists.items() if g in ("porn", "weapons", "terror") for t in terms]
    political = sorted(t for t in lists[("politics", "zh")] - set(harm)
                       if not C4BadWords({"zh": lists[("obscene", "zh")]}).find(t, "zh"))[:3]
    text = "今天的新闻。" + "，".join(political) + "。"
    default = ContentFilter(ContentFilterConf(wordlists=wordlists))
    assert default.check_lists(None, text, "zh")[0] is None
    politics = ContentFilter(ContentFilterConf(wordlists=wordlists, categories=["politics"], lexicon_min_hits=1))
    assert politics.check_lists(None, text, "zh")[0] == "lexicon_politics"
    porn = sorted(lists[("porn", "zh")] - lists[("obscene", "zh")])[:2]
    one, two = f"正文{porn[0]}。", f"正文{porn[0]}，{porn[1]}。"
    assert default.check_lists(None, one, "zh") == (None, 1)  # below lexicon_min_hits: counted, kept
    assert default.check_lists(None, two, "zh") == ("lexicon_porn", 2)


def test_illegal_url_list_matches_hosts_and_parent_domains(lists):
    entries = sorted(lists[("illegal_url", "zh")])
    urls = UrlList(entries)
    host = sorted(urls.hosts)[0]
    assert urls.find(f"http://{host}/page?x=1") == host
    assert urls.find(f"https://www.sub.{host}:8080/") == host
    assert urls.find(f"http://{host}.example.org/") is None
    assert urls.find("http://[::1/") is None  # malformed URL: no match, no exception
    assert UrlList(["WWW.Example.COM/path"]).find("http://example.com") == "example.com"


def test_split_sentences_keeps_the_text():
    for text in ["One. Two! Three?\nFour", "第一句。第二句！第三句", "no end", "", "a.\n\nb. "]:
        pieces = split_sentences(text)
        assert "".join(s + sep for s, sep in pieces) == text
    assert [s for s, _ in split_sentences("One. Two!\nThree")] == ["One.", "Two!", "Three"]
    assert [s for s, _ in split_sentences("第一句。第二句！")] == ["第一句。", "第二句！", ""]


def _pages(items):
    return iter(Page(id=f"p{i}", url=url, date="2024-01-01", file_path="mem", text=text)
                for i, (url, text) in enumerate(items))


def test_stage_in_the_pipeline_drops_with_reasons_and_columns(lists, wordlists):
    overrides = ["quality.gopher_repetition=null", "quality.gopher_quality=null", "quality.c4=null",
                 "quality.fineweb=null", "language.languages=[en,zh]", "language.threshold=0.3",
                 f"quality.content_filter={{wordlists: {wordlists}}}"]
    conf = load_config(overrides=overrides)
    pipeline = BuildPipeline(conf)
    assert [s.name for s in pipeline.stages][-1] == "content_filter"
    assert [name for name, _ in pipeline.extra_fields] == ["content_score", "toxic_sentences", "toxic_share",
                                                           "content_list_hits"]
    host = sorted(UrlList(lists[("illegal_url", "zh")]).hosts)[0]
    clean = "The weather was pleasant and we walked along the river to the old town for lunch."
    docs, removed = [], []
    stats = pipeline.process_pages("mem", _pages([
        ("http://example.com/a", clean),
        (f"http://{host}/b", clean),
        ("http://example.com/c", clean + " What a fucking mess it was."),
    ]), docs.append, removed.append)
    assert [d["id"] for d in docs] == ["p0"]
    assert docs[0]["content_list_hits"] == 0 and docs[0]["content_score"] is None  # no model: not scored
    assert {r["id"]: r["reason"] for r in removed} == {"p1": "illegal_url", "p2": "badwords"}
    assert {r["stage"] for r in removed} == {"content_filter"}
    assert stats["stages"]["content_filter"] == {"in": 3, "removed": {"badwords": 1, "illegal_url": 1}, "out": 1}


def test_default_config_has_no_content_filter():
    conf = load_config()
    assert conf.quality.content_filter is None
    pipeline = BuildPipeline(conf)
    assert "content_filter" not in [s.name for s in pipeline.stages] and pipeline.extra_fields == []
    assert "content_filter" not in pipeline.stage_names
    assert "content_score" not in DOC_SCHEMA.names


def test_bad_input_is_a_clear_error(tmp_path, wordlists):
    missing = tmp_path / "nope.jsonl.gz"
    with pytest.raises(ContentFilterError, match="word-list file not found: .*nope.jsonl.gz"):
        ContentFilter(ContentFilterConf(wordlists=str(missing)))
    with pytest.raises(ContentFilterError, match="word-list file not found"):
        check_content_filter(ContentFilterConf(wordlists=str(missing)))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"term": "x", "lang": "en"}\n', encoding="utf-8")
    with pytest.raises(ContentFilterError, match="line 1: expected a JSON object with term, category and lang"):
        read_wordlists(str(bad))
    with pytest.raises(ContentFilterError, match="wordlists: required"):
        check_content_filter(ContentFilterConf())
    with pytest.raises(ContentFilterError, match="nothing to filter"):
        check_content_filter(ContentFilterConf(badwords=False, categories=[]))
    with pytest.raises(ContentFilterError, match=r"models.en: model file not found: .*toxic.bin"):
        check_content_filter(ContentFilterConf(wordlists=wordlists, models={"en": str(tmp_path / "toxic.bin")}))
    with pytest.raises(ConfigError, match="categories"):
        load_config(overrides=["quality.content_filter={categories: [opinions]}"])
