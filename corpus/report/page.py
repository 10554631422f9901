"""`corpus report RUN [--out FILE]`: one self-contained HTML page (plots embedded as data: URIs) + a JSON summary.

The numbers come from corpus.report.data (stats files + text-free Parquet columns), the figures from
corpus.report.plots. The page has no scripts and no external resources, and holds no timestamp, so the
same run gives the same bytes. Sections whose step has not run say so instead of failing.
"""

from __future__ import annotations

import json
import posixpath
from html import escape

from corpus.io.rundir import RunDir
from corpus.report import plots
from corpus.report.data import collect

SECTIONS = (
    ("funnel", "Document and byte funnel"),
    ("samples", "Samples: what each filter removed, and what was kept"),
    ("languages", "Languages"),
    ("lengths", "Text length, before and after filtering"),
    ("quality_metrics", "Gopher / FineWeb quality metrics"),
    ("domains", "Top domains, kept and dropped"),
    ("dedup", "Duplicate clusters"),
    ("pii", "PII replaced, per entity"),
    ("tokens", "Tokens per split and source"),
    ("timing", "Time per stage"),
    ("read_problems", "Read errors and unusable records"),
    ("lineage", "Lineage"),
)

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:1.5em auto;max-width:1100px;
color:#222;padding:0 1em}
h1{font-size:1.5em;margin-bottom:.2em}
h2{font-size:1.15em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}
td,th{border:1px solid #ddd;padding:.2em .5em;text-align:left}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}th{background:#f4f4f4}
.missing{color:#8a5a00;background:#fff6e0;border:1px solid #f0d9a0;padding:.5em .8em;border-radius:4px}
.grid{display:flex;flex-wrap:wrap;gap:.5em}.cols{display:flex;gap:2em;flex-wrap:wrap}img{max-width:100%}
.note{color:#666;font-size:.85em}nav a{margin-right:.8em;font-size:.9em}
pre.summary{background:#f6f8fa;border:1px solid #ddd;padding:.6em .8em;white-space:pre-wrap;font-size:.85em}
.sample{border-left:3px solid #d9534f;margin:.4em 0 .8em;padding:.1em .6em}.sample.kept{border-color:#2b7bba}
.sample .url{font-family:monospace;font-size:.8em;word-break:break-all}
.sample .text{font-size:.8em;color:#444;white-space:pre-wrap;background:#fafafa;margin:.2em 0;padding:.3em}
.beyond{color:#b52a25;font-weight:600}details{margin:.3em 0}summary{cursor:pointer}
pre.config{font-size:.75em;max-height:24em;overflow:auto;background:#fafafa;border:1px solid #eee;padding:.5em}
"""


def pct(x) -> str:
    return "—" if x is None else f"{100 * x:.1f}%"


def fmt_value(v) -> str:
    if v is None:
        return "—"
    return f"{v:,}" if isinstance(v, int) else f"{v:.4g}"


def _decided(values: list[dict]) -> str:
    """`name = value (drops below/above threshold)`, the deciding ones marked."""
    parts = []
    for v in values:
        cls = ' class="beyond"' if v["beyond"] else ""
        sign = {"below": "&lt;", "at_or_below": "≤", "above": "&gt;"}.get(v["drops"], "?")
        limit = (f" <span class=\"note\">(drops if {sign} "
                 f"{fmt_value(v['threshold'])}: {escape(str(v['key']))})</span>" if v["threshold"] is not None else "")
        parts.append(f"<span{cls}>{escape(v['name'])} = {fmt_value(v['value'])}{limit}</span>")
    return "; ".join(parts)


def sample_html(sample: dict, kept: bool = False, extra: str = "") -> str:
    """One sampled document: URL, the values that decided, the start of its text — every crawl string escaped."""
    decided = _decided(sample.get("values") or [])
    facts = [f"id <code>{escape(str(sample.get('id')))}</code>"]
    if sample.get("chars") is not None:
        facts.append(f"{sample['chars']:,} chars")
    if sample.get("language_score") is not None:
        facts.append(f"language_score {sample['language_score']:.3f}")
    text = sample.get("text_head")
    return (f'<div class="sample{" kept" if kept else ""}"><div class="url">{escape(str(sample.get("url") or "—"))}'
            f'</div><div class="note">{" · ".join(facts)}{extra}</div>'
            + (f"<div>{decided}</div>" if decided else "")
            + (f'<div class="text">{escape(text)}</div>' if text else '<div class="note">(no text: dropped before '
               "extraction, or not recorded by this step)</div>") + "</div>")


def _samples(s: dict) -> str:
    out = [f'<p class="note">{escape(s["note"])}. Marked values are beyond their threshold.</p>']
    for group in s["removed"]:
        title = f"{group['step']} · {group['stage']} · {group['reason']}"
        count = f" ({group['count']:,} removed)" if group.get("count") is not None else ""
        out.append(f"<details><summary><b>{escape(title)}</b>{count}</summary>"
                   + "".join(sample_html(x) for x in group["samples"]) + "</details>")
    if s["kept"]:
        out.append("<h3>Kept documents, per language</h3>")
    for group in s["kept"]:
        out.append(f"<details><summary><b>kept · {escape(str(group['language']))}</b> ({group['kept']:,} kept)"
                   "</summary>" + "".join(sample_html(x, kept=True) for x in group["samples"]) + "</details>")
    return "".join(out)


def _read_problems(s: dict) -> str:
    reasons = list(s["read_reasons"].items())
    records = ", ".join(f"{k} {v:,}" for k, v in s["records"].items())
    return (f"<p>{s['unusable_records']:,} unusable records (records by type: {escape(records)}).</p>"
            + (table(["reason", "records"], reasons, {1}) if reasons else "<p>No read-stage drops.</p>")
            + (f"<h3>Error details ({s['errors_total_listed']:,} listed)</h3><ul>"
               + "".join(f"<li><code>{escape(e)}</code></li>" for e in s["errors"]) + "</ul>" if s["errors"] else "")
            + f'<p class="note">{escape(s["note"])}</p>')


def _lineage(s: dict) -> str:
    rows = [[k, v] for k, v in s["versions"].items()] + [["git commit", s["git_commit"] or "unknown"],
                                                          ["command", " ".join(s["argv"] or []) or "—"],
                                                          ["limit", s["limit"]], ["sample", s["sample"]]]
    inputs = "".join(f"<li><code>{escape(x)}</code></li>" for x in s["inputs"])
    more = f"<li>… {s['inputs_total'] - len(s['inputs']):,} more</li>" if s["inputs_total"] > len(s["inputs"]) else ""
    config = (f'<details><summary>config.yaml</summary><pre class="config">{escape(s["config_yaml"])}</pre></details>'
              if s["config_yaml"] else "")
    return (table(["", ""], [[k, "—" if v is None else str(v)] for k, v in rows])
            + f"<h3>Inputs ({s['inputs_total']:,} files)</h3><ul>{inputs}{more}</ul>" + config)


def _n(x) -> str:
    if x is None:
        return "—"
    return f"{x:,}" if isinstance(x, int) else f"{x:,.2f}"


def table(headers: list[str], rows: list[list], numeric: set[int] = frozenset()) -> str:
    head = "".join(f'<th class="n">{escape(h)}</th>' if i in numeric else f"<th>{escape(h)}</th>"
                   for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(f'<td class="n">{_n(v)}</td>' if i in numeric else f"<td>{escape(str(v))}</td>"
                                    for i, v in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _img(uri: str, alt: str) -> str:
    return f'<img src="{uri}" alt="{escape(alt)}">'


def _funnel(s: dict) -> str:
    rows = [[r["step"], r["stage"], r["in"], r["out"], r["removed"], r.get("text_bytes_removed"),
             ", ".join(f"{k} {v:,}" for k, v in list(r["reasons"].items())[:6]) or "—"] for r in s["stages"]]
    b = s["bytes"]
    byte_rows = [[k, b[k]] for k in ("html", "text_extracted", "text_kept", "text_after_dedup", "text_after_pii")
                 if k in b]
    missing = (f'<p class="missing">Not run yet: {", ".join(s["steps_missing"])}.</p>' if s["steps_missing"] else "")
    return (_img(plots.funnel(s["stages"]), "funnel") + missing
            + table(["step", "stage", "in", "out", "removed", "text bytes removed", "drop reasons"], rows,
                     {2, 3, 4, 5})
            + "<h3>Bytes</h3>" + table(["text", "UTF-8 bytes"], byte_rows, {1})
            + '<p class="note">Records by WARC type: '
            + escape(", ".join(f"{k} {v:,}" for k, v in s["records"].items())) + "</p>")


def _languages(s: dict) -> str:
    items = list(s["counts"].items())
    out = _img(plots.bars(items[:15], "documents"), "languages")
    if "keep_rate" in s:
        out += table(["language", "reached language ID", "kept by build", "keep rate"],
                      [[lang, n, k, pct(r)] for lang, n, k, r in s["keep_rate"][:30]], {1, 2})
    else:
        out += table(["language", "documents"], [list(kv) for kv in items[:30]], {1})
    out += f'<p class="note">{escape(s["note"])}</p>'
    if s.get("drop_reasons"):
        out += ("<h3>Drop reasons by language</h3>"
                + table(["language", "removed after language ID", "top reasons (stage: reason, documents)"],
                        [[lang, n, "; ".join(f"{r} {c:,}" for r, c in top)] for lang, n, top in s["drop_reasons"]],
                        {1}))
    if "score_histogram" in s:
        h = s["score_histogram"]
        out += ("<h3>language_score (top language)</h3>" + _img(plots.language_scores(h), "language_score")
                + f'<p class="note">{escape(h["note"])}; dashed line: language.threshold = {fmt_value(h["threshold"])}'
                "</p>")
    return out


def _lengths(s: dict) -> str:
    stage_rows = [[stage, sum(h)] for stage, h in s["removed_by_stage"].items() if sum(h)]
    return (_img(plots.lengths(s), "text lengths")
            + table(["", "documents with text"], [["before filtering", sum(s["before_filtering"])],
                                                   ["after filtering", sum(s["after_filtering"])]], {1})
            + "<h3>Removed documents with text, by stage</h3>" + table(["stage", "documents"], stage_rows, {1}))


def _quality(s: dict) -> str:
    figs = "".join(_img(plots.metric(name, m), name) for name, m in s["metrics"].items())
    rows = [[name, m["stage"], "; ".join(f"{t['key']} = {t['value']:g} (drops {t['drops']})"
                                         for t in m["thresholds"]) or "—", sum(m["kept"]), sum(m["removed"])]
            for name, m in s["metrics"].items()]
    return (f'<div class="grid">{figs}</div><p class="note">{escape(s["note"])}; dashed lines: thresholds '
            "from the run's config.yaml.</p>"
            + table(["metric", "stage", "thresholds", "kept", "removed"], rows, {3, 4}))


def _domains(s: dict) -> str:
    cols = []
    for side, color in (("kept", plots.KEPT), ("removed", plots.REMOVED)):
        items = s[side]
        fig = (_img(plots.bars([tuple(x) for x in items[:15]], "documents", color, width=4.6), f"{side} domains")
               if items else "")
        cols.append(f"<div><h3>{side} ({s['distinct_' + side]:,} distinct hosts)</h3>{fig}"
                    + table(["host", "documents"], items, {1}) + "</div>")
    rates = ("<h3>Keep rate of the busiest hosts (kept + dropped)</h3>"
             + table(["host", "documents", "kept", "keep rate"], [[h, n, k, pct(r)] for h, n, k, r in s["keep_rate"]],
                      {1, 2}) if s.get("keep_rate") else "")
    return f'<div class="cols">{"".join(cols)}</div>' + rates


def _dedup(s: dict) -> str:
    hist = s["cluster_size_histogram"]
    facts = [[k.replace("_", " "), s[k]] for k in ("documents_in", "exact_duplicates_removed",
                                                    "near_duplicates_removed", "near_duplicate_clusters",
                                                    "documents_kept")]
    return (_img(plots.cluster_sizes(hist), "cluster sizes") + table(["", "documents"], facts, {1})
            + table(["cluster size", "kept documents"], [[int(k), v] for k, v in
                                                         sorted(hist.items(), key=lambda kv: int(kv[0]))], {0, 1}))


def _pii(s: dict) -> str:
    items = list(s["per_entity"].items())
    fig = _img(plots.bars(items, "replaced spans"), "pii") if items else "<p>No PII found.</p>"
    facts = [[k.replace("_", " "), s[k]] for k in ("documents", "documents_with_pii", "documents_dropped_too_dense",
                                                    "replaced_spans")]
    return fig + table(["entity", "replaced spans"], items, {1}) + table(["", "count"], facts, {1})


def _tokens(s: dict) -> str:
    by = s["tokens_by_split_and_source"]
    rows = [[split, source, n] for split, c in by.items() for source, n in c.items()]
    splits = [[k, v["documents"], v["tokens"], v["shards"],
               round(v["tokens"] / v["documents"], 1) if v["documents"] else None]
              for k, v in sorted(s["splits"].items())]
    return (_img(plots.tokens(by), "tokens") + table(["split", "source", "tokens"], rows, {2})
            + table(["split", "documents", "tokens", "shards", "tokens per document"], splits, {1, 2, 3, 4})
            + f'<p class="note">vocabulary {_n(s["vocab_size"])}, {s["shards"]} shards</p>')


def _timing(s: dict) -> str:
    items = [(k, v["wall_seconds"]) for k, v in s["steps"].items() if v.get("wall_seconds") is not None]
    task = s["steps"].get("build", {}).get("task_seconds", {})
    note = f'<p class="note">{escape(s["note"])}</p>' if "note" in s else ""
    return (_img(plots.bars(items, "wall seconds"), "time per stage") + table(["step", "wall seconds"], items, {1})
            + "<h3>Build task seconds by sub-stage (summed over tasks)</h3>"
            + table(["sub-stage", "seconds"], list(task.items()), {1}) + note)


RENDER = {"funnel": _funnel, "samples": _samples, "read_problems": _read_problems, "lineage": _lineage,
          "languages": _languages, "lengths": _lengths, "quality_metrics": _quality,
          "domains": _domains, "dedup": _dedup, "pii": _pii, "tokens": _tokens, "timing": _timing}


def render_html(summary: dict) -> str:
    parts = []
    for key, title in SECTIONS:
        s = summary[key]
        if s["status"] == "missing":
            body = f'<p class="missing">Not available: {escape(s["reason"])}.</p>'
        else:
            body = RENDER[key](s)
            if s["status"] == "partial":
                body = f'<p class="missing">Partial: {escape(s["reason"])}.</p>' + body
        parts.append(f'<section id="{key}" data-status="{s["status"]}"><h2>{escape(title)}</h2>{body}</section>')
    nav = "".join(f'<a href="#{k}">{escape(t.split(",")[0])}</a>' for k, t in SECTIONS)
    f = summary["funnel"]
    after = {r["step"]: r["out"] for r in f["stages"] if r["step"] != "build"}  # last row of each step
    headline = (f"{f['documents_in']:,} documents read, {f['documents_kept_by_build']:,} kept by build"
                + "".join(f", {n:,} after {step}" for step, n in after.items()))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>corpus report: {escape(summary['run'])}</title>"
            '<link rel="icon" href="data:,">'
            f"<style>{CSS}</style></head><body><h1>corpus report: {escape(summary['run'])}</h1>"
            f"<p>{escape(headline)}</p>"
            f'<pre class="summary" id="text-summary">{escape(summary.get("text_summary", ""))}</pre>'
            f"<nav>{nav}</nav>{''.join(parts)}</body></html>\n")


def default_out(run_uri: str) -> str:
    return posixpath.join(run_uri.rstrip("/"), "report.html")


def write_page(out: str, html: str, data: dict) -> None:
    """OUT (local path or URI) and its data beside it as JSON (OUT with .json), each written atomically."""
    folder, name = posixpath.split(out)
    target = RunDir(folder or ".")
    target.makedirs()
    stem = name.rsplit(".", 1)[0] if "." in name else name
    target.write_bytes_atomic(json.dumps(data, indent=2, sort_keys=True).encode("utf-8") + b"\n", stem + ".json")
    target.write_bytes_atomic(html.encode("utf-8"), name)


def write_report(run_uri: str, out: str | None = None) -> dict:
    """Write OUT (default RUN/report.html) and the summary beside it (OUT with .json); return the summary."""
    summary = collect(run_uri)
    write_page(out or default_out(run_uri), render_html(summary), summary)
    return summary
