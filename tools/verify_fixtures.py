#!/usr/bin/env python3
"""Structural check of fixtures/torch/*.json and fixtures/article/ (numpy only).

Usage: python3 tools/verify_fixtures.py     (exit 1 on any problem)
"""
import glob
import json
import math
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TORCH_DIR = os.path.join(ROOT, "fixtures", "torch")
NP = {"float32": np.float32, "float64": np.float64, "int64": np.int64}
CASE_KEYS = {"name", "dtype", "options", "compat_only", "inputs", "output", "grad"}
OPTIONAL_KEYS = {"torch_output", "differs_from_torch"}
errors = []


def err(msg):
    errors.append(msg)


def load_tensor(t, where):
    if set(t) - {"dtype", "shape", "data", "npy"} or t.get("dtype") not in NP:
        err(f"{where}: bad tensor keys/dtype {sorted(t)} {t.get('dtype')}")
        return None
    shape = tuple(t["shape"])
    n = int(np.prod(shape)) if shape else 1
    if "npy" in t:
        a = np.load(os.path.join(TORCH_DIR, t["npy"]))
        if a.shape != shape or a.dtype != NP[t["dtype"]] or not a.flags.c_contiguous:
            err(f"{where}: npy {t['npy']} shape/dtype {a.shape} {a.dtype} != {shape} {t['dtype']}")
        if a.dtype.byteorder == ">":
            err(f"{where}: npy not little-endian")
        return a
    data = t["data"]
    if len(data) != n:
        err(f"{where}: shape {list(shape)} but {len(data)} values")
        return None
    vals = []
    for v in data:
        if isinstance(v, str):
            if v not in ("nan", "inf", "-inf") or t["dtype"] == "int64":
                err(f"{where}: bad string value {v!r}")
            vals.append(float(v))
        elif t["dtype"] == "int64":
            if not isinstance(v, int) or isinstance(v, bool):
                err(f"{where}: non-int {v!r}")
            vals.append(v)
        else:
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
                err(f"{where}: bad float {v!r}")
            vals.append(v)
    a = np.array(vals, dtype=NP[t["dtype"]]).reshape(shape)
    if t["dtype"] == "float32":  # f32 values must be exactly representable
        if not np.array_equal(a.astype(np.float64), np.array(vals, dtype=np.float64).reshape(shape),
                              equal_nan=True):
            err(f"{where}: value not exactly representable in float32")
    return a


def main():
    total = 0
    files = sorted(glob.glob(os.path.join(TORCH_DIR, "*.json")))
    for path in files:
        size = os.path.getsize(path)
        total += size
        with open(path) as f:
            doc = json.load(f)
        loss = os.path.basename(path)[:-5]
        if doc.get("loss") != loss or not str(doc.get("torch_version", "")).startswith("2.15.0"):
            err(f"{path}: bad header")
        if size > 1_500_000:
            err(f"{path}: {size} bytes > 1.5 MB")
        names = set()
        ncompat = 0
        for c in doc["cases"]:
            w = f"{loss}/{c.get('name')}"
            if not CASE_KEYS <= set(c) or set(c) - CASE_KEYS - OPTIONAL_KEYS:
                err(f"{w}: keys {sorted(c)}")
                continue
            if c["name"] in names:
                err(f"{w}: duplicate name")
            names.add(c["name"])
            ncompat += c["compat_only"]
            if c["dtype"] not in ("float32", "float64"):
                err(f"{w}: dtype {c['dtype']}")
            ins = {k: load_tensor(t, f"{w}/inputs/{k}") for k, t in c["inputs"].items()}
            for k, a in ins.items():
                if a is not None and a.dtype.kind == "f" and a.dtype != NP[c["dtype"]]:
                    err(f"{w}: input {k} dtype {a.dtype} != case dtype")
            out = load_tensor(c["output"], f"{w}/output")
            red = c["options"].get("reduction")
            if out is not None and red in ("mean", "sum") and out.shape != ():
                err(f"{w}: reduced output shape {out.shape}")
            if "torch_output" in c:
                load_tensor(c["torch_output"], f"{w}/torch_output")
            if c["grad"] is not None:
                for k, t in c["grad"].items():
                    g = load_tensor(t, f"{w}/grad/{k}")
                    if k in ("target", "weight") or k not in ins:
                        err(f"{w}: unexpected grad {k}")
                    elif g is not None and ins[k] is not None and g.shape != ins[k].shape:
                        err(f"{w}: grad {k} shape {g.shape} != input {ins[k].shape}")
        print(f"{loss:30s} {len(doc['cases']):4d} cases ({ncompat:3d} compat_only) {size:9d} bytes")
    large = glob.glob(os.path.join(TORCH_DIR, "large", "*.npy"))
    lsize = sum(os.path.getsize(p) for p in large)
    print(f"{'large/*.npy':30s} {len(large):4d} files {lsize:26d} bytes")
    art = os.path.join(ROOT, "fixtures", "article")
    asize = 0
    for fn, shape in (("a.npy", (100, 128)), ("b.npy", (100, 128)), ("y.npy", (100,)),
                      ("grad_a.npy", (100, 128)), ("grad_b.npy", (100, 128))):
        a = np.load(os.path.join(art, fn))
        asize += os.path.getsize(os.path.join(art, fn))
        if a.shape != shape or a.dtype != np.float32:
            err(f"article/{fn}: {a.shape} {a.dtype}")
    with open(os.path.join(art, "expected.json")) as f:
        e = json.load(f)
    asize += os.path.getsize(os.path.join(art, "expected.json"))
    if len(e["x"]) != 100 or len(e["none"]) != 100:
        err("article/expected.json: x/none length")
    print(f"{'article/':30s} mean={e['mean']!r} {asize:14d} bytes")
    print(f"total: JSON {total} bytes, large npy {lsize} bytes, article {asize} bytes")
    for m in errors:
        print("ERROR:", m)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
