"""Reduction-accuracy fixture: torch 2.15's float32 mean of hinge_embedding_loss over
N = 10^7 elements, beside the exact mean of the same per-element losses.

The data come from splitmix64, which the Rust test regenerates bit for bit:
    state += 0x9E3779B97F4A7C15; z = state; z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EB; z ^= z >> 31
    x_i = (z >> 40) / 2^24 * 2      (float32, exact: 24-bit mantissa)
    y_i = +1 if (z >> 39) & 1 else -1
Run with the fixture venv: tools/.venv/bin/python tools/gen_accuracy.py
"""
import json
import math
import os

import numpy as np
import torch

assert torch.__version__.startswith("2.15.0"), torch.__version__
torch.set_num_threads(1)

N = 10_000_000
MARGIN = 1.0


def splitmix64(n, seed=0):
    with np.errstate(over="ignore"):
        state = (np.arange(1, n + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)) + np.uint64(seed)
        z = state
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return z


z = splitmix64(N)
x = ((z >> np.uint64(40)).astype(np.float64) / float(1 << 24) * 2.0).astype(np.float32)
y = np.where(((z >> np.uint64(39)) & np.uint64(1)) == 1, 1.0, -1.0).astype(np.float32)

xt, yt = torch.from_numpy(x), torch.from_numpy(y)
torch_mean = torch.nn.functional.hinge_embedding_loss(xt, yt, margin=MARGIN).item()
per = torch.nn.functional.hinge_embedding_loss(xt, yt, margin=MARGIN, reduction="none").double().numpy()
exact = math.fsum(per.tolist()) / N

out = {
    "torch_version": torch.__version__,
    "n": N,
    "margin": MARGIN,
    "first_x": x[:4].tolist(),
    "first_y": y[:4].tolist(),
    "torch_mean_f32": torch_mean,
    "exact_mean": exact,
    "torch_abs_error": abs(torch_mean - exact),
}
path = os.path.join(os.path.dirname(__file__), "..", "fixtures", "accuracy", "hinge_embedding_mean_1e7.json")
with open(path, "w") as f:
    json.dump(out, f, indent=1)
print(json.dumps(out, indent=1))
