"""Distillation at small scale: a student distilled from a larger model we trained, against the same student
trained alone on the same tokens for the same steps (same seed, so the same batches in the same order).

tinyshakespeare is tokenized (BPE 1024) into shards with a held-out split; the teacher (conf/train/tiny.yaml,
~1 M parameters) pretrains on them; then the student (d_model 64, 2 layers) trains twice: plain pretraining, and
`trainer distill` from the teacher at each (alpha, temperature). Reported: held-out cross-entropy of each, on the
same val batches (train.eval_batches of them), and the wall time.

    .venv/bin/python bench/distill.py --teacher-steps 600 --steps 400 [--json out.json] [--eval-limit 300]

--eval-limit N also scores every run with `trainer eval`'s benchmarks (trainer/benchmarks.py): the first N examples
of piqa, arc_easy and lambada (../shared/data/eval) and the bits per byte of WikiText-2's test text. Models this
small, trained on Shakespeare, sit near chance on the tasks: logprob_gold and bpb are the numbers that move.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from corpus.tokenize.tokenizer import train_tokenizer  # noqa: E402
from trainer.checkpoint import latest_checkpoint  # noqa: E402
from trainer.config import load_config  # noqa: E402
from trainer.data import write_shards_from_texts  # noqa: E402
from trainer.pretrain import pretrain  # noqa: E402

SHAKESPEARE = REPO.parent / "shared" / "data" / "text" / "tinyshakespeare.txt"
TINY = REPO / "conf" / "train" / "tiny.yaml"
COMMON = ["train.log_interval=50", "train.eval_batches=40", "train.tensorboard=false", "train.threads=1"]
STUDENT = ["model.d_model=64", "model.n_layer=2", "model.n_head=2"]


EVAL = REPO.parent / "shared" / "data" / "eval"
TASKS = [(EVAL / "piqa.jsonl", "Answer: "), (EVAL / "arc_easy.jsonl", "\nAnswer: "),
         (EVAL / "lambada_openai.jsonl", " ")]
WIKITEXT = REPO.parent / "shared" / "data" / "text" / "wikitext-2-raw-test.txt"


def benchmark_scores(run: Path, limit: int) -> dict:
    """`trainer eval --task ... --text ...` on a run's latest checkpoint: acc, acc_norm, logprob_gold, bpb."""
    from trainer.benchmarks import load_scoring_model, run_benchmarks

    model, sp = load_scoring_model(latest_checkpoint(run))
    out = run_benchmarks(model, sp, TASKS, [WIKITEXT], limit=limit)
    return {**{f"{k}/{m}": round(v, 4) for k, r in out["tasks"].items() for m, v in r.items()
               if m in ("acc", "acc_norm", "logprob_gold")},
            "wikitext_bpb": round(out["text"]["wikitext-2-raw-test"]["bpb"], 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--teacher-steps", type=int, default=600)
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--settings", default="0.5:1,0.5:2,0.9:2", help="alpha:temperature pairs")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--eval-limit", type=int, default=0, help="score each run on N examples per task (0: off)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        text = SHAKESPEARE.read_text()
        (root / "sample.txt").write_text("\n".join(line for line in text.split("\n") if line.strip()))
        tok = train_tokenizer(root / "sample.txt", root / "tok", 1024)
        write_shards_from_texts([p for p in text.split("\n\n") if p.strip()], root / "tokens", tok,
                                shard_tokens=100_000, val_fraction=0.1)

        def run(name: str, overrides: list[str], steps: int, teacher: Path | None = None) -> dict:
            cfg = load_config(TINY, COMMON + overrides + [f"train.max_steps={steps}", f"train.eval_interval={steps}",
                                                          f"train.ckpt_interval={steps}"])
            t0 = time.perf_counter()
            s = pretrain(cfg, root / "tokens", root / name, quiet=True, teacher_from=teacher)
            weights = load_file(latest_checkpoint(root / name) / "model.safetensors")
            row = {"run": name, "params": sum(w.numel() for w in weights.values()), "steps": steps,
                   "val_loss": s["val_loss"], "train_loss": s["train_loss"],
                   "wall_s": round(time.perf_counter() - t0, 1), "tokens": s["tokens_seen"]}
            if args.eval_limit:
                row["eval"] = benchmark_scores(root / name, args.eval_limit)
            print(json.dumps(row), flush=True)
            return row

        rows = [run("teacher", [], args.teacher_steps), run("student_alone", STUDENT, args.steps)]
        for setting in args.settings.split(","):
            alpha, temp = setting.split(":")
            rows.append(run(f"student_distilled_a{alpha}_T{temp}", STUDENT + [f"distill.alpha={alpha}",
                            f"distill.temperature={temp}"], args.steps, teacher=root / "teacher"))
    host = {"cpu": platform.processor() or platform.machine(), "capability": torch.backends.cpu.get_cpu_capability(),
            "torch": torch.__version__, "threads": 1}
    print(json.dumps(host))
    if args.json:
        args.json.write_text(json.dumps({"host": host, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
