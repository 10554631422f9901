"""matplotlib figures for `corpus report`, each returned as a PNG data: URI (the page embeds everything).

Each function takes one section of the summary (corpus.report.data) and draws it; no I/O, no state.
PNG output is deterministic for the same input (no timestamps in the metadata).
"""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

KEPT, REMOVED, ACCENT = "#2b7bba", "#d9534f", "#444444"
# text.parse_math off: labels are crawl strings (hosts, reasons), and a host like `$\foo$.com` must print as
# itself, not crash mathtext's parser.
plt.rcParams.update({"text.parse_math": False, "font.size": 9, "axes.spines.top": False, "axes.spines.right": False,
                     "svg.hashsalt": "corpus-report", "figure.dpi": 90})


def _uri(fig) -> str:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", metadata={"Software": None})
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def funnel(stages: list[dict]) -> str:
    labels = [f"{s['step']}:{s['stage']}" for s in stages]
    fig, ax = plt.subplots(figsize=(7.5, 0.32 * len(stages) + 1))
    y = range(len(stages))[::-1]
    ax.barh(list(y), [s["out"] for s in stages], color=KEPT, label="out")
    ax.barh(list(y), [s["removed"] for s in stages], left=[s["out"] for s in stages], color=REMOVED, label="removed")
    ax.set_yticks(list(y), labels)
    ax.set_xlabel("documents")
    ax.legend(loc="lower right", frameon=False)
    return _uri(fig)


def bars(items: list[tuple[str, float]], xlabel: str, color: str = KEPT, width: float = 6) -> str:
    fig, ax = plt.subplots(figsize=(width, 0.28 * max(len(items), 1) + 0.9))
    names = [str(k) for k, _ in items][::-1]
    values = [v for _, v in items][::-1]
    ax.barh(names, values, color=color)
    ax.set_xlabel(xlabel)
    if all(isinstance(v, int) for v in values):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return _uri(fig)


def lengths(section: dict) -> str:
    edges = section["edges"]
    fig, ax = plt.subplots(figsize=(7, 3))
    widths = [b - a for a, b in zip(edges[:-1], edges[1:], strict=True)]
    ax.bar(edges[:-1], section["before_filtering"], width=widths, align="edge", color=REMOVED, alpha=0.45,
           label="before filtering (all extracted text)")
    ax.bar(edges[:-1], section["after_filtering"], width=widths, align="edge", color=KEPT, alpha=0.85,
           label="after filtering (kept)")
    ax.set_xscale("log")
    ax.set_xlabel("characters per document")
    ax.set_ylabel("documents")
    ax.legend(frameon=False)
    return _uri(fig)


def metric(name: str, m: dict) -> str:
    edges = m["edges"]
    fig, ax = plt.subplots(figsize=(3.9, 2.6))
    log = name == "gopher_words"
    widths = [b - a for a, b in zip(edges[:-1], edges[1:], strict=True)]
    ax.bar(edges[:-1], m["kept"], width=widths, align="edge", color=KEPT, label="kept")
    ax.bar(edges[:-1], m["removed"], width=widths, align="edge", bottom=m["kept"], color=REMOVED, label="removed")
    for t in m["thresholds"]:
        ax.axvline(t["value"], color=ACCENT, linestyle="--", linewidth=1.2)
        ax.annotate(f"{t['value']:g}", (t["value"], 1), xycoords=("data", "axes fraction"), ha="left", va="top",
                    fontsize=8, color=ACCENT)
    if log:
        ax.set_xscale("log")
    ax.set_title(f"{name}\n{m['label']}", fontsize=8.5)
    ax.legend(frameon=False, fontsize=7)
    return _uri(fig)


def cluster_sizes(histogram: dict[str, int]) -> str:
    sizes = sorted(histogram, key=int)
    fig, ax = plt.subplots(figsize=(6, 2.8))
    ax.bar([str(s) for s in sizes], [histogram[s] for s in sizes], color=KEPT)
    ax.set_yscale("log")
    ax.set_ylim(bottom=0.5)  # so that a count of 1 still shows as a bar
    ax.set_xlabel("cluster size (documents a kept document stands for)")
    ax.set_ylabel("kept documents")
    return _uri(fig)


def tokens(by_split: dict[str, dict[str, int]]) -> str:
    splits = sorted(by_split)
    sources = sorted({s for c in by_split.values() for s in c})
    fig, ax = plt.subplots(figsize=(6, 0.5 * len(splits) + 1.2))
    left = [0] * len(splits)
    for i, source in enumerate(sources):
        values = [by_split[sp].get(source, 0) for sp in splits]
        ax.barh(splits, values, left=left, label=source, color=plt.cm.tab10(i % 10))
        left = [a + b for a, b in zip(left, values, strict=True)]
    ax.set_xlabel("tokens")
    ax.legend(frameon=False, title="source")
    return _uri(fig)


def language_scores(h: dict) -> str:
    edges = h["edges"]
    fig, ax = plt.subplots(figsize=(7, 2.8))
    widths = [b - a for a, b in zip(edges[:-1], edges[1:], strict=True)]
    bottom = [0] * (len(edges) - 1)
    for key, color, label in (("kept", KEPT, "kept"), ("removed_later", "#f0ad4e", "removed by a later stage"),
                              ("removed_language", REMOVED, "removed by language ID")):
        values = h.get(key)
        if values is None:
            continue
        ax.bar(edges[:-1], values, width=widths, align="edge", bottom=bottom, color=color, label=label)
        bottom = [a + b for a, b in zip(bottom, values, strict=True)]
    if h.get("threshold") is not None:
        ax.axvline(h["threshold"], color=ACCENT, linestyle="--", linewidth=1.2)
    ax.set_xlabel("language_score of the top language")
    ax.set_ylabel("documents")
    ax.legend(frameon=False, fontsize=7, loc="upper left")
    return _uri(fig)


def funnel_pair(stages: list[dict], name_a: str, name_b: str) -> str:
    """Documents out of each stage in run A and run B, side by side."""
    labels = [f"{s['step']}:{s['stage']}" for s in stages]
    fig, ax = plt.subplots(figsize=(7.5, 0.42 * len(stages) + 1))
    y = list(range(len(stages)))[::-1]
    ax.barh([v + 0.2 for v in y], [s["out_a"] or 0 for s in stages], height=0.4, color=KEPT, label=f"A: {name_a}")
    ax.barh([v - 0.2 for v in y], [s["out_b"] or 0 for s in stages], height=0.4, color="#f0ad4e",
            label=f"B: {name_b}")
    ax.set_yticks(y, labels)
    ax.set_xlabel("documents out")
    ax.legend(loc="lower right", frameon=False)
    return _uri(fig)
