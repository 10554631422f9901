"""`corpus report` on a real small run (synth → corpus run), on a build-only run, and in headless Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import yaml

from corpus.config import load_config
from corpus.report.data import METRICS, STAGE_COLUMN_METRICS
from corpus.report.diff import write_diff
from corpus.report.page import SECTIONS, write_report
from corpus.report.samples import id_hash
from corpus.steps.build import run_build
from corpus.steps.chain import run_all
from corpus.synth.crawl import write_synthetic_crawl

# The metric columns of a default run (optional stages' columns are absent from it).
DEFAULT_METRICS = [c for c in METRICS if c not in STAGE_COLUMN_METRICS]


@pytest.fixture(scope="module")
def crawl(tmp_path_factory):
    root = tmp_path_factory.mktemp("reportcrawl")
    write_synthetic_crawl(root, pages=150, seed=11, files=2)
    return root


@pytest.fixture(scope="module")
def full_run(spark, crawl, tmp_path_factory):
    """`corpus run` end to end; it writes RUN/report.html and RUN/report.json as its last step."""
    run = tmp_path_factory.mktemp("reportrun") / "run"
    conf = load_config(overrides=["tokenize.vocab_size=600", "tokenize.val_fraction=0.1", "tokenize.partitions=2",
                                  "dedup.output_partitions=2"])
    run_all(spark, [str(crawl)], str(run), conf, log=lambda m: None)
    return run


@pytest.fixture(scope="module")
def bilingual(crawl, tmp_path_factory):
    """JSONL pages mixing an English article of the crawl with 1 or 2 paragraphs of a de/fr/es one: lid.176 gives
    their English a spread of scores, some between the language thresholds 0.65 and 0.8 the diff test compares."""
    truth = [json.loads(line) for line in (crawl / "truth.jsonl").read_text().splitlines()]
    english = [t["article"].split("\n\n") for t in truth if t["kind"] == "good_en"][:12]
    other = [t["article"].split("\n\n") for t in truth if t["kind"] in ("lang_de", "lang_fr", "lang_es")]
    path = tmp_path_factory.mktemp("bilingual") / "bilingual.jsonl"
    with path.open("w") as f:
        for i, paragraphs in enumerate(english):
            for k in (1, 2):
                text = "\n\n".join(paragraphs[:-k] + other[i % len(other)][:k])
                f.write(json.dumps({"id": f"bilingual-{i}-{k}", "url": f"https://bilingual-{i}.org/mix/{k}",
                                    "text": text}) + "\n")
    return path


@pytest.fixture(scope="module")
def build_only_run(spark, crawl, bilingual, tmp_path_factory):
    run = tmp_path_factory.mktemp("reportpartial") / "run"
    run_build(spark, [str(crawl), str(bilingual)], str(run), load_config())
    write_report(str(run))
    return run


def _load(path):
    return json.loads(path.read_text())


def test_summary_numbers_equal_the_stats_files_and_parquet(full_run):
    summary = _load(full_run / "report.json")
    build = _load(full_run / "stats" / "build.json")
    dedup = _load(full_run / "stats" / "dedup.json")
    pii = _load(full_run / "stats" / "pii.json")
    manifest = _load(full_run / "tokens" / "manifest.json")
    assert {key for key, _ in SECTIONS} <= set(summary)
    assert all(summary[key]["status"] == "ok" for key, _ in SECTIONS), {k: summary[k]["status"] for k, _ in SECTIONS}

    funnel = summary["funnel"]
    rows = {(r["step"], r["stage"]): r for r in funnel["stages"]}
    for stage, st in build["stages"].items():
        row = rows[("build", stage)]
        assert (row["in"], row["out"], row["reasons"]) == (st["in"], st["out"], st["removed"])
        assert row["in"] - row["removed"] == row["out"]
    for row in funnel["stages"]:
        assert row["in"] - row["removed"] == row["out"], row
    assert rows[("build", "gopher_repetition")]["removed"] > 0  # the synth crawl exercises the quality stages
    # each stage hands its output to the next one
    chain = [r for r in funnel["stages"] if r["stage"] not in ("read", "extract", "url_filter", "language")]
    for a, b in zip(chain, chain[1:], strict=False):
        assert a["out"] == b["in"], (a, b)

    removed = pq.read_table(full_run / "removed", columns=["stage", "chars"])
    docs = pq.read_table(full_run / "docs", columns=["chars", *DEFAULT_METRICS])
    later_removed = {sub: pq.read_table(full_run / sub, columns=["id"]).num_rows if (full_run / sub).exists()
                     else None for sub in ("dedup/removed", "pii/removed")}  # written by later steps, if they do
    assert funnel["parquet_rows"] == {"docs": docs.num_rows, "removed": removed.num_rows,
                                      "dedup/docs": dedup["documents_kept"], "pii/docs": pii["documents"],
                                      **later_removed}
    assert docs.num_rows == build["documents_kept"]
    assert funnel["removed_rows_by_stage"] == {s: sum(st["removed"].values()) for s, st in build["stages"].items()
                                               if st["removed"]}
    assert funnel["removed_rows_by_stage"] == dict(Counter(removed.column("stage").to_pylist()))
    assert summary["languages"]["counts"] == build["languages"]

    def text_bytes(folder):
        return pc.sum(pc.binary_length(pq.read_table(folder, columns=["text"]).column("text"))).as_py()

    assert funnel["bytes"]["text_kept"] == text_bytes(full_run / "docs")
    assert funnel["bytes"]["text_after_dedup"] == dedup["text_bytes_kept"] == text_bytes(full_run / "dedup" / "docs")
    assert funnel["bytes"]["text_after_pii"] == pii["text_bytes"] == text_bytes(full_run / "pii" / "docs")
    build_rows = [r for r in funnel["stages"] if r["step"] == "build"]
    assert sum(r["text_bytes_removed"] or 0 for r in build_rows) == sum(
        v for k, v in build["bytes"].items() if k.startswith("text_removed_"))

    lengths = summary["lengths"]
    assert sum(lengths["after_filtering"]) == docs.num_rows
    assert sum(lengths["before_filtering"]) == docs.num_rows + removed.num_rows - removed.column("chars").null_count
    assert sum(map(sum, lengths["removed_by_stage"].values())) == sum(lengths["before_filtering"]) - docs.num_rows

    config = yaml.safe_load((full_run / "config.yaml").read_text())["quality"]
    metrics = summary["quality_metrics"]["metrics"]
    assert set(metrics) == set(DEFAULT_METRICS)
    for column, m in metrics.items():
        assert sum(m["kept"]) == docs.num_rows - docs.column(column).null_count, column
    assert {t["value"] for t in metrics["gopher_words"]["thresholds"]} == {
        config["gopher_quality"]["min_doc_words"], config["gopher_quality"]["max_doc_words"]}
    assert metrics["fineweb_line_punct_ratio"]["thresholds"][0]["value"] == config["fineweb"]["line_punct_thr"]
    assert sum(metrics["rep_top_2_gram_frac"]["removed"]) > 0

    domains = summary["domains"]
    hosts = pc.value_counts(pq.read_table(full_run / "docs", columns=["url"]).column("url")).to_pylist()
    assert sum(n for _, n in domains["kept"]) <= docs.num_rows and domains["distinct_kept"] <= len(hosts)
    assert domains["removed"] and domains["kept"]

    assert summary["dedup"]["cluster_size_histogram"] == dedup["cluster_size_histogram"]
    assert summary["pii"]["per_entity"] == pii["per_entity"]
    by_split = summary["tokens"]["tokens_by_split_and_source"]
    assert {split: sum(c.values()) for split, c in by_split.items()} == {
        split: s["tokens"] for split, s in manifest["splits"].items()}
    assert set(summary["timing"]["steps"]) == {"build", "dedup", "pii", "tokenize"}
    assert summary["timing"]["steps"]["dedup"]["wall_seconds"] == dedup["wall_seconds"]


def test_html_is_self_contained_and_has_every_section(full_run):
    html = (full_run / "report.html").read_text()
    for key, _ in SECTIONS:
        assert f'<section id="{key}" data-status="ok">' in html, key
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", html)
    assert "<script" not in html and "@import" not in html and "url(" not in html
    images = re.findall(r'<img src="([^"]*)"', html)
    without_figures = {"samples", "read_problems", "lineage"}
    assert len(images) >= len(SECTIONS) - len(without_figures) + len(DEFAULT_METRICS) - 1
    assert all(src.startswith("data:image/png;base64,") for src in images)


def test_partial_run_marks_the_missing_sections(build_only_run):
    summary = _load(build_only_run / "report.json")
    for key in ("dedup", "pii", "tokens"):
        assert summary[key]["status"] == "missing" and "has not run" in summary[key]["reason"]
    for key in ("funnel", "languages", "lengths", "quality_metrics", "domains", "timing"):
        assert summary[key]["status"] == "ok", key
    assert summary["funnel"]["steps_missing"] == ["dedup", "pii", "tokenize"]
    assert [r["step"] for r in summary["funnel"]["stages"]] == ["build"] * 8
    assert set(summary["timing"]["steps"]) == {"build"}
    html = (build_only_run / "report.html").read_text()
    for key in ("dedup", "pii", "tokens"):
        section = re.search(rf'<section id="{key}" data-status="missing">(.*?)</section>', html, re.S)
        assert section and "Not available" in section.group(1), key


def test_same_run_gives_identical_report(full_run, tmp_path):
    a = write_report(str(full_run), str(tmp_path / "a.html"))
    b = write_report(str(full_run), str(tmp_path / "b.html"))
    assert a == b
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes() == (
        full_run / "report.json").read_bytes()
    assert (tmp_path / "a.html").read_bytes() == (tmp_path / "b.html").read_bytes()


def _chrome_or_skip():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    missing = [name for name, path in (("chromium", chromium), ("chromedriver", driver)) if not path]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (requirements-dev.txt)")
    if missing:
        message = f"{', '.join(missing)} not installed (Debian: apt-get install chromium chromium-driver)"
        if os.environ.get("CI"):
            pytest.fail(f"under CI the browser test must run (.ci/run installs it): {message}")
        pytest.skip(message)
    return chromium, driver


@pytest.mark.parametrize("which", ["full", "partial"])
def test_report_renders_in_headless_chromium_without_console_errors(which, full_run, build_only_run, tmp_path,
                                                                    monkeypatch):
    chromium, chromedriver = _chrome_or_skip()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must never download a driver or browser
    run = full_run if which == "full" else build_only_run
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(options=options, service=Service(executable_path=chromedriver))
    try:
        browser.get((run / "report.html").as_uri())
        assert browser.title == "corpus report: run"
        sections = browser.execute_script("return [...document.querySelectorAll('section')].map(s => s.id)")
        assert sections == [key for key, _ in SECTIONS]
        broken = browser.execute_script(
            "return [...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.alt)")
        assert broken == []
        assert browser.execute_script("return document.images.length") >= (20 if which == "full" else 15)
        severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert severe == []
        # the log channel works: an error raised now is seen (so the empty list above means something)
        browser.execute_script("console.error('report-test probe')")
        assert any("report-test probe" in e["message"] for e in browser.get_log("browser"))

        height = browser.execute_script("return document.documentElement.scrollHeight")
        browser.set_window_size(1280, min(height + 100, 16000))
        shot = tmp_path / f"report-{which}.png"
        assert browser.save_screenshot(str(shot))
    finally:
        browser.quit()
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    keep = os.environ.get("REPORT_SCREENSHOT_DIR")  # for a human look: REPORT_SCREENSHOT_DIR=/tmp pytest ...
    if keep:
        shutil.copy(shot, os.path.join(keep, shot.name))


# ---- samples, lineage, hostile strings, diff (issue 20) ----

HOSTILE_HOST = "$\\foo$.com"
HOSTILE_URL = "https://" + HOSTILE_HOST + "/<script>alert('url')</script>?a=1&b=\"x\""
HOSTILE_ID = "<img src=x onerror=alert('id')>"
HOSTILE_TEXT = "</pre></div><script>alert('text')</script><b onmouseover=alert(1)>bold</b> $x^2$ & &amp; "


@pytest.fixture(scope="module")
def strict_run(spark, crawl, bilingual, tmp_path_factory):
    """The same input as build_only_run with language.threshold 0.8 instead of 0.65."""
    run = tmp_path_factory.mktemp("reportstrict") / "run"
    run_build(spark, [str(crawl), str(bilingual)], str(run), load_config(overrides=["language.threshold=0.8"]))
    write_report(str(run))
    return run


@pytest.fixture(scope="module")
def hostile_run(spark, build_only_run, tmp_path_factory):
    """A JSONL crawl whose URLs, ids and texts are hostile: kept texts are real kept documents, prefixed."""
    root = tmp_path_factory.mktemp("hostile")
    texts = pq.read_table(build_only_run / "docs", columns=["text"]).column("text").to_pylist()[:6]
    rows = [{"id": f"{HOSTILE_ID}-{i}", "url": HOSTILE_URL + f"&n={i}", "text": HOSTILE_TEXT + "\n\n" + t}
            for i, t in enumerate(texts)]
    rows.append({"id": HOSTILE_ID + "-short", "url": HOSTILE_URL + "&short", "text": HOSTILE_TEXT})
    rows.append({"id": HOSTILE_ID + "-notext", "url": HOSTILE_URL + "&notext"})
    (root / "hostile.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    run = root / "run"
    run_build(spark, [str(root / "hostile.jsonl")], str(run), load_config())
    write_report(str(run))
    return run


def test_samples_per_reason_show_the_deciding_values_and_text(build_only_run):
    summary = _load(build_only_run / "report.json")
    build = _load(build_only_run / "stats" / "build.json")
    config = yaml.safe_load((build_only_run / "config.yaml").read_text())
    samples = summary["samples"]
    assert samples["status"] == "ok"
    groups = {(g["stage"], g["reason"]): g for g in samples["removed"]}
    # one group per stage and reason that removed anything, with its count
    assert set(groups) == {(st, r) for st, s in build["stages"].items() for r in s["removed"]}
    removed = pq.read_table(build_only_run / "removed").to_pylist()
    by_id = {r["id"]: r for r in removed}
    for (stage, reason), g in groups.items():
        assert g["count"] == build["stages"][stage]["removed"][reason]
        assert 1 <= len(g["samples"]) <= min(5, g["count"])
        expected = sorted((r["id"] for r in removed if (r["stage"], r["reason"]) == (stage, reason)),
                          key=id_hash)[:5]
        assert [x["id"] for x in g["samples"]] == expected  # the smallest id hashes, in hash order
        for x in g["samples"]:
            row = by_id[x["id"]]
            assert x["url"] == row["url"]
            if stage not in ("read", "extract"):
                assert x["text_head"] and row["text_head"].startswith(x["text_head"].rstrip("…"))
    language = groups[("language", "not_en")]["samples"]
    assert all(v["threshold"] == config["language"]["threshold"] and v["key"] == "language.threshold"
               for x in language for v in x["values"])
    # a quality drop shows the metric beyond its threshold
    rep = [g for (st, _), g in groups.items() if st == "gopher_repetition"]
    assert rep and any(v["beyond"] for g in rep for x in g["samples"] for v in x["values"])
    assert [k["language"] for k in samples["kept"]] == ["en"] and len(samples["kept"][0]["samples"]) == 5


def test_language_keep_rates_histogram_read_problems_lineage_and_text_summary(build_only_run):
    summary = _load(build_only_run / "report.json")
    build = _load(build_only_run / "stats" / "build.json")
    docs = pq.read_table(build_only_run / "docs", columns=["language", "language_score"])
    kept = Counter(docs.column("language").to_pylist())
    langs = summary["languages"]
    assert {lang: (n, k) for lang, n, k, _ in langs["keep_rate"]} == {
        lang: (n, kept.get(lang, 0)) for lang, n in build["languages"].items()}
    h = langs["score_histogram"]
    removed = pq.read_table(build_only_run / "removed", columns=["stage", "language_score"]).to_pylist()
    assert sum(h["kept"]) == docs.num_rows
    assert sum(h["removed_language"]) == sum(1 for r in removed if r["stage"] == "language")
    assert sum(h["kept"]) + sum(h["removed_language"]) + sum(h.get("removed_later", [])) == sum(
        build["languages"].values())
    assert h["threshold"] == 0.65
    # drop reasons per language: every removed row with a language, by stage and reason
    by_language = Counter(r["language"] for r in pq.read_table(
        build_only_run / "removed", columns=["language"]).to_pylist() if r["language"] is not None)
    assert {lang: n for lang, n, _ in langs["drop_reasons"]} == dict(by_language)
    assert all(sum(c for _, c in top) <= n for _, n, top in langs["drop_reasons"])
    problems = summary["read_problems"]
    assert problems["read_reasons"] == build["stages"]["read"]["removed"] and problems["unusable_records"] > 0
    lineage = summary["lineage"]
    assert lineage["inputs_total"] == 3 and lineage["config_yaml"]
    assert lineage["versions"]["corpus_version"] and "git_commit" in lineage
    text = summary["text_summary"]
    assert f"{build['documents_in']:,} documents read" in text and "top drops:" in text
    drops = [(f"build:{st}/{r}", n) for st, s in build["stages"].items() for r, n in s["removed"].items()]
    (top, n), *_ = sorted(drops, key=lambda kv: (-kv[1], kv[0]))
    assert f"top drops: {top} {n:,}" in text


def test_later_steps_removed_rows_are_counted_and_sampled(build_only_run, tmp_path):
    """RUN/dedup/removed and RUN/pii/removed (id, url, stage, reason), when a step writes them."""
    import pyarrow as pa

    run = tmp_path / "run"
    shutil.copytree(build_only_run, run)
    ids = pq.read_table(run / "docs", columns=["id", "url"]).to_pylist()[:7]
    (run / "dedup" / "removed").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([{**r, "stage": "minhash", "reason": "near_duplicate"} for r in ids]),
                   run / "dedup" / "removed" / "part-00000.parquet")
    summary = write_report(str(run))
    assert summary["funnel"]["later_removed_rows"] == {"dedup": {"minhash": {"near_duplicate": 7}}}
    assert summary["funnel"]["parquet_rows"]["dedup/removed"] == 7
    assert summary["funnel"]["parquet_rows"]["pii/removed"] is None
    group = [g for g in summary["samples"]["removed"] if g["step"] == "dedup"]
    assert len(group) == 1 and group[0]["count"] == 7 and len(group[0]["samples"]) == 5
    assert {x["id"] for x in group[0]["samples"]} <= {r["id"] for r in ids}


def test_plot_labels_are_not_mathtext():
    from corpus.report import plots

    uri = plots.bars([(HOSTILE_HOST, 3), ("$x^{2$", 1), ("a\\b$", 2)], "documents")
    assert uri.startswith("data:image/png;base64,")


def _driver():
    chromium, chromedriver = _chrome_or_skip()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must never download a driver or browser
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(executable_path=chromedriver))


def _assert_clean_page(browser) -> None:
    """No console errors (and the console channel works), every image decodes, no script ran or exists."""
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
    assert browser.execute_script("return document.scripts.length") == 0
    assert browser.execute_script(
        "return [...document.querySelectorAll('*')].filter(e => [...e.attributes].some("
        "a => a.name.startsWith('on'))).length") == 0
    broken = browser.execute_script(
        "return [...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.alt)")
    assert broken == []
    browser.execute_script("console.error('report-test probe')")
    assert any("report-test probe" in e["message"] for e in browser.get_log("browser"))


def test_hostile_strings_are_escaped_everywhere(hostile_run):
    summary = _load(hostile_run / "report.json")
    assert summary["domains"]["kept"] and summary["domains"]["kept"][0][0] == HOSTILE_HOST.lower()
    html = (hostile_run / "report.html").read_text()
    assert "<script" not in html and "<img src=x" not in html and "<b onmouseover" not in html
    browser = _driver()
    try:
        browser.get((hostile_run / "report.html").as_uri())
        _assert_clean_page(browser)
        browser.execute_script("document.querySelectorAll('details').forEach(d => d.open = true)")
        text = browser.execute_script("return document.body.innerText")
        assert HOSTILE_URL in text and HOSTILE_ID in text  # shown as text, not markup
        assert "<script>alert('text')</script>" in text
        assert HOSTILE_HOST.lower() in text
    finally:
        browser.quit()


def _moved_ids(a: Path, b: Path) -> tuple[set, set]:
    kept_a = set(pq.read_table(a / "docs", columns=["id"]).column("id").to_pylist())
    kept_b = set(pq.read_table(b / "docs", columns=["id"]).column("id").to_pylist())
    return kept_a - kept_b, kept_b - kept_a


def test_diff_of_two_language_thresholds_moves_the_expected_documents(build_only_run, strict_run, tmp_path):
    docs = pq.read_table(build_only_run / "docs", columns=["id", "language", "language_score"]).to_pylist()
    # lid.176 scores the documents; the ones between the two thresholds are the ones that must move
    expected = {d["id"] for d in docs if d["language"] == "en" and d["language_score"] <= 0.8}
    assert expected, "the input must hold English documents scoring between 0.65 and 0.8"
    assert _moved_ids(build_only_run, strict_run) == (expected, set())

    d = write_diff(str(build_only_run), str(strict_run), str(tmp_path / "diff.html"))
    assert d == _load(tmp_path / "diff.json")
    by = d["by_id"]
    assert by["status"] == "ok" and by["level"] == "docs" and by["shared_ids"] == by["ids_a"] == by["ids_b"]
    moved = by["kept_in_a_not_b"]
    assert moved["count"] == len(expected) and by["kept_in_b_not_a"]["count"] == 0
    assert [(g["step"], g["stage"], g["reason"], g["count"]) for g in moved["by_reason"]] == [
        ("build", "language", "not_en", len(expected))]
    sampled = [x["id"] for g in moved["by_reason"] for x in g["samples"]]
    assert len(sampled) == min(5, len(expected)) and set(sampled) <= expected
    for x in moved["by_reason"][0]["samples"]:
        (v,) = x["values"]
        assert v["threshold"] == 0.8 and 0.65 < v["value"] <= 0.8 and v["beyond"]
    funnel = {(r["step"], r["stage"], r["reason"]): r for r in d["funnel"]["reasons"]}
    # B's language stage also takes the in-between documents that A dropped at a later stage
    later = [r for r in pq.read_table(build_only_run / "removed").to_pylist()
             if r["stage"] != "language" and r["language"] == "en" and r["language_score"] is not None
             and r["language_score"] <= 0.8]
    assert funnel[("build", "language", "not_en")]["delta"] == len(expected) + len(later)
    (en,) = [row for row in d["languages"] if row[0] == "en"]
    assert en[2] - en[5] == len(expected)  # kept A - kept B

    # the other direction, and the browser: the moved documents are on the page, with no console errors
    write_diff(str(strict_run), str(build_only_run), str(tmp_path / "back.html"))
    assert _load(tmp_path / "back.json")["by_id"]["kept_in_b_not_a"]["count"] == len(expected)
    browser = _driver()
    try:
        browser.get((tmp_path / "diff.html").as_uri())
        _assert_clean_page(browser)
        section = browser.execute_script("return document.getElementById('by_id').innerText")
        assert all(i in section for i in sampled)
        assert f"Kept in A, not in B (where B removed them): {len(expected)} documents" in section
        _keep_screenshot(browser, tmp_path / "diff.png")
    finally:
        browser.quit()


def test_diff_of_runs_without_shared_ids_compares_distributions(build_only_run, hostile_run, tmp_path):
    d = write_diff(str(build_only_run), str(hostile_run), str(tmp_path / "d.html"))
    assert d["by_id"]["status"] == "missing" and d["by_id"]["shared_ids"] == 0
    assert d["funnel"]["documents_in"] == [_load(build_only_run / "stats" / "build.json")["documents_in"],
                                           _load(hostile_run / "stats" / "build.json")["documents_in"]]
    browser = _driver()
    try:
        browser.get((tmp_path / "d.html").as_uri())
        _assert_clean_page(browser)
        assert "share no document ids" in browser.execute_script("return document.body.innerText")
        assert HOSTILE_HOST.lower() in browser.execute_script("return document.getElementById('domains').innerText")
    finally:
        browser.quit()


def _keep_screenshot(browser, shot: Path) -> None:
    keep = os.environ.get("REPORT_SCREENSHOT_DIR")  # for a human look: REPORT_SCREENSHOT_DIR=/tmp pytest ...
    if keep:
        assert browser.save_screenshot(str(shot))
        shutil.copy(shot, os.path.join(keep, shot.name))


def _readme_lines(*starts: str) -> list[str]:
    """The README's command lines that start with these words, without their trailing comments."""
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    out = []
    for start in starts:
        (line,) = [ln for ln in readme.splitlines() if ln.startswith(start)]
        out.append(re.sub(r"\s+#.*$", "", line))
    return out


def test_readme_spark_submit_command_runs_as_written(crawl, tmp_path):
    """`source .venv/bin/activate` + `spark-submit jobs/build.py ...` from the README, in a clean shell."""
    venv = Path(sys.executable).parent.parent
    if not (venv / "bin" / "activate").exists() or not (venv / "bin" / "spark-submit").exists():
        pytest.skip(f"{sys.executable} is not in a venv with spark-submit")
    activate, submit = _readme_lines("source .venv/bin/activate", "spark-submit jobs/build.py")
    assert "s3a://bucket/warc.paths.gz" in submit and "s3a://bucket/run" in submit
    run = tmp_path / "run"
    submit = submit.replace("s3a://bucket/warc.paths.gz", str(crawl)).replace("s3a://bucket/run", str(run))
    repo = Path(__file__).resolve().parents[3]
    (tmp_path / ".venv").symlink_to(venv)
    (tmp_path / "jobs").symlink_to(repo / "jobs")
    env = {"HOME": os.environ.get("HOME", "/tmp"), "PATH": "/usr/local/bin:/usr/bin:/bin",
           "PYTHONPATH": str(repo), "LANG": "C.UTF-8"}  # a new user's shell: nothing of ours on PATH
    done = subprocess.run(["bash", "-c", f"{activate} && {submit}"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    stats = _load(run / "stats" / "build.json")
    assert stats["documents_kept"] == pq.read_table(run / "docs", columns=["id"]).num_rows > 0


def test_readme_report_and_diff_commands_run_as_written(build_only_run, strict_run, tmp_path):
    """`.venv/bin/corpus report runs/r1` and `.venv/bin/corpus diff runs/r1 runs/r2 ...` from the README."""
    venv = Path(sys.executable).parent.parent
    if not (venv / "bin" / "corpus").exists():
        pytest.skip(f"{sys.executable} is not in a venv with the corpus command")
    report, diff = _readme_lines(".venv/bin/corpus report runs/r1", ".venv/bin/corpus diff runs/r1 runs/r2")
    (tmp_path / ".venv").symlink_to(venv)
    (tmp_path / "runs").mkdir()
    shutil.copytree(build_only_run, tmp_path / "runs" / "r1")
    shutil.copytree(strict_run, tmp_path / "runs" / "r2")
    (tmp_path / "runs" / "r1" / "report.html").unlink()
    env = {"HOME": os.environ.get("HOME", "/tmp"), "PATH": "/usr/local/bin:/usr/bin:/bin",
           "PYTHONPATH": str(Path(__file__).resolve().parents[3]), "LANG": "C.UTF-8"}
    for line in (report, diff):
        done = subprocess.run(["bash", "-c", line], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, (line, done.stderr[-3000:])
    assert (tmp_path / "runs" / "r1" / "report.html").exists()
    assert _load(tmp_path / "runs" / "r1-vs-r2.json")["by_id"]["kept_in_a_not_b"]["count"] > 0
