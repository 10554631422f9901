"""The memory-mapped URL blocklist: exact set semantics, one cache per content hash, shared by every worker."""

from __future__ import annotations

import os
import random

from corpus.build.url_filter import MappedStrings, UrlFilter, _blocklists, _mapped_blocklists


def test_mapped_strings_equal_a_set(tmp_path):
    rnd = random.Random(3)
    words = {"", "a", "example.com", "bücher.de", "日本.jp", "x" * 300}
    words |= {f"site{rnd.randrange(10**9)}.example" for _ in range(5_000)}
    MappedStrings.write(sorted(words), str(tmp_path))
    mapped = MappedStrings(str(tmp_path))
    assert len(mapped) == len(words)
    assert all(w in mapped for w in words)
    absent = ["b", "example.co", "example.comm", "bucher.de", "\ud800", "site.example", "x" * 299]
    absent += [f"other{rnd.randrange(10**9)}.example" for _ in range(5_000)]
    assert not any(w in mapped for w in absent if w not in words)
    assert None not in mapped and 3 not in mapped


def test_url_filter_domains_match_the_blocklist(tmp_path, monkeypatch):
    domains, urls = _blocklists()
    mapped, mapped_urls = _mapped_blocklists()
    assert len(mapped) == len(domains) and mapped_urls == urls
    rnd = random.Random(5)
    for d in rnd.sample(sorted(domains), 3_000):
        assert d in mapped
        assert (d + "x" in mapped) == (d + "x" in domains)  # a neighbour is a member only when listed
    ours = UrlFilter(extra_domains=["my-own-blocked-site.com"])
    assert ours.check("http://my-own-blocked-site.com/x") == "domain"
    assert ours.check(f"http://{sorted(domains)[1000]}/") in ("domain", "subdomain")


def test_cache_is_built_once_per_content(tmp_path, monkeypatch):
    monkeypatch.setenv("CORPUS_CACHE_DIR", str(tmp_path))
    first, _ = _mapped_blocklists()
    (folder,) = [p for p in tmp_path.iterdir() if p.name.startswith("url-blocklists-")]
    stamp = os.stat(folder / "hashes.npy").st_mtime_ns
    second, _ = _mapped_blocklists()
    assert os.stat(folder / "hashes.npy").st_mtime_ns == stamp and len(first) == len(second)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".url-blocklists-") and p.is_dir()]
