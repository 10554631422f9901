"""The `trainer` command line: pretrain, generate, export.

    trainer pretrain --config conf/train/tiny.yaml --data RUN/tokens --out RUNS/x [--resume] [--max-steps N]
                     [--set train.lr=1e-3 ...]
    torchrun --nproc_per_node 2 -m trainer.cli pretrain ...          (DDP; gloo on CPU, nccl on CUDA)
    trainer distill --teacher RUNS/big --config conf/train/tiny.yaml --data RUN/tokens --out RUNS/student
    trainer generate --ckpt RUNS/x [--prompt TEXT] [--max-new-tokens N --temperature T --top-k K --top-p P]
    trainer export --ckpt RUNS/x --out EXPORT_DIR [--format hf | --format peft --base-model HF_DIR]
    trainer import --hf HF_LLAMA_DIR --out EXPORT_DIR
    trainer generate --ckpt RUNS/sft --chat --prompt "Hi"  |  trainer chat --ckpt RUNS/sft
    trainer serve --ckpt RUNS/sft --host 127.0.0.1 --port 8000 [--api-key KEY | env TRAINER_API_KEY]
    trainer sft --base RUNS/x --data alpaca.jsonl --out RUNS/sft [--pack] [--lora-rank 8] [--resume]
    trainer reward --base RUNS/sft --data hh.jsonl --out RUNS/rm [--val-fraction 0.1] [--lora-rank 8]
    trainer merge-lora --ckpt RUNS/sft --out EXPORT_DIR
    trainer dpo --base RUNS/sft --data hh.jsonl --out RUNS/dpo [--ref CKPT] [--precompute-ref] [--lora-rank 8]
    trainer ppo --policy RUNS/sft --reward-model RUNS/rm | --reward-fn count_token:PIECE --prompts FILE --out RUNS/ppo
    trainer eval --ckpt RUNS/ppo --reward-model RUNS/rm --prompts FILE [--n N --max-new-tokens M --seed S]
    trainer ablate --config conf/ablate/blogs-tiny.yaml --out RUNS/ablate [--set train.seeds=[1,2,3]]
    trainer eval --ckpt RUNS/x --task piqa.jsonl [--task ...] --text wiki.txt [--text ...] --out RESULT.json
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Lean GPT pretraining on corpus token shards.")


def _user_errors() -> tuple[type[Exception], ...]:
    from corpus.tokenize.shards import ShardError
    from corpus.tokenize.tokenizer import TokenizerError
    from trainer.ablate import AblationError
    from trainer.benchmarks import BenchmarkDataError
    from trainer.checkpoint import CheckpointError
    from trainer.config import TrainConfigError
    from trainer.posttrain import PostTrainDataError

    return (ShardError, TokenizerError, CheckpointError, TrainConfigError, FloatingPointError, FileNotFoundError,
            PostTrainDataError, BenchmarkDataError, AblationError)


@app.command()
def pretrain(
    config: Annotated[Path, typer.Option("--config", "-c", help="YAML under conf/train/")],
    data: Annotated[str, typer.Option("--data", help="local token folder with manifest.json (e.g. RUN/tokens)")],
    out: Annotated[Path, typer.Option("--out", "-o", help="run folder for checkpoints and logs")],
    resume: Annotated[bool, typer.Option("--resume", help="continue from the latest checkpoint in --out")] = False,
    max_steps: Annotated[int | None, typer.Option("--max-steps", help="override train.max_steps")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="override, e.g. train.lr=1e-3")] = None,
    init_from: Annotated[Path | None, typer.Option(
        "--init-from", help="start from these weights (ours, or a transformers Llama/Qwen3 folder); the shards "
        "must use its tokenizer.model. Pass it again with --resume")] = None,
) -> None:
    """Train a GPT on the train split, evaluating on val; checkpoints go to OUT/ckpt/step_NNNNNNN/."""
    _pretrain(config, data, out, resume, max_steps, set_, init_from=init_from)


@app.command()
def distill(
    teacher: Annotated[Path, typer.Option(
        "--teacher", help="the teacher: our checkpoint, run folder or export, or a transformers Llama/Qwen3 folder; "
        "its tokenizer.model must be the shards'")],
    config: Annotated[Path, typer.Option("--config", "-c", help="the student's YAML (model, train, distill)")],
    data: Annotated[str, typer.Option("--data", help="local token folder with manifest.json (e.g. RUN/tokens)")],
    out: Annotated[Path, typer.Option("--out", "-o", help="run folder for checkpoints and logs")],
    resume: Annotated[bool, typer.Option("--resume", help="continue from the latest checkpoint in --out")] = False,
    max_steps: Annotated[int | None, typer.Option("--max-steps", help="override train.max_steps")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="override, e.g. distill.alpha=0.7 distill.temperature=2")] = None,
) -> None:
    """Pretrain a student on the token shards with loss (1-alpha)*CE + alpha*T^2*KL(teacher || student); the teacher
    runs in inference mode. Settings: the YAML's `distill:` section (alpha 0.5, temperature 1 by default)."""
    _pretrain(config, data, out, resume, max_steps, set_, teacher=teacher)


def _pretrain(config: Path, data: str, out: Path, resume: bool, max_steps: int | None, set_: list[str] | None,
              init_from: Path | None = None, teacher: Path | None = None) -> None:
    from trainer.config import load_config
    from trainer.pretrain import pretrain as run

    overrides = list(set_ or [])
    if max_steps is not None:
        overrides.append(f"train.max_steps={max_steps}")
    if "://" in data and not data.startswith("file://"):
        # Shards are memory-mapped (random access, no copy in RAM): an object store cannot be mapped.
        from trainer.config import TrainConfigError

        raise TrainConfigError(
            f"--data {data}: the trainer memory-maps token shards and needs a local copy of the folder; copy it "
            f"first, e.g. `aws s3 cp --recursive {data} runs/tokens` (or gsutil / hdfs dfs -get), then "
            "--data runs/tokens")
    cfg = load_config(config, overrides)
    from trainer.distributed import shutdown_distributed

    try:
        summary = run(cfg, Path(data.removeprefix("file://")), out, resume=resume, init_from=init_from,
                      teacher_from=teacher)
    except BaseException:
        shutdown_distributed(finished=False)
        raise
    shutdown_distributed()
    if int(os.environ.get("RANK", "0")) == 0:
        val = "n/a" if summary["val_loss"] is None else f"{summary['val_loss']:.4f}"
        print(f"done: step {summary['step']}, train loss {summary['train_loss']:.4f}, val loss {val}, "
              f"{summary['tokens_per_sec']:,.0f} tok/s, mfu {100 * summary['mfu']:.2f}%")


# The sampling options `generate` and `chat` share.
MaxNewOpt = Annotated[int, typer.Option("--max-new-tokens")]
TemperatureOpt = Annotated[float, typer.Option("--temperature", help="0 = greedy")]
TopKOpt = Annotated[int | None, typer.Option("--top-k")]
TopPOpt = Annotated[float | None, typer.Option("--top-p")]
SeedOpt = Annotated[int | None, typer.Option("--seed")]
DeviceOpt = Annotated[str, typer.Option("--device")]


@app.command()
def generate(
    ckpt: Annotated[Path, typer.Option("--ckpt", help="checkpoint folder, export folder, or run folder (latest)")],
    prompt: Annotated[str, typer.Option("--prompt", "-p", help="text to continue")] = "",
    max_new_tokens: MaxNewOpt = 200,
    temperature: TemperatureOpt = 0.8,
    top_k: TopKOpt = 200,
    top_p: TopPOpt = None,
    seed: SeedOpt = None,
    device: DeviceOpt = "cpu",
    chat: Annotated[bool, typer.Option("--chat", help="PROMPT is a user message; print the assistant's reply")
                    ] = False,
    system: Annotated[str | None, typer.Option("--system", help="--chat: a system message first")] = None,
) -> None:
    """Continue PROMPT with the model, through the tokenizer stored with the checkpoint (--chat: reply to it
    through the chat template)."""
    from trainer.generate import generate_text

    if max_new_tokens < 1:
        raise typer.BadParameter("--max-new-tokens must be at least 1")
    if top_p is not None and not 0 < top_p <= 1:
        raise typer.BadParameter("--top-p must be in (0, 1]")
    if chat:
        from trainer.chat_session import chat_text

        return print(chat_text(ckpt, prompt, system, max_new_tokens, temperature, top_k, top_p, seed, device))
    print(generate_text(ckpt, prompt, max_new_tokens, temperature, top_k, top_p, seed, device))


@app.command()
def export(
    ckpt: Annotated[Path, typer.Option("--ckpt", help="checkpoint folder or run folder (latest)")],
    out: Annotated[Path, typer.Option("--out", "-o", help="folder for config.json + model.safetensors")],
    format_: Annotated[str, typer.Option("--format", help="ours | hf (transformers Llama) | peft (LoRA adapter)")
                       ] = "ours",
    base_model: Annotated[str | None, typer.Option("--base-model", help="peft: the HF export of the base, recorded "
                                                   "as base_model_name_or_path")] = None,
) -> None:
    """Write a plain inference folder: config.json, model.safetensors, tokenizer.model (or an HF/PEFT folder)."""
    if format_ != "ours":
        return _export_hf(ckpt, out, format_, base_model)
    from trainer.checkpoint import export as run

    print(f"exported {run(ckpt, out)}")


def _posttrain_overrides(set_: list[str] | None, max_steps: int | None, lora_rank: int | None,
                         lora_alpha: float | None, lora_targets: str | None) -> list[str]:
    """--set plus the shortcut options, as overrides of the config file's train section."""
    overrides = list(set_ or [])
    for key, value in (("max_steps", max_steps), ("lora_rank", lora_rank), ("lora_alpha", lora_alpha)):
        if value is not None:
            overrides.append(f"train.{key}={value}")
    if lora_targets is not None:
        overrides.append(f"train.lora_targets=[{lora_targets}]")
    return overrides


LoraRank = Annotated[int | None, typer.Option("--lora-rank", help="train LoRA adapters of this rank (0 = full)")]
LoraAlpha = Annotated[float | None, typer.Option("--lora-alpha", help="LoRA scale numerator (scale = alpha/rank)")]
LoraTargets = Annotated[str | None, typer.Option("--lora-targets", help="comma-separated: qkv,proj,up,down")]
SetOption = Annotated[list[str] | None, typer.Option("--set", help="override, e.g. train.lr=1e-3 or sft.pack=true")]
OutOption = Annotated[Path, typer.Option("--out", "-o", help="run folder for checkpoints and logs")]
ResumeOption = Annotated[bool, typer.Option("--resume", help="continue from the latest checkpoint in --out")]
MaxStepsOption = Annotated[int | None, typer.Option("--max-steps", help="override train.max_steps")]


@app.command()
def sft(
    base: Annotated[Path, typer.Option("--base", help="pretraining (or SFT) checkpoint, run folder or export")],
    data: Annotated[Path, typer.Option("--data", help="Alpaca / ShareGPT / messages JSON or JSONL")],
    out: OutOption,
    config: Annotated[Path, typer.Option("--config", "-c")] = Path("conf/train/sft.yaml"),
    val_data: Annotated[Path | None, typer.Option("--val-data", help="held-out conversations")] = None,
    pack: Annotated[bool, typer.Option("--pack", help="pack conversations into full rows")] = False,
    resume: ResumeOption = False,
    max_steps: MaxStepsOption = None,
    lora_rank: LoraRank = None,
    lora_alpha: LoraAlpha = None,
    lora_targets: LoraTargets = None,
    set_: SetOption = None,
) -> None:
    """Supervised fine-tuning: loss on assistant tokens only."""
    from trainer.posttrain import load_method_config
    from trainer.sft import SFTConf, train_sft

    overrides = _posttrain_overrides(set_, max_steps, lora_rank, lora_alpha, lora_targets)
    if pack:
        overrides.append("sft.pack=true")
    conf, sconf = load_method_config(config, overrides, "sft", SFTConf)
    s = train_sft(conf, sconf, base, data, out, val_data=val_data, resume=resume)
    val = "n/a" if not s["val"] else f"{s['val']['loss']:.4f}"
    print(f"done: step {s['step']}, train loss {s['train']['loss']:.4f}, val loss {val}, {s['rows']} rows "
          f"({s['truncated']} truncated), skipped {s['skipped'] or 'none'}, {s['tokens_per_sec']:,.0f} tok/s")


@app.command()
def reward(
    base: Annotated[Path, typer.Option("--base", help="pretraining or SFT checkpoint, run folder or export")],
    data: Annotated[Path, typer.Option("--data", help="prompt/chosen/rejected or hh-rlhf JSON or JSONL")],
    out: OutOption,
    config: Annotated[Path, typer.Option("--config", "-c")] = Path("conf/train/reward.yaml"),
    val_fraction: Annotated[float | None, typer.Option("--val-fraction", help="held-out pairs")] = None,
    resume: ResumeOption = False,
    max_steps: MaxStepsOption = None,
    lora_rank: LoraRank = None,
    lora_alpha: LoraAlpha = None,
    lora_targets: LoraTargets = None,
    set_: SetOption = None,
) -> None:
    """Reward model: GPT trunk + scalar head, Bradley-Terry loss, held-out pairwise accuracy."""
    from trainer.posttrain import load_method_config
    from trainer.reward import RewardConf, train_reward

    overrides = _posttrain_overrides(set_, max_steps, lora_rank, lora_alpha, lora_targets)
    if val_fraction is not None:
        overrides.append(f"reward.val_fraction={val_fraction}")
    conf, rconf = load_method_config(config, overrides, "reward", RewardConf)
    s = train_reward(conf, rconf, base, data, out, resume=resume)
    val = "n/a" if not s["val"] else f"{s['val']['accuracy']:.3f} (loss {s['val']['loss']:.4f})"
    print(f"done: step {s['step']}, train loss {s['train']['loss']:.4f}, held-out accuracy {val} on "
          f"{s['val_pairs']} pairs, skipped {s['skipped'] or 'none'}, {s['tokens_per_sec']:,.0f} tok/s")


@app.command("merge-lora")
def merge_lora(
    ckpt: Annotated[Path, typer.Option("--ckpt", help="LoRA checkpoint or run folder (latest)")],
    out: Annotated[Path, typer.Option("--out", "-o", help="folder for config.json + model.safetensors")],
) -> None:
    """Fold LoRA adapters into their base weights and write a plain export (`trainer generate` reads a policy's;
    a reward model's becomes a full reward checkpoint)."""
    from trainer.checkpoint import export_merged

    print(f"exported {export_merged(ckpt, out)}")


@app.command()
def dpo(
    base: Annotated[Path, typer.Option("--base", help="SFT or pretraining checkpoint, run folder or export")],
    data: Annotated[Path, typer.Option("--data", help="prompt/chosen/rejected or hh-rlhf JSON or JSONL")],
    out: OutOption,
    config: Annotated[Path, typer.Option("--config", "-c")] = Path("conf/train/dpo.yaml"),
    ref: Annotated[Path | None, typer.Option("--ref", help="reference model (default: a frozen copy of --base)")
                   ] = None,
    precompute_ref: Annotated[bool, typer.Option("--precompute-ref", help="reference log-probs computed once")
                              ] = False,
    resume: ResumeOption = False,
    max_steps: MaxStepsOption = None,
    lora_rank: LoraRank = None,
    lora_alpha: LoraAlpha = None,
    lora_targets: LoraTargets = None,
    set_: SetOption = None,
) -> None:
    """Direct Preference Optimization (sigmoid loss, beta 0.1) against a frozen reference."""
    from trainer.dpo import DPOConf, train_dpo
    from trainer.posttrain import load_method_config

    overrides = _posttrain_overrides(set_, max_steps, lora_rank, lora_alpha, lora_targets)
    if precompute_ref:
        overrides.append("dpo.precompute_ref=true")
    conf, dconf = load_method_config(config, overrides, "dpo", DPOConf)
    s = train_dpo(conf, dconf, base, data, out, ref=ref, resume=resume)
    t = s["train"]
    val = "n/a" if not s["val"] else f"{s['val']['accuracy']:.3f} (margin {s['val']['margin']:.3f})"
    print(f"done: step {s['step']}, loss {t['loss']:.4f}, reward accuracy {t['accuracy']:.3f}, margin "
          f"{t['margin']:.3f}, held-out accuracy {val} on {s['val_pairs']} pairs, skipped {s['skipped'] or 'none'}, "
          f"{s['tokens_per_sec']:,.0f} tok/s")


@app.command()
def ppo(
    policy: Annotated[Path, typer.Option("--policy", help="SFT or pretraining checkpoint, run folder or export")],
    prompts: Annotated[Path, typer.Option("--prompts", help="prompts: .txt lines, or JSON/JSONL records")],
    out: Annotated[Path, typer.Option("--out", "-o", help="run folder for checkpoints and logs")],
    reward_model: Annotated[Path | None, typer.Option("--reward-model", help="trainer reward checkpoint")] = None,
    reward_fn: Annotated[str | None, typer.Option("--reward-fn", help="built-in: count_token:<piece>")] = None,
    config: Annotated[Path, typer.Option("--config", "-c")] = Path("conf/train/ppo.yaml"),
    resume: Annotated[bool, typer.Option("--resume", help="continue from the latest checkpoint in --out")] = False,
    max_steps: Annotated[int | None, typer.Option("--max-steps", help="rollout batches")] = None,
    set_: SetOption = None,
) -> None:
    """RLHF with PPO: KV-cache rollouts, KL penalty to the reference, value head + GAE, clipped losses."""
    from trainer.posttrain import load_method_config
    from trainer.ppo import PPOConf, train_ppo

    if (reward_model is None) == (reward_fn is None):
        raise typer.BadParameter("give exactly one of --reward-model or --reward-fn")
    conf, pconf = load_method_config(config, _posttrain_overrides(set_, max_steps, None, None, None), "ppo",
                                     PPOConf)
    s = train_ppo(conf, pconf, policy, prompts, out, reward_model=reward_model, reward_fn=reward_fn, resume=resume)
    t = s["train"]
    print(f"done: step {s['step']}, reward {t['reward']:.4f}, kl {t['kl']:.4f}, entropy {t['entropy']:.3f}, "
          f"clipfrac {t['clipfrac']:.3f}, {s['prompts']} prompts, {s['tokens_per_sec']:,.0f} generated tok/s")


@app.command("eval")
def eval_(
    ckpt: Annotated[Path, typer.Option("--ckpt", help="checkpoint, run folder, export or `export --format hf` "
                                       "folder")],
    prompts: Annotated[Path | None, typer.Option("--prompts", help="held-out prompts for the mean reward: .txt "
                                                 "lines, or JSON/JSONL")] = None,
    task: Annotated[list[Path] | None, typer.Option("--task", help="llm-foundry ICL task JSONL (multiple choice, "
                                                    "cloze or schema); the name is the file's stem")] = None,
    text: Annotated[list[Path] | None, typer.Option("--text", help="plain text file: loss per token and bits "
                                                    "per byte")] = None,
    delimiter: Annotated[str, typer.Option("--delimiter", help="between a task's context and continuation")] = " ",
    limit: Annotated[int | None, typer.Option("--limit", help="first N examples of each task")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="sequences per forward pass")] = 32,
    reward_model: Annotated[Path | None, typer.Option("--reward-model", help="trainer reward checkpoint")] = None,
    reward_fn: Annotated[str | None, typer.Option("--reward-fn", help="built-in: count_token:<piece>")] = None,
    n: Annotated[int | None, typer.Option("--n", help="first N prompts (default all)")] = None,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens")] = 64,
    temperature: Annotated[float, typer.Option("--temperature", help="0 = greedy")] = 0.0,
    top_k: Annotated[int | None, typer.Option("--top-k")] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    val_data: Annotated[Path | None, typer.Option("--val-data", help="conversations for a val loss")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="JSON report (default CKPT-eval.json)")] = None,
    device: Annotated[str, typer.Option("--device")] = "cpu",
) -> None:
    """Benchmarks by log-likelihood (--task), bits per byte (--text), and/or the mean reward of the checkpoint's
    replies to held-out prompts (--prompts + --reward-model/--reward-fn); one JSON report."""
    import json

    if prompts is None and not task and not text:
        raise typer.BadParameter("give --task and/or --text (benchmarks), or --prompts with a reward model")
    if prompts is not None and (reward_model is None) == (reward_fn is None):
        raise typer.BadParameter("give exactly one of --reward-model or --reward-fn")
    if prompts is None and (reward_model is not None or reward_fn is not None):
        raise typer.BadParameter("--reward-model / --reward-fn score replies to --prompts: give --prompts")
    if max_new_tokens < 1 or (n is not None and n < 1) or (limit is not None and limit < 1) or batch_size < 1:
        raise typer.BadParameter("--max-new-tokens, --n, --limit and --batch-size must be at least 1")
    out = out or Path(f"{str(ckpt).rstrip('/')}-eval.json")
    report: dict = {}
    if prompts is not None:
        from trainer.evaluate import evaluate_checkpoint

        report = evaluate_checkpoint(ckpt, prompts, reward_model, reward_fn, n, max_new_tokens, temperature, top_k,
                                     seed, val_data, None, device=device)
        val = "" if report["val_loss"] is None else f", val loss {report['val_loss']:.4f}"
        print(f"mean reward {report['mean_reward']:.4f} over {report['n']} prompts{val} "
              f"(scored by {report['scored_by']})")
    if task or text:
        from trainer.benchmarks import load_scoring_model, run_benchmarks

        model, sp = load_scoring_model(ckpt, device)
        bench = run_benchmarks(model, sp, [(t, delimiter) for t in task or []], text, limit, batch_size, device)
        report = {**report, "ckpt": str(ckpt), **bench}
        for name, m in bench["tasks"].items():
            print(f"{name}: n {m['n']}, acc {m['acc']:.4f}, acc_norm {m['acc_norm']:.4f}, "
                  f"logprob_gold {m['logprob_gold']:.4f}")
        for name, m in bench["text"].items():
            print(f"{name}: loss {m['loss']:.4f} per token, {m['bpb']:.4f} bits per byte ({m['tokens']:,} tokens)")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, ensure_ascii=False))
    print(f"report {out}")


@app.command()
def ablate(
    config: Annotated[Path, typer.Option("--config", "-c", help="ablation YAML (conf/ablate/*.yaml)")],
    out: Annotated[Path, typer.Option("--out", "-o", help="folder: arms' runs, trainings, results.json, "
                                      "report.html")],
    set_: Annotated[list[str] | None, typer.Option("--set", help="override, e.g. train.tokens=1000000")] = None,
) -> None:
    """Train the same model on each corpus variant (arm) with the same token budget under several seeds, evaluate
    along the way, and compare the arms against the seed noise. A rerun skips what is finished."""
    from corpus.config import ConfigError
    from trainer.ablate import AblationError, run_ablation

    try:
        results = run_ablation(config, out, set_)
    except ConfigError as e:
        raise AblationError(str(e)) from None
    for p in results["pairs"]:
        if p["beyond_noise"]:
            print(f"{p['metric']}: {p['better']} better ({p['a']} − {p['b']} = {p['diff']:+.4f}, noise "
                  f"{p['noise']:.4f})")
    print(f"done: {len(results['arms'])} arms, {results['budget_tokens']:,} tokens each; report {out}/report.html")


# -- Hugging Face interchange, chat and serving (trainer/hf.py, trainer/chat_session.py, trainer/serve.py) ----------
def _export_hf(ckpt: Path, out: Path, format_: str, base_model: str | None) -> None:
    from trainer.hf import export_hf, export_peft

    if format_ == "hf":
        print(f"exported {export_hf(ckpt, out)} (transformers: AutoModelForCausalLM.from_pretrained)")
    elif format_ == "peft":
        print(f"exported {export_peft(ckpt, out, base_model)} (peft: PeftModel.from_pretrained)")
    else:
        raise typer.BadParameter(f"--format must be ours, hf or peft, got {format_!r}")


@app.command("import")
def import_(
    hf: Annotated[Path, typer.Option("--hf", help="transformers Llama, Qwen3, Mixtral or Qwen3-MoE folder: "
                                     "config.json + safetensors")],
    out: Annotated[Path, typer.Option("--out", "-o", help="our export folder, usable as --base / --ckpt")],
    block_size: Annotated[int | None, typer.Option("--block-size", help="default max_position_embeddings")] = None,
) -> None:
    """Import a Hugging Face Llama/Qwen3 (or Mixtral/Qwen3-MoE) checkpoint as our GPT (continue with `trainer sft
    --base OUT`, ...)."""
    from trainer.hf import import_hf

    if block_size is not None and block_size < 1:
        raise typer.BadParameter("--block-size must be positive")
    print(f"imported {import_hf(hf, out, block_size)}")


@app.command("chat")
def chat_(
    ckpt: Annotated[Path, typer.Option("--ckpt", help="chat model: SFT/DPO/PPO checkpoint, run folder or export")],
    system: Annotated[str | None, typer.Option("--system", help="a system message first")] = None,
    max_new_tokens: MaxNewOpt = 200,
    temperature: TemperatureOpt = 0.8,
    top_k: TopKOpt = 200,
    top_p: TopPOpt = None,
    seed: SeedOpt = None,
    device: DeviceOpt = "cpu",
) -> None:
    """Interactive chat in the terminal: one user turn per line; /reset forgets, /exit or end of input quits."""
    from trainer.chat_session import chat_loop, interactive_lines, load_chat_model

    if max_new_tokens < 1:
        raise typer.BadParameter("--max-new-tokens must be at least 1")
    model, sp = load_chat_model(ckpt, device)
    chat_loop(model, sp, interactive_lines(sys.stdin, sys.stdout), sys.stdout, system, max_new_tokens, temperature,
              top_k, top_p, seed, interactive=sys.stdin.isatty())


@app.command()
def serve(
    ckpt: Annotated[Path, typer.Option("--ckpt", help="checkpoint, run folder (latest) or export")],
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8000,
    model_name: Annotated[str | None, typer.Option("--model-name", help="the `model` clients send (default: "
                                                   "the folder's name)")] = None,
    max_active: Annotated[int, typer.Option("--max-active", help="requests decoded together, round-robin")] = 8,
    max_queue: Annotated[int, typer.Option("--max-queue", help="waiting requests before 429")] = 256,
    threads: Annotated[int | None, typer.Option("--threads", help="torch CPU threads")] = None,
    device: Annotated[str, typer.Option("--device")] = "cpu",
    api_key: Annotated[str | None, typer.Option("--api-key", envvar="TRAINER_API_KEY", show_envvar=True,
                                                help="require 'Authorization: Bearer KEY' (all but /health)")] = None,
    metrics_auth: Annotated[bool, typer.Option("--metrics-auth/--metrics-open",
                                               help="/metrics behind the API key too")] = False,
    max_body: Annotated[int, typer.Option("--max-body-bytes", help="larger request bodies: 413")] = 1 << 20,
    body_timeout: Annotated[float, typer.Option("--body-timeout", help="seconds to receive a body, else 408")] = 30.0,
    max_tokens: Annotated[int | None, typer.Option("--max-tokens-limit", help="larger max_tokens: 400 (default: "
                                                   "the context)")] = None,
    deadline: Annotated[float, typer.Option("--request-timeout", help="seconds per request, queueing included, "
                                            "else 408; 0 = none")] = 300.0,
) -> None:
    """OpenAI-compatible server: /v1/completions, /v1/chat/completions (streaming), /health, /metrics."""
    from trainer.serve import Limits
    from trainer.serve import serve as run

    if max_active < 1 or max_queue < 1 or not 0 <= port < 65536:
        raise typer.BadParameter("--max-active and --max-queue must be positive, --port in [0, 65535]")
    try:
        limits = Limits(api_key=api_key, metrics_auth=metrics_auth, max_body=max_body, body_timeout=body_timeout,
                        max_tokens=max_tokens, deadline=deadline or None)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    run(ckpt, host, port, model_name, max_active, max_queue, device, threads, limits)


def main(argv: list[str] | None = None) -> None:
    try:
        app(args=argv, standalone_mode=False)
    except _user_errors() as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except Exception as e:
        import click

        # usage errors: click's own message (typer >= 0.20 raises its vendored click's classes)
        if isinstance(e, click.ClickException) or (isinstance(e, typer.TyperException) and hasattr(e, "show")):
            e.show()
            sys.exit(e.exit_code)
        raise


if __name__ == "__main__":
    main()
