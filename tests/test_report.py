"""`corpus report` on a real small run (synth → corpus run), on a build-only run, and in headless Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections import Counter

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import yaml

from corpus.config import load_config
from corpus.report.data import METRICS
from corpus.report.page import SECTIONS, write_report
from corpus.steps.build import run_build
from corpus.steps.chain import run_all
from corpus.synth.crawl import write_synthetic_crawl


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
def build_only_run(spark, crawl, tmp_path_factory):
    run = tmp_path_factory.mktemp("reportpartial") / "run"
    run_build(spark, [str(crawl)], str(run), load_config())
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
    docs = pq.read_table(full_run / "docs", columns=["chars", *METRICS])
    assert funnel["parquet_rows"] == {"docs": docs.num_rows, "removed": removed.num_rows,
                                      "dedup/docs": dedup["documents_kept"], "pii/docs": pii["documents"]}
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
    assert set(metrics) == set(METRICS)
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
    assert len(images) >= len(SECTIONS) + len(METRICS) - 1
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
