"""Peak FLOP/s for MFU: the GPU datasheet table and the measured CPU matmul peak."""

from __future__ import annotations

import time

import torch

# bf16 dense peaks per GPU (TF32 is half of it); MFU needs some peak and these are the published figures.
GPU_PEAK_BF16 = {"H100": 989e12, "A100": 312e12, "L40": 181e12, "L4": 121e12, "A10": 125e12, "4090": 165e12,
                 "3090": 71e12, "V100": 125e12, "T4": 65e12}


def matmul_peak(dtype: torch.dtype, n: int = 1024, reps: int = 4) -> float:
    """Best FLOP/s of an n×n CPU matmul on the current threads: the achievable peak of this CPU for that dtype."""
    gen = torch.Generator().manual_seed(0)  # a private generator: the run's RNG stream must not move
    a, b = (torch.randn(n, n, generator=gen).to(dtype) for _ in range(2))
    a @ b  # first call pays for packing buffers and thread start-up
    best = 0.0
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ b
        best = max(best, 2 * n**3 / (time.perf_counter() - t0))
    return best


def peak_flops(device: torch.device, conf, world: int, dtype: str) -> tuple[float, str]:
    """Peak FLOP/s of the hardware this run uses, and where the figure comes from.

    GPUs: datasheet dense bf16 (TF32 = half). CPUs publish no usable figure (clock and SIMD width vary by
    SKU and VM), so the peak is measured with a matmul at start-up; MFU on CPU is relative to that.
    """
    if conf.peak_tflops:
        return conf.peak_tflops * 1e12 * world, "train.peak_tflops"
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        peak = next((v for k, v in GPU_PEAK_BF16.items() if k in name), 312e12)
        return (peak if dtype == "bfloat16" else peak / 2) * world, f"{name} datasheet"
    per_process = matmul_peak(torch.bfloat16 if dtype == "bfloat16" else torch.float32)
    return per_process * world, f"measured {dtype} matmul, {torch.get_num_threads()} thread(s) × {world}"
