"""Near-dup and exact dedup on real Spark: signatures vs datatrove/datasketch, clustering, edge cases."""

from __future__ import annotations

import gzip
import json
import random

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import shared_data

from corpus.config import DedupConf
from corpus.dedup.minhash import MinHasher, jaccard, ngram_set
from corpus.steps.dedup import run_dedup


def _real_texts() -> list[str]:
    texts = []
    for path in sorted(shared_data("docs").glob("*.jsonl.gz")):
        with gzip.open(path, "rt") as f:
            texts += [json.loads(line)["text"] for line in f if line.strip()]
    return texts


def _write_docs(folder, rows):
    folder.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist(
        [{"id": r["id"], "text": r["text"], "url": r.get("url", ""), "date": r.get("date", "")} for r in rows],
        schema=pa.schema([("id", pa.string()), ("text", pa.string()), ("url", pa.string()), ("date", pa.string())]),
    )
    pq.write_table(table, folder / "part-0.parquet")
    return str(folder)


def _edit(text: str, rnd: random.Random, n_edits: int) -> str:
    words = text.split(" ")
    for _ in range(n_edits):
        i = rnd.randrange(len(words))
        words[i] = rnd.choice(["new", "changed", "edited", "other"])
    return " ".join(words)


def test_signatures_equal_datatrove():
    from datatrove.pipeline.dedup.minhash import MinhashDedupSignature

    texts = _real_texts()[:12] + ["too short", ""]
    ref = MinhashDedupSignature(output_folder="/tmp/unused-minhash")
    sigs, ok = MinHasher().signatures(texts)
    for i, text in enumerate(texts):
        shingles = ref.get_shingles(text)
        if shingles.size == 0:
            assert not ok[i]
            continue
        assert ok[i]
        assert np.array_equal(np.array(ref.get_signature(shingles)).reshape(-1), sigs[i])


def _multilingual_texts() -> dict[str, list[str]]:
    """Real Chinese and Japanese articles and German news (the first few of each file)."""
    out = {}
    for name, lang in (("zhwiki.jsonl.gz", "zh"), ("livedoor-ja.jsonl.gz", "ja"), ("news-de.jsonl.gz", "de")):
        with gzip.open(shared_data("multilingual", name), "rt") as f:
            out[lang] = [json.loads(line)["text"][:3000] for _, line in zip(range(6), f, strict=False)]
    return out


def test_signatures_per_language_equal_datatrove_with_its_language():
    """Issue 25: a document is shingled with its language's word tokenizer, as FineWeb-2's
    MinhashDedupSignature(language=<iso3_Script>) does; English keeps the default (identical signatures)."""
    from datatrove.pipeline.dedup.minhash import MinhashDedupSignature

    hasher = MinHasher()
    english = _real_texts()[:6]
    assert np.array_equal(hasher.signatures(english, ["en"] * 6)[0], hasher.signatures(english)[0])
    for lang, texts in _multilingual_texts().items():
        name = {"zh": "cmn_Hani", "ja": "jpn_Jpan", "de": "deu_Latn"}[lang]
        ref = MinhashDedupSignature(output_folder="/tmp/unused-minhash", language=name)
        sigs, ok = hasher.signatures(texts, [lang] * len(texts))
        for i, text in enumerate(texts):
            shingles = ref.get_shingles(text)
            assert ok[i] == (shingles.size > 0)
            if ok[i]:
                assert np.array_equal(np.array(ref.get_signature(shingles)).reshape(-1), sigs[i]), (lang, i)
    # Chinese shingled by the English tokenizer would be one "word" per sentence: other signatures.
    zh = _multilingual_texts()["zh"][:2]
    assert not np.array_equal(hasher.signatures(zh, ["zh", "zh"])[0], hasher.signatures(zh)[0])


def test_documents_of_different_languages_never_share_a_bucket():
    hasher = MinHasher()
    text = _real_texts()[0]
    sigs, _ = hasher.signatures([text, text, text], ["en", "de", "de"])
    keys = hasher.band_keys(sigs, ["en", "de", "de"])
    assert np.array_equal(keys[1], keys[2])  # the same language: the same buckets
    assert not set(keys[0]) & set(keys[1])  # the same text under another language: no bucket in common
    assert np.array_equal(keys[0], hasher.band_keys(sigs[:1])[0])  # English keys are the language-free ones


def test_jaccard_estimates_agree_with_datasketch():
    from datasketch import MinHash

    hasher = MinHasher()
    rnd = random.Random(0)
    base = [t for t in _real_texts() if len(t.split()) > 300][:6]
    for text in base:
        for edits in (5, 40, 150):
            other = _edit(text, rnd, edits)
            sigs, _ = hasher.signatures([text, other])
            ours = float(np.mean(sigs[0] == sigs[1]))
            a, b = MinHash(num_perm=112, seed=1), MinHash(num_perm=112, seed=1)
            a.update_batch([s.encode() for s in ngram_set(text, 5, hasher.tokenize)])
            b.update_batch([s.encode() for s in ngram_set(other, 5, hasher.tokenize)])
            true = jaccard(ngram_set(text, 5, hasher.tokenize), ngram_set(other, 5, hasher.tokenize))
            # Both are unbiased estimators with 112 permutations: standard error ≤ 0.05.
            assert abs(ours - true) < 0.15 and abs(a.jaccard(b) - true) < 0.15


def test_cs336_licenses(spark, tmp_path):
    folder = shared_data("neardup", "cs336")
    rows = [{"id": p.stem, "text": p.read_text()} for p in sorted(folder.glob("*.txt"))]
    stats = run_dedup(spark, _write_docs(tmp_path / "in", rows), str(tmp_path / "dedup"), DedupConf())
    kept = pq.read_table(tmp_path / "dedup" / "docs").to_pylist()
    ids = sorted(r["id"] for r in kept)
    assert ids == ["pytorch_license", "rails_mit_license"]  # the MIT pair is one cluster, smallest id kept
    by_id = {r["id"]: r for r in kept}
    assert by_id["rails_mit_license"]["cluster_size"] == 2 and by_id["pytorch_license"]["cluster_size"] == 1
    assert stats["near_duplicate_clusters"] == 1 and stats["near_duplicates_removed"] == 1


def test_near_duplicates_per_language(spark, tmp_path):
    """Issue 25: Chinese near-duplicates are found with the Chinese tokenizer's shingles; a near-duplicate labelled
    with another language is never compared, so it stays."""
    rnd = random.Random(2)
    zh = [t for t in _multilingual_texts()["zh"] if len(t) > 500][:2]
    en = [t for t in _real_texts() if len(t.split()) > 200][:1]

    def near(text: str) -> str:  # a few characters changed: a Chinese near-duplicate
        chars = list(text)
        for _ in range(3):
            chars[rnd.randrange(len(chars))] = "的"
        return "".join(chars)

    rows = [{"id": "zh0-a", "text": zh[0], "language": "zh"}, {"id": "zh0-b", "text": near(zh[0]), "language": "zh"},
            {"id": "zh1-a", "text": zh[1], "language": "zh"}, {"id": "zh1-b", "text": near(zh[1]), "language": "ja"},
            {"id": "en0-a", "text": en[0], "language": "en"}, {"id": "en0-b", "text": _edit(en[0], rnd, 3),
                                                              "language": "en"}]
    folder = tmp_path / "in"
    folder.mkdir()
    pq.write_table(pa.Table.from_pylist(rows), folder / "part-0.parquet")
    stats = run_dedup(spark, str(folder), str(tmp_path / "dedup"), DedupConf())
    kept = sorted(r["id"] for r in pq.read_table(tmp_path / "dedup" / "docs").to_pylist())
    assert kept == ["en0-a", "zh0-a", "zh1-a", "zh1-b"], kept
    assert stats["near_duplicates_removed"] == 2


def test_exact_near_short_and_giant_cluster(spark, tmp_path):
    rnd = random.Random(1)
    texts = [t for t in _real_texts() if len(t.split()) > 200][:8]
    rows = []
    for i, text in enumerate(texts):
        rows.append({"id": f"doc{i:02d}-a", "text": text})
        b = "  " + text.replace(" ", "  ").replace("the ", "THE ") + "\n"  # exact after normalization
        rows.append({"id": f"doc{i:02d}-b", "text": b})
        rows.append({"id": f"doc{i:02d}-c", "text": _edit(text, rnd, 3)})  # near duplicate
    giant = texts[0]
    rows += [{"id": f"giant{j:04d}", "text": _edit(giant, rnd, 2)} for j in range(400)]
    rows += [{"id": "short1", "text": "four words only here"}, {"id": "short2", "text": "four words only here"},
             {"id": "short3", "text": "tiny"}]
    stats = run_dedup(spark, _write_docs(tmp_path / "in", rows), str(tmp_path / "dedup"), DedupConf())
    kept = {r["id"]: r for r in pq.read_table(tmp_path / "dedup" / "docs").to_pylist()}
    assert sorted(kept) == sorted([f"doc{i:02d}-a" for i in range(8)] + ["short1", "short3"])
    assert kept["doc00-a"]["cluster_size"] == 3 + 400  # the giant cluster joins doc00's
    assert all(kept[f"doc{i:02d}-a"]["cluster_size"] == 3 for i in range(1, 8))
    assert stats["exact_duplicates_removed"] == 8 + 1
    assert stats["documents_too_short_for_minhash"] == 2
    assert stats["documents_kept"] == 10
    assert stats["cluster_size_histogram"] == {"1": 1, "2": 1, "3": 7, "403": 1}  # short1 stands for short2
    saved = json.loads((tmp_path / "stats" / "dedup.json").read_text())
    assert saved["documents_kept"] == 10


def test_keep_rule_longest_and_determinism(spark, tmp_path):
    text = next(t for t in _real_texts() if len(t.split()) > 200)
    rows = [{"id": "a", "text": text}, {"id": "b", "text": text + " An extra closing sentence is here."}]
    run_dedup(spark, _write_docs(tmp_path / "in", rows), str(tmp_path / "o1"), DedupConf(keep="longest"))
    kept = pq.read_table(tmp_path / "o1" / "docs").to_pylist()
    assert [r["id"] for r in kept] == ["b"] and kept[0]["cluster_id"] == "b"
    run_dedup(spark, str(tmp_path / "in"), str(tmp_path / "o2"), DedupConf(keep="longest"))
    files1 = sorted(p.name for p in (tmp_path / "o1" / "docs").iterdir())
    assert files1 == sorted(p.name for p in (tmp_path / "o2" / "docs").iterdir())
    for name in files1:
        assert (tmp_path / "o1" / "docs" / name).read_bytes() == (tmp_path / "o2" / "docs" / name).read_bytes()


def test_empty_and_all_identical_input(spark, tmp_path):
    stats = run_dedup(spark, _write_docs(tmp_path / "empty", []), str(tmp_path / "e"), DedupConf())
    assert stats["documents_in"] == 0 and stats["documents_kept"] == 0
    text = _real_texts()[0]
    rows = [{"id": f"x{i:03d}", "text": text} for i in range(50)]
    stats = run_dedup(spark, _write_docs(tmp_path / "same", rows), str(tmp_path / "s"), DedupConf())
    kept = pq.read_table(tmp_path / "s" / "docs").to_pylist()
    assert [r["id"] for r in kept] == ["x000"] and kept[0]["cluster_size"] == 50
    assert stats["exact_duplicates_removed"] == 49


@pytest.mark.parametrize("verify", [None, 0.8])
def test_verification_only_removes_edges(spark, tmp_path, verify):
    text = next(t for t in _real_texts() if len(t.split()) > 300)
    rnd = random.Random(5)
    rows = [{"id": "base", "text": text}, {"id": "far", "text": _edit(text, rnd, 60)}]
    stats = run_dedup(spark, _write_docs(tmp_path / "in", rows), str(tmp_path / "o"),
                      DedupConf(verify_threshold=verify))
    assert stats["verified_edges"] <= stats["candidate_edges"]


def test_giant_bucket_stays_linear(spark, tmp_path):
    """A boilerplate page shared by thousands of documents: one LSH bucket per band holds all of them. Star edges
    to the bucket's smallest id give members − 1 edges (not members² / 2), and the components converge at once."""
    giant = 3_000
    source = next(t for t in _real_texts() if len(t.split()) > 200)
    boilerplate = " ".join(source.split(" ")[:250])  # a template-sized page keeps the test short
    # Copies differ only in digits: distinct exact hashes, identical shingles (MinHash maps digits to 0), so every
    # copy lands in the same bucket of every band — the worst case for a bucket.
    rows = [{"id": f"page{j:05d}", "text": f"Listing {j} of {giant}. {boilerplate} Ref {j * 7919}."}
            for j in range(giant)]
    others = [t for t in _real_texts() if t != source]
    rows += [{"id": f"real{i:02d}", "text": t} for i, t in enumerate(others)]
    stats = run_dedup(spark, _write_docs(tmp_path / "in", rows), str(tmp_path / "dedup"), DedupConf())
    assert stats["exact_duplicates_removed"] == 0
    assert stats["largest_bucket"] == giant
    assert stats["candidate_edges"] == giant - 1 and stats["verified_edges"] == giant - 1
    assert stats["cc_rounds"] <= 3
    kept = {r["id"]: r for r in pq.read_table(tmp_path / "dedup" / "docs").to_pylist()}
    assert kept["page00000"]["cluster_size"] == giant
    assert not any(k.startswith("page") and k != "page00000" for k in kept)
    assert stats["near_duplicates_removed"] == giant - 1
    removed = pq.read_table(tmp_path / "dedup" / "removed").to_pylist()
    assert {r["duplicate_of"] for r in removed if r["reason"] == "near_duplicate"} == {"page00000"}


def test_simplify_text_equals_datatrove():
    from datatrove.utils.text import simplify_text as reference

    from corpus.dedup.minhash import simplify_text

    texts = _real_texts()[:10] + ["", "  ", "Café naïve façade — Ångström 1,234.5 Montag", "\u0301abc\u0301"]
    texts += ["x\u0300 ", " \u0300\u0301 "]
    # every ASCII control character, digit runs with separators, tabs and newlines (the ASCII fast path), and
    # Unicode spaces, Arabic-Indic digits and full-width punctuation (the general path)
    texts += ["".join(map(chr, range(128))), "a\x0bb\x1cc\td\n\ne  ", "1,234.56 3..4 7,,8 0.5. ,9", "\t\n \x85\xa0",
              "word\u3000word\u2028line\xa0nb", "١٢٣٫٤ ۱۲ ٣,٤", "ａｂｃ！ 【x】 «q» „d“", "MIXED Case ÀÉÎ 12:30"]
    for lang in ("de", "es", "fr", "ja", "ru", "zh"):
        texts += shared_data("multilingual", f"{lang}.txt").read_text().splitlines()[:200]
    for text in texts:
        assert simplify_text(text) == reference(text), text
