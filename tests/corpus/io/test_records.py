"""Reading real and broken inputs: every record is a page or a counted skip; nothing crashes."""

import gzip
import json
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import shared_data

from corpus.config import ReadConf
from corpus.io.formats import InputError, input_format
from corpus.io.listing import expand_inputs
from corpus.io.readers import Page, Skip, iter_pages, qualified_id


def _count(uri, conf=ReadConf()):
    counts, pages = Counter(), []
    for item in iter_pages(str(uri), conf):
        if isinstance(item, Page):
            pages.append(item)
            counts["page"] += 1
        else:
            assert isinstance(item, Skip) and item.reason
            counts[item.reason] += 1
    return counts, pages


def test_every_edge_warc_reads_without_crashing():
    edge = shared_data("warc", "edge")
    total_pages = 0
    for path in sorted(edge.iterdir()):
        counts, pages = _count(path)
        assert sum(counts.values()) > 0, path.name
        total_pages += len(pages)
        for p in pages:
            assert p.id and p.html is not None
    assert total_pages >= 30


def test_whole_file_gzip_warc_and_wet_fall_back_to_stream_decompression():
    counts, pages = _count(shared_data("warc", "edge", "clueweb12-0000tw-00-sample.warc.gz"))
    assert "read_error" not in counts and len(pages) == 3
    counts, pages = _count(shared_data("wet", "CC-MAIN-2016-50-fragment3.wet.gz"))
    assert "read_error" not in counts and len(pages) == 5
    assert all(p.text and p.html is None for p in pages)


def test_arc_file_is_read_as_warc():
    counts, pages = _count(shared_data("warc", "edge", "example.arc.gz"))
    assert len(pages) == 1 and pages[0].url.startswith("http")


def test_non_200_and_non_html_are_counted_by_reason():
    counts, pages = _count(shared_data("warc", "crawls", "IAH-urls-wget.warc.gz"))
    assert counts["http_status_302"] == 7 and counts["not_html"] == 5 and counts["page"] == 2


def test_truncated_gzip_keeps_earlier_records_and_counts_the_error(tmp_path):
    src = shared_data("warc", "crawls", "sample-0000.warc.gz").read_bytes()
    cut = tmp_path / "cut.warc.gz"
    cut.write_bytes(src[: len(src) // 2])
    counts, pages = _count(cut)
    assert 0 < len(pages) < 22
    assert counts["truncated_file"] == 1


def test_garbage_file_is_one_counted_error(tmp_path):
    junk = tmp_path / "junk.warc.gz"
    junk.write_bytes(b"\x1f\x8b\x08\x00garbage" * 50)
    counts, pages = _count(junk)
    assert pages == [] and counts == {"corrupt_gzip": 1}


def test_giant_payload_is_skipped_as_too_large():
    counts, pages = _count(shared_data("warc", "crawls", "sample-0000.warc.gz"), ReadConf(max_record_bytes=2000))
    assert counts["too_large"] > 0 and counts["too_large"] + counts["page"] == 22


def test_ids_are_stable_warc_record_ids():
    _, first = _count(shared_data("warc", "crawls", "sample-0001.warc.gz"))
    _, second = _count(shared_data("warc", "crawls", "sample-0001.warc.gz"))
    assert [p.id for p in first] == [p.id for p in second]
    assert all(p.id.startswith("<urn:uuid:") for p in first)
    assert len({p.id for p in first}) == len(first)


def test_jsonl_and_parquet_text_inputs(tmp_path):
    rows = [{"id": "a", "text": "hello world", "url": "http://x.org/a"}, {"text": "no id here"}, {"id": "c"}]
    jl = tmp_path / "docs.jsonl.gz"
    with gzip.open(jl, "wt") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
        f.write("{not json\n")
    counts, pages = _count(jl)
    assert [p.id for p in pages][0] == qualified_id(str(jl), "a") and pages[1].id.startswith("sha1:")
    assert counts["no_text_field"] == 1 and counts["bad_json"] == 1
    pqf = tmp_path / "docs.parquet"
    pq.write_table(pa.Table.from_pylist(rows[:2]), pqf)
    counts, pages = _count(pqf)
    assert [p.text for p in pages] == ["hello world", "no id here"]


def test_real_dolma_docs_are_read():
    path = next(shared_data("docs").glob("*.jsonl.gz"))
    counts, pages = _count(path)
    assert len(pages) > 0 and all(p.text for p in pages)


def test_non_utf8_payload_is_decoded_by_declared_charset():
    from corpus.io.charset import decode_html

    html = "<html><body><p>Café crème à la française</p></body></html>".encode("windows-1252")
    text, enc = decode_html(html, "text/html; charset=windows-1252")
    assert "Café crème" in text and enc == "cp1252"
    text, enc = decode_html(b'<meta charset="iso-8859-1">' + "déjà vu".encode("latin-1"), None)
    assert "déjà vu" in text
    text, _ = decode_html(b"broken \x81\x82 bytes and more", "text/html; charset=utf-8")
    assert "broken" in text


def test_expand_inputs_folders_globs_listings(tmp_path):
    crawls = shared_data("warc", "crawls")
    files = expand_inputs([str(crawls)])
    assert len(files) == len(list(crawls.glob("*.warc.gz"))) >= 4 and files == sorted(files)
    assert expand_inputs([str(crawls / "sample-*.warc.gz")]) == [f for f in files if "sample-" in f]
    listing = tmp_path / "warc.paths.gz"
    with gzip.open(listing, "wt") as f:
        f.write("crawl-data/CC-MAIN-2024-22/segments/1/warc/a.warc.gz\n" + files[0] + "\n")
    listed = expand_inputs([str(listing)])
    assert "https://data.commoncrawl.org/crawl-data/CC-MAIN-2024-22/segments/1/warc/a.warc.gz" in listed
    assert files[0] in listed
    assert expand_inputs([str(crawls)], limit=2) == files[:2]
    with pytest.raises(InputError, match="no such file"):
        expand_inputs([str(tmp_path / "missing")])
    with pytest.raises(InputError, match="unsupported input format"):
        input_format("x.wat.gz")


def test_unopenable_file_is_one_read_error_with_its_error(tmp_path):
    counts, pages = _count(tmp_path / "vanished.warc.gz")
    assert pages == [] and counts == {"read_error": 1}
    skip = next(iter_pages(str(tmp_path / "vanished.jsonl.gz"), ReadConf()))
    assert skip.reason == "read_error" and "FileNotFoundError" in skip.detail and "vanished" in skip.detail


def test_folder_with_crawl_files_ignores_side_jsonl(tmp_path):
    import shutil

    shutil.copy(shared_data("warc", "edge", "example.warc.gz"), tmp_path / "a.warc.gz")
    (tmp_path / "truth.jsonl").write_text('{"url": "x"}\n')
    assert [p.rsplit("/", 1)[1] for p in expand_inputs([str(tmp_path)])] == ["a.warc.gz"]
    (tmp_path / "a.warc.gz").unlink()
    assert [p.rsplit("/", 1)[1] for p in expand_inputs([str(tmp_path)])] == ["truth.jsonl"]
