"""`trainer ppo`: RLHF with Proximal Policy Optimization, the recipe of TRL's PPOTrainer on our GPT.

One update = a rollout batch of prompts → responses sampled with the KV-cache generator → scored by a reward
model or a reward function → several PPO epochs over minibatches of that batch.

Per generated token t the reward is `-kl_coef · (log π(t) - log π_ref(t))`, plus the scalar score on the last
token of the response; advantages come from GAE over the response tokens (γ = 1, λ = 0.95) and are whitened over
the batch. Losses: the clipped policy surrogate (cliprange 0.2) plus `vf_coef` (0.1) × the clipped value loss
(cliprange_value 0.2), as in TRL.

Value head: a scalar linear head on the policy's own final hidden states (a shared trunk, as TRL's
`AutoModelForCausalLMWithValueHead`), not a separate value model: one forward pass gives both the log-probs and the
values, and the tiny models here have no capacity to spare for a second trunk. The value loss reaches the trunk
scaled by vf_coef, which is why that coefficient is small.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn as nn
from pydantic import BaseModel, ConfigDict, Field

from corpus.tokenize.tokenizer import PAD_ID
from trainer import loop
from trainer.chat import fit_prompt, load_prompts, render_prompt, stop_ids
from trainer.checkpoint import (
    CheckpointError,
    base_reference,
    generator_state,
    load_base,
    restore,
    rng_state,
    save_checkpoint,
    set_generator_state,
    set_rng_state,
    tensors_from_json,
    tensors_to_json,
)
from trainer.config import TrainConfigError
from trainer.generate import sample_responses
from trainer.optim import lr_for, make_optimizer
from trainer.posttrain import (
    ExampleOrder,
    PostTrainConf,
    PostTrainDataError,
    autocast,
    config_dump,
    data_sha256,
    setup,
)
from trainer.reward import reward_function, reward_model_scorer


# -- PPO math (pure tensor functions) ---------------------------------------------------------------------------------
def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    mask = mask.to(x.dtype)
    if dim is None:
        return (x * mask).sum() / mask.sum().clamp(min=1)
    return (x * mask).sum(dim) / mask.sum(dim).clamp(min=1)


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    """(x - mean) / std over the masked entries (unbiased variance, as TRL); zero off the mask."""
    mask = mask.to(x.dtype)
    mean = masked_mean(x, mask)
    n = mask.sum()
    var = masked_mean((x - mean) ** 2, mask) * (n / (n - 1) if n > 1 else 1.0)
    out = (x - mean) * torch.rsqrt(var + 1e-8)
    if not shift_mean:
        out = out + mean
    return out * mask


def kl_rewards(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, scores: torch.Tensor, mask: torch.Tensor,
               kl_coef: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token rewards (B, R): -kl_coef·kl on each generated token, plus the score on the last one; and the kl.

    Responses are left-aligned: mask[b] is 1 on the first len_b tokens, 0 on the padding after them.
    """
    mask = mask.to(logprobs.dtype)
    kl = (logprobs - ref_logprobs) * mask
    rewards = -kl_coef * kl
    last = (mask.sum(1).long() - 1).clamp(min=0)
    rewards[torch.arange(rewards.size(0), device=rewards.device), last] += scores.to(rewards.dtype)
    return rewards * mask, kl


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0,
        lam: float = 0.95) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalized advantage estimation over the response tokens: advantages and returns (= advantages + values).

    δ_t = r_t + γ·V_{t+1} - V_t, A_t = δ_t + γλ·A_{t+1}, with V and r zero past the end of each response, so
    padding adds nothing and the value after the last token is 0 (the episode ends there).
    """
    mask = mask.to(values.dtype)
    rewards, values = rewards * mask, values * mask
    R = rewards.size(1)
    advantages = torch.zeros_like(rewards)
    last = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(R)):
        next_value = values[:, t + 1] if t + 1 < R else torch.zeros_like(last)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        last = delta + gamma * lam * last
        advantages[:, t] = last
    return advantages * mask, (advantages + values) * mask


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of the softmax over the last dimension, per position."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp.nan_to_num(neginf=0.0)).sum(-1)


def ppo_losses(new_logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor,
               new_values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor,
               cliprange: float = 0.2, cliprange_value: float = 0.2, vf_coef: float = 0.1) -> dict[str, torch.Tensor]:
    """The clipped PPO objective on one minibatch (all tensors (B, R), masked to the response tokens).

    Returns `loss` (differentiable: pg_loss + vf_coef·vf_loss) and detached diagnostics: pg_loss, vf_loss,
    clipfrac (share of tokens where the ratio clipping bites), vf_clipfrac, approx_kl (½·E[(log ratio)²], TRL's).
    """
    log_ratio = (new_logprobs - old_logprobs) * mask
    ratio = torch.exp(log_ratio)
    pg1 = -advantages * ratio
    pg2 = -advantages * torch.clamp(ratio, 1.0 - cliprange, 1.0 + cliprange)
    pg_loss = masked_mean(torch.max(pg1, pg2), mask)
    v_clipped = old_values + torch.clamp(new_values - old_values, -cliprange_value, cliprange_value)
    vf1 = (new_values - returns) ** 2
    vf2 = (v_clipped - returns) ** 2
    vf_loss = 0.5 * masked_mean(torch.max(vf1, vf2), mask)
    return {
        "loss": pg_loss + vf_coef * vf_loss,
        "pg_loss": pg_loss.detach(),
        "vf_loss": vf_loss.detach(),
        "clipfrac": masked_mean((pg2 > pg1).float(), mask).detach(),
        "vf_clipfrac": masked_mean((vf2 > vf1).float(), mask).detach(),
        "approx_kl": (0.5 * masked_mean(log_ratio ** 2, mask)).detach(),
    }


# -- rollouts ---------------------------------------------------------------------------------------------------------
def pad_sequences(prompts: list[list[int]], responses: list[list[int]], pad_id: int
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded prompt+response ids (B, T), and the response in a left-aligned frame: `index` (B, R) points
    each response token's prediction position in the (B, T-1) log-prob frame, `mask` (B, R) marks real tokens.

    Right padding is safe without an attention mask: attention is causal, so pads only follow real tokens.
    """
    lengths = [len(p) + len(r) for p, r in zip(prompts, responses)]
    T, R = max(lengths), max(1, max(len(r) for r in responses))
    ids = torch.full((len(prompts), T), pad_id, dtype=torch.long)
    index = torch.zeros(len(prompts), R, dtype=torch.long)
    mask = torch.zeros(len(prompts), R, dtype=torch.float32)
    for b, (p, r) in enumerate(zip(prompts, responses)):
        ids[b, :len(p) + len(r)] = torch.tensor(p + r, dtype=torch.long)
        # token p+j (response token j) is predicted from position p+j-1 of the frame
        index[b] = torch.clamp(torch.arange(R) + len(p) - 1, max=T - 2)
        mask[b, :len(r)] = 1.0
    return ids, index, mask


def response_logits_values(model, value_head, ids: torch.Tensor, index: torch.Tensor, temperature: float = 1.0,
                           vocab_limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One forward pass: log-probs (B, R) of the response tokens, their (temperature-scaled, vocab-masked)
    logits (B, R, V), and the values (B, R) read from the hidden state that chose each token."""
    h = model.hidden(ids)[:, :-1]  # position t predicts token t+1
    h = h.gather(1, index[..., None].expand(-1, -1, h.size(-1)))
    logits = model.lm_head(h).float()
    if temperature > 0 and temperature != 1.0:
        logits = logits / temperature
    if vocab_limit is not None and vocab_limit < logits.size(-1):
        logits = logits.masked_fill(torch.arange(logits.size(-1), device=logits.device) >= vocab_limit,
                                    float("-inf"))
    targets = ids[:, 1:].gather(1, index)
    logp = logits.gather(-1, targets[..., None]).squeeze(-1) - torch.logsumexp(logits, dim=-1)
    values = value_head(h).squeeze(-1) if value_head is not None else torch.zeros_like(logp)
    return logp, logits, values


# -- training ----------------------------------------------------------------------------------------------------------
class PPOConf(BaseModel):
    """The `ppo:` section. TRL's PPOConfig defaults unless noted; train.batch_size prompts per rollout batch,
    train.max_steps rollout batches (each followed by ppo_epochs × num_minibatches optimizer steps)."""

    model_config = ConfigDict(extra="forbid")
    kl_coef: float = Field(0.05, ge=0)
    cliprange: float = Field(0.2, gt=0)
    cliprange_value: float = Field(0.2, gt=0)
    vf_coef: float = Field(0.1, ge=0)
    gamma: float = Field(1.0, ge=0, le=1)
    lam: float = Field(0.95, ge=0, le=1)
    ppo_epochs: int = Field(4, ge=1)  # TRL num_ppo_epochs
    num_minibatches: int = Field(1, ge=1)  # TRL num_mini_batches
    whiten_rewards: bool = False
    max_new_tokens: int = Field(24, ge=1)  # TRL response_length 53; the tiny models have a 128–256 block
    temperature: float = Field(1.0, gt=0)  # TRL 0.7; the policy's own distribution keeps exploration up
    top_k: int | None = Field(None, ge=1)
    max_prompt_len: int | None = Field(None, ge=2)  # default block_size - max_new_tokens
    missing_eos_penalty: float | None = None  # subtracted from the score of a reply that never stopped (TRL's)


class ValueHead(nn.Module):
    """A scalar linear head on the policy's final hidden states. Zero-initialized: values start at 0 and the
    first value-loss gradients do not reach the shared trunk through random weights."""

    def __init__(self, d_model: int):
        super().__init__()
        self.linear = nn.Linear(d_model, 1)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.linear(h.float())


class PolicyWithValue(nn.Module):
    """Container so one optimizer holds the policy and its value head (the policy's weights alone are saved in
    model.safetensors, so a PPO checkpoint stays a plain GPT checkpoint for generate/export/eval)."""

    def __init__(self, policy: nn.Module, value_head: ValueHead):
        super().__init__()
        self.policy, self.value_head = policy, value_head


def train_ppo(conf: PostTrainConf, pconf: PPOConf, policy_path: str | Path, prompts: str | Path, out: str | Path,
              reward_model: str | Path | None = None, reward_fn: str | None = None, resume: bool = False,
              quiet: bool = False) -> dict:
    """PPO from a policy checkpoint against a reward model or a built-in reward function."""
    if (reward_model is None) == (reward_fn is None):
        raise TrainConfigError("give exactly one of a reward model (--reward-model) or a reward function (--reward-fn)")
    if conf.lora_rank:
        raise TrainConfigError("ppo trains the full policy; train.lora_rank must be 0")
    if conf.batch_size % pconf.num_minibatches:
        raise TrainConfigError(f"train.batch_size ({conf.batch_size}) must be divisible by ppo.num_minibatches "
                               f"({pconf.num_minibatches})")
    device = setup(conf)
    out = Path(out)
    policy, folder, sp = load_base(policy_path, device)
    ref, _, _ = load_base(policy_path, device)
    ref.requires_grad_(False)
    tokenizer = folder / "tokenizer.model"
    if reward_model is not None:
        scorer, rm_folder = reward_model_scorer(reward_model, tokenizer, device)
        scored_by = base_reference(rm_folder)
    else:
        scorer, scored_by = reward_function(reward_fn, sp), reward_fn
    messages, skipped = load_prompts(prompts)
    if not messages:
        raise PostTrainDataError(f"{prompts}: no usable prompts (skipped: {dict(skipped)})")
    limit = min(pconf.max_prompt_len or policy.cfg.block_size, policy.cfg.block_size - pconf.max_new_tokens)
    if limit < 2:
        raise TrainConfigError(f"ppo.max_new_tokens {pconf.max_new_tokens} leaves no room for a prompt in block_size "
                               f"{policy.cfg.block_size}")
    fitted = [fit_prompt(render_prompt(m, sp), limit) for m in messages]
    prompt_ids = [ids for ids, _ in fitted]
    truncated = sum(t for _, t in fitted)
    stops, vocab = stop_ids(sp), sp.vocab_size()
    head = ValueHead(policy.cfg.d_model).to(device)
    both = PolicyWithValue(policy, head)
    opt = make_optimizer(both, conf, device)
    order = ExampleOrder(len(prompt_ids), conf.seed)
    # Sampling and minibatch order. On the model's device, because torch.multinomial on CUDA takes only a CUDA
    # generator; the minibatch permutation is drawn on that device too (randperm's output must be where its
    # generator is), so a CPU run's stream is what it always was.
    gen = torch.Generator(device=device).manual_seed(conf.seed)
    sha = data_sha256(prompts)

    start, log = loop.start_run(out, resume, True, conf.tensorboard, quiet)
    step, tokens_seen = 0, 0
    if start is not None:
        state = restore(start, policy, opt)
        set_rng_state(state["rng"][0])
        if state.get("method") != "ppo" or state.get("data_sha256") != sha:
            raise CheckpointError(f"{start} is not a ppo checkpoint on the prompts {prompts}")
        head.load_state_dict(tensors_from_json(state["value_head"]))
        set_generator_state(gen, state["sampler"])
        order.load_state_dict(state["data"])
        step, tokens_seen = state["step"], state["tokens_seen"]
        log.print(f"resumed from {start} at step {step}")
    config = config_dump(conf, "ppo", pconf)
    loop.write_run_files(out, config, tokenizer)
    log.print(f"ppo: {len(prompt_ids)} prompts ({truncated} truncated), {conf.batch_size} per rollout batch, "
              f"{pconf.ppo_epochs} epochs × {pconf.num_minibatches} minibatches, scored by {scored_by}")

    def checkpoint(step: int, tokens_seen: int) -> None:
        state = {"method": "ppo", "base": base_reference(folder), "lora": None, "data_sha256": sha,
                 "data": order.state_dict(), "tokens_seen": tokens_seen, "rng": [rng_state()], "config": config,
                 "value_head": tensors_to_json(head.state_dict()), "sampler": generator_state(gen),
                 "scored_by": scored_by, "skipped": dict(skipped), "truncated": truncated}
        path = save_checkpoint(out, step, policy, opt, state, tokenizer, conf.keep_last)
        log.print(f"step {step:>6} | checkpoint {path}")

    mb_size = conf.batch_size // pconf.num_minibatches

    def ppo_step() -> tuple[dict[str, float], int]:
        """One rollout batch, then ppo_epochs × num_minibatches optimizer updates on it."""
        t0 = time.perf_counter()
        # 1. rollout: sample, then score the batch as it was sampled (old log-probs, values, reference)
        batch_prompts = [prompt_ids[i] for i in order.next(conf.batch_size)]
        policy.eval()
        responses = sample_responses(policy, batch_prompts, pconf.max_new_tokens, pconf.temperature, gen, stops,
                                     vocab_limit=vocab, top_k=pconf.top_k)
        ids, index, mask = pad_sequences(batch_prompts, responses, PAD_ID)
        ids, index, mask = ids.to(device), index.to(device), mask.to(device)
        with torch.no_grad(), autocast(conf, device):
            old_logp, _, old_values = response_logits_values(policy, head, ids, index, pconf.temperature, vocab)
            ref_logp, _, _ = response_logits_values(ref, None, ids, index, pconf.temperature, vocab)
            scores = scorer(batch_prompts, responses).to(device).float()
        stopped = torch.tensor([bool(r) and r[-1] in stops for r in responses], device=device)
        if pconf.missing_eos_penalty is not None:
            scores = torch.where(stopped, scores, scores - pconf.missing_eos_penalty)
        rewards, kl = kl_rewards(old_logp.float(), ref_logp.float(), scores, mask, pconf.kl_coef)
        if pconf.whiten_rewards:
            rewards = masked_whiten(rewards, mask, shift_mean=False)
        advantages, returns = gae(rewards, old_values.float(), mask, pconf.gamma, pconf.lam)
        advantages = masked_whiten(advantages, mask)
        t_rollout = time.perf_counter()
        # 2. PPO epochs over minibatches of the rollout batch: one train_step per minibatch
        policy.train()

        def minibatch_loss(mb: torch.Tensor) -> tuple[torch.Tensor, dict, int]:
            logp, logits, values = response_logits_values(policy, head, ids[mb], index[mb], pconf.temperature, vocab)
            m = mask[mb]
            out_mb = ppo_losses(logp.float(), old_logp[mb], advantages[mb], values.float(), old_values[mb],
                                returns[mb], m, pconf.cliprange, pconf.cliprange_value, pconf.vf_coef)
            with torch.no_grad():
                out_mb["entropy"] = masked_mean(entropy_from_logits(logits), m)
            return out_mb.pop("loss"), out_mb, int(m.sum())

        sums: dict[str, float] = {}
        n_updates = 0
        for _ in range(pconf.ppo_epochs):
            perm = torch.randperm(conf.batch_size, generator=gen, device=gen.device).tolist()
            for k in range(pconf.num_minibatches):
                mb = torch.tensor(perm[k * mb_size:(k + 1) * mb_size], device=device)
                out_mb, _ = loop.train_step(task, lambda mb=mb: minibatch_loss(mb))
                for key, v in out_mb.items():
                    sums[key] = sums.get(key, 0.0) + v
                n_updates += 1
        generated = int(mask.sum())
        metrics = {"reward": scores.mean().item(), "kl": kl.sum(1).mean().item(),
                   "non_score_reward": (-pconf.kl_coef * kl).sum(1).mean().item(),
                   **{k: v / n_updates for k, v in sums.items()},
                   "response_tokens": generated / len(responses), "stopped": stopped.float().mean().item(),
                   "rollout_s": t_rollout - t0, "update_s": time.perf_counter() - t_rollout}
        return metrics, generated

    def describe(r: dict) -> str:
        return (f"step {r['step']:>5}/{conf.max_steps} | reward {r['reward']:.3f} | kl {r['kl']:.4f} | "
                f"entropy {r['entropy']:.3f} | clipfrac {r['clipfrac']:.3f} | vf_loss {r['vf_loss']:.4f} | "
                f"len {r['response_tokens']:.1f} | {r['tokens_per_sec']:,.0f} gen tok/s")

    # grad_accum 1: a PPO update is one minibatch (ppo.num_minibatches sets their size)
    task = loop.Task(opt=opt, lr=lambda s: lr_for(s, conf), step=ppo_step, params=list(both.parameters()),
                     grad_clip=conf.grad_clip, autocast=lambda: autocast(conf, device), checkpoint=checkpoint,
                     describe=describe, finite=("loss", "kl", "reward"))
    summary = loop.run(task, conf, log, step, tokens_seen)
    return {"step": summary["step"], "train": summary["record"], "tokens_seen": summary["tokens_seen"],
            "prompts": len(prompt_ids), "tokens_per_sec": summary["tokens_per_sec"], "out": str(out),
            "skipped": dict(skipped), "truncated": truncated}
