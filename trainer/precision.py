"""Which precision a run computes in: `train.dtype` float32, bfloat16 (autocast), or auto.

bf16 autocast only pays where the hardware multiplies bf16 natively: CUDA GPUs from Ampere on, and CPUs with
AVX512-BF16 or AMX (oneDNN's bf16 kernels). Elsewhere torch emulates it: on an AVX2-only CPU a bf16 matmul
measured about 100x slower than float32. `auto` picks bf16 only where it is native; an explicit `bfloat16` on
hardware without it still runs (results must not depend on the machine silently) but warns.
"""

from __future__ import annotations

import contextlib

import torch


def native_bf16(device: torch.device) -> bool:
    if device.type == "cuda":  # pre-Ampere GPUs emulate bf16, which torch counts as support unless told not to
        return torch.cuda.is_bf16_supported(including_emulation=False)
    # Not oneDNN's own _is_mkldnn_bf16_supported: it answers yes on any AVX512 core (measured: a Xeon with
    # avx512f but neither avx512_bf16 nor AMX), where bf16 is converted in software.
    cpu = torch.cpu
    if hasattr(cpu, "_is_avx512_bf16_supported") and hasattr(cpu, "_is_amx_tile_supported"):
        return bool(cpu._is_avx512_bf16_supported() or cpu._is_amx_tile_supported())
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def cpu_capability() -> str:
    return torch.backends.cpu.get_cpu_capability()


def resolve_dtype(requested: str, device: torch.device) -> tuple[str, str | None]:
    """The dtype to compute in, and a warning when the request is slow on this hardware."""
    native = native_bf16(device)
    if requested == "auto":
        return ("bfloat16" if native else "float32"), None
    if requested == "bfloat16" and not native:
        where = f"this CPU ({cpu_capability()})" if device.type == "cpu" else "this GPU"
        return requested, (f"warning: train.dtype=bfloat16 but {where} has no native bf16 matmul, so autocast "
                           "emulates it and runs far slower than float32; set train.dtype=auto or float32")
    return requested, None


def autocast(dtype: str, device: torch.device):
    if dtype == "bfloat16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
