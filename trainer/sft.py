"""`trainer sft`: supervised fine-tuning on conversations, loss on the assistant tokens only.

Each conversation is rendered by the chat template (trainer/chat.py); targets are -1 (ignored by the loss) on
everything but the assistant replies and their <|end|>, so the model learns to answer and to stop, not to
imitate users. The loss is the mean over the micro-batch's target tokens (TRL's default).

Without packing (TRL's default) a row is one conversation, right-padded; one longer than `max_len` keeps its
first `max_len` tokens (counted as truncated; dropped if no target is left). With `pack: true` the rendered
conversations are concatenated (each starts with BOS) and cut into rows of max_len tokens with the stride of
pretraining windows; attention then crosses conversation boundaries, as in pretraining on BOS-separated
documents and TRL's packing without position-id resets, and every row is full (no padding compute).

Validation: `--val-data FILE`, or else the last `val_fraction` of a seeded permutation of the conversations.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from trainer.chat import load_conversations, render, truncate
from trainer.checkpoint import CheckpointError, base_reference, load_base
from trainer.posttrain import (
    PostTrainConf,
    PostTrainDataError,
    config_dump,
    data_sha256,
    lm_batch,
    lora_settings,
    maybe_lora,
    run_method,
    setup,
    split_indices,
)


class SFTConf(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_len: int | None = Field(None, ge=2)  # tokens per row incl. the last target; default block_size + 1
    pack: bool = False  # TRL: False
    val_fraction: float = Field(0.05, ge=0, lt=1)  # used when no --val-data is given


Row = tuple[list[int], list[int]]  # token ids, loss mask


def rows_from(conversations, sp, max_len: int, counts: Counter) -> list[Row]:
    """One row per conversation, truncated to max_len; rows left without a target are dropped and counted."""
    rows = []
    for conv in conversations:
        ids, mask, cut = truncate(*render(conv, sp), max_len)
        counts["truncated"] += cut
        if not any(mask[1:]):
            counts["no_target_after_truncation"] += 1
            continue
        rows.append((ids, mask))
    return rows


def pack_rows(rows: list[Row], max_len: int) -> list[Row]:
    """Concatenate rows and cut max_len-token windows that overlap by one token (each target is predicted once);
    windows without any target are dropped."""
    ids = [t for r in rows for t in r[0]]
    mask = [m for r in rows for m in r[1]]
    stride = max_len - 1
    out = []
    for start in range(0, max(1, len(ids) - 1), stride):
        window = (ids[start:start + max_len], mask[start:start + max_len])
        if len(window[0]) >= 2 and any(window[1][1:]):
            out.append(window)
    return out


def train_sft(conf: PostTrainConf, sconf: SFTConf, base: str | Path, data: str | Path, out: str | Path,
              val_data: str | Path | None = None, resume: bool = False, quiet: bool = False) -> dict:
    device = setup(conf)
    model, base_folder, sp = load_base(base, device)
    max_len = min(sconf.max_len or model.cfg.block_size + 1, model.cfg.block_size + 1)
    convs, skipped = load_conversations(data)
    if val_data is not None:
        val_convs, val_skipped = load_conversations(val_data)
        skipped.update({f"val_{k}": v for k, v in val_skipped.items()})
    else:
        train_i, val_i = split_indices(len(convs), sconf.val_fraction, conf.seed, salt=11)
        convs, val_convs = [convs[i] for i in train_i], [convs[i] for i in val_i]
    counts: Counter = Counter()
    rows = rows_from(convs, sp, max_len, counts)
    val_rows = rows_from(val_convs, sp, max_len, Counter())
    skipped["no_target_after_truncation"] += counts.pop("no_target_after_truncation", 0)  # a prompt filled the row
    if sconf.pack:
        rows, val_rows = pack_rows(rows, max_len), pack_rows(val_rows, max_len)
    if not rows:
        raise PostTrainDataError(f"{data}: no usable conversations (skipped: {dict(skipped)})")
    model = maybe_lora(model, conf)

    def loss(indices: list[int]):
        batch = [rows[i] for i in indices]
        x, y = lm_batch(batch)
        _, value = model(x.to(device), y.to(device), return_logits=False)
        return value, {}, sum(len(ids) - 1 for ids, _ in batch)  # real input tokens, padding not counted

    def evaluate() -> dict[str, float]:
        total, count = 0.0, 0
        limit = conf.eval_batches * conf.batch_size
        for i in range(0, min(len(val_rows), limit), conf.batch_size):
            x, y = lm_batch(val_rows[i:min(i + conf.batch_size, limit)])
            logits = model.lm_head(model.hidden(x.to(device))).float()
            y = y.to(device)
            total += F.cross_entropy(logits.flatten(0, 1), y.flatten(), ignore_index=-1, reduction="sum").item()
            count += int((y >= 0).sum())
        return {"loss": total / max(1, count)}

    sha = data_sha256(data)

    def check_resume(state: dict) -> None:
        if state.get("data_sha256") != sha:
            raise CheckpointError(f"the checkpoint was trained on different data than {data}")
        if state.get("config", {}).get("sft") != sconf.model_dump():
            raise CheckpointError("the checkpoint's sft settings (max_len, pack, val_fraction) differ from this run's")

    skipped = +skipped
    summary = run_method(
        name="sft", model=model, n_examples=len(rows), loss=loss, evaluate=evaluate if val_rows else None,
        state={"base": base_reference(base_folder), "lora": lora_settings(conf), "data_sha256": sha,
               "skipped": dict(skipped), "truncated": counts["truncated"]}, check_resume=check_resume,
        conf=conf, config=config_dump(conf, "sft", sconf), out=out, tokenizer=base_folder / "tokenizer.model",
        device=device, resume=resume, quiet=quiet)
    return {**summary, "rows": len(rows), "val_rows": len(val_rows), "conversations": len(convs),
            "skipped": dict(skipped), "truncated": counts["truncated"]}

