"""Memory-lean training kernels in plain torch: a chunked linear + cross-entropy that never holds the full
(tokens × vocabulary) logits, and an RMSNorm that keeps only its low-precision input for backward.

Chunked linear + cross-entropy (the idea of Liger-Kernel's fused linear cross-entropy). The usual path holds the
logits of every position, in float32 for the softmax: at GPT-2-124M's 16 × 1024 tokens × 50,304 entries that is
3.3 GB, plus the bf16 logits and the softmax gradient of the same shape. Here the rows are taken a chunk at a
time; for each chunk the logits are formed, the loss summed, and the gradient of the logits (softmax − one-hot)
turned at once into the chunk's gradients for the hidden states and the weight, so the chunk's logits can be
freed. The forward pass thus does the backward matmuls too (its cost moves, it does not grow), and backward only
scales the stored gradients by the incoming one. Without grad the gradients are skipped.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Rows per chunk: about 2^26 logits (256 MB in float32) whatever the vocabulary; the small configs fit whole.
CHUNK_LOGITS = 1 << 26


def chunk_rows(vocab_size: int) -> int:
    return max(1, CHUNK_LOGITS // vocab_size)


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk: int, ignore_index: int,
                grad_enabled: bool):
        # Under autocast the matmuls below run in its dtype (as nn.Linear's would); the softmax is in float32.
        # `grad_enabled` is the caller's grad mode: needs_input_grad stays True under torch.no_grad.
        valid = targets != ignore_index
        n_valid = valid.sum()
        want_h, want_w = grad_enabled and ctx.needs_input_grad[0], grad_enabled and ctx.needs_input_grad[1]
        needs_grad = want_h or want_w
        total = torch.zeros((), device=h.device, dtype=torch.float32)
        grad_h = torch.empty_like(h) if want_h else None
        grad_w = torch.zeros_like(weight, dtype=torch.float32) if want_w else None
        scale = 1.0 / n_valid.clamp(min=1).float()
        # the gradient matmuls run in autocast's dtype as the unfused backward would; the weight is cast once
        gdt = torch.get_autocast_dtype(h.device.type) if torch.is_autocast_enabled(h.device.type) else weight.dtype
        w_g = weight.to(gdt) if needs_grad else None
        for start in range(0, h.size(0), chunk):
            hc, tc = h[start:start + chunk], targets[start:start + chunk]
            logits = F.linear(hc, weight).float()
            vc = tc != ignore_index
            safe = torch.where(vc, tc, 0)
            lse = torch.logsumexp(logits, dim=-1)
            total += ((lse - logits.gather(1, safe[:, None]).squeeze(1)) * vc).sum()
            if not needs_grad:
                continue
            # d(mean loss)/d(logits) = (softmax - onehot) / n_valid on valid rows, 0 on ignored ones
            g = torch.exp(logits.sub_(lse[:, None]))
            g.scatter_add_(1, safe[:, None], -torch.ones_like(g[:, :1]))
            g.mul_((vc.float() * scale)[:, None])
            g = g.to(gdt)
            if grad_h is not None:
                grad_h[start:start + chunk] = (g @ w_g).to(h.dtype)
            if grad_w is not None:
                grad_w += (g.t() @ hc.to(gdt)).float()
        ctx.save_for_backward(grad_h, grad_w)
        ctx.weight_dtype = weight.dtype
        # mean over valid targets, NaN when there is none (as F.cross_entropy)
        return total / n_valid

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        grad_h, grad_w = ctx.saved_tensors
        gh = grad_h * grad_out.to(grad_h.dtype) if grad_h is not None else None
        gw = (grad_w * grad_out).to(ctx.weight_dtype) if grad_w is not None else None
        return gh, gw, None, None, None, None


def linear_cross_entropy(h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, ignore_index: int = -1,
                         chunk: int | None = None) -> torch.Tensor:
    """mean(cross_entropy(h @ weight.T, targets)) over targets != ignore_index, with h (N, d), weight (V, d),
    targets (N,); the logits exist one chunk of rows at a time.

    When all rows fit in one chunk (logits under CHUNK_LOGITS, the small CPU configs) the plain path runs: there the
    float32 copy is small, and the chunked path's extra passes measured about 5 % slower (BENCHMARKS.md)."""
    chunk = chunk or chunk_rows(weight.size(0))
    if h.size(0) <= chunk:
        return F.cross_entropy(F.linear(h, weight).float(), targets, ignore_index=ignore_index)
    return _LinearCrossEntropy.apply(h, weight, targets, chunk, ignore_index, torch.is_grad_enabled())


class _RMSNormLowPrecision(torch.autograd.Function):
    """RMSNorm of a bf16/fp16 input computed in float32, saving for backward only that input (which its producer
    keeps anyway) and the float32 inverse rms per row; backward recomputes the float32 copy instead of keeping it."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, eps: float):
        xf = x.float()
        rstd = torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
        ctx.save_for_backward(x, weight, rstd)
        return (xf * rstd * weight.float()).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weight, rstd = ctx.saved_tensors
        xhat = x.float() * rstd
        g = grad.float()
        gw = (g * xhat).reshape(-1, x.size(-1)).sum(0).to(weight.dtype) if ctx.needs_input_grad[1] else None
        gxhat = g * weight.float()
        gx = rstd * (gxhat - xhat * (gxhat * xhat).mean(-1, keepdim=True))
        return gx.to(x.dtype), gw, None


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """RMSNorm over the last dimension in float32, returned in x's dtype. A float32 input takes torch's fused
    kernel; a lower-precision one (q and k under bf16 autocast with qk_norm) the function above, which does not
    keep a float32 copy of it alive until backward."""
    if x.dtype == torch.float32 or not torch.is_grad_enabled():
        return F.rms_norm(x.float(), (x.size(-1),), weight, eps).type_as(x)
    return _RMSNormLowPrecision.apply(x, weight, eps)
