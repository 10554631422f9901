"""Parity of our URL filter and language ID with datatrove's own classes, on real URLs and documents."""

import gzip
import json
import random

import pytest
from conftest import shared_data

from corpus.build.language_id import LanguageId, bundled_model_path
from corpus.build.url_filter import UrlFilter, _blocklists
from corpus.config import LanguageConf
from corpus.io.offline_tldextract import offline_tld_extractor
from corpus.io.readers import Page, iter_pages


@pytest.fixture(scope="module")
def ours():
    return UrlFilter()


@pytest.fixture(scope="module")
def reference():
    from datatrove.pipeline.filters import URLFilter

    f = URLFilter()
    f.tldextractor = offline_tld_extractor()  # datatrove's default extractor would try the network
    return f


def _real_urls():
    urls = []
    for folder in ("crawls", "cc", "edge"):
        for path in sorted(shared_data("warc", folder).glob("*.warc*")):
            if path.name.endswith("wat.gz"):
                continue
            urls += [p.url for p in iter_pages(str(path), __import__("corpus.config").config.ReadConf())
                     if isinstance(p, Page) and p.url]
    return urls


def _crafted_urls():
    domains, urls = _blocklists()
    rnd = random.Random(7)
    picks = rnd.sample(sorted(domains), 60)
    crafted = [f"http://{d}/index.html" for d in picks]
    crafted += [f"https://www.{d}/page?id=3" for d in picks[:20]]
    crafted += [u if "://" in u else "http://" + u for u in rnd.sample(sorted(urls), 20)]
    crafted += [
        "https://example.com/xxx-videos/today", "https://example.com/XXX/today", "https://news.example.org/sex",
        "https://shop.example.net/free-casino-bonus-poker", "https://example.com/escort-girls",
        "https://example.com/analytics/report", "https://blog.example.com/2024/05/recipe-for-bread",
        "https://sub.domain.example.co.uk/a-b_c", "http://127.0.0.1:8080/x", "https://example.com/pornography",
        "https://example.com/?q=hot+milf+cams", "https://Example.COM/Path/To/File.HTML",
    ]
    return crafted


def _reference_reason(reference, url):
    from datatrove.data import Document

    out = reference.filter(Document(text="x", id="1", metadata={"url": url}))
    return None if out is True else out[1]


def test_url_filter_parity_with_datatrove(ours, reference):
    urls = _real_urls() + _crafted_urls()
    assert len(urls) > 150
    reasons = set()
    for url in urls:
        expected = _reference_reason(reference, url)
        assert ours.check(url) == expected, url
        reasons.add(expected)
    assert {None, "domain", "hard_blacklisted"} <= reasons


def test_url_filter_extra_lists_only():
    f = UrlFilter(extra_domains=["bad-site.com"], extra_urls=["http://ok-site.com/bad"], use_integrated_lists=False)
    assert f.check("http://www.bad-site.com/x") == "domain"
    assert f.check("http://ok-site.com/bad") == "url"
    assert f.check("http://ok-site.com/porn") is None  # word lists are off with use_integrated_lists=False


def _texts():
    texts = []
    for path in sorted(shared_data("docs").glob("*.jsonl.gz")):
        with gzip.open(path, "rt") as f:
            texts += [json.loads(line)["text"] for line in f if line.strip()]
    shakespeare = shared_data("text", "tinyshakespeare.txt").read_text()
    texts += [shakespeare[i : i + 600] for i in range(0, 60_000, 6000)]
    texts += ["Der Hund läuft schnell über die Straße und bellt laut.", "这是一个测试句子，用于语言识别。",
              "Это предложение написано на русском языке.", "12345 67890", "ok", ""]
    return texts


@pytest.mark.parametrize("threshold", [0.65, 0.3])
def test_language_id_parity_with_datatrove(threshold):
    import fasttext
    from datatrove.data import Document
    from datatrove.pipeline.filters import LanguageFilter

    reference = LanguageFilter(languages=["en"], language_threshold=threshold)
    reference.model._model = fasttext.load_model(bundled_model_path())  # same lid.176 weights, no download
    ours = LanguageId(LanguageConf(threshold=threshold))
    kept = 0
    for text in _texts():
        doc = Document(text=text, id="x")
        keep_ref = reference.filter(doc)
        lang, score, keep = ours.predict(text)
        assert keep == bool(keep_ref), text[:80]
        assert lang == doc.metadata["language"] and score == pytest.approx(doc.metadata["language_score"], abs=1e-6)
        kept += keep
    assert kept > 10


def test_missing_model_path_is_a_clear_error(tmp_path):
    from corpus.build.language_id import LanguageModelError

    with pytest.raises(LanguageModelError, match="language.model_path"):
        LanguageId(LanguageConf(model_path=str(tmp_path / "lid.176.bin")))
