"""PyTorch's 3x3 conv peak as kgan.benchmarking.peaks measures TensorFlow's (256 -> 256
channels at 64x64, batch 1, best of ``reps`` calls after one untimed call), shared by the PyTorch
peers in this folder (``peer_pytorch_reference.py``, ``peer_nogan_torch.py``,
``deoldify_speed.py``). Imports only torch, so a PyTorch-only process can load it by file.
"""

import time

import torch


def conv_gflops(dtype, reps, size=64, channels=256, memory_format=torch.contiguous_format):
    """GFLOP/s of the best of ``reps`` forward calls of the 3x3 conv in ``dtype``."""
    conv = torch.nn.Conv2d(channels, channels, 3, padding=1, bias=False).to(dtype)
    conv = conv.to(memory_format=memory_format)
    x = torch.randn(1, channels, size, size).to(dtype).contiguous(memory_format=memory_format)
    best = float("inf")
    with torch.inference_mode():
        conv(x)
        for _ in range(reps):
            start = time.perf_counter()
            conv(x)
            best = min(best, time.perf_counter() - start)
    return 2 * 9 * channels * channels * size * size / best / 1e9


def conv_peaks(reps, memory_format=torch.contiguous_format):
    """``{"conv_fp32_gflops", "conv_bf16_gflops"}``, kgan.bench's peak keys."""
    return {"conv_fp32_gflops": conv_gflops(torch.float32, reps, memory_format=memory_format),
            "conv_bf16_gflops": conv_gflops(torch.bfloat16, reps, memory_format=memory_format)}
