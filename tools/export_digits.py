#!/usr/bin/env python3
"""Export scikit-learn's copy of the UCI handwritten digits (load_digits: 1,797 8x8 images,
pixels 0..16) to crates/marginloss-candle/data/digits.csv.gz for the `siamese` example.

Each line holds 64 pixel values (row-major) and the digit label, comma separated; no header.
The gzip header carries no name or time stamp, so the file is reproducible.

    python3 -m venv /tmp/skl && /tmp/skl/bin/pip install scikit-learn
    /tmp/skl/bin/python tools/export_digits.py
"""
import gzip
import io
import os

from sklearn.datasets import load_digits

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "crates", "marginloss-candle", "data", "digits.csv.gz")


def main():
    d = load_digits()
    assert d.data.shape == (1797, 64)
    text = io.StringIO()
    for row, label in zip(d.data.astype(int), d.target):
        text.write(",".join(str(v) for v in row) + f",{label}\n")
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as f:
            f.write(text.getvalue().encode())
    print(f"{OUT}: {os.path.getsize(OUT)} bytes, {len(d.target)} images")


if __name__ == "__main__":
    main()
