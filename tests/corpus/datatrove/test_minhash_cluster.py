"""SparkMinhashDedupCluster against datatrove's own MinhashDedupCluster on the same stage-2 .dups files.

The .dups files are generated (random pairs in datatrove's <4I layout, with index SENTINEL matches), so the
components come in shapes real data rarely gives a small test: chains merged across buckets in an order where
datatrove's union-by-size keeps a document other than the smallest. Every output file must be byte-identical."""

from __future__ import annotations

import random
import struct
from pathlib import Path

import pytest

pytest.importorskip("datatrove")

from datatrove.pipeline.dedup.minhash import SENTINEL, MinhashConfig, MinhashDedupCluster  # noqa: E402

from corpus.datatrove.minhash_cluster import SparkMinhashDedupCluster  # noqa: E402


def _write_dups(folder: Path, seed: int, index_matches: bool, buckets: int = 14) -> None:
    """Per bucket, pairs (a, b) with a < b as stage 2 writes them (consecutive equal signatures)."""
    rng = random.Random(seed)
    docs = [(f, d) for f in range(4) for d in range(60)]
    folder.mkdir(parents=True)
    for b in range(buckets):
        with open(folder / f"{b:05d}_00.dups", "wb") as out:
            for _ in range(rng.randint(0, 25)):
                a, c = sorted(rng.sample(docs, 2))
                if index_matches and rng.random() < 0.1:
                    out.write(struct.pack("<4I", SENTINEL, SENTINEL, *c))
                else:
                    out.write(struct.pack("<4I", *a, *c))


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _totals(step) -> dict[str, tuple]:
    return {k: (v.total, v.n, v.min, v.max, round(v.mean, 9)) for k, v in step.stats.stats.items()}


@pytest.mark.parametrize("seed,index_matches,ignore_index", [(2, True, False), (3, True, True)])
def test_same_files_and_stats_as_datatrove_stage3(spark, tmp_path, seed, index_matches, ignore_index):
    _write_dups(tmp_path / "dups", seed, index_matches)
    kwargs = dict(config=MinhashConfig(), save_cluster_id=True, save_cluster_size=True,
                  ignore_index_matches=ignore_index)
    theirs = MinhashDedupCluster(str(tmp_path / "dups"), str(tmp_path / "theirs"), **kwargs)
    theirs.run(None, 0, 1)
    ours = SparkMinhashDedupCluster(str(tmp_path / "dups"), str(tmp_path / "ours"), **kwargs)
    ours.run(None, 0, 1)

    expected = _files(tmp_path / "theirs")
    assert any(name.endswith(".remove") for name in expected)
    assert _files(tmp_path / "ours") == expected
    assert _totals(ours) == _totals(theirs)


def test_kept_document_is_datatrove_union_root_not_the_smallest(spark, tmp_path):
    # bucket 0 joins (0,1)-(0,2): root (0,1), size 2; bucket 1 joins (0,0)-(0,1): the bigger set's root (0,1) stays
    # root, so datatrove keeps (0,1) and removes (0,0) and (0,2); a "keep the smallest id" rule would differ.
    dups = tmp_path / "dups"
    dups.mkdir()
    (dups / "00000_00.dups").write_bytes(struct.pack("<4I", 0, 1, 0, 2))
    (dups / "00001_00.dups").write_bytes(struct.pack("<4I", 0, 0, 0, 1))
    config = MinhashConfig(num_buckets=2)
    SparkMinhashDedupCluster(str(dups), str(tmp_path / "ours"), config=config).run(None, 0, 1)
    MinhashDedupCluster(str(dups), str(tmp_path / "theirs"), config=config).run(None, 0, 1)
    removed = (tmp_path / "ours" / "000000.remove").read_bytes()
    assert struct.unpack("<2I", removed) == (0, 2)
    assert removed == (tmp_path / "theirs" / "000000.remove").read_bytes()


def test_bad_input_says_what_is_wrong(spark, tmp_path):
    dups = tmp_path / "dups"
    dups.mkdir()
    (dups / "00000_00.dups").write_bytes(b"")
    with pytest.raises(ValueError, match="not a multiple of num_buckets=14"):
        SparkMinhashDedupCluster(str(dups), str(tmp_path / "out")).run(None, 0, 1)
    with pytest.raises(ValueError, match="world_size=2"):
        SparkMinhashDedupCluster(str(dups), str(tmp_path / "out")).run(None, 0, 2)
