"""`trainer reward`: a reward model = our GPT trunk + a scalar head, trained with the Bradley–Terry loss.

    loss = -logsigmoid(r(prompt, chosen) - r(prompt, rejected))      (mean over pairs)

The reward is the head applied to the final hidden state of the last real token of prompt + response, which is
the response's closing <|end|> (TRL's AutoModelForSequenceClassification reads the last non-pad token too).
Held-out pairs: a seeded permutation of the pairs, its last `val_fraction` (TRL's default eval split is none;
0.1 here so accuracy is always reported). Reported: pairwise accuracy (r_chosen > r_rejected), loss, margin.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from trainer.chat import EncodedPair, encode_pair, load_preferences
from trainer.checkpoint import CheckpointError
from trainer.lora import apply_lora, merge_lora
from trainer.model import GPT, GPTConfig
from trainer.posttrain import (
    Method,
    PostTrainConf,
    PostTrainDataError,
    base_reference,
    check_base,
    config_dump,
    data_sha256,
    load_base,
    load_full,
    load_tokenizer_of,
    load_trainable,
    lora_settings,
    maybe_lora,
    pad_right,
    read_state,
    resolve_checkpoint,
    run_loop,
    setup,
)


class RewardModel(nn.Module):
    def __init__(self, cfg: GPTConfig, trunk: GPT | None = None):
        super().__init__()
        self.cfg = cfg
        self.trunk = trunk if trunk is not None else GPT(cfg)
        self.head = nn.Linear(cfg.d_model, 1, bias=False)  # a bias cancels in r_chosen - r_rejected
        nn.init.normal_(self.head.weight, std=1.0 / (cfg.d_model + 1) ** 0.5)  # transformers' score-head init

    @classmethod
    def from_base(cls, base: GPT) -> RewardModel:
        """A reward model whose trunk is `base` (its lm_head stays, tied and unused) and a fresh head."""
        return cls(base.cfg, base).to(next(base.parameters()).device)

    def forward(self, idx: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Rewards (B,) for right-padded sequences idx (B, T) of the given real lengths."""
        h = self.trunk.hidden(idx)
        last = h[torch.arange(idx.size(0), device=idx.device), lengths.to(idx.device) - 1]
        return self.head(last).squeeze(-1).float()

    @torch.no_grad()
    def score(self, sequences: list[list[int]], batch_size: int = 16) -> torch.Tensor:
        """Rewards for token sequences (render(prompt + reply) or render_prompt(p) + render_response(r))."""
        device = next(self.parameters()).device
        out = []
        for i in range(0, len(sequences), batch_size):
            chunk = sequences[i:i + batch_size]
            out.append(self(pad_right(chunk).to(device), torch.tensor([len(s) for s in chunk])))
        return torch.cat(out)


def reward_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> torch.Tensor:
    """Bradley–Terry: -log σ(r_c − r_r), averaged over pairs."""
    return -F.logsigmoid(r_chosen - r_rejected).mean()


def load_reward_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[RewardModel, Path, object]:
    """A trained reward model from a `trainer reward` checkpoint or run folder: (model in eval mode, folder,
    tokenizer). A LoRA checkpoint is rebuilt from its base and its adapters merged."""
    folder = resolve_checkpoint(path)
    state = read_state(folder)
    if state.get("method") != "reward":
        raise CheckpointError(f"{folder} is not a reward model checkpoint (method {state.get('method')!r})")
    if state.get("lora"):
        base, _, _ = load_base(check_base(state["base"], folder), device)
        lora = state["lora"]
        apply_lora(base, lora["rank"], lora["alpha"], lora["targets"], lora["dropout"])
        model = RewardModel.from_base(base)
        load_trainable(model, folder)
        merge_lora(model.trunk)
    else:
        model = RewardModel(GPTConfig.from_dict(state["model"]))
        load_full(model, folder)
    model = model.to(device).eval()
    return model, folder, load_tokenizer_of(folder, model.cfg.vocab_size)


# -- training ------------------------------------------------------------------------------------------------------
class RewardConf(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_len: int | None = Field(None, ge=4)  # prompt + response tokens; default the model's block_size
    max_prompt_len: int | None = Field(None, ge=2)  # default max_len // 2 (prompt keeps its last tokens)
    val_fraction: float = Field(0.1, ge=0, lt=1)


def split_pairs(n: int, val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(train, val) indices: a seeded permutation, its last round(n·val_fraction) pairs held out."""
    perm = np.random.default_rng([seed, 7]).permutation(n).tolist()
    n_val = round(n * val_fraction)
    return perm[:n - n_val], perm[n - n_val:]


def pair_rewards(model: RewardModel, pairs: list[EncodedPair], device) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Rewards of chosen and rejected for a batch of pairs, in one forward pass; and the tokens processed."""
    seqs = [p.prompt + p.chosen for p in pairs] + [p.prompt + p.rejected for p in pairs]
    rewards = model(pad_right(seqs).to(device), torch.tensor([len(s) for s in seqs]))
    return rewards[:len(pairs)], rewards[len(pairs):], sum(len(s) for s in seqs)


def train_reward(conf: PostTrainConf, rconf: RewardConf, base: str | Path, data: str | Path, out: str | Path,
                 resume: bool = False, quiet: bool = False) -> dict:
    device = setup(conf)
    gpt, base_folder, sp = load_base(base, device)
    max_len = min(rconf.max_len or gpt.cfg.block_size, gpt.cfg.block_size)
    pairs, skipped = load_preferences(data)
    encoded = [encode_pair(p, sp, max_len, rconf.max_prompt_len) for p in pairs]
    truncated = sum(e.truncated for e in encoded)
    encoded = [e for e in encoded if e.chosen != e.rejected]  # cut to the same tokens: nothing to prefer
    skipped["identical_after_truncation"] += len(pairs) - len(encoded)
    skipped = +skipped  # drop zero counts
    train_idx, val_idx = split_pairs(len(encoded), rconf.val_fraction, conf.seed)
    if not train_idx:
        raise PostTrainDataError(f"{data}: no usable preference pairs (skipped: {dict(skipped)})")
    gpt = maybe_lora(gpt, conf)
    torch.manual_seed(conf.seed)  # the head's init must not depend on how many draws LoRA made
    model = RewardModel.from_base(gpt)

    def loss(indices: list[int]):
        batch = [encoded[train_idx[i]] for i in indices]
        rc, rr, n_tok = pair_rewards(model, batch, device)
        margin = (rc - rr).detach()
        return reward_loss(rc, rr), {"accuracy": (margin > 0).float().mean().item(),
                                     "margin": margin.mean().item()}, n_tok

    def evaluate() -> dict[str, float]:
        rc, rr = [], []
        for i in range(0, len(val_idx), conf.batch_size):
            c, r, _ = pair_rewards(model, [encoded[j] for j in val_idx[i:i + conf.batch_size]], device)
            rc.append(c)
            rr.append(r)
        rc, rr = torch.cat(rc), torch.cat(rr)
        return {"loss": reward_loss(rc, rr).item(), "accuracy": (rc > rr).float().mean().item(),
                "margin": (rc - rr).mean().item()}

    sha = data_sha256(data)

    def check_resume(state: dict) -> None:
        if state.get("data_sha256") != sha:
            raise CheckpointError(f"the checkpoint was trained on different data than {data}")

    method = Method("reward", model, len(train_idx), loss, evaluate if val_idx else None,
                    {"base": base_reference(base_folder), "lora": lora_settings(conf), "data_sha256": sha,
                     "skipped": dict(skipped), "truncated": truncated}, check_resume)
    summary = run_loop(method, conf, config_dump(conf, "reward", rconf), out, base_folder / "tokenizer.model",
                       device, resume, quiet)
    return {**summary, "pairs": len(encoded), "train_pairs": len(train_idx), "val_pairs": len(val_idx),
            "skipped": dict(skipped), "truncated": truncated}
