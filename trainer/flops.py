"""Peak FLOP/s for MFU: the GPU datasheet table and a measured matmul peak (GPUs and CPUs alike)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

# Dense (not 2:4-sparse) bf16 tensor-core peaks per GPU from NVIDIA's datasheets; TF32 is half of it. The first
# name contained in the device name wins, so longer names come first ("H100 PCIe" before "H100", "L40S" before
# "L40" before "L4", "A100" and "A10G" before "A10"). None: no published dense bf16 figure; MFU then uses the
# measured peak only.
GPU_PEAK_BF16: tuple[tuple[str, float | None], ...] = (
    ("GB200", 2500e12), ("B200", 2250e12), ("B100", 1750e12),
    ("H200", 989e12),  # H200 SXM (and GH200): the H100 SXM's tensor cores with more, faster memory
    ("H100 PCIe", 756e12), ("H100 NVL", 835e12), ("H100", 989e12), ("H800", 989e12),
    ("A100", 312e12), ("A800", 312e12), ("A10G", None), ("A10", 125e12),
    ("L40S", 362e12), ("L40", 181e12), ("L4", 121e12),
    ("4090", 165e12), ("3090", 71e12), ("V100", 125e12), ("T4", 65e12),
)


def datasheet_peak(name: str) -> float | None:
    """Dense bf16 peak of a GPU by its device name, or None when the table has no figure for it."""
    return next((peak for key, peak in GPU_PEAK_BF16 if key in name), None)


def matmul_peak(dtype: torch.dtype, n: int | None = None, reps: int = 4, device: torch.device | str = "cpu") -> float:
    """Best FLOP/s of an n×n matmul on `device` (CPU: on the current threads): the achievable peak for that dtype.
    n defaults to 1024 on CPU and 8192 on a GPU, where smaller matmuls do not fill the chip."""
    device = torch.device(device)
    n = n or (8192 if device.type == "cuda" else 1024)
    gen = torch.Generator(device=device).manual_seed(0)  # a private generator: the run's RNG stream must not move
    a, b = (torch.randn(n, n, generator=gen, device=device).to(dtype) for _ in range(2))
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    a @ b  # first call pays for packing buffers, thread start-up, kernel selection
    sync()
    best = 0.0
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ b
        sync()
        best = max(best, 2 * n**3 / (time.perf_counter() - t0))
    return best


@dataclass
class Peak:
    """Peak FLOP/s of a run's hardware (all processes): `value` is what MFU divides by; on a GPU both the
    datasheet figure and the measured one are kept so logs can show both."""

    value: float
    source: str
    datasheet: float | None = None
    measured: float | None = None

    def describe(self) -> str:
        parts = [f"{self.value / 1e12:.2f} TFLOP/s ({self.source})"]
        if self.measured is not None and self.datasheet is not None:
            parts.append(f"measured {self.measured / 1e12:.2f} TFLOP/s = {100 * self.measured / self.datasheet:.0f}% "
                         "of the datasheet")
        return "; ".join(parts)


def peak_flops(device: torch.device, conf, world: int, dtype: str) -> Peak:
    """Peak FLOP/s of the hardware this run uses, and where the figure comes from.

    GPUs: the datasheet's dense bf16 (TF32 = half) for MFU, and a bf16 (or TF32) matmul measured at start-up,
    reported beside it (an unknown GPU uses the measured one). CPUs publish no usable figure (clock and SIMD
    width vary by SKU and VM), so the peak is measured with a matmul at start-up; MFU on CPU is relative to that.
    `train.peak_tflops` overrides both.
    """
    torch_dtype = torch.bfloat16 if dtype == "bfloat16" else torch.float32
    if conf.peak_tflops:
        return Peak(conf.peak_tflops * 1e12 * world, "train.peak_tflops")
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        measured = matmul_peak(torch_dtype, reps=10, device=device) * world
        sheet = datasheet_peak(name)
        if sheet is None:
            return Peak(measured, f"{name}: not in the datasheet table; measured {dtype} matmul", None, measured)
        sheet = (sheet if dtype == "bfloat16" else sheet / 2) * world
        return Peak(sheet, f"{name} datasheet dense {dtype}", sheet, measured)
    measured = matmul_peak(torch_dtype) * world
    return Peak(measured, f"measured {dtype} matmul, {torch.get_num_threads()} thread(s) × {world}", None, measured)
