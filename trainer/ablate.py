"""`trainer ablate --config ABLATION.yaml --out DIR`: does a corpus variant train a better model? FineWeb's
ablation in one command: one raw pool, N arms (corpus steps + `--set` overrides), one tokenizer, the same model
and exactly the same token budget for every arm, several seeds, `trainer eval` along the way.

    DIR/pool/            the pool slice (when pool.max_documents is set) and the tokenizer's sample
    DIR/tokenizer.model  one sentencepiece model, trained once on a neutral sample of the raw pool
    DIR/arms/ARM/run/    the arm's corpus run folder (build → [dedup] → [pii] → tokenize), its markers and stats
    DIR/arms/ARM/seedS/  its training run (trainer/pretrain.py) and eval/step_NNNNNNN.json per checkpoint
    DIR/results.json     every number per arm, seed and checkpoint, final mean ± std, pairs vs seed noise
    DIR/report.html      curves, the final table, the pairs, the arms' funnels (trainer/ablate_report.py)

The corpus steps run in this process on one Spark session, each skipped when its marker (corpus.steps.base)
holds the fingerprint it would have now; a training is skipped when its last checkpoint is at the final step,
and resumed from its latest checkpoint otherwise; an evaluation is skipped when its JSON exists. A rerun after
a crash therefore does only what is missing. This is the one trainer module that drives corpus.steps (and so
Spark): the orchestration of both halves lives here, and `corpus` still never imports `trainer`.

Every arm trains for the same number of optimizer steps of the same shape, so on the same number of tokens;
an arm with fewer training tokens than the budget repeats its data (the shard stream starts another epoch),
and the results say how many epochs it saw.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from corpus.yamlconf import apply_override, read_mapping, validate

STEPS = ("build", "dedup", "pii", "tokenize")


class AblationError(ValueError):
    """A configuration or an arm that cannot give a fair comparison; the CLI prints it without a traceback."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PoolConf(_Strict):
    inputs: list[str]                       # files / globs the build reads (JSONL for the tokenizer sample)
    max_documents: int | None = Field(None, ge=1)   # the first N JSONL records only (a CI-sized slice)


class ArmConf(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.+-]+$")
    steps: list[Literal["build", "dedup", "pii", "tokenize"]] = ["build", "tokenize"]
    set: list[str] = []                      # pipeline overrides, as `corpus run --set`


class TokenizerConf(_Strict):
    vocab_size: int = Field(8192, ge=300)
    sample_chars: int = Field(20_000_000, ge=1000)  # pool documents sampled by a hash of their position


class TrainConf(_Strict):
    config: str                              # a conf/train/*.yaml (relative to the ablation file, or the repo)
    set: list[str] = []                      # trainer overrides for every arm and seed
    seeds: list[int] = Field(min_length=1)
    tokens: int = Field(ge=1)                # the budget per arm (rounded down to whole optimizer steps)
    allow_repeat: bool = True                # False: a budget above an arm's training tokens is an error


class TaskConf(_Strict):
    path: str
    delimiter: str = " "
    limit: int | None = Field(None, ge=1)


class TextConf(_Strict):
    path: str
    max_chars: int | None = Field(None, ge=1)   # the file's first N characters (CI-sized runs)


class EvalConf(_Strict):
    points: int = Field(4, ge=1)             # evaluations per training, evenly spaced, the last at the end
    tasks: list[TaskConf] = []
    texts: list[TextConf] = []
    batch_size: int = Field(32, ge=1)


class AblationConf(_Strict):
    name: str = "ablation"
    pipeline: str | None = None              # pipeline YAML for every arm (default conf/pipeline.yaml)
    pool: PoolConf
    arms: list[ArmConf] = Field(min_length=2)
    tokenizer: TokenizerConf = TokenizerConf()
    train: TrainConf
    eval: EvalConf = EvalConf()


def load_ablation(path: str | Path, overrides: list[str] | None = None) -> tuple[AblationConf, Path]:
    """The validated config and the folder its relative paths are read from."""
    path = Path(path)
    data = read_mapping(path, AblationError)
    for assignment in overrides or []:
        apply_override(data, assignment, AblationError)
    conf = validate(AblationConf, data, f"invalid ablation configuration {path}", AblationError)
    names = [a.name for a in conf.arms]
    if len(set(names)) != len(names):
        raise AblationError(f"{path}: arm names must differ: {names}")
    for arm in conf.arms:
        if arm.steps[0] != "build" or arm.steps[-1] != "tokenize" or len(set(arm.steps)) != len(arm.steps) \
                or arm.steps != sorted(arm.steps, key=STEPS.index):
            raise AblationError(f"arm {arm.name}: steps must start with build, end with tokenize and keep the "
                                f"chain's order {list(STEPS)}; got {arm.steps}")
    if not conf.eval.tasks and not conf.eval.texts:
        raise AblationError(f"{path}: eval names no task and no text: nothing would compare the arms")
    return conf, path.resolve().parent


def resolve_path(p: str, base: Path) -> Path:
    """A path as written, else relative to the config's folder, else to the repository (conf/ablate/ → ../..)."""
    for candidate in (Path(p), base / p, base.parent.parent / p):
        if candidate.exists():
            return candidate.resolve()
    raise AblationError(f"{p}: not found (as given, beside the config in {base}, or under {base.parent.parent})")


# -- pool and tokenizer -----------------------------------------------------------------------------------------------
def _open_text(path: Path):
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else path.open(encoding="utf-8")


def _pool_files(conf: AblationConf, base: Path) -> list[Path]:
    files = []
    for spec in conf.pool.inputs:
        matches = sorted(Path().glob(spec)) if any(c in spec for c in "*?[") else [resolve_path(spec, base)]
        files += [m.resolve() for m in matches]
    if not files:
        raise AblationError(f"pool.inputs {conf.pool.inputs}: no files")
    return files


def prepare_pool(conf: AblationConf, base: Path, out: Path, log) -> list[str]:
    """The build's inputs: the pool files, or (with max_documents) one JSONL slice of their first records,
    written once (the same bytes on every run, so the build's fingerprint and markers stay current)."""
    files = _pool_files(conf, base)
    if conf.pool.max_documents is None:
        return [str(f) for f in files]
    target = out / "pool" / "pool.jsonl"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        n, tmp = 0, target.with_suffix(".tmp")
        with tmp.open("w", encoding="utf-8") as w:
            for f in files:
                with _open_text(f) as r:
                    for line in r:
                        if n >= conf.pool.max_documents:
                            break
                        if line.strip():
                            w.write(line if line.endswith("\n") else line + "\n")
                            n += 1
        tmp.rename(target)
        log(f"pool: the first {n:,} records of {len(files)} file(s) → {target}")
    return [str(target)]


def _pool_texts(inputs: list[str]):
    for f in inputs:
        if not f.endswith((".jsonl", ".jsonl.gz", ".json", ".json.gz")):
            raise AblationError(f"{f}: the tokenizer's neutral sample is read from JSONL pools (text field); "
                                "convert the pool to JSONL first")
        with _open_text(Path(f)) as r:
            for lineno, line in enumerate(r):
                try:
                    text = json.loads(line).get("text")
                except (json.JSONDecodeError, AttributeError):
                    continue  # the build counts bad records; the sample just leaves them out
                if isinstance(text, str) and text.strip():
                    yield f"{f}:{lineno}", text


def train_pool_tokenizer(conf: AblationConf, inputs: list[str], out: Path, log) -> Path:
    """One tokenizer for every arm, trained on the raw pool (before any filter), so that no arm's data shaped
    the vocabulary and losses compare. Documents are taken by a hash of their position, up to sample_chars."""
    from corpus.tokenize.tokenizer import train_tokenizer

    model = out / "tokenizer.model"
    if model.exists():
        return model
    scored = sorted((hashlib.sha256(key.encode()).hexdigest(), key, text) for key, text in _pool_texts(inputs))
    sample, chars = [], 0
    for _, _, text in scored:
        if chars >= conf.tokenizer.sample_chars:
            break
        line = " ".join(text.split("\n"))
        sample.append(line)
        chars += len(line)
    if not sample:
        raise AblationError(f"the pool {inputs} holds no text to train the tokenizer on")
    (out / "pool").mkdir(parents=True, exist_ok=True)
    (out / "pool" / "tokenizer-sample.txt").write_text("\n".join(sample) + "\n", encoding="utf-8")
    tmp = train_tokenizer(out / "pool" / "tokenizer-sample.txt", out / "pool" / "tokenizer", conf.tokenizer.vocab_size)
    tmp.replace(model)
    log(f"tokenizer: {conf.tokenizer.vocab_size} pieces from {len(sample):,} pool documents ({chars:,} chars)")
    return model


# -- the corpus chain of one arm ---------------------------------------------------------------------------------------
def run_arm_corpus(spark, arm: ArmConf, conf: AblationConf, base: Path, inputs: list[str], tokenizer: Path,
                   run: Path, log) -> dict:
    """build → [dedup] → [pii] → tokenize into RUN, each step skipped when its marker is current. Returns the
    tokenize stats. An arm left with no documents is an error (it cannot train)."""
    from corpus.config import ConfigError, SourceConf, load_config
    from corpus.steps.build import BuildStep
    from corpus.steps.dedup import DedupStep
    from corpus.steps.events import EventLog
    from corpus.steps.pii import PiiStep
    from corpus.steps.tokenize import TokenizeStep

    pipeline = resolve_path(conf.pipeline, base) if conf.pipeline else None
    try:
        cfg = load_config(pipeline, [*arm.set, f"tokenize.tokenizer={tokenizer}"])
    except ConfigError as e:
        raise AblationError(f"arm {arm.name}: {e}") from None
    run.mkdir(parents=True, exist_ok=True)
    events = EventLog(str(run))
    docs, r = str(run / "docs"), str(run)

    def step(s, kept_key: str | None):
        if s.is_complete():
            log(f"{arm.name}: {s.name} current (marker), skipped")
            stats = s.stats()
        else:
            log(f"{arm.name}: {s.name}")
            stats = s.execute(spark)
        if kept_key is not None and not stats[kept_key]:
            raise AblationError(f"arm {arm.name}: its {s.name} step kept no documents (see {run}/stats/"
                                f"{s.name}.json); loosen its --set overrides or enlarge the pool")
        return stats

    step(BuildStep(r, inputs, cfg, events=events), "documents_kept")
    if "dedup" in arm.steps:
        step(DedupStep(r, docs, cfg.dedup, events), "documents_kept")
        docs = str(run / "dedup" / "docs")
    if "pii" in arm.steps:
        step(PiiStep(r, docs, cfg.pii, events=events), "documents")
        docs = str(run / "pii" / "docs")
    return step(TokenizeStep(r, [SourceConf(name="main", path=docs)], cfg.tokenize, events), None)


# -- training and evaluation -------------------------------------------------------------------------------------------
def train_config(conf: AblationConf, base: Path, seed: int, points: int, max_steps: int):
    from trainer.config import TrainConfigError, load_config

    interval = max(1, max_steps // points)
    overrides = [*conf.train.set, f"train.seed={seed}", f"train.max_steps={max_steps}",
                 f"train.ckpt_interval={interval}", f"train.eval_interval={interval}",
                 f"train.keep_last={points + 2}", "train.tensorboard=false"]
    try:
        return load_config(resolve_path(conf.train.config, base), overrides)
    except TrainConfigError as e:
        raise AblationError(f"train: {e}") from None


def steps_for_budget(cfg, tokens: int) -> tuple[int, int]:
    """(optimizer steps, tokens per step) for a budget; the budget trained is steps × tokens per step."""
    per_step = cfg.train.batch_size * cfg.model.block_size * cfg.train.grad_accum
    steps = tokens // per_step
    if steps < 1:
        raise AblationError(f"train.tokens={tokens} is less than one optimizer step ({per_step} tokens)")
    return steps, per_step


def train_and_eval(conf: AblationConf, base: Path, data: Path, out: Path, seed: int, max_steps: int,
                   tasks: list[tuple[str, str, int | None]], texts: list[Path], log) -> list[dict]:
    """Pretrain one (arm, seed) unless its last checkpoint is the final step, then evaluate each checkpoint
    that has no eval JSON yet. Returns the checkpoints' records in step order."""
    from trainer.benchmarks import load_scoring_model, run_benchmarks
    from trainer.checkpoint import latest_checkpoint, list_checkpoints, read_state, step_of
    from trainer.pretrain import pretrain

    cfg = train_config(conf, base, seed, conf.eval.points, max_steps)
    latest = latest_checkpoint(out) if out.exists() else None
    if latest is None or step_of(latest) < max_steps:
        log(f"{out.parent.name} seed {seed}: training {max_steps} steps"
            + (f" (resuming at step {step_of(latest)})" if latest else ""))
        pretrain(cfg, data, out, resume=latest is not None, quiet=True)
    records = []
    for ckpt in list_checkpoints(out):
        step = step_of(ckpt)
        target = out / "eval" / f"step_{step:07d}.json"
        if not target.exists():
            model, sp = load_scoring_model(ckpt)
            r = {"step": step, "tokens": read_state(ckpt)["tokens_seen"],
                 **run_benchmarks(model, sp, [(p, d) for p, d, _ in tasks], texts, None, conf.eval.batch_size)}
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(r, indent=1))
        records.append(json.loads(target.read_text()))
    return records


def eval_inputs(conf: AblationConf, base: Path, out: Path) -> tuple[list[tuple[str, str, int | None]], list[Path]]:
    """Task files (sliced to `limit` examples into DIR/eval-data when asked) and text files (first max_chars)."""
    data = out / "eval-data"
    tasks = []
    for t in conf.eval.tasks:
        path = resolve_path(t.path, base)
        if t.limit is not None:
            data.mkdir(parents=True, exist_ok=True)
            lines = [ln for ln in path.read_text(encoding="utf-8").splitlines(keepends=True) if ln.strip()]
            sliced = data / path.name
            sliced.write_text("".join(lines[:t.limit]), encoding="utf-8")
            path = sliced
        tasks.append((str(path), t.delimiter, t.limit))
    texts = []
    for t in conf.eval.texts:
        path = resolve_path(t.path, base)
        if t.max_chars is not None:
            data.mkdir(parents=True, exist_ok=True)
            sliced = data / path.name
            sliced.write_text(path.read_text(encoding="utf-8")[:t.max_chars], encoding="utf-8")
            path = sliced
        texts.append(path)
    from trainer.benchmarks import load_task

    for p, d, _ in tasks:
        load_task(p, d)  # a task file in another format stops the ablation now, not after hours of training
    return tasks, texts


def flatten(record: dict) -> dict[str, float]:
    """One checkpoint's metrics as {"piqa/acc": ..., "wikitext-2-raw-test/bpb": ..., "mean/logprob_gold": ...}."""
    flat = {}
    for name, m in record.get("tasks", {}).items():
        for key in ("acc", "acc_norm", "logprob_gold"):
            flat[f"{name}/{key}"] = m[key]
    if record.get("tasks"):
        flat["mean/logprob_gold"] = sum(m["logprob_gold"] for m in record["tasks"].values()) / len(record["tasks"])
    for name, m in record.get("text", {}).items():
        flat[f"{name}/bpb"], flat[f"{name}/loss"] = m["bpb"], m["loss"]
    return flat


def run_ablation(config: str | Path, out: str | Path, overrides: list[str] | None = None, spark=None,
                 log=print) -> dict:
    from trainer.ablate_report import summarize, write_ablation_report

    conf, base = load_ablation(config, overrides)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tasks, texts = eval_inputs(conf, base, out)
    inputs = prepare_pool(conf, base, out, log)
    tokenizer = train_pool_tokenizer(conf, inputs, out, log)
    if spark is None:
        from corpus.spark.session import get_session

        spark = get_session(None, "trainer ablate")

    # every arm's corpus first: a bad arm or budget stops the ablation before any training
    cfg0 = train_config(conf, base, conf.train.seeds[0], conf.eval.points, 1)
    max_steps, per_step = steps_for_budget(cfg0, conf.train.tokens)
    budget = max_steps * per_step
    arms: dict[str, dict] = {}
    for arm in conf.arms:
        run = out / "arms" / arm.name / "run"
        stats = run_arm_corpus(spark, arm, conf, base, inputs, tokenizer, run, log)
        train_tokens = stats["splits"]["train"]["tokens"]
        manifest = json.loads((run / "tokens" / "manifest.json").read_text())
        arms[arm.name] = {"run": str(run), "steps": arm.steps, "set": arm.set, "train_tokens": train_tokens,
                          "tokenizer_sha256": manifest["tokenizer"].get("sha256"),
                          "val_tokens": stats["splits"].get("val", {}).get("tokens", 0),
                          "epochs": budget / train_tokens if train_tokens else None}
    short = {n: a["train_tokens"] for n, a in arms.items() if a["train_tokens"] < budget}
    if short and not conf.train.allow_repeat:
        raise AblationError(f"the budget of {budget:,} tokens exceeds the training tokens of arm(s) "
                            + ", ".join(f"{n} ({t:,})" for n, t in short.items())
                            + " and train.allow_repeat is false: lower train.tokens, enlarge the pool, or allow "
                              "repetition (the report then states each arm's epochs)")
    for name, a in arms.items():
        if a["train_tokens"] <= cfg0.model.block_size:
            raise AblationError(f"arm {name}: {a['train_tokens']} training tokens do not fill one window of "
                                f"block_size {cfg0.model.block_size}")
    log(f"budget: {budget:,} tokens per arm ({max_steps} steps of {per_step:,}); epochs "
        + ", ".join(f"{n} {a['epochs']:.2f}" for n, a in arms.items()))

    for arm in conf.arms:
        a = arms[arm.name]
        a["seeds"] = {}
        for seed in conf.train.seeds:
            records = train_and_eval(conf, base, Path(a["run"]) / "tokens", out / "arms" / arm.name / f"seed{seed}",
                                     seed, max_steps, tasks, texts, log)
            a["seeds"][str(seed)] = [{"step": r["step"], "tokens": r["tokens"], "metrics": flatten(r),
                                      "tasks": r["tasks"], "text": r["text"]} for r in records]
    results = {"name": conf.name, "config": conf.model_dump(), "budget_tokens": budget, "steps": max_steps,
               "tokens_per_step": per_step, "tokenizer": str(tokenizer), "arms": arms}
    results.update(summarize(results))
    write_ablation_report(results, str(out / "report.html"))  # adds the arms' funnels to results
    (out / "results.json").write_text(json.dumps(results, indent=1, sort_keys=True))
    log(f"results {out / 'results.json'}, report {out / 'report.html'}")
    return results
