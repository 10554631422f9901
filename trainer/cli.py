"""The `trainer` command line: pretrain, generate, export.

    trainer pretrain --config conf/train/tiny.yaml --data RUN/tokens --out RUNS/x [--resume] [--max-steps N]
                     [--set train.lr=1e-3 ...]
    torchrun --nproc_per_node 2 -m trainer.cli pretrain ...          (DDP; gloo on CPU, nccl on CUDA)
    trainer generate --ckpt RUNS/x [--prompt TEXT] [--max-new-tokens N --temperature T --top-k K --top-p P]
    trainer export --ckpt RUNS/x --out EXPORT_DIR
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Lean GPT pretraining on corpus token shards.")


def _user_errors() -> tuple[type[Exception], ...]:
    from corpus.shards import ShardError
    from corpus.tokenizer import TokenizerError
    from trainer.checkpoint import CheckpointError
    from trainer.config import TrainConfigError

    return (ShardError, TokenizerError, CheckpointError, TrainConfigError, FloatingPointError)


@app.command()
def pretrain(
    config: Annotated[Path, typer.Option("--config", "-c", help="YAML under conf/train/")],
    data: Annotated[Path, typer.Option("--data", help="token folder with manifest.json (e.g. RUN/tokens)")],
    out: Annotated[Path, typer.Option("--out", "-o", help="run folder for checkpoints and logs")],
    resume: Annotated[bool, typer.Option("--resume", help="continue from the latest checkpoint in --out")] = False,
    max_steps: Annotated[int | None, typer.Option("--max-steps", help="override train.max_steps")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="override, e.g. train.lr=1e-3")] = None,
) -> None:
    """Train a GPT on the train split, evaluating on val; checkpoints go to OUT/ckpt/step_NNNNNNN/."""
    from trainer.config import load_config
    from trainer.pretrain import pretrain as run

    overrides = list(set_ or [])
    if max_steps is not None:
        overrides.append(f"train.max_steps={max_steps}")
    cfg = load_config(config, overrides)
    try:
        summary = run(cfg, data, out, resume=resume)
    finally:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
    if int(os.environ.get("RANK", "0")) == 0:
        val = "n/a" if summary["val_loss"] is None else f"{summary['val_loss']:.4f}"
        print(f"done: step {summary['step']}, train loss {summary['train_loss']:.4f}, val loss {val}, "
              f"{summary['tokens_per_sec']:,.0f} tok/s, mfu {100 * summary['mfu']:.2f}%")


@app.command()
def generate(
    ckpt: Annotated[Path, typer.Option("--ckpt", help="checkpoint folder, export folder, or run folder (latest)")],
    prompt: Annotated[str, typer.Option("--prompt", "-p", help="text to continue")] = "",
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens")] = 200,
    temperature: Annotated[float, typer.Option("--temperature", help="0 = greedy")] = 0.8,
    top_k: Annotated[int | None, typer.Option("--top-k")] = 200,
    top_p: Annotated[float | None, typer.Option("--top-p")] = None,
    seed: Annotated[int | None, typer.Option("--seed")] = None,
    device: Annotated[str, typer.Option("--device")] = "cpu",
) -> None:
    """Continue PROMPT with the model, through the tokenizer stored with the checkpoint."""
    from trainer.generate import generate_text

    if max_new_tokens < 1:
        raise typer.BadParameter("--max-new-tokens must be at least 1")
    if top_p is not None and not 0 < top_p <= 1:
        raise typer.BadParameter("--top-p must be in (0, 1]")
    print(generate_text(ckpt, prompt, max_new_tokens, temperature, top_k, top_p, seed, device))


@app.command()
def export(
    ckpt: Annotated[Path, typer.Option("--ckpt", help="checkpoint folder or run folder (latest)")],
    out: Annotated[Path, typer.Option("--out", "-o", help="folder for config.json + model.safetensors")],
) -> None:
    """Write a plain inference folder: config.json, model.safetensors, tokenizer.model."""
    from trainer.checkpoint import export as run

    print(f"exported {run(ckpt, out)}")


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

        if isinstance(e, click.ClickException):  # usage errors: click's own message
            e.show()
            sys.exit(e.exit_code)
        raise


if __name__ == "__main__":
    main()
