#!/usr/bin/env bash
# Every trainer command end to end on one device, in a few minutes, ending with a table:
# pretrain (GPT-2-124M shape) + --resume, generate, sft (full and LoRA), reward, dpo, ppo, eval.
#
#   scripts/gpu_check.sh                          CUDA, GPT-2-124M shape: sized for ≤ 6 minutes on one H100/H200
#   DEVICE=cpu TINY=1 scripts/gpu_check.sh        the same commands on CPU with a tiny model (this script's own test)
#
# Needs only this repository and a python3 with torch, numpy, sentencepiece, safetensors, PyYAML and typer (a GPU
# image's usual set). Missing pure-Python packages (pydantic and its needs) are installed offline from wheels in
# .whl/ when that folder exists: scripts/gpu_wheels.sh fetches them on a machine that has pip access.
# The data is built here, without Spark or Java (scripts/tiny_data.py). Environment: DEVICE (cuda), TINY (0),
# PYTHON (python3), WORK (a fresh temporary folder), STEPS (24 pretraining steps, then 12 more on --resume),
# OUT (when set, the table and a log of every command are copied there).
set -uo pipefail
cd "$(dirname "$0")/.."
DEVICE=${DEVICE:-cuda}
TINY=${TINY:-0}
PY=${PYTHON:-python3}
WORK=${WORK:-$(mktemp -d -t gpu_check.XXXXXX)}
STEPS=${STEPS:-24}
mkdir -p "$WORK/logs"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

if ! "$PY" -c "import pydantic" 2>/dev/null; then
  if ls .whl/*.whl >/dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$WORK/site" .whl/*.whl || exit 1
    export PYTHONPATH="$PYTHONPATH:$WORK/site"
  else
    echo "pydantic is missing and there is no .whl/ folder: run scripts/gpu_wheels.sh where pip can download" >&2
    exit 1
  fi
fi

if [ "$TINY" = 1 ]; then
  PRE_CONFIG=conf/train/tiny.yaml
  SHAPE=(--set model.block_size=64 --set model.d_model=64 --set model.n_layer=2 --set model.n_head=4
         --set train.batch_size=4 --set train.compile=false)
  POST=(--set train.batch_size=4)
  DOCS=600
else
  PRE_CONFIG=conf/train/gpt2-124m.yaml  # 12 × 768, block 1024, batch 16, compiled, dtype auto
  SHAPE=(--set model.vocab_size=50304)  # GPT-2's padded vocabulary; rows past the tokenizer's are never targets
  POST=(--set train.batch_size=8)
  DOCS=3000
fi
DEV=(--set "train.device=$DEVICE" --set train.dtype=auto)
if [ "$DEVICE" = cpu ]; then DEV+=(--set "train.threads=${THREADS:-2}"); fi
TOTAL=$((STEPS + STEPS / 2))

ROWS=()
FAILED=0
run() {  # run NAME FIGURE_COMMAND -- COMMAND...: time it, log it, add a table row
  local name=$1 figure=$2; shift 3
  local t0=$SECONDS status=ok
  echo "== $name: $*" | tee -a "$WORK/logs/all.log"
  if ! timeout 900 "$@" > "$WORK/logs/$name.log" 2>&1; then status=FAILED; FAILED=1; fi
  tail -n 4 "$WORK/logs/$name.log" | tee -a "$WORK/logs/all.log"
  local fig=""
  [ "$status" = ok ] && fig=$(eval "$figure" 2>/dev/null)
  ROWS+=("$(printf '| %-16s | %-6s | %5ds | %s |' "$name" "$status" $((SECONDS - t0)) "$fig")")
}
last() {  # last train (or val) record's fields from RUN/metrics.jsonl: last RUN KIND FIELD...
  "$PY" - "$@" <<'PY'
import json, sys
run, kind, *keys = sys.argv[1:]
recs = [r for r in map(json.loads, open(f"{run}/metrics.jsonl")) if r["kind"] == kind]
r = recs[-1]
print(f"step {r['step']}: " + ", ".join(f"{k} {r[k]:,.4g}" for k in keys if k in r))
PY
}
report() {  # fields of a JSON report: report FILE FIELD...
  "$PY" - "$@" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(", ".join(f"{k} {r[k]:,.4g}" for k in sys.argv[2:]))
PY
}
D=$WORK/data
run data "echo \$(ls $D/tokens/*.bin | wc -l) shards" -- "$PY" scripts/tiny_data.py "$D" --docs $DOCS
run pretrain "last $WORK/pre train loss tokens_per_sec mfu mfu_measured" -- \
  "$PY" -m trainer.cli pretrain --config $PRE_CONFIG --data "$D/tokens" --out "$WORK/pre" --max-steps "$STEPS" \
  "${SHAPE[@]}" "${DEV[@]}" --set train.grad_accum=1 --set train.warmup_steps=4 --set "train.lr_decay_steps=$TOTAL" \
  --set "train.eval_interval=$((STEPS / 2))" --set "train.ckpt_interval=$((STEPS / 2))" --set train.eval_batches=2 \
  --set train.log_interval=4
run resume "last $WORK/pre train loss tokens_per_sec mfu" -- \
  "$PY" -m trainer.cli pretrain --config $PRE_CONFIG --data "$D/tokens" --out "$WORK/pre" --max-steps "$TOTAL" \
  --resume "${SHAPE[@]}" "${DEV[@]}" --set train.grad_accum=1 --set train.warmup_steps=4 \
  --set "train.lr_decay_steps=$TOTAL" --set "train.eval_interval=$((STEPS / 2))" \
  --set "train.ckpt_interval=$((STEPS / 2))" --set train.eval_batches=2 --set train.log_interval=4 \
  --set train.compile=false
run generate "tail -n 1 $WORK/logs/generate.log | cut -c1-60" -- \
  "$PY" -m trainer.cli generate --ckpt "$WORK/pre" --prompt "Alice has" --max-new-tokens 24 --seed 0 --device "$DEVICE"
POSTSET=("${POST[@]}" "${DEV[@]}" --set train.eval_interval=10 --set train.ckpt_interval=10 --set train.log_interval=2)
run sft "last $WORK/sft train loss tokens_per_sec" -- \
  "$PY" -m trainer.cli sft --base "$WORK/pre" --data "$D/sft.jsonl" --out "$WORK/sft" --max-steps 10 "${POSTSET[@]}"
run sft_lora "last $WORK/sft_lora train loss tokens_per_sec" -- \
  "$PY" -m trainer.cli sft --base "$WORK/pre" --data "$D/sft.jsonl" --out "$WORK/sft_lora" --max-steps 10 \
  --lora-rank 8 "${POSTSET[@]}"
run reward "last $WORK/rm val accuracy loss" -- \
  "$PY" -m trainer.cli reward --base "$WORK/sft" --data "$D/prefs.jsonl" --out "$WORK/rm" --max-steps 10 \
  "${POSTSET[@]}"
run dpo "last $WORK/dpo train loss accuracy" -- \
  "$PY" -m trainer.cli dpo --base "$WORK/sft" --data "$D/prefs.jsonl" --out "$WORK/dpo" --max-steps 10 \
  "${POSTSET[@]}"
run ppo "last $WORK/ppo train reward kl tokens_per_sec" -- \
  "$PY" -m trainer.cli ppo --policy "$WORK/sft" --reward-model "$WORK/rm" --prompts "$D/prompts.txt" \
  --out "$WORK/ppo" --max-steps 3 "${POSTSET[@]}" --set ppo.max_new_tokens=16 --set ppo.ppo_epochs=2 \
  --set ppo.num_minibatches=2
run eval "report $WORK/eval.json mean_reward n mean_response_tokens" -- \
  "$PY" -m trainer.cli eval --ckpt "$WORK/ppo" --reward-model "$WORK/rm" --prompts "$D/prompts.txt" --n 16 \
  --max-new-tokens 16 --temperature 0.7 --seed 1 --device "$DEVICE" --out "$WORK/eval.json"

{
  echo
  echo "gpu_check on $DEVICE$( [ "$TINY" = 1 ] && echo ' (tiny)'): $("$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name() if torch.cuda.is_available() else "")')"
  echo "| command          | status | time   | last figures |"
  echo "|------------------|--------|--------|--------------|"
  printf '%s\n' "${ROWS[@]}"
} | tee "$WORK/table.md"
if [ -n "${OUT:-}" ]; then
  cp "$WORK/table.md" "$OUT/gpu_check_table.md"
  tar -czf "$OUT/gpu_check_logs.tar.gz" -C "$WORK" logs
fi
exit $FAILED
