"""`trainer dpo`: Direct Preference Optimization (Rafailov et al. 2023), the sigmoid loss TRL uses by default.

    loss = -log σ(β · ((log π(y_c|x) - log π_ref(y_c|x)) - (log π(y_r|x) - log π_ref(y_r|x))))

The log-probabilities are sums over the response tokens only (the final assistant reply and its `<|end|>`), never
the prompt. The reference is a frozen copy of the starting policy (or `--ref CKPT`), or its log-probabilities are
computed once before training (`--precompute-ref`, stored in the run folder) so the reference model never sits
in memory during training. Logged per step: loss, reward accuracy (how often the implicit chosen reward
β(π−ref) beats the rejected one), chosen/rejected rewards and their margin.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from safetensors.torch import load_file, save_file

from trainer.chat import EncodedPair, encode_pair, load_preferences
from trainer.checkpoint import CheckpointError, base_reference, load_base
from trainer.model import pad_right
from trainer.posttrain import (
    PostTrainDataError,
    autocast,
    config_dump,
    data_sha256,
    lora_settings,
    maybe_lora,
    run_method,
    setup,
    split_indices,
)
from trainer.precision import resolve_dtype
from trainer.reward import PAIR_SPLIT_SALT


# -- log-probabilities of responses ------------------------------------------------------------------------------------
def token_logprobs(logits: torch.Tensor, ids: torch.Tensor, temperature: float = 1.0,
                   vocab_limit: int | None = None) -> torch.Tensor:
    """log p(ids[:, t] | ids[:, :t]) for t = 1..T-1 from full logits (B, T, V): shape (B, T-1).

    Gather minus logsumexp instead of a full log_softmax: one (B, T, V) tensor fewer. `vocab_limit` masks the
    padding rows of a vocabulary rounded up past the tokenizer's size, as sampling does.
    """
    logits = logits[:, :-1].float()
    if temperature != 1.0:
        logits = logits / temperature
    if vocab_limit is not None and vocab_limit < logits.size(-1):
        logits = logits.clone()
        logits[..., vocab_limit:] = float("-inf")
    picked = logits.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    return picked - torch.logsumexp(logits, dim=-1)


def full_logits(model, ids: torch.Tensor) -> torch.Tensor:
    """Logits at every position (GPT.forward without targets returns only the last one)."""
    return model.lm_head(model.hidden(ids)).float()


def sequence_logprobs(model, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum over the masked (response) tokens of log p(token | everything before it), and the per-token values.

    `ids` and `mask` are (B, T); mask[:, t] = 1 marks ids[:, t] as a response token. Position 0 (BOS) is never
    predicted, so the per-token tensor is (B, T-1), aligned with ids[:, 1:], zero off the mask.
    """
    per_token = token_logprobs(full_logits(model, ids), ids) * mask[:, 1:].to(torch.float32)
    return per_token.sum(-1), per_token


# -- the loss ----------------------------------------------------------------------------------------------------------
class DPOStats(NamedTuple):
    loss: torch.Tensor  # scalar, differentiable
    chosen_rewards: torch.Tensor  # (B,) β·(log π - log π_ref) on the chosen response, detached
    rejected_rewards: torch.Tensor  # (B,) the same on the rejected response
    accuracy: torch.Tensor  # scalar: share of pairs whose chosen reward beats the rejected one
    margins: torch.Tensor  # (B,) chosen - rejected reward


def dpo_loss(policy_chosen_logps: torch.Tensor, policy_rejected_logps: torch.Tensor,
             ref_chosen_logps: torch.Tensor, ref_rejected_logps: torch.Tensor, beta: float = 0.1,
             label_smoothing: float = 0.0) -> DPOStats:
    """Sigmoid DPO (TRL `loss_type="sigmoid"`); `label_smoothing` > 0 is the conservative variant (cDPO)."""
    logits = (policy_chosen_logps - ref_chosen_logps) - (policy_rejected_logps - ref_rejected_logps)
    losses = -F.logsigmoid(beta * logits) * (1 - label_smoothing) - F.logsigmoid(-beta * logits) * label_smoothing
    chosen = beta * (policy_chosen_logps - ref_chosen_logps).detach()
    rejected = beta * (policy_rejected_logps - ref_rejected_logps).detach()
    return DPOStats(losses.mean(), chosen, rejected, (chosen > rejected).float().mean(), chosen - rejected)


# -- training ----------------------------------------------------------------------------------------------------------
class DPOConf(BaseModel):
    """The `dpo:` section. beta 0.1, sigmoid loss, no label smoothing: TRL's DPOConfig defaults."""

    model_config = ConfigDict(extra="forbid")
    beta: float = Field(0.1, gt=0)
    label_smoothing: float = Field(0.0, ge=0, lt=0.5)
    max_len: int | None = Field(None, ge=4)  # prompt + response tokens; default the model's block_size
    max_prompt_len: int | None = Field(None, ge=2)  # default max_len // 2 (a long prompt keeps its last tokens)
    val_fraction: float = Field(0.1, ge=0, lt=1)  # held-out pairs for reward accuracy / margin (as trainer reward)
    precompute_ref: bool = False  # reference log-probs computed once, cached in OUT/ref_logps.safetensors


def pair_logps(model, pairs: list[EncodedPair], device) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Summed response log-probs of chosen and rejected for a batch of pairs (one forward pass over 2B rows)."""
    seqs = [p.prompt + p.chosen for p in pairs] + [p.prompt + p.rejected for p in pairs]
    masks = [[0] * len(p.prompt) + [1] * len(p.chosen) for p in pairs] + \
        [[0] * len(p.prompt) + [1] * len(p.rejected) for p in pairs]
    total, _ = sequence_logprobs(model, pad_right(seqs).to(device), pad_right(masks, value=0).to(device))
    return total[:len(pairs)], total[len(pairs):], sum(len(s) for s in seqs)


@torch.no_grad()
def reference_logps(ref, pairs: list[EncodedPair], batch_size: int, device) -> torch.Tensor:
    """(N, 2) reference log-probs (chosen, rejected) of every pair."""
    out = []
    for i in range(0, len(pairs), batch_size):
        c, r, _ = pair_logps(ref, pairs[i:i + batch_size], device)
        out.append(torch.stack([c, r], dim=1).cpu())
    return torch.cat(out)


def cached_reference_logps(path: Path, key: dict, compute) -> torch.Tensor:
    """Reference log-probs from `path` when its key (data, reference weights, lengths) matches, else computed
    and written atomically; so a resumed run reuses them and never needs the reference model."""
    if path.exists():
        tensors = load_file(str(path))
        meta = json.loads(path.with_suffix(".json").read_text()) if path.with_suffix(".json").exists() else {}
        if meta == key:
            return tensors["ref_logps"]
    logps = compute()
    tmp = path.with_name(path.name + ".tmp")
    save_file({"ref_logps": logps.contiguous()}, str(tmp))
    path.with_suffix(".json").write_text(json.dumps(key))
    os.replace(tmp, path)
    return logps


def train_dpo(conf, dconf: DPOConf, base: str | Path, data: str | Path, out: str | Path, ref: str | Path | None = None,
              resume: bool = False, quiet: bool = False) -> dict:
    """DPO from a policy checkpoint (SFT or pretraining; LoRA when train.lora_rank > 0) on preference pairs."""
    device = setup(conf)
    policy, base_folder, sp = load_base(base, device)
    ref_model, ref_folder, _ = load_base(ref if ref is not None else base, device)
    if ref_model.cfg.vocab_size != policy.cfg.vocab_size:
        raise CheckpointError(f"the reference {ref_folder} has another vocabulary than the policy {base_folder}")
    ref_model.requires_grad_(False)
    max_len = min(dconf.max_len or policy.cfg.block_size, policy.cfg.block_size, ref_model.cfg.block_size)
    pairs, skipped = load_preferences(data)
    encoded = [encode_pair(p, sp, max_len, dconf.max_prompt_len) for p in pairs]
    truncated = sum(e.truncated for e in encoded)
    kept = [e for e in encoded if e.chosen != e.rejected and e.chosen and e.rejected]
    skipped["identical_after_truncation"] += len(encoded) - len(kept)
    encoded, skipped = kept, +skipped
    train_idx, val_idx = split_indices(len(encoded), dconf.val_fraction, conf.seed, PAIR_SPLIT_SALT)
    if not train_idx:
        raise PostTrainDataError(f"{data}: no usable preference pairs (skipped: {dict(skipped)})")
    sha = data_sha256(data)
    out = Path(out)

    if dconf.precompute_ref:
        out.mkdir(parents=True, exist_ok=True)
        key = {"data_sha256": sha, "ref": base_reference(ref_folder), "max_len": max_len,
               "max_prompt_len": dconf.max_prompt_len}
        # the key holds the precision too, and the reference runs under the policy's autocast: log-ratios of a
        # bf16 policy against an fp32 reference are noise at step 0, where they should be exactly zero
        key["dtype"] = str(resolve_dtype(conf.dtype, device)[0])

        def compute():
            with autocast(conf, device):
                return reference_logps(ref_model, encoded, conf.batch_size, device)

        cached = cached_reference_logps(out / "ref_logps.safetensors", key, compute)
        ref_model = None  # not needed any more: frees its memory for training

    def ref_of(indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        if ref_model is None:
            both = cached[indices].to(device)
            return both[:, 0], both[:, 1]
        with torch.no_grad():
            c, r, _ = pair_logps(ref_model, [encoded[i] for i in indices], device)
        return c, r

    policy = maybe_lora(policy, conf)

    def loss(indices: list[int]):
        ids = [train_idx[i] for i in indices]
        pc, pr, n_tok = pair_logps(policy, [encoded[i] for i in ids], device)
        rc, rr = ref_of(ids)
        s = dpo_loss(pc, pr, rc, rr, dconf.beta, dconf.label_smoothing)
        return s.loss, {"accuracy": s.accuracy.item(), "chosen_reward": s.chosen_rewards.mean().item(),
                        "rejected_reward": s.rejected_rewards.mean().item(), "margin": s.margins.mean().item(),
                        "logp_chosen": pc.detach().mean().item(), "logp_rejected": pr.detach().mean().item()}, n_tok

    def evaluate() -> dict[str, float]:
        parts = []
        for i in range(0, len(val_idx), conf.batch_size):
            ids = val_idx[i:i + conf.batch_size]
            pc, pr, _ = pair_logps(policy, [encoded[j] for j in ids], device)
            parts.append(torch.stack([pc, pr, *ref_of(ids)], dim=1))
        pc, pr, rc, rr = torch.cat(parts).unbind(1)
        s = dpo_loss(pc, pr, rc, rr, dconf.beta, dconf.label_smoothing)
        return {"loss": s.loss.item(), "accuracy": s.accuracy.item(), "margin": s.margins.mean().item(),
                "chosen_reward": s.chosen_rewards.mean().item(), "rejected_reward": s.rejected_rewards.mean().item()}

    def check_resume(state: dict) -> None:
        if state.get("data_sha256") != sha:
            raise CheckpointError(f"the checkpoint was trained on different data than {data}")

    summary = run_method(
        name="dpo", model=policy, n_examples=len(train_idx), loss=loss, evaluate=evaluate if val_idx else None,
        state={"base": base_reference(base_folder), "ref": base_reference(ref_folder), "lora": lora_settings(conf),
               "data_sha256": sha, "skipped": dict(skipped), "truncated": truncated}, check_resume=check_resume,
        conf=conf, config=config_dump(conf, "dpo", dconf), out=out, tokenizer=base_folder / "tokenizer.model",
        device=device, resume=resume, quiet=quiet)
    return {**summary, "pairs": len(encoded), "train_pairs": len(train_idx), "val_pairs": len(val_idx),
            "skipped": dict(skipped), "truncated": truncated}
