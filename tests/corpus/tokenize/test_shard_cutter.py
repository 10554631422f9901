"""The one shard-cutting routine (corpus.tokenize.shards.ShardCutter), without Spark: where shards close, their
names and manifest entries, and that their bytes read back as the documents given."""

from __future__ import annotations

import hashlib

import numpy as np

from corpus.tokenize.shards import ShardCutter, open_shard


def test_cuts_per_split_once_a_shard_reaches_its_size_and_reads_back(tmp_path):
    written: dict[str, bytes] = {}
    cutter = ShardCutter(3, 10, vocab_size=1000, write=lambda name, data: written.__setitem__(name, data))
    docs = [("train", [1, 5, 6, 7], "a"), ("val", [1, 9], "b"), ("train", [1, 8, 8, 8, 8, 8], "b"),
            ("train", [1, 2], "a"), ("val", [1, 4, 4], "a")]
    infos = [info for split, toks, src in docs if (info := cutter.add(split, toks, src))]
    # the first train shard closes at 4 + 6 = 10 tokens; the rest close at finish, splits in name order
    assert [i["name"] for i in infos] == ["train_00003_0000.bin"]
    infos += cutter.finish()
    assert [i["name"] for i in infos] == ["train_00003_0000.bin", "train_00003_0001.bin", "val_00003_0000.bin"]
    assert [(i["tokens"], i["documents"]) for i in infos] == [(10, 2), (2, 1), (5, 2)]
    assert infos[0]["source_tokens"] == {"a": 4, "b": 6} and infos[2]["source_tokens"] == {"a": 3, "b": 2}
    for info in infos:
        data = written[info["name"]]
        assert info["sha256"] == hashlib.sha256(data).hexdigest()
        (tmp_path / info["name"]).write_bytes(data)
    assert open_shard(tmp_path / "train_00003_0000.bin", 10).tolist() == [1, 5, 6, 7, 1, 8, 8, 8, 8, 8]
    assert open_shard(tmp_path / "val_00003_0000.bin", 5).tolist() == [1, 9, 1, 4, 4]
    assert cutter.finish() == []  # nothing left to close


def test_wide_vocabulary_shards_hold_uint32_and_no_sources_means_no_source_tokens(tmp_path):
    written: dict[str, bytes] = {}
    cutter = ShardCutter(0, 1, vocab_size=70_000, write=lambda name, data: written.__setitem__(name, data))
    info = cutter.add("train", np.array([1, 69_999]))
    assert info is not None and "source_tokens" not in info
    (tmp_path / info["name"]).write_bytes(written[info["name"]])
    assert open_shard(tmp_path / info["name"], 2).tolist() == [1, 69_999]
