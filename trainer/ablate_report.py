"""The numbers and the page of `trainer ablate`: final mean ± std per arm, pairs against the seed noise, curves.

A pair of arms differs beyond the seed noise on a metric when |mean_a − mean_b| > 2 · sqrt((sd_a² + sd_b²) / 2),
twice the pooled seed standard deviation (sample sd over seeds, ddof 1): the issue's criterion. With one seed
there is no noise estimate, and the page says so instead of calling any difference real.

The page is built like `corpus report` (corpus/report/page.py: its CSS, table and write_page; figures as PNG
data: URIs from corpus/report/plots.py), so it is one self-contained file, and the same results give the same
bytes.
"""

from __future__ import annotations

import math
from html import escape

LOWER_IS_BETTER = ("/bpb", "/loss")


def higher_is_better(metric: str) -> bool:
    return not metric.endswith(LOWER_IS_BETTER)


def _mean_sd(values: list[float]) -> tuple[float, float | None]:
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def summarize(results: dict) -> dict:
    """{"final": {arm: {metric: {mean, sd, values}}}, "pairs": [...], "metrics": [...]} from the last checkpoint
    of every seed."""
    final: dict[str, dict] = {}
    metrics: list[str] = []
    for arm, a in results["arms"].items():
        per_metric: dict[str, list[float]] = {}
        for records in a["seeds"].values():
            for k, v in records[-1]["metrics"].items():
                per_metric.setdefault(k, []).append(v)
        final[arm] = {}
        for k, vals in per_metric.items():
            mean, sd = _mean_sd(vals)
            final[arm][k] = {"mean": mean, "sd": sd, "values": vals}
            if k not in metrics:
                metrics.append(k)
    pairs = []
    names = list(results["arms"])
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            for k in metrics:
                fa, fb = final[a].get(k), final[b].get(k)
                if fa is None or fb is None:
                    continue
                diff = fa["mean"] - fb["mean"]
                noise = None if fa["sd"] is None or fb["sd"] is None else 2 * math.sqrt((fa["sd"] ** 2 + fb["sd"] ** 2)
                                                                                        / 2)
                better = None if diff == 0 else (a if (diff > 0) == higher_is_better(k) else b)
                pairs.append({"a": a, "b": b, "metric": k, "diff": diff, "noise": noise, "better": better,
                              "beyond_noise": None if noise is None else abs(diff) > noise})
    return {"final": final, "pairs": pairs, "metrics": metrics}


# -- the page --------------------------------------------------------------------------------------------------------
def _curve(results: dict, metric: str) -> str:
    """The metric against tokens trained: per arm the mean over seeds, and the band between min and max seed."""
    from corpus.report import plots

    plt = plots.plt
    fig, ax = plt.subplots(figsize=(5.2, 3.2))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (arm, a) in enumerate(results["arms"].items()):
        by_tokens: dict[int, list[float]] = {}
        for records in a["seeds"].values():
            for r in records:
                if metric in r["metrics"]:
                    by_tokens.setdefault(r["tokens"], []).append(r["metrics"][metric])
        xs = sorted(by_tokens)
        if not xs:
            continue
        color = colors[i % len(colors)]
        ax.plot(xs, [sum(by_tokens[x]) / len(by_tokens[x]) for x in xs], marker="o", ms=3, color=color, label=arm)
        ax.fill_between(xs, [min(by_tokens[x]) for x in xs], [max(by_tokens[x]) for x in xs], color=color,
                        alpha=0.2, linewidth=0)
    ax.set_xlabel("tokens trained")
    ax.set_ylabel(metric + (" (lower is better)" if not higher_is_better(metric) else ""))
    ax.legend(frameon=False, fontsize=8)
    return plots._uri(fig)  # the report's PNG writer: deterministic bytes, no timestamp


def _fmt(mean: float, sd: float | None) -> str:
    return f"{mean:.4f}" + ("" if sd is None else f" ± {sd:.4f}")


def render(results: dict) -> str:
    from corpus.report.page import CSS, table

    arms, final, metrics = results["arms"], results["final"], results["metrics"]
    seeds = sorted({s for a in arms.values() for s in a["seeds"]}, key=int)
    head = (f"{len(arms)} arms × {len(seeds)} seeds (seeds {', '.join(seeds)}), {results['budget_tokens']:,} tokens "
            f"per arm ({results['steps']} steps of {results['tokens_per_step']:,}), one tokenizer "
            f"({escape(results['tokenizer'])}).")
    arm_rows = [[n, " → ".join(a["steps"]), " ".join(a["set"]) or "—", a["train_tokens"],
                 "—" if a["epochs"] is None else f"{a['epochs']:.2f}"] for n, a in arms.items()]
    final_rows = [[k, *(_fmt(final[n][k]["mean"], final[n][k]["sd"]) if k in final[n] else "—" for n in arms)]
                  for k in metrics]
    pair_rows = [[p["metric"], f"{p['a']} − {p['b']}", f"{p['diff']:+.4f}",
                  "—" if p["noise"] is None else f"{p['noise']:.4f}", p["better"] or "tie",
                  {True: "yes", False: "no", None: "one seed: no noise estimate"}[p["beyond_noise"]]]
                 for p in results["pairs"]]
    curves = "".join(f'<img src="{_curve(results, k)}" alt="{escape(k)}">' for k in metrics)
    funnels = "".join(f"<h3>{escape(n)}</h3>{a['funnel_html']}" for n, a in results.get("funnels", {}).items())
    sections = [
        ("arms", "Arms", table(["arm", "corpus steps", "--set", "training tokens", "epochs at the budget"], arm_rows,
                              {3})),
        ("final", "Final scores (last checkpoint), mean ± sd over seeds",
         table(["metric", *arms], final_rows)
         + '<p class="note">bpb and loss: lower is better; acc, acc_norm and logprob_gold: higher is better.</p>'),
        ("pairs", "Pairs of arms against the seed noise",
         table(["metric", "pair", "difference", "noise (2 × pooled sd)", "better", "beyond the noise"], pair_rows)),
        ("curves", "Curves: each metric against tokens (line: mean over seeds; band: min–max seed)",
         f'<div class="grid">{curves}</div>'),
        ("funnels", "The arms' funnels (from their runs' stats)", funnels or '<p class="missing">No funnel.</p>'),
    ]
    nav = "".join(f'<a href="#{k}">{escape(t.split(",")[0].split(" (")[0])}</a>' for k, t, _ in sections)
    body = "".join(f'<section id="{k}"><h2>{escape(t)}</h2>{b}</section>' for k, t, b in sections)
    title = f"trainer ablate: {escape(results['name'])}"
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{title}</title><link rel=\"icon\" href=\"data:,\"><style>{CSS}</style></head><body>"
            f"<h1>{title}</h1><p>{head}</p><nav>{nav}</nav>{body}</body></html>\n")


def arm_funnel(run: str) -> tuple[str, list[dict]]:
    """The arm's funnel table and figure, from its run's stats (as `corpus report` draws it)."""
    from corpus.report import plots
    from corpus.report.data import collect
    from corpus.report.page import table

    stages = collect(run)["funnel"]["stages"]
    rows = [[r["step"], r["stage"], r["in"], r["out"], r["removed"]] for r in stages]
    return (f'<img src="{plots.funnel(stages)}" alt="funnel">'
            + table(["step", "stage", "in", "out", "removed"], rows, {2, 3, 4}), stages)


def write_ablation_report(results: dict, out: str) -> None:
    from corpus.report.page import write_page

    funnels, stages = {}, {}
    for name, a in results["arms"].items():
        html, st = arm_funnel(a["run"])
        funnels[name] = {"funnel_html": html}
        stages[name] = st
    results["funnels_data"] = stages
    page = render({**results, "funnels": funnels})
    write_page(out, page, {k: v for k, v in results.items() if k != "config"})
