#!/usr/bin/env python3
"""scikit-learn's reference accuracy for marginloss-burn's `linear_svm` example.

Trains `LinearSVC(multi_class="crammer_singer")` (and the one-vs-rest default, for
context) on the same UCI digits split the example uses: pixels / 16, the fixed shuffle of
`crates/marginloss-burn/examples/support/digits.rs` (xorshift64* seeded 0x5EED0FD16175,
Fisher-Yates from the last index down), 1,297 training and 500 held-out images. Writes
`crates/marginloss-burn/examples/linear_svm_reference.txt`, which the example prints.

    python3 -m venv tools/.venv && tools/.venv/bin/pip install scikit-learn
    tools/.venv/bin/python tools/linear_svm_reference.py
"""
import gzip
import os

import numpy as np
import sklearn
from sklearn.svm import LinearSVC

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "crates", "marginloss-candle", "data", "digits.csv.gz")
OUT = os.path.join(ROOT, "crates", "marginloss-burn", "examples", "linear_svm_reference.txt")
TRAIN = 1297
MASK = (1 << 64) - 1


class Rng:
    """xorshift64*, as the examples' `Rng`."""

    def __init__(self, seed):
        self.s = seed

    def next(self):
        self.s ^= self.s >> 12
        self.s ^= (self.s << 25) & MASK
        self.s ^= self.s >> 27
        return (self.s * 0x2545F4914F6CDD1D) & MASK


def main():
    rows = [list(map(int, line.split(","))) for line in gzip.open(DATA, "rt").read().splitlines()]
    x = np.array([r[:64] for r in rows], dtype=np.float64) / 16.0
    y = np.array([r[64] for r in rows])
    n = len(y)
    rng = Rng(0x5EED0FD16175)
    order = list(range(n))
    for i in range(n - 1, 0, -1):
        j = rng.next() % (i + 1)
        order[i], order[j] = order[j], order[i]
    tr, te = order[:TRAIN], order[TRAIN:]
    lines = [f"# tools/linear_svm_reference.py with scikit-learn {sklearn.__version__}"]
    for name, kw in [("crammer_singer", dict(multi_class="crammer_singer")), ("ovr", dict())]:
        clf = LinearSVC(C=1.0, max_iter=100000, **kw).fit(x[tr], y[tr])
        acc = float((clf.predict(x[te]) == y[te]).mean())
        lines.append(f"{name} {acc:.4f}")
        print(f"LinearSVC({name}): held-out accuracy {acc:.4f}")
    with open(OUT, "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
