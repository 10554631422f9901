"""`trainer reward`: a reward model = our GPT trunk + a scalar head, trained with the Bradley–Terry loss; and the
scorers (a reward model, or a built-in reward function) that PPO maximizes and `trainer eval` reports.

    loss = -logsigmoid(r(prompt, chosen) - r(prompt, rejected))      (mean over pairs)

The reward is the head applied to the final hidden state of the last real token of prompt + response, which is
the response's closing <|end|> (TRL's AutoModelForSequenceClassification reads the last non-pad token too).
Held-out pairs: a seeded permutation of the pairs, its last `val_fraction` (TRL's default eval split is none;
0.1 here so accuracy is always reported). Reported: pairwise accuracy (r_chosen > r_rejected), loss, margin.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from corpus.tokenize.shards import sha256_file
from trainer.chat import EncodedPair, encode_pair, fit_prompt, load_preferences
from trainer.checkpoint import CheckpointError, base_reference, load_base, load_reward_model
from trainer.config import TrainConfigError
from trainer.model import RewardModel, pad_right
from trainer.posttrain import (
    PostTrainConf,
    PostTrainDataError,
    config_dump,
    data_sha256,
    lora_settings,
    maybe_lora,
    run_method,
    setup,
    split_indices,
)

PAIR_SPLIT_SALT = 7  # the held-out pairs of reward and DPO: the same pairs for both

# A scorer maps (prompts, responses) as token ids to one reward per pair: what PPO maximizes and eval reports.
Scorer = Callable[[list[list[int]], list[list[int]]], torch.Tensor]


def reward_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> torch.Tensor:
    """Bradley–Terry: -log σ(r_c − r_r), averaged over pairs."""
    return -F.logsigmoid(r_chosen - r_rejected).mean()


# -- scorers: rewards for PPO and eval ----------------------------------------------------------------------------
def count_token_reward(sp, piece: str) -> Scorer:
    """Reward = how many times `piece` occurs among the response tokens (a toy reward for tests and demos)."""
    tid = sp.piece_to_id(piece)
    if tid == sp.unk_id() or sp.id_to_piece(tid) != piece:
        raise TrainConfigError(f"count_token: {piece!r} is not a piece of the tokenizer (pieces look like "
                         f"{[sp.id_to_piece(i) for i in range(10, 16)]})")
    return lambda prompts, responses: torch.tensor([float(sum(t == tid for t in r)) for r in responses])


REWARD_FUNCTIONS = {"count_token": count_token_reward}


def reward_function(name: str, sp) -> Scorer:
    """A built-in reward by name: `count_token:<piece>`."""
    kind, _, arg = name.partition(":")
    if kind not in REWARD_FUNCTIONS or not arg:
        raise TrainConfigError(f"unknown reward function {name!r}; built in: count_token:<piece>")
    return REWARD_FUNCTIONS[kind](sp, arg)


def reward_model_scorer(path: str | Path, tokenizer: Path, device) -> tuple[Scorer, Path]:
    """Scores from a `trainer reward` checkpoint, which must share the policy's tokenizer."""
    rm, folder, _ = load_reward_model(path, device)
    rm.requires_grad_(False)
    if sha256_file(folder / "tokenizer.model") != sha256_file(tokenizer):
        raise CheckpointError(f"the reward model {folder} uses another tokenizer than the policy ({tokenizer})")
    block = rm.cfg.block_size

    def score(prompts: list[list[int]], responses: list[list[int]]) -> torch.Tensor:
        seqs = [fit_prompt(p + r, block)[0] for p, r in zip(prompts, responses)]
        return rm.score(seqs).cpu()

    return score, folder


# -- training ------------------------------------------------------------------------------------------------------
class RewardConf(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_len: int | None = Field(None, ge=4)  # prompt + response tokens; default the model's block_size
    max_prompt_len: int | None = Field(None, ge=2)  # default max_len // 2 (prompt keeps its last tokens)
    val_fraction: float = Field(0.1, ge=0, lt=1)


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
    train_idx, val_idx = split_indices(len(encoded), rconf.val_fraction, conf.seed, PAIR_SPLIT_SALT)
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

    summary = run_method(
        name="reward", model=model, n_examples=len(train_idx), loss=loss, evaluate=evaluate if val_idx else None,
        state={"base": base_reference(base_folder), "lora": lora_settings(conf), "data_sha256": sha,
               "skipped": dict(skipped), "truncated": truncated}, check_resume=check_resume,
        conf=conf, config=config_dump(conf, "reward", rconf), out=out, tokenizer=base_folder / "tokenizer.model",
        device=device, resume=resume, quiet=quiet)
    return {**summary, "pairs": len(encoded), "train_pairs": len(train_idx), "val_pairs": len(val_idx),
            "skipped": dict(skipped), "truncated": truncated}
