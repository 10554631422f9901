"""The memory-lean kernels equal the plain torch path: chunked linear + cross-entropy (loss and both gradients)
and the low-precision RMSNorm (output and gradients), on random inputs, in float32 and under bf16 autocast."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from trainer import kernels
from trainer.kernels import linear_cross_entropy, rms_norm
from trainer.model import GPT, GPTConfig


def _grads(fn, *tensors):
    for t in tensors:
        t.grad = None
    out = fn()
    out.backward()
    return out.detach(), [t.grad.clone() for t in tensors]


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.bfloat16, 2e-2)])
@pytest.mark.parametrize("chunk", [1, 37, 4096])  # 4096 ≥ N: the one-chunk (plain) path
def test_chunked_linear_cross_entropy_equals_the_unfused_path(dtype, tol, chunk):
    gen = torch.Generator().manual_seed(chunk)
    N, d, V = 203, 48, 611
    h = torch.randn(N, d, generator=gen, requires_grad=True)
    w = (0.2 * torch.randn(V, d, generator=gen)).requires_grad_()
    y = torch.randint(0, V, (N,), generator=gen)
    y[::5] = -1  # ignored positions (padding, masked prompt tokens)
    auto = torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16)
    with auto:
        ref, (gh, gw) = _grads(lambda: F.cross_entropy(F.linear(h, w).float(), y, ignore_index=-1), h, w)
    with auto:
        got, (ch, cw) = _grads(lambda: linear_cross_entropy(h, w, y, chunk=chunk), h, w)
    assert got.dtype == torch.float32 and ch.dtype == h.dtype and cw.dtype == w.dtype
    torch.testing.assert_close(got, ref, atol=tol * 0.1, rtol=tol * 0.1)
    # gradients compared relative to their largest entry: bf16 rounds each chunk's product once
    assert (ch - gh).abs().max() <= tol * gh.abs().max()
    assert (cw - gw).abs().max() <= tol * gw.abs().max()


def test_all_targets_ignored_gives_nan_as_cross_entropy_and_no_grad_skips_the_gradients():
    h, w = torch.randn(4, 8, requires_grad=True), torch.randn(16, 8, requires_grad=True)
    y = torch.full((4,), -1)
    assert torch.isnan(linear_cross_entropy(h, w, y)) and torch.isnan(F.cross_entropy(h @ w.T, y, ignore_index=-1))
    with torch.no_grad():
        y = torch.randint(0, 16, (4,))
        torch.testing.assert_close(linear_cross_entropy(h, w, y), F.cross_entropy(h @ w.T, y))


@pytest.mark.parametrize("tied", [True, False])
def test_gpt_training_loss_path_matches_the_logits_path(tied, monkeypatch):
    monkeypatch.setattr(kernels, "CHUNK_LOGITS", 300 * 20)  # 20-row chunks: the chunked path, not the one-chunk one
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=300, block_size=32, n_layer=2, n_head=2, d_model=32, tie_embeddings=tied))
    x = torch.randint(0, 300, (3, 32))
    y = torch.roll(x, -1, 1)
    y[:, -4:] = -1
    params = [p for p in model.parameters()]
    full, g_full = _grads(lambda: model(x, y)[1], *params)
    logits, lean = model(x, y, return_logits=False)
    assert logits is None
    lean, g_lean = _grads(lambda: model(x, y, return_logits=False)[1], *params)
    torch.testing.assert_close(lean, full, atol=1e-5, rtol=1e-5)
    for a, b in zip(g_lean, g_full):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_low_precision_rms_norm_equals_the_float32_path():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(3, 5, 64, generator=gen).bfloat16().requires_grad_()
    w = (1 + 0.1 * torch.randn(64, generator=gen)).requires_grad_()
    g = torch.randn(3, 5, 64, generator=gen).bfloat16()

    def plain():
        return (F.rms_norm(x.float(), (64,), w, 1e-5).type_as(x).float() * g.float()).sum()

    def lean():
        out = rms_norm(x, w, 1e-5)
        assert out.dtype == torch.bfloat16
        return (out.float() * g.float()).sum()

    ref, (gx, gw) = _grads(plain, x, w)
    got, (lx, lw) = _grads(lean, x, w)
    torch.testing.assert_close(got, ref, atol=1e-3, rtol=1e-3)
    torch.testing.assert_close(lx.float(), gx.float(), atol=1e-2, rtol=1e-2)
    torch.testing.assert_close(lw, gw, atol=1e-3, rtol=1e-3)
