"""Hostile input (issue 14): every way a file can be bad or end early is a counted reason, bounded in time and
memory, and no exception of one page or one file escapes the per-file function."""

from __future__ import annotations

import gzip
import json
import os
import stat
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import shared_data

from corpus.config import ReadConf, load_config
from corpus.io.readers import FILE_ENDED_EARLY, MAX_HEADER_LINE, Page, Skip, iter_pages, qualified_id
from corpus.io.rundir import ROW_GROUP_ROWS, RunDir
from corpus.schema import DOC_SCHEMA, REMOVED_SCHEMA
from corpus.synth.damage import gzip_members, record_boundaries


def _outcome(path, conf=ReadConf()):
    counts, pages = Counter(), []
    for item in iter_pages(str(path), conf):
        if isinstance(item, Page):
            pages.append(item.id)
        else:
            assert isinstance(item, Skip) and item.reason and len(item.detail) < 1000
            counts[item.reason] += 1
    return counts, pages


@pytest.fixture(scope="module")
def pipeline():
    from corpus.build.pipeline import BuildPipeline

    return BuildPipeline(load_config())


# --- 1. one bad row or page is a counted drop, fields are coerced at read time -------------------------------

BAD_ROWS = [
    {"id": "n", "url": 12345, "text": "A number for a url. " * 20},
    {"id": "l", "url": ["http://a.example/", "http://b.example/"], "text": "A list for a url. " * 20},
    {"id": "s", "url": "http://c.example/x", "text": "A lone surrogate \ud800 in the text. " * 20},
    {"id": "m", "metadata": {"url": {"href": "http://d.example/"}, "date": 2024}, "text": "Bad metadata. " * 20},
    {"id": {"nested": 1}, "url": None, "date": [1], "text": "An id that is an object. " * 20},
]


def test_rows_of_the_wrong_types_are_coerced_and_the_file_goes_on(tmp_path, pipeline):
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in BAD_ROWS), encoding="utf-8")  # json escapes \ud800
    counts, _ = _outcome(path)
    assert counts == {}
    pages = [p for p in iter_pages(str(path), ReadConf()) if isinstance(p, Page)]
    assert [p.url for p in pages[:2]] == ["12345", ""] and all(isinstance(p.url, str) for p in pages)
    assert "\ufffd" in pages[2].text and pages[3].url == "" and pages[3].date == "2024"
    result = pipeline.process_file(str(path))
    read = result.stats["stages"]["read"]
    assert read["in"] == len(BAD_ROWS) and read["out"] == len(BAD_ROWS)
    # What the pipeline gives is writable with the run's schemas (the writer is where a wrong type used to fail).
    pa.Table.from_pylist(result.docs, schema=DOC_SCHEMA)
    pa.Table.from_pylist(result.removed, schema=REMOVED_SCHEMA)
    for name, st in result.stats["stages"].items():
        assert st["in"] - sum(st["removed"].values()) == st["out"], name


def test_an_exception_in_one_page_is_a_counted_drop_at_its_stage(pipeline):
    good = Page("good", "http://en.wikipedia.org/wiki/Cat", "", "f", text=_real_text())
    # A url of the wrong type, as a reader bug could give: tldextract fails inside the URL filter.
    bad = Page("bad", 12345, "", "f", text=good.text)  # type: ignore[arg-type]
    docs, removed = [], []
    stats = pipeline.process_pages("f", iter([bad, good]), docs.append, removed.append)
    reasons = stats["stages"]["url_filter"]["removed"]
    assert [k for k in reasons if k.startswith("pipeline_error:")], stats["stages"]
    assert any(e.startswith("pipeline_error:") for e in stats["errors"])
    assert [r["id"] for r in removed if r["reason"].startswith("pipeline_error:")] == ["bad"]
    assert stats["records"] == {"page": 2} and stats["stages"]["read"]["out"] == 2  # the good page went on
    assert [d["id"] for d in docs] + [r["id"] for r in removed] == ["good", "bad"] or len(removed) == 2


def _real_text() -> str:
    with gzip.open(shared_data("docs", "provided__documents__000.json.gz"), "rt") as f:
        return max((json.loads(line)["text"] for line in f), key=len)


# --- 2. the first bytes decide; long lines are capped, in linear time ----------------------------------------

def test_a_gigabyte_of_zeros_is_rejected_on_its_first_bytes(tmp_path):
    zeros = tmp_path / "failed-download.warc.gz"
    with open(zeros, "wb") as f:  # sparse: 1 GB that costs no disk
        f.truncate(1 << 30)
    counts, pages = _outcome(zeros)
    assert pages == [] and counts == {"not_a_crawl_file": 1}
    jsonl = tmp_path / "zeros.jsonl"
    os.link(zeros, jsonl)
    assert _outcome(jsonl)[0] == {"not_jsonl": 1}


@pytest.mark.parametrize("name, data, reason", [
    ("empty.warc.gz", b"", "empty_file"),
    ("empty.jsonl", b"", "empty_file"),
    ("empty-gzip.warc.gz", gzip.compress(b""), "empty_file"),
    ("junk.warc.gz", b"\x1f\x8b\x08\x00garbage" * 50, "corrupt_gzip"),
    ("text.warc", b"<html>not an archive</html>" * 100, "not_a_crawl_file"),
    ("zeros-inside-gzip.warc.gz", gzip.compress(bytes(8 << 20)), "not_a_crawl_file"),
    ("html.jsonl", b"<html>not json lines</html>\n", "not_jsonl"),
])
def test_files_that_are_not_their_format_are_one_counted_reason(tmp_path, name, data, reason):
    path = tmp_path / name
    path.write_bytes(data)
    counts, pages = _outcome(path)
    assert pages == [] and counts == {reason: 1}


def test_header_lines_are_capped(tmp_path):
    src = gzip.decompress(shared_data("warc", "cc", "CC-MAIN-2022-05-mini.warc.gz").read_bytes())
    at = src.index(b"\r\n", src.index(b"WARC-Type: response")) + 2  # inside the response's WARC headers
    for size in (MAX_HEADER_LINE + 10, 8 * MAX_HEADER_LINE):
        path = tmp_path / f"long-{size}.warc.gz"
        path.write_bytes(gzip.compress(src[:at] + b"X-Long: " + b"a" * size + b"\r\n" + src[at:], compresslevel=1))
        counts, pages = _outcome(path)
        assert pages == [] and counts["header_too_long"] == 1 and counts["record_type_warcinfo"] == 1


def test_jsonl_line_over_the_limit_is_skipped_and_the_file_goes_on(tmp_path):
    conf = ReadConf(max_text_chars=1000)
    path = tmp_path / "long.jsonl"
    rows = [{"id": "a", "text": "short"}, {"id": "b", "text": "x" * 100_000}, {"id": "c", "text": "after"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    counts, pages = _outcome(path, conf)
    assert counts == {"too_large": 1} and len(pages) == 2


# --- 3. every early end is counted: cut sweeps over whole members -------------------------------------------

def _sweep(src: bytes, cuts, tmp_path, name: str):
    full_counts, full_pages = _outcome_bytes(src, tmp_path, name)
    assert not set(full_counts) & set(FILE_ENDED_EARLY)
    boundaries = record_boundaries(src)
    silent = []
    for cut in cuts:
        counts, pages = _outcome_bytes(src[:cut], tmp_path, name)
        assert pages == full_pages[: len(pages)], cut  # what comes out before the damage is right
        ended = set(counts) & set(FILE_ENDED_EARLY)
        if cut == 0:
            assert counts == {"empty_file": 1}
        elif cut in boundaries:
            assert not ended and counts + Counter(page=len(pages)) <= full_counts + Counter(page=len(full_pages))
        elif not ended:
            silent.append(cut)
    assert silent == []
    return len(full_pages)


def _outcome_bytes(data: bytes, tmp_path, name: str):
    path = tmp_path / name
    path.write_bytes(data)
    return _outcome(path)


def test_cuts_at_every_byte_of_a_response_member_of_a_gzip_per_record_warc(tmp_path):
    src = shared_data("warc", "cc", "CC-MAIN-2022-05-mini.warc.gz").read_bytes()
    members = gzip_members(src)
    assert len(members) == 3
    start, end = members[2]  # the response; every cut inside it, and at both of its edges
    assert _sweep(src, range(start, end + 1), tmp_path, "cut.warc.gz") == 1


def test_cuts_at_every_byte_of_a_whole_file_gzip_warc(tmp_path):
    src = shared_data("warc", "edge", "clueweb12-0000tw-00-sample.warc.gz").read_bytes()
    assert len(gzip_members(src)) == 1
    assert _sweep(src, range(0, len(src) + 1), tmp_path, "cut.warc.gz") == 3


def test_cuts_at_every_byte_of_an_uncompressed_warc(tmp_path):
    src = shared_data("warc", "edge", "example-iana.org-chunked.warc").read_bytes()
    assert _sweep(src, range(0, len(src) + 1), tmp_path, "cut.warc") == 1


def _plain(name: str) -> bytes:
    return gzip.decompress(shared_data("warc", "crawls", name).read_bytes())


@pytest.mark.parametrize("compress", [False, True])
def test_content_length_smaller_than_the_payload_is_counted_and_reading_goes_on(tmp_path, compress):
    src = _plain("sample-0000.warc.gz")
    _, full_pages = _outcome_bytes(src, tmp_path, "orig.warc")
    second = src.index(b"WARC-Type: response", src.index(b"WARC-Type: response") + 1)
    m = src.index(b"Content-Length: ", second) + len(b"Content-Length: ")
    end = src.index(b"\r\n", m)
    lying = src[:m] + str(int(src[m:end]) - 100).encode() + src[end:]
    name = "lying.warc.gz" if compress else "lying.warc"
    counts, pages = _outcome_bytes(gzip.compress(lying) if compress else lying, tmp_path, name)
    assert counts["content_length_mismatch"] == 1
    assert pages == [p for p in full_pages if p != full_pages[1]]  # only the lying record is lost


def test_content_length_larger_than_the_file_is_a_truncated_file(tmp_path):
    src = _plain("sample-0001.warc.gz")
    last = src.rindex(b"Content-Length: ") + len(b"Content-Length: ")
    end = src.index(b"\r\n", last)
    lying = src[:last] + str(int(src[last:end]) + 10).encode() + src[end:]
    counts, _ = _outcome_bytes(lying, tmp_path, "lying.warc")
    assert counts["truncated_file"] == 1


def test_a_real_truncated_record_is_counted():
    counts, pages = _outcome(shared_data("warc", "edge", "clipped.warc.gz"))
    assert counts == {"truncated_file": 1} and pages == []


# --- fuzz: mutated real WARC bytes through the per-file function -------------------------------------------

def test_fuzz_mutated_real_warcs_end_with_counted_outcomes(tmp_path, pipeline):
    from corpus.synth.damage import fuzz

    seeds = [str(shared_data("warc", "cc", "CC-MAIN-2022-05-mini.warc.gz")),
             str(shared_data("warc", "edge", "example-iana.org-chunked.warc")),
             str(shared_data("warc", "edge", "clueweb12-0000tw-00-sample.warc.gz")),
             str(shared_data("warc", "edge", "example.warc.gz")),
             str(shared_data("warc", "edge", "example.arc.gz")),
             str(shared_data("wet", "CC-MAIN-2016-50-fragment3.wet.gz"))]
    report = fuzz(pipeline, seeds, tmp_path, count=120, seed=14)
    assert report.tried == 120 and report.damaged > 60
    assert report.silent == []


# --- 5. ids are unique within a run --------------------------------------------------------------------------

def test_jsonl_and_parquet_ids_are_qualified_with_the_file_key(tmp_path):
    rows = [{"id": "1", "text": "same id in two files"}]
    a, b = tmp_path / "a.jsonl", tmp_path / "b.parquet"
    a.write_text(json.dumps(rows[0]) + "\n")
    pq.write_table(pa.Table.from_pylist(rows), b)
    (pa_,), (pb,) = _outcome(a)[1], _outcome(b)[1]
    assert pa_ == qualified_id(str(a), "1") and pb == qualified_id(str(b), "1") and pa_ != pb
    assert pa_.endswith("/1") and _outcome(a)[1] == [pa_]  # deterministic


def test_warc_ids_are_qualified_only_when_asked():
    path = str(shared_data("warc", "crawls", "sample-0001.warc.gz"))
    plain = [p.id for p in iter_pages(path, ReadConf()) if isinstance(p, Page)]
    qualified = [p.id for p in iter_pages(path, ReadConf(), qualify_ids=True) if isinstance(p, Page)]
    assert all(i.startswith("<urn:uuid:") for i in plain)
    assert qualified == [qualified_id(path, i) for i in plain]


# --- 8. charsets -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("declared", ["punycode", "idna", "unicode-escape", "utf-7", "cp037", "rot13", "undefined"])
def test_codec_names_that_are_not_html_charsets_are_ignored(declared):
    from corpus.io.charset import decode_html

    html = "<html><body><p>Crème brûlée \\u0041</p></body></html>".encode()
    text, enc = decode_html(html, f"text/html; charset={declared}")
    assert text == html.decode() and enc == "utf-8"
    text, enc = decode_html(f'<meta charset="{declared}">'.encode() + html, None)
    assert "Crème brûlée \\u0041" in text and enc == "utf-8"


def test_utf16_declared_on_ascii_bytes_is_not_believed():
    from corpus.io.charset import decode_html

    html = b"<html><body><p>plain ASCII page</p></body></html>"
    assert decode_html(html, "text/html; charset=utf-16") == (html.decode(), "utf-8")
    assert decode_html(b'<meta charset="utf-16">' + html, None)[0].endswith("plain ASCII page</p></body></html>")
    real = "<p>Grüße</p>".encode("utf-16")
    assert decode_html(real, "text/html; charset=utf-16") == ("<p>Grüße</p>", "utf-16")


# --- streaming: a file's results are written one row group at a time ----------------------------------------

def test_streamed_parts_equal_whole_table_writes(tmp_path):
    run = RunDir(str(tmp_path))
    run.makedirs("x")
    for n in (0, 1, ROW_GROUP_ROWS, ROW_GROUP_ROWS + 1):
        rows = [{"id": f"{i:06d}", "text": "t" * (i % 97), "url": f"http://x.example/{i}", "chars": i}
                for i in range(n)]
        run.write_parquet_atomic(rows, DOC_SCHEMA, "x", "whole.parquet")
        with run.parquet_part(DOC_SCHEMA, "x", "streamed.parquet") as part:
            for r in rows:
                part.add(r)
                assert len(part.rows) < ROW_GROUP_ROWS  # never more than one row group held
        whole, streamed = (tmp_path / "x" / "whole.parquet").read_bytes(), (tmp_path / "x" / "streamed.parquet")
        assert streamed.read_bytes() == whole, n
    with pytest.raises(RuntimeError), run.parquet_part(DOC_SCHEMA, "x", "failed.parquet") as part:
        part.add({"id": "a"})
        raise RuntimeError("task failed")
    assert sorted(os.listdir(tmp_path / "x")) == ["streamed.parquet", "whole.parquet"]  # no temp file left


# --- 8. spaCy model and the blank pipeline ------------------------------------------------------------------

def test_a_missing_spacy_model_is_a_clear_error_not_a_download():
    from corpus.config import ConfigError
    from corpus.pii.scrubber import SpacyModelError, check_spacy_model

    with pytest.raises(SpacyModelError, match="not_a_model_xx.*Nothing is downloaded") as err:
        check_spacy_model("not_a_model_xx")
    assert isinstance(err.value, ConfigError)


def test_the_blank_spacy_pipeline_is_in_a_private_folder():
    from corpus.pii.scrubber import _blank_pipeline_path

    path = _blank_pipeline_path()
    assert os.path.isfile(os.path.join(path, "config.cfg"))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o700 and os.stat(path).st_uid == os.getuid()
    assert _blank_pipeline_path() == path
    assert os.path.basename(path).startswith("corpus-spacy-blank-en-")  # plus mkdtemp's random suffix
