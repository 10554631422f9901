"""`corpus diff RUN_A RUN_B [--out FILE]`: what changed between two runs, as one HTML page and its JSON.

By distribution, always: the funnel side by side per stage and reason, keep rates per language and per busy
host, tokens per split and source, time per stage — from each run's report summary (corpus.report.data).

By id, when the runs share document ids (the same input under two configs or two code versions): which
documents one run kept and the other did not, counted by the stage and reason that removed each in the other
run, with samples (the smallest id hashes, as in the report). Runs of different dumps share no ids; the
by-id section then says so. "Kept" means present in the deepest document folder both runs have (pii/docs,
else dedup/docs, else docs), so a run with dedup is not compared with one without at the dedup level.

Reads go through RunDir (local or s3://) and stream only `id` / `url` / `stage` / `reason` columns; the id
sets are Arrow arrays (about 50 bytes per document), the only memory that grows with the runs.
"""

from __future__ import annotations

import posixpath
from collections import Counter
from html import escape

import pyarrow as pa
import pyarrow.compute as pc
import yaml

from corpus.io.rundir import RunDir
from corpus.report import plots
from corpus.report.data import (
    REMOVAL_FOLDERS,
    SAMPLE_COLUMNS,
    TOP_DOMAINS,
    ParquetFolder,
    collect,
    count_into,
    removed_sample,
    top_items,
    url_hosts,
)
from corpus.report.page import CSS, fmt_value, pct, sample_html, table, write_page
from corpus.report.samples import Sampler, fetch_rows

KEPT_LEVELS = ("pii/docs", "dedup/docs", "docs")
NOT_RECORDED = "dropped by a later step that records no removed rows"


def _ids(run: RunDir, sub: str) -> pa.Array:
    p = ParquetFolder(run, sub)
    if not p.exists:
        return pa.array([], pa.string())
    chunks = [b.column("id") for b in p.batches(["id"])]
    return pa.concat_arrays(chunks).cast(pa.string()) if chunks else pa.array([], pa.string())


def _config(run: RunDir) -> dict | None:
    if not run.exists("config.yaml"):
        return None
    with run.fs.open_input_stream(run.path("config.yaml")) as f:
        return yaml.safe_load(f.read())


def _level(a: RunDir, b: RunDir) -> str:
    for sub in KEPT_LEVELS:
        if ParquetFolder(a, sub).exists and ParquetFolder(b, sub).exists:
            return sub
    return "docs"


def _fates(other: RunDir, ids: pa.Array, config: dict | None) -> dict:
    """Where the documents `ids` (kept by one run) went in the `other` run: counts and samples per reason."""
    sampler = Sampler()
    counts: Counter[tuple[str, str, str]] = Counter()
    found_chunks: list[pa.Array] = []
    folders = {}
    for step, sub in REMOVAL_FOLDERS:
        p = folders[step] = ParquetFolder(other, sub)
        if not p.exists or not {"id", "stage", "reason"} <= p.columns():
            continue
        for index, start, batch in p.located_batches(["id", "stage", "reason"]):
            mask = pc.fill_null(pc.is_in(batch.column("id"), value_set=ids), False)
            if not pc.any(mask).as_py():
                continue
            hit = batch.filter(mask)
            found_chunks.append(hit.column("id").cast(pa.string()))
            # the matching rows' locations are their row numbers in the file
            positions = pc.indices_nonzero(mask).to_pylist()
            for doc_id, stage, reason, pos in zip(hit.column("id").to_pylist(), hit.column("stage").to_pylist(),
                                                  hit.column("reason").to_pylist(), positions, strict=True):
                counts[(step, stage, reason)] += 1
                sampler.add_one(doc_id, (step, stage, reason), (index, start + pos))
    found = pa.concat_arrays(found_chunks) if found_chunks else pa.array([], pa.string())
    rest = pc.filter(ids, pc.invert(pc.is_in(ids, value_set=found))) if len(found) else ids
    groups = []
    chosen = sampler.chosen()
    rows_by_step = {}
    for step, _ in REMOVAL_FOLDERS:
        locs = [loc for (s, _, _), picks in chosen.items() if s == step for _, loc in picks]
        if locs:
            p = folders[step]
            rows_by_step[step] = fetch_rows(other, p.sub, p.files, locs, SAMPLE_COLUMNS)
    for (step, stage, reason), picks in chosen.items():
        groups.append({"step": step, "stage": stage, "reason": reason, "count": counts[(step, stage, reason)],
                       "samples": [removed_sample(rows_by_step[step][loc], config) for _, loc in picks]})
    groups.sort(key=lambda g: (-g["count"], g["step"], str(g["stage"]), str(g["reason"])))
    if len(rest):
        in_build = pc.is_in(rest, value_set=_ids(other, "docs"))
        later = pc.sum(pc.cast(in_build, pa.int64())).as_py() or 0
        if later:
            groups.append({"step": "after build", "stage": None, "reason": NOT_RECORDED, "count": later,
                           "samples": []})
        if len(rest) - later:
            groups.append({"step": "input", "stage": None, "reason": "not in this run's input",
                           "count": len(rest) - later, "samples": []})
    return {"count": len(ids), "by_reason": groups}


def _by_id(a: RunDir, b: RunDir, config_a: dict | None, config_b: dict | None) -> dict:
    every_a = pa.concat_arrays([_ids(a, "docs"), _ids(a, "removed")])
    every_b = pa.concat_arrays([_ids(b, "docs"), _ids(b, "removed")])
    shared = pc.sum(pc.cast(pc.is_in(every_a, value_set=every_b), pa.int64())).as_py() or 0
    if not shared:
        return {"status": "missing", "reason": "the runs share no document ids (different inputs): compared by "
                                               "distribution only", "shared_ids": 0}
    level = _level(a, b)
    kept_a, kept_b = _ids(a, level), _ids(b, level)
    only_a = pc.filter(kept_a, pc.invert(pc.is_in(kept_a, value_set=kept_b)))
    only_b = pc.filter(kept_b, pc.invert(pc.is_in(kept_b, value_set=kept_a)))
    both = len(kept_a) - len(only_a)
    return {"status": "ok", "level": level, "shared_ids": shared, "ids_a": len(every_a), "ids_b": len(every_b),
            "kept_both": both, "kept_a": len(kept_a), "kept_b": len(kept_b),
            "kept_in_a_not_b": _fates(b, only_a, config_b), "kept_in_b_not_a": _fates(a, only_b, config_a)}


def _domain_counts(run: RunDir) -> tuple[Counter, Counter]:
    kept, removed = Counter(), Counter()
    for counter, sub in ((kept, "docs"), (removed, "removed")):
        p = ParquetFolder(run, sub)
        if p.exists and "url" in p.columns():
            for batch in p.batches(["url"]):
                count_into(counter, url_hosts(batch.column("url")))
    return kept, removed


def _domains(a: RunDir, b: RunDir) -> list[list]:
    """[host, seen A, kept A, rate A, seen B, kept B, rate B] for the busiest hosts of either run."""
    (ka, ra), (kb, rb) = _domain_counts(a), _domain_counts(b)
    ta, tb = ka + ra, kb + rb
    hosts = dict.fromkeys([h for h, _ in top_items(ta, TOP_DOMAINS)] + [h for h, _ in top_items(tb, TOP_DOMAINS)])
    rows = []
    for h in hosts:
        rate_a = round(ka[h] / ta[h], 4) if ta[h] else None
        rate_b = round(kb[h] / tb[h], 4) if tb[h] else None
        rows.append([h, ta[h], ka[h], rate_a, tb[h], kb[h], rate_b])
    return sorted(rows, key=lambda r: (-(r[1] + r[4]), r[0]))


def _funnel(sa: dict, sb: dict) -> dict:
    def rows(s):
        return {(r["step"], r["stage"]): r for r in s["funnel"]["stages"]}

    ra, rb = rows(sa), rows(sb)
    stages, reasons = [], []
    for key in dict.fromkeys([*ra, *rb]):
        x, y = ra.get(key, {}), rb.get(key, {})
        stages.append({"step": key[0], "stage": key[1], "in_a": x.get("in"), "in_b": y.get("in"),
                       "out_a": x.get("out"), "out_b": y.get("out"), "removed_a": x.get("removed"),
                       "removed_b": y.get("removed"),
                       "delta_removed": (y.get("removed") or 0) - (x.get("removed") or 0)})
        for reason in dict.fromkeys([*x.get("reasons", {}), *y.get("reasons", {})]):
            n_a, n_b = x.get("reasons", {}).get(reason, 0), y.get("reasons", {}).get(reason, 0)
            reasons.append({"step": key[0], "stage": key[1], "reason": reason, "a": n_a, "b": n_b, "delta": n_b - n_a})
    return {"stages": stages, "reasons": reasons,
            "documents_in": [sa["funnel"]["documents_in"], sb["funnel"]["documents_in"]],
            "kept_by_build": [sa["funnel"]["documents_kept_by_build"], sb["funnel"]["documents_kept_by_build"]]}


def _languages(sa: dict, sb: dict) -> list[list]:
    def rates(s):
        return {lang: (n, k, r) for lang, n, k, r in s["languages"].get("keep_rate", [])}

    xa, xb = rates(sa), rates(sb)
    rows = []
    for lang in dict.fromkeys([*xa, *xb]):
        na, ka, ra_ = xa.get(lang, (0, 0, None))
        nb, kb, rb_ = xb.get(lang, (0, 0, None))
        rows.append([lang, na, ka, ra_, nb, kb, rb_])
    return rows


def _tokens(sa: dict, sb: dict) -> dict | None:
    ta, tb = sa["tokens"], sb["tokens"]
    if ta["status"] != "ok" and tb["status"] != "ok":
        return None
    by_a = ta.get("tokens_by_split_and_source", {})
    by_b = tb.get("tokens_by_split_and_source", {})
    rows = []
    for split in sorted({*by_a, *by_b}):
        for source in sorted({*by_a.get(split, {}), *by_b.get(split, {})}):
            a, b = by_a.get(split, {}).get(source), by_b.get(split, {}).get(source)
            rows.append([split, source, a, b, (b or 0) - (a or 0)])
    return {"rows": rows, "a_status": ta["status"], "b_status": tb["status"]}


def _timing(sa: dict, sb: dict) -> list[list]:
    def flat(s):
        steps = s["timing"].get("steps", {})
        out = {step: v.get("wall_seconds") for step, v in steps.items()}
        out.update({f"build task: {k}": v for k, v in steps.get("build", {}).get("task_seconds", {}).items()})
        return out

    fa, fb = flat(sa), flat(sb)
    return [[k, fa.get(k), fb.get(k)] for k in dict.fromkeys([*fa, *fb])]


def collect_diff(a_uri: str, b_uri: str) -> dict:
    a, b = RunDir(a_uri), RunDir(b_uri)
    sa, sb = collect(a_uri), collect(b_uri)
    return {
        "diff_version": 1,
        "a": {"run": a_uri, "summary": sa["text_summary"]},
        "b": {"run": b_uri, "summary": sb["text_summary"]},
        "funnel": _funnel(sa, sb),
        "languages": _languages(sa, sb),
        "domains": _domains(a, b),
        "tokens": _tokens(sa, sb),
        "timing": _timing(sa, sb),
        "by_id": _by_id(a, b, _config(a), _config(b)),
    }


def _signed(x) -> str:
    return "—" if x is None else (f"{x:+,}" if isinstance(x, int) else f"{x:+.4g}")


def _fates_html(title: str, other: str, f: dict) -> str:
    out = [f"<h3>{escape(title)}: {f['count']:,} documents</h3>"]
    if f["by_reason"]:
        out.append(table([f"removed in {other} by", "documents"],
                          [[" · ".join(str(x) for x in (g["step"], g["stage"], g["reason"]) if x is not None),
                            g["count"]] for g in f["by_reason"]], {1}))
    for g in f["by_reason"]:
        if g["samples"]:
            label = " · ".join(str(x) for x in (g["step"], g["stage"], g["reason"]) if x is not None)
            out.append(f'<details open><summary><b>{escape(label)}</b> ({g["count"]:,})</summary>'
                       + "".join(sample_html(s) for s in g["samples"]) + "</details>")
    return "".join(out)


def render_diff_html(d: dict) -> str:
    name_a = posixpath.basename(d["a"]["run"].rstrip("/")) or d["a"]["run"]
    name_b = posixpath.basename(d["b"]["run"].rstrip("/")) or d["b"]["run"]
    if name_a == name_b:
        name_a, name_b = d["a"]["run"], d["b"]["run"]
    A, B = f"A ({name_a})", f"B ({name_b})"
    f = d["funnel"]
    parts = [f'<pre class="summary">A: {escape(d["a"]["summary"])}\n\nB: {escape(d["b"]["summary"])}</pre>']

    by = d["by_id"]
    if by["status"] == "ok":
        body = (f"<p>{by['shared_ids']:,} document ids shared; compared at <code>{escape(by['level'])}</code>: "
                f"kept by both {by['kept_both']:,}, by A {by['kept_a']:,}, by B {by['kept_b']:,}.</p>"
                + _fates_html("Kept in A, not in B (where B removed them)", "B", by["kept_in_a_not_b"])
                + _fates_html("Kept in B, not in A (where A removed them)", "A", by["kept_in_b_not_a"]))
    else:
        body = f'<p class="missing">{escape(by["reason"])}.</p>'
    parts.append(f'<section id="by_id" data-status="{by["status"]}"><h2>Documents that moved</h2>{body}</section>')

    stage_rows = [[r["step"], r["stage"], r["in_a"], r["in_b"], r["out_a"], r["out_b"], r["removed_a"], r["removed_b"],
                   _signed(r["delta_removed"])] for r in f["stages"]]
    reason_rows = [[r["step"], r["stage"], r["reason"], r["a"], r["b"], _signed(r["delta"])] for r in f["reasons"]]
    parts.append('<section id="funnel"><h2>Funnel, side by side</h2>'
                 + _img(plots.funnel_pair(f["stages"], name_a, name_b), "funnel A vs B")
                 + table(["step", "stage", "in A", "in B", "out A", "out B", "removed A", "removed B",
                           "Δ removed"], stage_rows, {2, 3, 4, 5, 6, 7})
                 + "<h3>Drop reasons</h3>"
                 + table(["step", "stage", "reason", "A", "B", "Δ"], reason_rows, {3, 4}) + "</section>")

    parts.append('<section id="languages"><h2>Keep rate per language</h2>'
                 + table(["language", "reached A", "kept A", "rate A", "reached B", "kept B", "rate B", "Δ rate"],
                          [[lang, na, ka, pct(ra), nb, kb, pct(rb),
                            _signed(None if ra is None or rb is None else round(rb - ra, 4))]
                           for lang, na, ka, ra, nb, kb, rb in d["languages"]], {1, 2, 4, 5}) + "</section>")
    parts.append('<section id="domains"><h2>Keep rate of the busiest hosts</h2>'
                 + table(["host", "seen A", "kept A", "rate A", "seen B", "kept B", "rate B"],
                          [[h, na, ka, pct(ra), nb, kb, pct(rb)] for h, na, ka, ra, nb, kb, rb in d["domains"]],
                          {1, 2, 4, 5}) + "</section>")
    t = d["tokens"]
    parts.append('<section id="tokens"><h2>Tokens per split and source</h2>'
                 + (table(["split", "source", "tokens A", "tokens B", "Δ"],
                           [[s, src, a, b, _signed(x)] for s, src, a, b, x in t["rows"]], {2, 3})
                    if t else '<p class="missing">Neither run has been tokenized.</p>') + "</section>")
    parts.append('<section id="timing"><h2>Time per stage (seconds)</h2>'
                 + table(["step", "A", "B"], [[k, fmt_value(a), fmt_value(b)] for k, a, b in d["timing"]])
                 + "</section>")
    title = f"corpus diff: {name_a} vs {name_b}"
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{escape(title)}</title><link rel=\"icon\" href=\"data:,\"><style>{CSS}</style></head><body>"
            f"<h1>{escape(title)}</h1><p>{escape(A)}: <code>{escape(d['a']['run'])}</code> · {escape(B)}: "
            f"<code>{escape(d['b']['run'])}</code></p>{''.join(parts)}</body></html>\n")


def _img(uri: str, alt: str) -> str:
    return f'<img src="{uri}" alt="{escape(alt)}">'


def write_diff(a_uri: str, b_uri: str, out: str = "diff.html") -> dict:
    """Write OUT and the comparison's JSON beside it (OUT with .json); return the comparison."""
    d = collect_diff(a_uri, b_uri)
    write_page(out, render_diff_html(d), d)
    return d
