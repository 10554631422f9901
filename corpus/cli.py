"""The `corpus` command line. Each subcommand is also a `spark-submit jobs/<name>.py` entry point."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from corpus.config import ConfigError, load_config
from corpus.io.formats import InputError
from corpus.steps.base import run_root_of

app = typer.Typer(add_completion=False, no_args_is_help=True, help="FineWeb-grade corpus builder on Spark.")
console = Console(stderr=True)

InputOpt = Annotated[list[str], typer.Option("--input", "-i", help="file, glob, folder or *.paths(.gz) listing")]
OutOpt = Annotated[str, typer.Option("--out", "-o", help="run folder (local path, s3a://, hdfs://...)")]
ConfOpt = Annotated[Path | None, typer.Option("--config", "-c", help="pipeline YAML (default conf/pipeline.yaml)")]
# `--conf` was our flag before; it clashes with spark-submit's `--conf key=value`, so it is a deprecated alias.
OldConfOpt = Annotated[Path | None, typer.Option("--conf", hidden=True, help="deprecated: use --config")]
RunOpt = Annotated[str | None, typer.Option("--run", help="run folder: reads and writes the step's folders in it")]
StepOutOpt = Annotated[str | None, typer.Option("--out", "-o", help="the step's folder, RUN/<step> (or use --run RUN)")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="override, e.g. language.threshold=0.7")]
MasterOpt = Annotated[str | None, typer.Option("--master", help="Spark master (default local[*])")]

USER_ERRORS = (ConfigError, InputError)
LOG_FORMATS = ("text", "json")
settings = {"log_format": os.environ.get("CORPUS_LOG_FORMAT", "text")}


@app.callback()
def _global_options(
    log_format: Annotated[str, typer.Option("--log-format", help="text | json: JSON lines on stderr for log "
                                            "shippers (spark-submit jobs: set CORPUS_LOG_FORMAT=json)")] = "",
) -> None:
    """FineWeb-grade corpus builder on Spark."""
    fmt = log_format or settings["log_format"]
    if fmt not in LOG_FORMATS:
        raise ConfigError(f"--log-format / CORPUS_LOG_FORMAT must be one of {LOG_FORMATS}, got {fmt!r}")
    settings["log_format"] = fmt


def _events(out: str, command: str):
    """The run's structured event log (RUN/logs/events.jsonl), opened with a `command` event for lineage."""
    from corpus.steps.events import EventLog, lineage

    as_json = settings["log_format"] == "json"
    events = EventLog(out, json_stderr=as_json, console=None if as_json else console)
    events.event("command", command=command, **lineage())
    return events


def _config_path(conf: Path | None, old_conf: Path | None) -> Path | None:
    if old_conf is not None:
        console.print("[yellow]warning:[/] --conf is deprecated (it clashes with spark-submit's --conf); "
                      "use --config")
        if conf is not None and conf != old_conf:
            raise ConfigError("give the pipeline config once, with --config")
    return conf or old_conf


def _step_folders(step: str, folder: str, run: str | None, out: str | None, inp: str | None,
                  upstream: str) -> tuple[str, str]:
    """(input, RUN/<folder>) for a step from --run RUN or an explicit --out RUN/<folder> (validated, so the
    step's outputs, stats and marker can only land where the layout says)."""
    from corpus.steps.base import join_uri

    if run and out:
        raise ConfigError(f"corpus {step}: give --run RUN or --out RUN/{folder}, not both")
    if run:
        out = join_uri(run, folder)
    if not out:
        raise ConfigError(f"corpus {step}: give --run RUN (or --out RUN/{folder})")
    if out.rstrip("/").rsplit("/", 1)[-1] != folder:
        raise ConfigError(f"corpus {step}: --out must be the step's folder inside the run folder, RUN/{folder} "
                          f"(got {out!r}); or give --run RUN")
    if not inp:
        inp = join_uri(run_root_of(out), upstream)
    return inp, out


def _user_errors() -> tuple[type[Exception], ...]:
    from corpus.build.lang_words import MissingTokenizerError
    from corpus.build.language_id import LanguageModelError
    from corpus.build.normalize import ChineseScriptError
    from corpus.classify.fasttext_model import ClassifierError
    from corpus.spark.session import SparkSetupError
    from corpus.tokenize.tokenizer import TokenizerError

    return (*USER_ERRORS, SparkSetupError, LanguageModelError, MissingTokenizerError, ChineseScriptError,
            ClassifierError, TokenizerError)


@app.command()
def synth(
    out: OutOpt,
    pages: Annotated[int, typer.Option(help="number of pages")] = 200,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    files: Annotated[int, typer.Option(help="number of WARC files")] = 2,
    from_html: Annotated[Path | None, typer.Option("--from-html", help="wrap real HTML pages")] = None,
) -> None:
    """Write a deterministic, labelled synthetic crawl (WARC files + truth.jsonl)."""
    from corpus.synth.crawl import write_synthetic_crawl

    if pages < 1 or files < 1:
        raise ConfigError("--pages and --files must be at least 1")
    summary = write_synthetic_crawl(Path(out), pages=pages, seed=seed, files=files, from_html=from_html)
    console.print(f"[green]wrote[/] {out}: {summary}")


@app.command()
def build(
    input: InputOpt,
    out: OutOpt,
    conf: ConfOpt = None,
    old_conf: OldConfOpt = None,
    set_: SetOpt = None,
    master: MasterOpt = None,
    limit: Annotated[int | None, typer.Option(help="only the first N input files")] = None,
    sample: Annotated[float | None, typer.Option(help="a deterministic fraction of the input files, e.g. 0.01")] = None,
    force: Annotated[bool, typer.Option("--force", help="rebuild every file if the run was built under another "
                                        "config")] = False,
) -> None:
    """WARC/WET/JSONL/Parquet → extraction → URL, language and quality filters → RUN/docs Parquet."""
    from corpus.spark.session import get_session
    from corpus.steps.build import run_build

    cfg = load_config(_config_path(conf, old_conf), set_)
    spark = get_session(master, "corpus build")
    stats = run_build(spark, input, out, cfg, limit=limit, sample=sample, events=_events(out, "build"), force=force)
    _print_funnel(stats)
    console.print(f"[green]docs[/] {out}/docs  [green]stats[/] {out}/stats/build.json")


@app.command()
def dedup(
    run: RunOpt = None,
    input: Annotated[str | None, typer.Option("--input", "-i", help="document Parquet (default RUN/docs)")] = None,
    out: StepOutOpt = None,
    conf: ConfOpt = None,
    old_conf: OldConfOpt = None,
    set_: SetOpt = None,
    master: MasterOpt = None,
) -> None:
    """Exact + MinHash LSH near-dedup with distributed connected components → RUN/dedup/{docs,removed},
    RUN/stats/dedup.json."""
    from corpus.spark.session import get_session
    from corpus.steps.dedup import run_dedup

    input, out = _step_folders("dedup", "dedup", run, out, input, "docs")
    cfg = load_config(_config_path(conf, old_conf), set_)
    spark = get_session(master, "corpus dedup")
    stats = run_dedup(spark, input, out, cfg.dedup, events=_events(run_root_of(out), "dedup"))
    console.print(
        f"dedup: {stats['documents_in']} in, {stats['exact_duplicates_removed']} exact and "
        f"{stats['near_duplicates_removed']} near duplicates removed, {stats['documents_kept']} kept "
        f"({stats['near_duplicate_clusters']} clusters) → {out}/docs"
    )


def _check_spacy_model(name: str | None) -> None:
    """On the driver, before any work: a missing pii.spacy_model is a clear error, not a download per executor."""
    if name:
        from corpus.pii.scrubber import check_spacy_model

        check_spacy_model(name)


@app.command()
def pii(
    run: RunOpt = None,
    input: Annotated[str | None, typer.Option("--input", "-i", help="documents (default RUN/dedup/docs)")] = None,
    out: StepOutOpt = None,
    conf: ConfOpt = None,
    old_conf: OldConfOpt = None,
    set_: SetOpt = None,
    master: MasterOpt = None,
) -> None:
    """Presidio PII detection and replacement → RUN/pii/{docs,removed} with pii_count, RUN/stats/pii.json."""
    from corpus.spark.session import get_session
    from corpus.steps.pii import run_pii

    input, out = _step_folders("pii", "pii", run, out, input, "dedup/docs")
    cfg = load_config(_config_path(conf, old_conf), set_)
    _check_spacy_model(cfg.pii.spacy_model)
    spark = get_session(master, "corpus pii")
    stats = run_pii(spark, input, out, cfg.pii, events=_events(run_root_of(out), "pii"))
    console.print(f"pii: {stats['replaced_spans']} spans replaced in {stats['documents_with_pii']} of "
                  f"{stats['documents']} documents {stats['per_entity']} → {out}/docs")


@app.command()
def tokenize(
    run: RunOpt = None,
    input: Annotated[list[str] | None, typer.Option("--input", "-i", help="document Parquet folder(s) "
                                                     "(default RUN/pii/docs)")] = None,
    out: StepOutOpt = None,
    conf: ConfOpt = None,
    old_conf: OldConfOpt = None,
    set_: SetOpt = None,
    master: MasterOpt = None,
    vocab_size: Annotated[int | None, typer.Option("--vocab-size", help="tokenizer vocabulary size")] = None,
    tokenizer: Annotated[str | None, typer.Option("--tokenizer", help="reuse this sentencepiece model")] = None,
) -> None:
    """Train/reuse a sentencepiece BPE tokenizer and write llm.c token shards + manifest.json."""
    from corpus.config import SourceConf
    from corpus.spark.session import get_session
    from corpus.steps.tokenize import run_tokenize

    cfg = load_config(_config_path(conf, old_conf), set_)
    tok = cfg.tokenize
    if vocab_size is not None:
        tok = tok.model_copy(update={"vocab_size": vocab_size})
    if tokenizer is not None:
        tok = tok.model_copy(update={"tokenizer": tokenizer})
    first, out = _step_folders("tokenize", "tokens", run, out, (input or [None])[0], "pii/docs")
    input = input or ([] if tok.sources else [first])
    sources = tok.sources or [SourceConf(name=f"input{i}" if len(input or []) > 1 else "main", path=p)
                              for i, p in enumerate(input or [])]
    if not sources:
        raise ConfigError("give --input or list tokenize.sources in the config")
    spark = get_session(master, "corpus tokenize")
    stats = run_tokenize(spark, sources, out, tok, events=_events(run_root_of(out), "tokenize"))
    console.print(f"tokens: train {stats['train']['tokens']:,}, val {stats['val']['tokens']:,} in "
                  f"{stats['shards']} shards → {out}/manifest.json")


@app.command()
def publish(
    run: Annotated[str, typer.Option("--run", help="run folder: reads RUN/pii/docs and RUN/tokens/tokenizer.model")],
    conf: ConfOpt = None,
    old_conf: OldConfOpt = None,
    set_: SetOpt = None,
    master: MasterOpt = None,
) -> None:
    """The final documents in FineWeb's schema (RUN/final/docs, with token_count) + RUN/final/extras by id."""
    from corpus.spark.session import get_session
    from corpus.steps.publish import run_publish

    cfg = load_config(_config_path(conf, old_conf), set_)
    spark = get_session(master, "corpus publish")
    stats = run_publish(spark, run, cfg.tokenize, events=_events(run, "publish"))
    console.print(f"publish: {stats['documents']:,} documents, {stats['tokens']:,} tokens → {run}/final/docs")


@app.command()
def run(
    input: InputOpt,
    out: OutOpt,
    conf: ConfOpt = None,
    old_conf: OldConfOpt = None,
    set_: SetOpt = None,
    master: MasterOpt = None,
    limit: Annotated[int | None, typer.Option(help="only the first N input files")] = None,
    sample: Annotated[float | None, typer.Option(help="a deterministic fraction of the input files, e.g. 0.01")] = None,
    force: Annotated[bool, typer.Option("--force", help="rebuild every file if the run was built under another "
                                        "config")] = False,
) -> None:
    """The whole chain: build → dedup → pii → tokenize → publish → report, skipping complete, current steps."""
    from corpus.spark.session import get_session
    from corpus.steps.chain import run_all

    cfg = load_config(_config_path(conf, old_conf), set_)
    _check_spacy_model(cfg.pii.spacy_model)
    spark = get_session(master, "corpus run")
    summary = run_all(spark, input, out, cfg, limit=limit, sample=sample, log=lambda m: None,
                      events=_events(out, "run"), force=force)
    for step, s in summary.items():
        console.print(f"{step:10s} in {s['in']:>8,}  " + (f"out {s['out']:>8,}" if "out" in s else
                      "tokens " + ", ".join(f"{k} {v:,}" for k, v in s["tokens"].items())))
    console.print(f"[green]done[/] {out}  report {out}/report.html")


@app.command()
def report(
    run: Annotated[str, typer.Argument(help="run folder (local path or URI)")],
    out: Annotated[str | None, typer.Option("--out", "-o", help="HTML file (default RUN/report.html)")] = None,
) -> None:
    """Self-contained HTML report of a run (funnel, languages, lengths, metrics, domains, dedup, PII, tokens)."""
    from corpus.report.page import default_out, write_report

    try:
        summary = write_report(run, out)
    except FileNotFoundError as e:
        raise ConfigError(str(e)) from e
    target = out or default_out(run)
    missing = [k for k, v in summary.items() if isinstance(v, dict) and v.get("status") == "missing"]
    console.print(f"[green]report[/] {target} (+ .json)" + (f"  sections missing: {', '.join(missing)}"
                                                           if missing else ""))


classifier_app = typer.Typer(no_args_is_help=True, help="fastText document classifiers (DCLM's recipe).")
app.add_typer(classifier_app, name="classifier")
FilesOpt = "JSONL/Parquet file, folder, glob or run folder (its docs/), local or s3://; repeatable"


@classifier_app.command("train")
def classifier_train(
    positive: Annotated[list[str], typer.Option("--positive", help=FilesOpt)],
    negative: Annotated[list[str], typer.Option("--negative", help=FilesOpt)],
    out: Annotated[str, typer.Option("--out", "-o", help="MODEL.bin (its card MODEL.json is written beside it)")],
    text_field: Annotated[str, typer.Option("--text-field", help="the records' text field")] = "text",
    lang: Annotated[str, typer.Option(help="language of the texts: zh and ja are split into characters")] = "en",
    seed: Annotated[int, typer.Option(help="seed of balancing, split and fastText")] = 0,
    holdout: Annotated[float, typer.Option(help="held-out fraction of each class, for the card's metrics")] = 0.1,
    max_per_class: Annotated[int | None, typer.Option("--max-per-class", help="at most N documents per class")]
    = None,
    epoch: Annotated[int, typer.Option(help="fastText epochs")] = 5,
    lr: Annotated[float, typer.Option(help="fastText learning rate")] = 0.1,
    dim: Annotated[int, typer.Option(help="fastText vector size")] = 100,
    bucket: Annotated[int, typer.Option(help="fastText hash buckets of the word bigrams")] = 200_000,
) -> None:
    """Train a positive-vs-negative fastText classifier (word bigrams, DCLM preprocessing, seeded, balanced)."""
    from corpus.classify.commands import train

    card = train(positive, negative, out, text_field=text_field, lang=lang, seed=seed, holdout=holdout,
                 max_per_class=max_per_class, epoch=epoch, lr=lr, dim=dim, bucket=bucket)
    held, counts = card["heldout"], card["counts"]
    console.print(f"[green]model[/] {out} (+ card {out.removesuffix('.bin')}.json)  per class {counts['per_class']:,}, "
                  f"train {counts['train']:,}, held out {counts['heldout']:,}")
    console.print(f"held-out precision {held['precision']}, recall {held['recall']}, F1 {held['f1']}, "
                  f"ROC AUC {held['roc_auc']}")


@classifier_app.command("score")
def classifier_score(
    model: Annotated[str, typer.Option("--model", "-m", help="MODEL.bin from `corpus classifier train`")],
    input: Annotated[list[str], typer.Option("--input", "-i", help=FilesOpt)],
    out: Annotated[str, typer.Option("--out", "-o", help="SCORES.parquet (id, score), local or s3://")],
    text_field: Annotated[str, typer.Option("--text-field", help="the records' text field")] = "text",
    id_field: Annotated[str, typer.Option("--id-field", help="the records' id field (kept as given)")] = "id",
) -> None:
    """Score documents: id and P(positive class), one row per text, in input order."""
    from corpus.classify.commands import score

    summary = score(model, input, out, text_field=text_field, id_field=id_field)
    console.print(f"[green]scores[/] {out}: {summary['documents']:,} documents from {summary['files']} file(s), "
                  f"mean score {summary['mean_score']}")


def _print_funnel(stats: dict) -> None:
    from rich.table import Table

    table = Table(title="build funnel")
    for col in ("stage", "in", "out", "top reasons"):
        table.add_column(col)
    for name, st in stats["stages"].items():
        reasons = sorted(st["removed"].items(), key=lambda kv: -kv[1])[:3]
        table.add_row(name, str(st["in"]), str(st["out"]), ", ".join(f"{r} {n}" for r, n in reasons))
    console.print(table)
    console.print(f"documents in {stats['documents_in']}, kept {stats['documents_kept']}, "
                  f"files {stats['files']} ({stats['files_skipped_as_done']} already done)")


@app.command()
def diff(
    run_a: Annotated[str, typer.Argument(help="first run folder (local path or URI)")],
    run_b: Annotated[str, typer.Argument(help="second run folder (local path or URI)")],
    out: Annotated[str, typer.Option("--out", "-o", help="HTML file (JSON beside it)")] = "diff.html",
) -> None:
    """Compare two runs: funnel, keep rates, tokens, time side by side, and (shared ids) the documents that moved."""
    from corpus.report.diff import write_diff

    try:
        d = write_diff(run_a, run_b, out)
    except FileNotFoundError as e:
        raise ConfigError(str(e)) from e
    by = d["by_id"]
    moved = (f"kept only in A {by['kept_in_a_not_b']['count']:,}, only in B {by['kept_in_b_not_a']['count']:,}"
             if by["status"] == "ok" else "no shared ids: by distribution only")
    console.print(f"[green]diff[/] {out} (+ .json)  {moved}")


def main(argv: list[str] | None = None) -> None:
    try:
        app(args=argv, standalone_mode=False)
    except _user_errors() as e:
        console.print(f"[red]error:[/] {e}")
        sys.exit(2)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except Exception as e:  # click usage errors
        import click

        if isinstance(e, click.ClickException):
            e.show()
            sys.exit(e.exit_code)
        raise


if __name__ == "__main__":
    main()
