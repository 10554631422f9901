"""The numbers behind `corpus report`: one JSON-ready summary of a run folder, from its stats files and Parquet.

Why pyarrow streaming on the driver and not Spark: the report reads only narrow, text-free columns (`url`,
`stage`, `reason`, `chars` and the quality-metric floats) — Parquet's column projection never touches the
text pages — and every aggregate is either a fixed-bin histogram (O(bins) memory) or a counter of domains.
That makes one pass over RUN's Parquet files cheap (metadata-sized I/O, one batch in memory at a time),
needs no SparkSession (`corpus report` on a finished run starts in a second), and is exact and deterministic.
The one aggregate that grows with the data is the per-domain counter (O(distinct hosts) memory, ~100 bytes
each: a few GB at Common Crawl scale); a Spark path for that counter is the follow-up if it ever binds.

Every section is present in the summary; a section whose inputs are absent (a partial run) has
``"status": "missing"`` and a ``"reason"`` instead of numbers.
"""

from __future__ import annotations

import posixpath
from collections import Counter
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml

from corpus.build.stages import STAGES
from corpus.io.rundir import RunDir
from corpus.report.samples import PER_KEY, Sampler, clip, fetch_rows
from corpus.schema import QUALITY_METRIC_COLUMNS

BUILD_STAGES = STAGES  # declared once, in corpus.build.stages
TOP_DOMAINS = 20
BATCH_ROWS = 65_536
# 8 bins per decade from 1 to 10 million characters; values beyond the axis count in the edge bins.
LENGTH_EDGES = [round(float(x), 4) for x in 10 ** np.linspace(0, 7, 57)]
# Folders of dropped rows, per step; build's has the report columns, the later ones at least id/url/stage/reason.
REMOVAL_FOLDERS = (("build", "removed"), ("dedup", "dedup/removed"), ("pii", "pii/removed"))
SCORE_EDGES = [round(float(x), 4) for x in np.linspace(0, 1, 41)]
SAMPLE_LANGUAGES = 8  # kept-document samples for the most frequent languages only (bounded reads)
_HOST = r"^[A-Za-z][A-Za-z0-9+.\-]*://(?:[^@/?#]*@)?(?P<host>[^:/?#]*)"


def _linear(lo: float, hi: float, bins: int) -> list[float]:
    return [round(float(x), 6) for x in np.linspace(lo, hi, bins + 1)]


# column → (stage, label, bin edges, [(config key under quality.<stage>, "min"|"max", n-gram size or None)]).
# "min": documents below the threshold are dropped; "max": documents above it are dropped.
METRICS = {
    "rep_dup_para_frac": ("gopher_repetition", "duplicated paragraphs / paragraphs", _linear(0, 1, 40),
                          [("dup_para_frac", "max", None)]),
    "rep_dup_line_char_frac": ("gopher_repetition", "chars in duplicated lines / chars", _linear(0, 1, 40),
                               [("dup_line_char_frac", "max", None)]),
    "rep_top_2_gram_frac": ("gopher_repetition", "chars in the top 2-gram / chars", _linear(0, 1, 40),
                            [("top_n_grams", "max", 2)]),
    "rep_dup_5_gram_frac": ("gopher_repetition", "chars in duplicated 5-grams / chars", _linear(0, 1, 40),
                            [("dup_n_grams", "max", 5)]),
    "gopher_words": ("gopher_quality", "words (non-symbol)", [round(float(x), 4) for x in 10 ** np.linspace(0, 6, 49)],
                     [("min_doc_words", "min", None), ("max_doc_words", "max", None)]),
    "gopher_avg_word_length": ("gopher_quality", "mean word length", _linear(0, 20, 40),
                               [("min_avg_word_length", "min", None), ("max_avg_word_length", "max", None)]),
    "gopher_hash_ratio": ("gopher_quality", "'#' symbols / words", _linear(0, 0.5, 40),
                          [("max_symbol_word_ratio", "max", None)]),
    "gopher_alpha_words_ratio": ("gopher_quality", "words with a letter / words", _linear(0, 1, 40),
                                 [("max_non_alpha_words_ratio", "min", None)]),
    "gopher_stop_words": ("gopher_quality", "distinct stop words present", _linear(-0.5, 10.5, 11),
                          [("min_stop_words", "min", None)]),
    "fineweb_line_punct_ratio": ("fineweb", "lines ending in punctuation / lines", _linear(0, 1, 40),
                                 [("line_punct_thr", "min", None)]),
    "fineweb_short_line_ratio": ("fineweb", "short lines / lines", _linear(0, 1, 40),
                                 [("short_line_thr", "max", None)]),
    "fineweb_char_dup_ratio": ("fineweb", "chars in duplicated lines / chars", _linear(0, 0.1, 40),
                               [("char_duplicates_ratio", "max", None)]),
    "fineweb_list_ratio": ("fineweb", "newlines / words", _linear(0, 1, 40), [("new_line_ratio", "max", None)]),
}
# Columns declared by optional stages (corpus.build.stage.Stage.columns): in the report only when a run has them.
STAGE_COLUMN_METRICS = {
    "content_score": ("content_filter", "toxicity score (the document, or its worst sentence)", _linear(0, 1, 40),
                      [("threshold", "max", None)]),
    "toxic_share": ("content_filter", "chars in toxic sentences / chars", _linear(0, 1, 40),
                    [("max_toxic_share", "max", None)]),
    "toxic_sentences": ("content_filter", "toxic sentences removed", _linear(-0.5, 20.5, 21), []),
    "content_list_hits": ("content_filter", "distinct word-list terms found", _linear(-0.5, 20.5, 21), []),
}
METRICS.update(STAGE_COLUMN_METRICS)
assert set(METRICS) == set(QUALITY_METRIC_COLUMNS) | set(STAGE_COLUMN_METRICS)


def _missing(reason: str) -> dict:
    return {"status": "missing", "reason": reason}


def _histogram(values: np.ndarray, edges: list[float]) -> np.ndarray:
    """Counts per bin; values outside the axis are counted in the first / last bin."""
    clipped = np.clip(values, edges[0], edges[-1])
    return np.histogram(clipped, bins=np.asarray(edges))[0].astype(np.int64)


class ParquetFolder:
    """Streams a few columns of a run sub-folder's Parquet parts, one batch at a time, in file-name order."""

    def __init__(self, run: RunDir, sub: str):
        self.run, self.sub = run, sub
        self.files = [n for n in run.list(sub) if n.endswith(".parquet") and not n.startswith((".", "_"))]

    @property
    def exists(self) -> bool:
        return bool(self.files)

    def columns(self) -> set[str]:
        """Columns every part has (old runs lack the report columns)."""
        common: set[str] | None = None
        for name in self.files:
            with self.run.fs.open_input_file(self.run.path(self.sub, name)) as f:
                names = set(pq.ParquetFile(f).schema_arrow.names)
            common = names if common is None else common & names
        return common or set()

    def rows(self) -> int:
        total = 0
        for name in self.files:
            with self.run.fs.open_input_file(self.run.path(self.sub, name)) as f:
                total += pq.ParquetFile(f).metadata.num_rows
        return total

    def batches(self, columns: list[str]) -> Iterator[pa.RecordBatch]:
        for _, _, batch in self.located_batches(columns):
            yield batch

    def located_batches(self, columns: list[str]) -> Iterator[tuple[int, int, pa.RecordBatch]]:
        """(file index, row number of the batch's first row in that file, batch)."""
        for index, name in enumerate(self.files):
            with self.run.fs.open_input_file(self.run.path(self.sub, name)) as f:
                start = 0
                for batch in pq.ParquetFile(f).iter_batches(batch_size=BATCH_ROWS, columns=columns):
                    yield index, start, batch
                    start += batch.num_rows


def url_hosts(urls: pa.Array) -> pa.Array:
    """Lower-cased host of each URL without a leading ``www.`` (null for a null or schemeless URL)."""
    host = pc.struct_field(pc.extract_regex(urls, _HOST), "host")
    return pc.replace_substring_regex(pc.utf8_lower(host), r"^www\.", "")


def count_into(counter: Counter, values: pa.Array) -> None:
    for item in pc.value_counts(values.drop_null()).to_pylist():
        counter[item["values"]] += item["counts"]


class _Side:
    """Aggregates over one side (kept docs or removed rows): lengths, metrics, domains, stage counts."""

    def __init__(self):
        self.rows = 0
        self.lengths = np.zeros(len(LENGTH_EDGES) - 1, np.int64)
        self.metrics = {c: np.zeros(len(spec[2]) - 1, np.int64) for c, spec in METRICS.items()}
        self.domains: Counter[str] = Counter()
        self.stages: Counter[str] = Counter()
        self.reasons: Counter[tuple[str, str]] = Counter()
        self.lengths_by_stage: dict[str, np.ndarray] = {}
        self.languages: Counter[str] = Counter()
        self.language_reasons: Counter[tuple[str, str, str]] = Counter()  # removed: (language, stage, reason)
        self.scores: dict[str, np.ndarray] = {}  # language_score histograms: kept | language | later

    def add(self, batch: pa.RecordBatch) -> None:
        self.rows += batch.num_rows
        names = batch.schema.names
        if "url" in names:
            count_into(self.domains, url_hosts(batch.column("url")))
        if "stage" in names:
            count_into(self.stages, batch.column("stage"))
        if "chars" in names:
            chars = batch.column("chars")
            self.lengths += _histogram(chars.drop_null().to_numpy(zero_copy_only=False), LENGTH_EDGES)
            if "stage" in names:
                for stage in pc.unique(batch.column("stage")).drop_null().to_pylist():
                    mask = pc.and_(pc.equal(batch.column("stage"), stage), pc.is_valid(chars))
                    values = pc.filter(chars, mask).to_numpy(zero_copy_only=False)
                    acc = self.lengths_by_stage.setdefault(stage, np.zeros(len(LENGTH_EDGES) - 1, np.int64))
                    acc += _histogram(values, LENGTH_EDGES)
        for column, (_, _, edges, _) in METRICS.items():
            if column in names:
                values = batch.column(column).drop_null().to_numpy(zero_copy_only=False)
                self.metrics[column] += _histogram(values, edges)
        if "language" in names:
            count_into(self.languages, batch.column("language"))
            if "stage" in names and "reason" in names:
                table = pa.table([batch.column("language"), batch.column("stage"), batch.column("reason")],
                                 names=["language", "stage", "reason"]).filter(pc.is_valid(batch.column("language")))
                for row in table.group_by(["language", "stage", "reason"]).aggregate([([], "count_all")]).to_pylist():
                    self.language_reasons[(row["language"], row["stage"], row["reason"])] += row["count_all"]
        if "language_score" in names:
            scores = batch.column("language_score")
            if "stage" in names:  # removed rows: dropped by language ID itself, or by a later stage
                at_language = pc.fill_null(pc.equal(batch.column("stage"), "language"), False)
                parts = {"language": at_language, "later": pc.invert(at_language)}
            else:
                parts = {"kept": pa.array(np.ones(batch.num_rows, bool))}
            for name, mask in parts.items():
                values = pc.filter(scores, pc.and_(mask, pc.is_valid(scores))).to_numpy(zero_copy_only=False)
                acc = self.scores.setdefault(name, np.zeros(len(SCORE_EDGES) - 1, np.int64))
                acc += _histogram(values, SCORE_EDGES)


def _threshold_values(config: dict | None, stage: str, rules: list) -> list[dict]:
    """The thresholds the run was configured with, for drawing; none for a disabled stage or check."""
    stage_conf = ((config or {}).get("quality") or {}).get(stage)
    if not stage_conf:
        return []
    out = []
    for key, side, n in rules:
        value = stage_conf.get(key)
        if n is not None:  # [[n, frac], ...] lists
            value = next((frac for size, frac in value or [] if size == n), None)
        if value:
            out.append({"key": f"quality.{stage}.{key}" + (f"[n={n}]" if n else ""), "value": float(value),
                        "drops": "below" if side == "min" else "above"})
    return out


def _read_json(run: RunDir, *parts: str) -> dict | None:
    return run.read_json(*parts) if run.exists(*parts) else None


def _build_funnel(build: dict) -> list[dict]:
    rows = []
    by_stage_bytes = build.get("bytes", {})
    for stage in BUILD_STAGES:
        st = build["stages"].get(stage)
        if st is None:
            continue
        removed = dict(sorted(st["removed"].items(), key=lambda kv: (-kv[1], kv[0])))
        rows.append({"step": "build", "stage": stage, "in": st["in"], "out": st["out"],
                     "removed": sum(removed.values()), "reasons": removed,
                     "text_bytes_removed": by_stage_bytes.get(f"text_removed_{stage}")})
    return rows


def _later_funnel(dedup: dict | None, pii: dict | None, tokens: dict | None) -> list[dict]:
    rows = []
    if dedup:
        n_in, exact = dedup["documents_in"], dedup["exact_duplicates_removed"]
        rows.append({"step": "dedup", "stage": "exact", "in": n_in, "out": n_in - exact, "removed": exact,
                     "reasons": {"exact_duplicate": exact} if exact else {}})
        near = dedup["near_duplicates_removed"]
        rows.append({"step": "dedup", "stage": "minhash", "in": n_in - exact, "out": dedup["documents_kept"],
                     "removed": near, "reasons": {"near_duplicate": near} if near else {}})
    if pii:
        dense = pii["documents_dropped_too_dense"]
        rows.append({"step": "pii", "stage": "pii", "in": pii["documents"] + dense, "out": pii["documents"],
                     "removed": dense, "reasons": {"too_dense": dense} if dense else {}})
    if tokens:
        n_docs = sum(s["documents"] for s in tokens["splits"].values())
        rows.append({"step": "tokenize", "stage": "tokenize", "in": n_docs, "out": n_docs, "removed": 0,
                     "reasons": {}})
    return rows


def _tokens_section(manifest: dict) -> dict:
    per: dict[str, Counter[str]] = {}
    for shard in manifest["shards"]:
        per.setdefault(shard["split"], Counter()).update(shard["source_tokens"])
    return {
        "status": "ok",
        "splits": manifest["splits"],
        "tokens_by_split_and_source": {split: dict(sorted(c.items())) for split, c in sorted(per.items())},
        "sources": [{k: s.get(k) for k in ("name", "weight", "target_share", "realized_share", "tokens_realized")}
                    for s in manifest.get("sources", [])],
        "vocab_size": manifest.get("tokenizer", {}).get("vocab_size"),
        "shards": len(manifest["shards"]),
    }


def _timing(build, dedup, pii, tok_stats) -> dict:
    steps = {}
    if build:
        steps["build"] = {"wall_seconds": build.get("wall_seconds"), "task_seconds": build.get("task_seconds", {})}
    for name, st in (("dedup", dedup), ("pii", pii), ("tokenize", tok_stats)):
        if st and "wall_seconds" in st:
            steps[name] = {"wall_seconds": st["wall_seconds"]}
    return {"status": "ok" if steps else "missing", "steps": steps}


def top_items(counter: Counter, n: int = TOP_DOMAINS) -> list[list]:
    return [[k, v] for k, v in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:n]]


def collect(run_uri: str) -> dict:
    """The report's summary of a run folder (local path or URI). Deterministic for a given folder."""
    run = RunDir(run_uri)
    build = _read_json(run, "stats", "build.json")
    if build is None:
        raise FileNotFoundError(f"{run_uri}: no stats/build.json — not a corpus run folder, or build has not run")
    dedup = _read_json(run, "stats", "dedup.json")
    pii = _read_json(run, "stats", "pii.json")
    manifest = _read_json(run, "tokens", "manifest.json")
    tok_stats = _read_json(run, "stats", "tokenize.json")
    config = yaml.safe_load(run.fs.open_input_stream(run.path("config.yaml")).read()) if run.exists(
        "config.yaml") else None

    docs_pq, removed_pq = ParquetFolder(run, "docs"), ParquetFolder(run, "removed")
    kept, removed = _Side(), _Side()
    doc_cols, removed_cols = docs_pq.columns(), removed_pq.columns()
    wanted = ["url", "chars", *METRICS, "language_score"]
    kept_sampler, removed_samplers = Sampler(), {step: Sampler() for step, _ in REMOVAL_FOLDERS}
    for index, start, batch in docs_pq.located_batches([c for c in ["id", "language", *wanted] if c in doc_cols]):
        kept.add(batch)
        if "id" in doc_cols and "language" in doc_cols:
            kept_sampler.add(batch.column("id"), [batch.column("language")], index, start)
    sample_keys = ["id", "stage", "reason"]
    for index, start, batch in removed_pq.located_batches(
            [c for c in dict.fromkeys([*sample_keys, *wanted, "language"]) if c in removed_cols]):
        removed.add(batch)
        if set(sample_keys) <= removed_cols:
            removed_samplers["build"].add(batch.column("id"), [batch.column("stage"), batch.column("reason")],
                                          index, start)
    has_measures = "chars" in doc_cols and (not removed_pq.exists or "chars" in removed_cols)
    # Later steps' dropped rows (id, url, stage, reason), when those steps write them: counted and sampled.
    removal_pq = {"build": removed_pq}
    later_removed: dict[str, Counter] = {}
    for step, sub in REMOVAL_FOLDERS[1:]:
        pq_ = removal_pq[step] = ParquetFolder(run, sub)
        if not pq_.exists or not set(sample_keys) <= pq_.columns():
            continue
        counts = later_removed[step] = Counter()
        for index, start, batch in pq_.located_batches(sample_keys):
            removed_samplers[step].add(batch.column("id"), [batch.column("stage"), batch.column("reason")],
                                       index, start)
            for item in pc.value_counts(pc.binary_join_element_wise(
                    pc.fill_null(batch.column("stage"), ""), pc.fill_null(batch.column("reason"), ""),
                    "\x00")).to_pylist():
                counts[item["values"]] += item["counts"]

    later = {"dedup/docs": ParquetFolder(run, posixpath.join("dedup", "docs")),
             "pii/docs": ParquetFolder(run, posixpath.join("pii", "docs"))}
    parquet_rows = {"docs": docs_pq.rows(), "removed": removed_pq.rows() if removed_pq.exists else None,
                    **{k: (p.rows() if p.exists else None) for k, p in later.items()},
                    **{sub: (removal_pq[step].rows() if removal_pq[step].exists else None)
                       for step, sub in REMOVAL_FOLDERS[1:]}}

    summary: dict = {"run": posixpath.basename(run.root.rstrip("/")), "report_version": 1}
    summary["funnel"] = {
        "status": "ok",
        "stages": _build_funnel(build) + _later_funnel(dedup, pii, manifest),
        "documents_in": build["documents_in"],
        "documents_kept_by_build": build["documents_kept"],
        "bytes": {**{k: v for k, v in build.get("bytes", {}).items() if not k.startswith("text_removed_")},
                  **({"text_after_dedup": dedup["text_bytes_kept"]} if dedup and "text_bytes_kept" in dedup else {}),
                  **({"text_after_pii": pii["text_bytes"]} if pii and "text_bytes" in pii else {})},
        "records": build.get("records", {}),
        "parquet_rows": parquet_rows,
        "removed_rows_by_stage": dict(sorted(removed.stages.items())) if removed_pq.exists else None,
        "steps_missing": [s for s, st in (("dedup", dedup), ("pii", pii), ("tokenize", manifest)) if st is None],
        "later_removed_rows": {step: _split_keys(c) for step, c in sorted(later_removed.items())},
    }
    summary["languages"] = _languages_section(build, kept, removed, config, "language" in doc_cols)

    if not has_measures:
        why = "this run's Parquet has no `chars` / quality-metric columns (built before the report columns existed)"
        summary["lengths"] = _missing(why)
        summary["quality_metrics"] = _missing(why)
    else:
        summary["lengths"] = {
            "status": "ok" if removed_pq.exists else "partial",
            "unit": "characters of extracted text",
            "edges": LENGTH_EDGES,
            "before_filtering": (kept.lengths + removed.lengths).tolist(),
            "after_filtering": kept.lengths.tolist(),
            "removed_by_stage": {s: h.tolist() for s, h in sorted(removed.lengths_by_stage.items())},
            **({} if removed_pq.exists else {"reason": "RUN/removed absent (output.write_removed=false): "
                                                       "'before' holds kept documents only"}),
        }
        metrics = {}
        for column, (stage, label, edges, rules) in METRICS.items():
            if column in STAGE_COLUMN_METRICS and column not in doc_cols | removed_cols:
                continue
            metrics[column] = {"stage": stage, "label": label, "edges": edges,
                               "kept": kept.metrics[column].tolist(), "removed": removed.metrics[column].tolist(),
                               "thresholds": _threshold_values(config, stage, rules)}
        summary["quality_metrics"] = {"status": "ok", "metrics": metrics,
                                      "note": "documents the check was computed for; values beyond the axis "
                                              "are counted in the edge bins"}

    summary["domains"] = {
        "status": "ok" if removed_pq.exists else "partial",
        "kept": top_items(kept.domains), "removed": top_items(removed.domains),
        "distinct_kept": len(kept.domains), "distinct_removed": len(removed.domains),
        "keep_rate": _domain_keep_rates(kept.domains, removed.domains),
        **({} if removed_pq.exists else {"reason": "RUN/removed absent: dropped domains unknown"}),
    }
    summary["dedup"] = ({"status": "ok", "cluster_size_histogram": dedup["cluster_size_histogram"],
                         **{k: dedup[k] for k in ("documents_in", "documents_kept", "exact_duplicates_removed",
                                                  "near_duplicates_removed", "near_duplicate_clusters")}}
                        if dedup else _missing("RUN/stats/dedup.json absent: dedup has not run"))
    summary["pii"] = ({"status": "ok", **{k: pii[k] for k in ("per_entity", "documents", "documents_with_pii",
                                                               "documents_dropped_too_dense", "replaced_spans")}}
                      if pii else _missing("RUN/stats/pii.json absent: pii has not run"))
    summary["tokens"] = (_tokens_section(manifest) if manifest
                         else _missing("RUN/tokens/manifest.json absent: tokenize has not run"))
    summary["timing"] = _timing(build, dedup, pii, tok_stats)
    if manifest and not tok_stats:
        summary["timing"]["note"] = "tokenize time not recorded (RUN/stats/tokenize.json absent)"
    summary["samples"] = _samples_section(run, config, kept_sampler, kept.languages, removed_samplers, removal_pq,
                                          docs_pq)
    if summary["samples"]["status"] == "ok":
        for group in summary["samples"]["removed"]:
            counts = (build["stages"].get(group["stage"], {}).get("removed", {}) if group["step"] == "build"
                      else summary["funnel"]["later_removed_rows"].get(group["step"], {}).get(group["stage"], {}))
            group["count"] = counts.get(group["reason"])
    summary["read_problems"] = _read_problems(build)
    summary["lineage"] = _lineage(run, config)
    summary["text_summary"] = text_summary(summary, build, manifest)
    return summary


def _split_keys(counter: Counter) -> dict[str, dict[str, int]]:
    """{"stage\\x00reason": n} → {stage: {reason: n}}."""
    out: dict[str, dict[str, int]] = {}
    for key, n in sorted(counter.items()):
        stage, _, reason = key.partition("\x00")
        out.setdefault(stage, {})[reason] = n
    return out


def _languages_section(build: dict, kept: _Side, removed: _Side, config: dict | None, has_language: bool) -> dict:
    reached = build.get("languages", {})
    section = {"status": "ok", "counts": reached, "note": "language of every document that reached language ID"}
    if has_language:  # keep rate: kept by build / reached language ID, by the top language of each document
        section["keep_rate"] = [[lang, n, kept.languages.get(lang, 0), round(kept.languages.get(lang, 0) / n, 4)]
                                for lang, n in sorted(reached.items(), key=lambda kv: (-kv[1], kv[0])) if n]
    if removed.language_reasons:  # why each language's documents were dropped (multilingual runs)
        by_language: dict[str, Counter] = {}
        for (lang, stage, reason), n in removed.language_reasons.items():
            by_language.setdefault(lang, Counter())[f"{stage}: {reason}"] += n
        order = sorted(by_language, key=lambda lang: (-reached.get(lang, 0), lang))
        section["drop_reasons"] = [[lang, sum(by_language[lang].values()),
                                    top_items(by_language[lang], 5)] for lang in order[:30]]
    if kept.scores or removed.scores:
        threshold = ((config or {}).get("language") or {}).get("threshold")
        section["score_histogram"] = {
            "edges": SCORE_EDGES, "threshold": threshold,
            "kept": kept.scores.get("kept", np.zeros(len(SCORE_EDGES) - 1, np.int64)).tolist(),
            **{f"removed_{k}": v.tolist() for k, v in sorted(removed.scores.items())},
            "note": "score of each document's top language; removed_language: dropped by language ID, "
                    "removed_later: dropped by a later stage",
        }
    return section


def _domain_keep_rates(kept: Counter, removed: Counter, n: int = TOP_DOMAINS) -> list[list]:
    """[host, documents seen, kept, keep rate] for the n hosts with the most documents (kept + removed)."""
    totals = Counter(kept)
    totals.update(removed)
    return [[host, total, kept.get(host, 0), round(kept.get(host, 0) / total, 4)]
            for host, total in top_items(totals, n)]


def decided_values(row: dict, stage: str, config: dict | None) -> list[dict]:
    """The values a stage compared to thresholds for this row, with the thresholds (`beyond`: this one drops)."""
    out = []
    if stage == "language" and row.get("language_score") is not None:
        lang = (config or {}).get("language") or {}
        t = lang.get("threshold")
        wanted = lang.get("languages") or []
        out.append({"name": f"language_score ({row.get('language')})", "value": row["language_score"],
                    "threshold": t, "key": "language.threshold", "drops": "at_or_below",
                    "beyond": row.get("language") not in wanted or (t is not None and row["language_score"] <= t)})
    for column, (metric_stage, _, _, rules) in METRICS.items():
        value = row.get(column)
        if metric_stage != stage or value is None:
            continue
        thresholds = _threshold_values(config, stage, rules)
        if not thresholds:
            out.append({"name": column, "value": value, "threshold": None, "key": None, "drops": None,
                        "beyond": False})
        for t in thresholds:
            beyond = value < t["value"] if t["drops"] == "below" else value > t["value"]
            out.append({"name": column, "value": value, "threshold": t["value"], "key": t["key"],
                        "drops": t["drops"], "beyond": bool(beyond)})
    return out


SAMPLE_COLUMNS = ["id", "url", "stage", "reason", "chars", *METRICS, "text_head", "language", "language_score"]


def removed_sample(row: dict, config: dict | None) -> dict:
    head, chars = row.get("text_head"), row.get("chars")
    if head is not None and chars is not None and chars > len(head):  # text_head is already clipped by build
        head = clip(head, len(head) - 1)
    return {"id": row.get("id"), "url": row.get("url"), "chars": chars,
            "values": decided_values(row, row.get("stage") or "", config), "text_head": clip(head)}


def _samples_section(run: RunDir, config, kept_sampler: Sampler, kept_languages: Counter, removed_samplers: dict,
                     removal_pq: dict, docs_pq: ParquetFolder) -> dict:
    removed_out = []
    for step, _ in REMOVAL_FOLDERS:
        chosen = removed_samplers[step].chosen()
        pq_ = removal_pq[step]
        if not chosen:
            continue
        rows = fetch_rows(run, pq_.sub, pq_.files, [loc for picks in chosen.values() for _, loc in picks],
                          SAMPLE_COLUMNS)
        for (stage, reason), picks in chosen.items():
            removed_out.append({"step": step, "stage": stage, "reason": reason,
                                "samples": [removed_sample(rows[loc], config) for _, loc in picks]})
    order = {s: i for i, s in enumerate(BUILD_STAGES)}
    removed_out.sort(key=lambda r: ([s for s, _ in REMOVAL_FOLDERS].index(r["step"]), order.get(r["stage"], 99),
                                    str(r["stage"]), str(r["reason"])))
    kept_out = []
    chosen = kept_sampler.chosen()
    languages = [lang for lang, _ in top_items(kept_languages, SAMPLE_LANGUAGES) if (lang,) in chosen]
    if languages:
        rows = fetch_rows(run, docs_pq.sub, docs_pq.files, [loc for lang in languages for _, loc in chosen[(lang,)]],
                          ["id", "url", "language", "language_score", "text"])
        for lang in languages:
            kept_out.append({"language": lang, "kept": kept_languages[lang], "samples": [
                {"id": rows[loc]["id"], "url": rows[loc]["url"], "language_score": rows[loc]["language_score"],
                 "text_head": clip(rows[loc]["text"])} for _, loc in chosen[(lang,)]]})
    if not removed_out and not kept_out:
        return _missing("no id / stage / reason columns to sample from")
    return {"status": "ok", "per_key": PER_KEY, "removed": removed_out, "kept": kept_out,
            "note": f"up to {PER_KEY} documents per key, those with the smallest hash of their id (the same "
                    "documents in every run of the same input); text clipped"}


def _read_problems(build: dict) -> dict:
    read = build.get("stages", {}).get("read", {})
    reasons = dict(sorted(read.get("removed", {}).items(), key=lambda kv: (-kv[1], kv[0])))
    errors = build.get("errors", [])
    return {"status": "ok", "records": build.get("records", {}), "unusable_records": build.get("records", {}).get(
        "unusable", 0), "read_reasons": reasons, "errors": errors[:50], "errors_total_listed": len(errors),
        "note": "records the reader could not use, by reason; error details are the first ones per file "
                "(stats/build.json keeps up to 200)"}


def _lineage(run: RunDir, config: dict | None) -> dict:
    info = _read_json(run, "lineage.json") or {}
    inputs: list[str] = []
    if run.exists("inputs.txt"):
        with run.fs.open_input_stream(run.path("inputs.txt")) as f:
            inputs = [line for line in f.read().decode("utf-8").splitlines() if line]
    if not info and config is None and not inputs:
        return _missing("RUN/lineage.json, config.yaml and inputs.txt absent")
    versions = {k: info.get(k) for k in ("corpus_version", "pyspark", "pyarrow", "python")}
    return {"status": "ok", "versions": versions, "git_commit": info.get("git_commit"),
            "argv": info.get("argv"), "limit": info.get("limit"), "sample": info.get("sample"),
            "inputs_total": len(inputs), "inputs": inputs[:20],
            "config_yaml": yaml.safe_dump(config, sort_keys=True) if config is not None else None}


def text_summary(summary: dict, build: dict, manifest: dict | None) -> str:
    """A few plain lines to paste into a chat: inputs, kept, tokens, the top 3 drop reasons."""
    f = summary["funnel"]
    n_in = f["documents_in"]

    def pct(n: int) -> str:
        return f"{100 * n / n_in:.1f}%" if n_in else "—"

    lines = [f"run {summary['run']}: {build.get('files', 0):,} input files, {n_in:,} documents read"]
    kept = f"kept by build {f['documents_kept_by_build']:,} ({pct(f['documents_kept_by_build'])})"
    for r in f["stages"]:
        if r["step"] in ("dedup", "pii") and r["stage"] in ("minhash", "pii"):
            kept += f", after {r['step']} {r['out']:,} ({pct(r['out'])})"
    lines.append(kept)
    if manifest:
        splits = manifest.get("splits", {})
        lines.append("tokens " + ", ".join(f"{k} {v['tokens']:,}" for k, v in sorted(splits.items())))
    drops = Counter()
    for r in f["stages"]:
        for reason, n in r["reasons"].items():
            drops[f"{r['step']}:{r['stage']}/{reason}"] += n
    top = top_items(drops, 3)
    if top:
        lines.append("top drops: " + "; ".join(f"{k} {n:,} ({pct(n)})" for k, n in top))
    return "\n".join(lines)
