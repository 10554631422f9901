"""The GPU datasheet table picks the right row by device name (longest names first), and the CPU peak is measured."""

from __future__ import annotations

import pytest
import torch

from trainer.flops import datasheet_peak, matmul_peak


@pytest.mark.parametrize("name, tflops", [
    ("NVIDIA H200", 989), ("NVIDIA H100 80GB HBM3", 989), ("NVIDIA H100 PCIe", 756), ("NVIDIA H100 NVL", 835),
    ("NVIDIA B200", 2250), ("NVIDIA L40S", 362), ("NVIDIA L40", 181), ("NVIDIA L4", 121),
    ("NVIDIA A100-SXM4-80GB", 312), ("NVIDIA A10", 125), ("NVIDIA GeForce RTX 4090", 165),
])
def test_datasheet_rows(name, tflops):
    assert datasheet_peak(name) == tflops * 1e12


def test_unknown_or_unpublished_gpu_has_no_datasheet_figure():
    assert datasheet_peak("NVIDIA A10G") is None  # must not fall through to the A10's row
    assert datasheet_peak("Some Future GPU") is None  # no silent A100 fallback


def test_cpu_peak_is_measured_without_moving_the_global_rng():
    state = torch.get_rng_state()
    assert matmul_peak(torch.float32, n=128, reps=2) > 0
    assert torch.equal(torch.get_rng_state(), state)
