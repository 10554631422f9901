"""Tokenizer training, shard writing/reading, mixture and determinism on real Spark and real sentencepiece."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import shared_data

from corpus.config import SourceConf, TokenizeConf
from corpus.steps.tokenize import run_tokenize
from corpus.tokenize.shards import ShardError, TokenDataset, encode_shard, open_shard, sha256_file
from corpus.tokenize.tokenizer import BOS_ID, CHAT_TOKENS, load_tokenizer


def _write(folder, texts, prefix):
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist([{"id": f"{prefix}{i:05d}", "text": t} for i, t in enumerate(texts)]),
                   folder / "part-0.parquet")
    return str(folder)


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    root = tmp_path_factory.mktemp("tok")
    web = []
    for path in sorted(shared_data("docs").glob("*.jsonl.gz")):
        with gzip.open(path, "rt") as f:
            web += [json.loads(line)["text"] for line in f if line.strip()]
    lines = shared_data("text", "tinyshakespeare.txt").read_text().split("\n\n")
    plays = ["\n\n".join(lines[i : i + 8]) for i in range(0, len(lines), 8)]
    extra = ["Русский текст для проверки.", "日本語のテキストです。", "中文文本测试。", "Ünïcödé — “quotes” ✓ 🚀",
             "  leading and trailing spaces  ", "tabs\tand\nnewlines\n\n", ""]
    return {"web": _write(root / "web", web + extra, "w"), "plays": _write(root / "plays", plays, "p"),
            "web_texts": web + extra, "root": root}


@pytest.fixture(scope="module")
def tokenized(spark, corpora):
    out = corpora["root"] / "tokens"
    conf = TokenizeConf(vocab_size=2000, shard_tokens=20_000, val_fraction=0.1, partitions=3)
    sources = [SourceConf(name="web", path=corpora["web"]), SourceConf(name="plays", path=corpora["plays"])]
    stats = run_tokenize(spark, sources, str(out), conf)
    return out, stats, conf, sources


def test_roundtrip_on_real_text(tokenized, corpora):
    out, *_ = tokenized
    sp = load_tokenizer(out / "tokenizer.model")
    for text in corpora["web_texts"]:
        assert sp.decode(sp.encode(text)) == text
    assert [sp.piece_to_id(t) for t in CHAT_TOKENS] == [4, 5, 6, 7]
    assert sp.bos_id() == 1 and sp.eos_id() == 2 and sp.pad_id() == 3


def test_shards_read_back_as_the_encoded_documents(tokenized, spark):
    out, stats, conf, _ = tokenized
    ds = TokenDataset(out / "manifest.json", verify_checksums=True)
    manifest = ds.manifest
    assert manifest["format"]["magic"] == 20240520 and manifest["format"]["dtype"] == "uint16"
    assert len(ds.split("train")) > 1 and ds.split("val")
    groups: dict[str, list] = {}
    for shard in ds.shards:
        assert sha256_file(out / shard.name) == shard.sha256
        groups.setdefault(shard.name.rsplit("_", 1)[0], []).append(shard)
    for shards in groups.values():  # a shard closes at the document that crosses the limit; the last is a rest
        assert all(s.tokens >= conf.shard_tokens for s in shards[:-1])
        assert 0 < shards[-1].tokens
    sp = load_tokenizer(out / "tokenizer.model")
    # Decode the whole stream back into documents and compare with the sources' texts (with mixture copies).
    texts = {r["text"] for r in spark.read.parquet(tokenized[3][0].path, tokenized[3][1].path).collect()}
    for split in ("train", "val"):
        stream = np.asarray(ds.tokens(split)).astype(np.int64)
        assert stream[0] == BOS_ID
        cuts = np.flatnonzero(stream == BOS_ID)
        docs = [sp.decode(stream[a + 1 : b].tolist()) for a, b in zip(cuts, list(cuts[1:]) + [len(stream)])]
        assert set(docs) <= texts
        assert len(docs) == manifest["splits"][split]["documents"]


def test_mixture_shares_and_manifest(tokenized):
    out, stats, _, _ = tokenized
    manifest = json.loads((out / "manifest.json").read_text())
    shares = {s["name"]: s["realized_share"] for s in manifest["sources"]}
    assert shares["web"] == pytest.approx(0.5, abs=0.08) and shares["plays"] == pytest.approx(0.5, abs=0.08)
    assert manifest["tokenizer"]["sha256"] == sha256_file(out / "tokenizer.model")


def test_weights_change_the_mix(spark, corpora, tmp_path):
    sources = [SourceConf(name="web", path=corpora["web"], weight=3.0),
               SourceConf(name="plays", path=corpora["plays"], weight=1.0)]
    conf = TokenizeConf(vocab_size=2000, shard_tokens=50_000, val_fraction=0.05, partitions=2)
    run_tokenize(spark, sources, str(tmp_path / "t"), conf)
    manifest = json.loads((tmp_path / "t" / "manifest.json").read_text())
    shares = {s["name"]: s["realized_share"] for s in manifest["sources"]}
    assert shares["web"] == pytest.approx(0.75, abs=0.06)


def test_same_input_same_bytes(spark, tokenized, tmp_path):
    out, _, conf, sources = tokenized
    again = tmp_path / "again"
    run_tokenize(spark, sources, str(again), conf)
    names = sorted(p.name for p in out.iterdir() if p.suffix in (".bin", ".model", ".json"))
    assert names == sorted(p.name for p in again.iterdir() if p.suffix in (".bin", ".model", ".json"))
    for name in names:
        assert (out / name).read_bytes() == (again / name).read_bytes(), name


def test_reuse_tokenizer(spark, tokenized, corpora, tmp_path):
    out, _, conf, _ = tokenized
    reuse = conf.model_copy(update={"tokenizer": str(out / "tokenizer.model")})
    run_tokenize(spark, [SourceConf(name="web", path=corpora["web"])], str(tmp_path / "r"), reuse)
    assert (tmp_path / "r" / "tokenizer.model").read_bytes() == (out / "tokenizer.model").read_bytes()


def test_corrupt_and_truncated_shards_name_the_file(tmp_path):
    good = tmp_path / "train_00000_0000.bin"
    good.write_bytes(encode_shard(np.arange(100), 2000))
    assert list(open_shard(good, 100)) == list(range(100))
    cut = tmp_path / "cut.bin"
    cut.write_bytes(good.read_bytes()[:-10])
    with pytest.raises(ShardError, match="cut.bin.*header promises"):
        open_shard(cut)
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"\x00" * 2000)
    with pytest.raises(ShardError, match="bad.bin: bad magic"):
        open_shard(bad)
    with pytest.raises(ShardError, match="sha256"):
        open_shard(good, 100, "0" * 64)
    big = tmp_path / "big.bin"
    big.write_bytes(encode_shard(np.array([70000, 5]), 100_000))
    assert list(open_shard(big)) == [70000, 5]


def test_a_vocabulary_smaller_than_the_samples_characters_is_a_clear_error(tmp_path):
    """Chinese holds thousands of distinct characters: a vocabulary below them stops with the two ways out."""
    from corpus.tokenize.tokenizer import TokenizerError, train_tokenizer

    with gzip.open(shared_data("multilingual", "zhwiki.jsonl.gz"), "rt") as f:
        text = "\n".join(json.loads(line)["text"].replace("\n", " ") for _, line in zip(range(200), f, strict=False))
    (tmp_path / "zh.txt").write_text(text)
    with pytest.raises(TokenizerError, match="distinct characters within character_coverage .* raise tokenize"):
        train_tokenizer(tmp_path / "zh.txt", tmp_path / "m", 600)
