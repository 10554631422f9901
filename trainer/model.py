"""The networks: a GPT decoder in the spirit of nanoGPT's model.py, with the modern choices of small open models,
and the reward model built on its trunk.

RoPE positions, RMSNorm (pre-norm), SwiGLU MLP (or ReLU²), optional QK-norm, optional tied input/output
embeddings, no biases, attention through `F.scaled_dot_product_attention`, and a KV cache for generation.
Optionally a mixture of experts (`MoEConfig`) in place of the MLP every `every` blocks.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn as nn
import torch.nn.functional as F

from corpus.tokenize.tokenizer import PAD_ID
from trainer.kernels import linear_cross_entropy, rms_norm


@dataclass
class MoEConfig:
    """Token-choice top-k routing, as Mixtral and Qwen3-MoE: softmax over all experts, the top k kept and
    renormalized to sum to one. Dropless: every expert computes every token routed to it (no capacity)."""

    experts: int = 8
    top_k: int = 2
    every: int = 1  # blocks i with (i + 1) % every == 0 are MoE (Qwen3-MoE's decoder_sparse_step), the rest dense
    aux_loss_coef: float = 0.01  # load balancing (Switch Transformer eq. 4); 1.0 when perfectly balanced
    router_z_loss_coef: float = 0.001  # mean squared logsumexp of the router logits (ST-MoE)

    def __post_init__(self):
        if not isinstance(self.experts, int) or self.experts < 2:
            raise ValueError(f"model.moe.experts must be an integer >= 2, got {self.experts!r}")
        if not isinstance(self.top_k, int) or not 2 <= self.top_k <= self.experts:
            # renormalized over the top k, a single expert's weight is always 1: the router would get no
            # gradient from the language-model loss, only from the auxiliary losses
            raise ValueError(f"model.moe.top_k must be in [2, experts={self.experts}] (weights are renormalized "
                             f"over the top k, so top-1 would never train the router), got {self.top_k!r}")
        if not isinstance(self.every, int) or self.every < 1:
            raise ValueError(f"model.moe.every must be a positive integer, got {self.every!r}")
        if self.aux_loss_coef < 0 or self.router_z_loss_coef < 0:
            raise ValueError("model.moe.aux_loss_coef and router_z_loss_coef must not be negative")


@dataclass
class GPTConfig:
    vocab_size: int = 2048
    block_size: int = 128  # longest sequence; RoPE tables and KV caches are sized by it
    n_layer: int = 4
    n_head: int = 4
    d_model: int = 128
    mlp: str = "swiglu"  # "swiglu" | "relu2"
    mlp_hidden: int | None = None  # default: 8/3·d rounded up to 64 for SwiGLU (same params as 4·d), 4·d for ReLU²
    qk_norm: bool = False
    tie_embeddings: bool = True
    dropout: float = 0.0
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    moe: MoEConfig | None = None  # experts' hidden size: mlp_hidden / hidden, as a dense block's

    def __post_init__(self):
        if isinstance(self.moe, dict):
            self.moe = MoEConfig(**self.moe)
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "d_model"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"model.{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.d_model % self.n_head:
            raise ValueError(f"model.d_model ({self.d_model}) must be divisible by model.n_head ({self.n_head})")
        if (self.d_model // self.n_head) % 2:
            raise ValueError(f"model.d_model / model.n_head = {self.d_model // self.n_head} must be even for RoPE")
        if self.mlp not in ("swiglu", "relu2"):
            raise ValueError(f"model.mlp must be 'swiglu' or 'relu2', got {self.mlp!r}")
        if self.mlp_hidden is not None and self.mlp_hidden < 1:
            raise ValueError(f"model.mlp_hidden must be positive, got {self.mlp_hidden}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"model.dropout must be in [0, 1), got {self.dropout}")
        if self.moe is not None:
            if self.mlp != "swiglu":
                raise ValueError("model.moe needs model.mlp: swiglu (the experts are SwiGLU MLPs)")
            if self.moe.every > self.n_layer:
                raise ValueError(f"model.moe.every ({self.moe.every}) exceeds model.n_layer ({self.n_layer}): "
                                 "no block would be MoE")

    def is_moe(self, layer: int) -> bool:
        return self.moe is not None and (layer + 1) % self.moe.every == 0

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head

    @property
    def hidden(self) -> int:
        if self.mlp_hidden:
            return self.mlp_hidden
        if self.mlp == "swiglu":
            return 64 * math.ceil(8 * self.d_model / 3 / 64)
        return 4 * self.d_model

    def to_dict(self) -> dict:
        d = asdict(self)
        if d["moe"] is None:  # a dense model's config.json stays as it was before MoE existed
            del d["moe"]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> GPTConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown model settings: {sorted(unknown)}")
        return cls(**d)


def rope_tables(cfg: GPTConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Full-width (T, hd) tables: cos twice, and sin with the first half negated, as `apply_rope` consumes them."""
    inv_freq = 1.0 / (cfg.rope_theta ** (torch.arange(0, cfg.head_dim, 2, dtype=torch.float32) / cfg.head_dim))
    angles = torch.outer(torch.arange(cfg.block_size, dtype=torch.float32), inv_freq)  # (T, hd/2)
    return torch.cat((angles.cos(), angles.cos()), -1), torch.cat((-angles.sin(), angles.sin()), -1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (first half, second half) of each head's channels; x is (B, H, T, hd).

    (x1, x2) -> (x1·cos - x2·sin, x2·cos + x1·sin), written as x·cos + swap_halves(x)·sin with the sign folded
    into the table: four kernels instead of seven, and bit-identical (negation and the order of a sum of two
    terms are exact in IEEE arithmetic). Computed in x's dtype, as Llama does: under bf16 autocast an fp32 round
    trip costs two extra passes over q and k, and the tables themselves are exact in fp32.
    """
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return x * cos + x.roll(x.size(-1) // 2, dims=-1) * sin


class RMSNorm(nn.RMSNorm):
    """RMSNorm computed in float32: precise under bf16 autocast. A float32 input (the residual stream) takes torch's
    fused kernel, which refuses a bf16 input with a float32 gain; a bf16 one (q and k with qk_norm) is normalized
    without keeping a float32 copy of it for backward (trainer/kernels.py)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rms_norm(x, self.weight, self.eps)


class KVCache:
    """Preallocated keys/values per layer, so decoding a token never reallocates or copies the past."""

    def __init__(self, cfg: GPTConfig, batch: int, device, dtype=torch.float32):
        shape = (batch, cfg.n_head, cfg.block_size, cfg.head_dim)
        self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.n_layer)]
        self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.n_layer)]
        self.length = 0  # positions filled so far (advanced by GPT.forward after all layers ran)

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        end = self.length + k.size(2)
        self.k[layer][:, :, self.length:end] = k
        self.v[layer][:, :, self.length:end] = v
        return self.k[layer][:, :, :end], self.v[layer][:, :, :end]


class Attention(nn.Module):
    def __init__(self, cfg: GPTConfig, layer: int):
        super().__init__()
        self.cfg, self.layer = cfg, layer
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=False)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.proj.residual = True  # scaled init, see GPT._init_weights
        if cfg.qk_norm:  # normalizing q and k per head bounds attention logits, which tolerates higher lr
            self.q_norm = RMSNorm(cfg.head_dim, eps=cfg.norm_eps)
            self.k_norm = RMSNorm(cfg.head_dim, eps=cfg.norm_eps)

    def forward(self, x, cos, sin, cache: KVCache | None = None):
        B, T, C = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.cfg.n_head, self.cfg.head_dim).permute(2, 0, 3, 1, 4)
        if self.cfg.qk_norm:
            q, k = self.q_norm(q), self.k_norm(k)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        past = 0
        if cache is not None:
            past = cache.length
            k, v = cache.update(self.layer, k, v)
        dropout = self.cfg.dropout if self.training else 0.0
        if past == 0:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=dropout)
        elif T == 1:  # one new token attends to everything before it: no mask needed
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout)
        else:  # several new tokens after a cached prefix: causal mask offset by the prefix length
            mask = torch.ones(T, past + T, dtype=torch.bool, device=x.device).tril(diagonal=past)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)
        y = y.transpose(1, 2).reshape(B, T, C)
        return self.proj(y)


class MLP(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.kind = cfg.mlp
        self.up = nn.Linear(cfg.d_model, (2 if cfg.mlp == "swiglu" else 1) * cfg.hidden, bias=False)
        self.down = nn.Linear(cfg.hidden, cfg.d_model, bias=False)
        self.down.residual = True

    def forward(self, x):
        if self.kind == "swiglu":
            gate, up = self.up(x).chunk(2, dim=-1)
            return self.down(F.silu(gate) * up)
        return self.down(F.relu(self.up(x)).square())


class MoE(nn.Module):
    """SwiGLU experts behind a top-k router, dropless.

    Expert weights are stacked (E, 2·hidden, d) and (E, d, hidden), gate rows first, as transformers' Mixtral and
    Qwen3-MoE hold them. Each expert runs on the tokens routed to it (gathered, so none is dropped and none
    computed twice), its output weighted and added back, in the same order of operations as transformers does,
    so an exported model's logits match. After each forward, `stats` holds this layer's auxiliary losses
    (differentiable) and the fraction of routed slots each expert took (detached).
    """

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        m, d, h = cfg.moe, cfg.d_model, cfg.hidden
        self.top_k, self.experts = m.top_k, m.experts
        self.router = nn.Linear(d, m.experts, bias=False)
        self.gate_up = nn.Parameter(torch.empty(m.experts, 2 * h, d))
        self.down = nn.Parameter(torch.empty(m.experts, d, h))
        self.stats: dict[str, torch.Tensor] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x = x.reshape(-1, shape[-1])
        logits = self.router(x)
        probs = logits.float().softmax(-1)  # float: the routing decision should not depend on autocast's rounding
        weights, chosen = probs.topk(self.top_k, dim=-1)
        weights = (weights / weights.sum(-1, keepdim=True)).to(x.dtype)
        out = torch.zeros_like(x)
        # (E, k, N) mask computed once; each expert then takes the rows routed to it
        mask = F.one_hot(chosen, self.experts).permute(2, 1, 0)
        load = mask.sum((1, 2))
        for e in range(self.experts):
            # an expert without tokens still runs (on zero rows): its weights then get zero gradients rather than
            # none, which DDP requires of every parameter
            slot, rows = torch.where(mask[e])
            gate, up = F.linear(x[rows], self.gate_up[e]).chunk(2, dim=-1)
            y = F.linear(F.silu(gate) * up, self.down[e]) * weights[rows, slot, None]
            out.index_add_(0, rows, y.to(out.dtype))
        fraction = load.float() / chosen.numel()  # of the N·k routed slots; 1/E each when balanced
        self.stats = {
            # Switch Transformer: E · Σ_e (fraction of slots routed to e) · (mean router probability of e)
            "balance": self.experts * (fraction * probs.mean(0)).sum(),
            "z": torch.logsumexp(logits.float(), -1).square().mean(),
            "load": fraction.detach(),
        }
        return out.view(shape)


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig, layer: int):
        super().__init__()
        self.norm1 = RMSNorm(cfg.d_model, eps=cfg.norm_eps)
        self.attn = Attention(cfg, layer)
        self.norm2 = RMSNorm(cfg.d_model, eps=cfg.norm_eps)
        self.mlp = MoE(cfg) if cfg.is_moe(layer) else MLP(cfg)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x, cos, sin, cache=None):
        x = x + self.drop(self.attn(self.norm1(x), cos, sin, cache))
        return x + self.drop(self.mlp(self.norm2(x)))


class GPT(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg, i) for i in range(cfg.n_layer))
        self.norm = RMSNorm(cfg.d_model, eps=cfg.norm_eps)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.wte.weight
        cos, sin = rope_tables(cfg)
        # Not persistent: derived from the config, so checkpoints hold only learned weights.
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.apply(self._init_weights)

    def _init_weights(self, m: nn.Module):
        if isinstance(m, nn.Linear):
            # GPT-2: residual-branch outputs scaled by 1/sqrt(2·layers) so the residual stream's variance stays flat.
            std = 0.02 / math.sqrt(2 * self.cfg.n_layer) if getattr(m, "residual", False) else 0.02
            nn.init.normal_(m.weight, mean=0.0, std=std)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)
        elif isinstance(m, MoE):  # its router is an nn.Linear (above); the experts as a dense MLP's layers
            nn.init.normal_(m.gate_up, mean=0.0, std=0.02)
            nn.init.normal_(m.down, mean=0.0, std=0.02 / math.sqrt(2 * self.cfg.n_layer))

    def num_params(self, non_embedding: bool = False, active: bool = False) -> int:
        """Parameters (a tied weight once); `active`: those one token uses, top_k of each MoE layer's experts."""
        n = sum(p.numel() for p in self.parameters())  # parameters() yields a tied weight once
        if active:
            n -= sum((m.experts - m.top_k) * (m.gate_up[0].numel() + m.down[0].numel())
                     for m in self.modules() if isinstance(m, MoE))
        return n - self.wte.weight.numel() if non_embedding else n

    def moe_layers(self) -> list[MoE]:
        return [m for m in self.modules() if isinstance(m, MoE)]

    def aux_loss(self) -> torch.Tensor | float:
        """The MoE auxiliary losses of the last forward, weighted by their coefficients and averaged over the MoE
        layers (so the coefficients do not scale with depth): what a training step adds to the LM loss. 0 for a
        dense model, so `loss + model.aux_loss()` is the plain loss, bit for bit."""
        layers = self.moe_layers()
        if not layers:
            return 0
        m = self.cfg.moe
        return sum(m.aux_loss_coef * x.stats["balance"] + m.router_z_loss_coef * x.stats["z"]
                   for x in layers) / len(layers)

    def moe_metrics(self) -> dict[str, float]:
        """The last forward's auxiliary losses (unweighted, mean over MoE layers) and each expert's share of the
        routed slots (mean over MoE layers): what a training run logs. Empty for a dense model."""
        layers = self.moe_layers()
        if not layers:
            return {}
        load = torch.stack([x.stats["load"] for x in layers]).mean(0).tolist()
        return {"moe_balance_loss": float(sum(x.stats["balance"].detach() for x in layers) / len(layers)),
                "moe_z_loss": float(sum(x.stats["z"].detach() for x in layers) / len(layers)),
                **{f"expert_load_{e}": v for e, v in enumerate(load)}}

    def flops_per_token(self) -> float:
        """Training FLOPs per token (PaLM appendix B): 6 × matmul params + 12 × layers × d × T for attention.

        Matmul params are the blocks' plus the output projection (V × d), whether or not it is tied.
        """
        c = self.cfg
        matmul = self.num_params(non_embedding=True, active=True) + c.vocab_size * c.d_model * (
            1 if c.tie_embeddings else 0)
        return 6 * matmul + 12 * c.n_layer * c.d_model * c.block_size

    def hidden(self, idx: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """Final normed hidden states (B, T, d_model): what the output projection, a reward or value head reads."""
        B, T = idx.shape
        start = cache.length if cache is not None else 0
        if start + T > self.cfg.block_size:
            raise ValueError(f"sequence of {start + T} tokens exceeds block_size {self.cfg.block_size}")
        cos, sin = self.rope_cos[start:start + T], self.rope_sin[start:start + T]
        x = self.drop(self.wte(idx))
        for block in self.blocks:
            x = block(x, cos, sin, cache)
        if cache is not None:
            cache.length += T
        return self.norm(x)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, cache: KVCache | None = None,
                return_logits: bool = True):
        """(logits, loss). Without targets: logits of the last position only (inference), loss None. With targets
        (-1 = ignored): the mean next-token loss, and the logits of every position unless `return_logits=False`,
        which takes the chunked linear + cross-entropy (trainer/kernels.py) and never holds the full logits: what
        the training loops use."""
        x = self.hidden(idx, cache)
        if targets is None:
            return self.lm_head(x[:, -1:]).float(), None
        if not return_logits and isinstance(self.lm_head, nn.Linear):  # a LoRA-wrapped head takes the plain path
            return None, linear_cross_entropy(x.reshape(-1, x.size(-1)), self.lm_head.weight, targets.reshape(-1))
        logits = self.lm_head(x).float()  # float: a bf16 softmax over the vocabulary loses precision
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1)
        return logits, loss


def pad_right(seqs: list[list[int]], value: int = PAD_ID, length: int | None = None) -> torch.Tensor:
    """(B, T) long tensor, each row padded on the right. Causal attention means padding never changes the
    real positions' outputs, so no attention mask is needed."""
    length = length or max(len(s) for s in seqs)
    out = torch.full((len(seqs), length), value, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, :len(s)] = torch.as_tensor(s, dtype=torch.long)
    return out


class RewardModel(nn.Module):
    """Our GPT trunk + a scalar head: the reward of a sequence is the head on the last real token's hidden state
    (trained by trainer/reward.py)."""

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
