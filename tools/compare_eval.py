#!/usr/bin/env python3
"""Differential check of the marginloss CLI against PyTorch 2.15.0 (CPU).

Run with the fixture venv (see tools/gen_fixtures.sh):
    tools/.venv/bin/python tools/compare_eval.py [--bin target/release/marginloss]
        [--loss hinge --loss triplet-margin ...] [--sizes 1,17,1000,100000] [--verbose]

For every loss it draws random valid inputs (several N, float32 and float64, every
reduction), writes them as .npy into a temp dir and runs
    <bin> eval LOSS --input a.npy --target t.npy ... --reduction R [--margin M ...] --json
It expects JSON on stdout:
    {"loss": {"shape": [...], "data": [...]}, "grad": {"input": {"shape", "data"}, ...}}
(NaN written as null).  The torch reference uses the same formulas as the fixtures
(gen_fixtures.py).  Per array it reports max|a-b| / max(max|b|, tiny) and PASS when that
is <= 3e-5 (float32) / 1e-10 (float64).  Exit status 2 from the binary (unknown loss) is
reported as SKIP; a missing binary makes every check SKIP.
Exit status: 1 if any FAIL or ERROR, else 0.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_fixtures as gf  # noqa: E402  (asserts torch 2.15.0, sets 1 thread)

TOL = {"float32": 3e-5, "float64": 1e-10}
TINY = np.finfo(np.float64).tiny
D = 8   # feature dim for (N, D) losses
C = 10  # classes for (N, C) losses


def pm1(r, n):
    return np.where(r.random(n) < 0.5, -1.0, 1.0)


def multilabel_targets(r, n, c):
    t = -np.ones((n, c), dtype=np.int64)
    perm = np.argsort(r.random((n, c)), axis=1)
    k = r.integers(1, 4, size=n)
    for j in range(3):
        rows = k > j
        t[rows, j] = perm[rows, j]
    return t


# Each spec: (label, cli loss name, torch fn, options, input generator, reduced?, grad_fn)
def g_hinge(r, n):
    return {"input": r.normal(size=n) * 1.5, "target": pm1(r, n)}


def g_hinge01(r, n):
    return {"input": r.normal(size=n) * 1.5, "target": (r.random(n) < 0.5).astype(np.float64)}


def g_he(r, n):
    return {"input": np.abs(r.normal(size=n)) * 1.2, "target": pm1(r, n)}


def g_pair(r, n):
    return {"input1": r.normal(size=(n, D)), "input2": r.normal(size=(n, D))}


def g_mm(r, n):
    return {"input": r.normal(size=(n, C)) * 0.5, "target": r.integers(0, C, size=n).astype(np.int64)}


def g_mmw(r, n):
    return {**g_mm(r, n), "weight": r.uniform(0.2, 2.0, size=C)}


def g_mlm(r, n):
    return {"input": r.normal(size=(n, C)) * 0.5, "target": multilabel_targets(r, n, C)}


def g_mr(r, n):
    return {"input1": r.normal(size=n), "input2": r.normal(size=n), "target": pm1(r, n)}


def g_ce(r, n):
    return {**g_pair(r, n), "target": pm1(r, n)}


def g_sm(r, n):
    return {"input": r.normal(size=n) * 2.0, "target": pm1(r, n)}


def g_mlsm(r, n):
    return {"input": r.normal(size=(n, C)) * 1.5, "target": (r.random((n, C)) < 0.5).astype(np.float64)}


def g_trip(r, n):
    a = r.normal(size=(n, D))
    return {"anchor": a, "positive": a + r.normal(size=(n, D)) * 0.4, "negative": r.normal(size=(n, D)) * 0.8}


def g_con(r, n):
    return {"input1": r.normal(size=(n, D)) * 0.25, "input2": r.normal(size=(n, D)) * 0.25, "target": pm1(r, n)}


SPECS = [
    ("hinge", "hinge", gf.f_hinge, {"margin": 1.0, "labels": "pm1"}, g_hinge, True, None),
    ("hinge[labels=01,margin=0.5]", "hinge", gf.f_hinge, {"margin": 0.5, "labels": "01"}, g_hinge01, True, None),
    ("squared-hinge", "squared-hinge", gf.f_squared_hinge, {"margin": 1.0, "labels": "pm1"}, g_hinge, True, None),
    ("hinge-embedding", "hinge-embedding", gf.f_hinge_embedding, {"margin": 1.0}, g_he, True, None),
    ("cosine-similarity", "cosine-similarity", gf.f_cosine_similarity, {"eps": 1e-8}, g_pair, False, None),
    ("pairwise-distance", "pairwise-distance", gf.f_pairwise_distance, {"p": 2.0, "eps": 1e-6}, g_pair, False, None),
    ("pairwise-distance[p=1]", "pairwise-distance", gf.f_pairwise_distance, {"p": 1.0, "eps": 1e-6}, g_pair, False,
     None),
    ("multi-margin", "multi-margin", gf.f_multi_margin, {"p": 1, "margin": 1.0}, g_mm, True, None),
    ("multi-margin[p=2,weight]", "multi-margin", gf.f_multi_margin, {"p": 2, "margin": 1.0}, g_mmw, True, None),
    ("multiclass-hinge", "multiclass-hinge", gf.f_multiclass_hinge, {"margin": 1.0}, g_mm, True,
     gf.g_multiclass_hinge),
    ("multilabel-margin", "multilabel-margin", gf.f_multilabel_margin, {}, g_mlm, True, None),
    ("margin-ranking", "margin-ranking", gf.f_margin_ranking, {"margin": 0.0}, g_mr, True, None),
    ("cosine-embedding", "cosine-embedding", gf.f_cosine_embedding, {"margin": 0.0}, g_ce, True, None),
    ("soft-margin", "soft-margin", gf.f_soft_margin, {}, g_sm, True, None),
    ("multilabel-soft-margin", "multilabel-soft-margin", gf.f_multilabel_soft_margin, {}, g_mlsm, True, None),
    ("triplet-margin", "triplet-margin", gf.f_triplet_margin,
     {"margin": 1.0, "p": 2.0, "eps": 1e-6, "swap": False}, g_trip, True, None),
    ("triplet-margin[swap]", "triplet-margin", gf.f_triplet_margin,
     {"margin": 1.0, "p": 2.0, "eps": 1e-6, "swap": True}, g_trip, True, None),
    ("triplet-margin[distance=euclidean]", "triplet-margin", gf.f_triplet_margin_with_distance,
     {"margin": 1.0, "swap": False, "distance": "euclidean"}, g_trip, True, None),
    ("triplet-margin[distance=cosine]", "triplet-margin", gf.f_triplet_margin_with_distance,
     {"margin": 1.0, "swap": False, "distance": "cosine"}, g_trip, True, None),
    ("contrastive", "contrastive", gf.f_contrastive, {"margin": 1.0, "labels": "pm1"}, g_con, True, None),
]


def cli_args(opts):
    out = []
    for k, v in opts.items():
        if k == "reduction":
            continue
        if k == "swap":
            if v:
                out.append("--swap")
            continue
        out += [f"--{k}", v if isinstance(v, str) else repr(v)]
    if "reduction" in opts:
        out += ["--reduction", opts["reduction"]]
    return out


def torch_reference(fn, cast, opts, grad_fn):
    """Returns dict name -> np array: 'loss' and 'grad.<input>' (float64 copies)."""
    import torch
    _, tdt = gf.DTYPES[next(v.dtype.name for v in cast.values() if v.dtype.kind == "f")]
    diff = [k for k, v in cast.items() if v.dtype.kind == "f" and k not in gf.TARGET_LIKE]
    tens = {k: gf._to_torch(v, tdt, grad_fn is None and k in diff) for k, v in cast.items()}
    out = fn(tens, opts)
    res = {"loss": out.detach().numpy()}
    if grad_fn is not None:
        for k, g in grad_fn(cast, opts).items():
            res[f"grad.{k}"] = np.asarray(g)
    else:
        gs = torch.autograd.grad(out.sum(), [tens[k] for k in diff], allow_unused=True)
        for k, g in zip(diff, gs):
            res[f"grad.{k}"] = np.zeros_like(cast[k]) if g is None else g.numpy()
    return res


def parse_tensor(t):
    data = np.array([np.nan if v is None else v for v in t["data"]], dtype=np.float64)
    return data.reshape(t["shape"])


def rel_err(a, b):
    """max|a-b| / max(max|b|, tiny), NaN/inf compared by position."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return float("inf"), f"shape {list(a.shape)} != torch {list(b.shape)}"
    if a.size == 0:
        return 0.0, ""
    fa, fb = np.isfinite(a), np.isfinite(b)
    nonfinite_ok = np.array_equal(np.isnan(a), np.isnan(b)) and np.array_equal(
        np.where(fa | np.isnan(a), 0, a), np.where(fb | np.isnan(b), 0, b))
    if not nonfinite_ok:
        return float("inf"), "non-finite mismatch"
    m = fa & fb
    if not m.any():
        return 0.0, ""
    diff = np.max(np.abs(a[m] - b[m]))
    return float(diff / max(np.max(np.abs(b[m])), TINY)), ""


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default="target/release/marginloss")
    ap.add_argument("--loss", action="append", help="only this CLI loss name or spec label (repeatable)")
    ap.add_argument("--sizes", default="1,17,1000,100000")
    ap.add_argument("--dtypes", default="float32,float64")
    ap.add_argument("--seed", type=int, default=12345)
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--verbose", "-v", action="store_true")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    dtypes = args.dtypes.split(",")
    binary = args.bin
    have_bin = os.path.isfile(binary) and os.access(binary, os.X_OK)
    if not have_bin:
        found = shutil.which(binary)
        have_bin, binary = (True, found) if found else (False, binary)
    if not have_bin:
        print(f"NOTE: binary {args.bin!r} not found or not executable: every check is SKIP "
              f"(build it with `cargo build --release`).")
    specs = [s for s in SPECS if not args.loss
             or any(l in (s[0], s[1]) or s[0].startswith(l + "[") for l in args.loss)]
    counts = {"PASS": 0, "FAIL": 0, "SKIP": 0, "ERROR": 0}
    summary = []  # (label, dtype, status, {array: max err}, note)
    tmp = tempfile.mkdtemp(prefix="marginloss-cmp-")
    try:
        for label, cli, fn, base, gen, reduced, grad_fn in specs:
            for dtype in dtypes:
                ndt = gf.DTYPES[dtype][0]
                worst, status, note = {}, "PASS", ""
                for n in sizes:
                    r = np.random.default_rng([args.seed, n, len(label), sum(map(ord, label))])
                    raw = gen(r, n)
                    cast = {k: (v.astype(np.int64) if v.dtype.kind == "i" else v.astype(ndt)) for k, v in raw.items()}
                    paths = {}
                    for k, v in cast.items():
                        paths[k] = os.path.join(tmp, f"{k}.npy")
                        np.save(paths[k], v)
                    for red in (("none", "mean", "sum") if reduced else (None,)):
                        opts = dict(base) if red is None else {"reduction": red, **base}
                        cmd = [binary, "eval", cli]
                        for k in cast:
                            cmd += [f"--{k}", paths[k]]
                        cmd += cli_args(opts) + ["--json"]
                        tag = f"{label} {dtype} N={n} {red or ''}".rstrip()
                        if not have_bin:
                            status, note = "SKIP", "binary missing"
                            break
                        try:
                            p = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
                        except (OSError, subprocess.TimeoutExpired) as e:
                            status, note = "ERROR", f"{tag}: {type(e).__name__}: {e}"
                            break
                        if p.returncode == 2:
                            status, note = "SKIP", f"exit 2: {p.stderr.strip()[:160]}"
                            break
                        if p.returncode != 0:
                            status, note = "ERROR", f"{tag}: exit {p.returncode}: {p.stderr.strip()[:200]}"
                            break
                        try:
                            js = json.loads(p.stdout)
                            got = {"loss": parse_tensor(js["loss"])}
                            for k, t in (js.get("grad") or {}).items():
                                got[f"grad.{k}"] = parse_tensor(t)
                        except (ValueError, KeyError, TypeError) as e:
                            status, note = "ERROR", f"{tag}: bad JSON output ({e}): {p.stdout[:160]!r}"
                            break
                        ref = torch_reference(fn, cast, opts, grad_fn)
                        for name, b in ref.items():
                            if name not in got:
                                e, why = float("inf"), "missing in binary output"
                            else:
                                e, why = rel_err(got[name], b)
                            worst[name] = max(worst.get(name, 0.0), e)
                            ok = e <= TOL[dtype]
                            if args.verbose or not ok:
                                print(f"  {tag:55s} {name:16s} relerr={e:.3e} {'ok' if ok else 'FAIL'} {why}")
                            if not ok and status == "PASS":
                                status, note = "FAIL", f"first failure: {tag} {name} {why}".rstrip()
                    if status in ("SKIP", "ERROR"):
                        break
                counts[status] += 1
                summary.append((label, dtype, status, worst, note))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print()
    print(f"{'loss':36s} {'dtype':8s} {'status':6s} max relative error per array")
    for label, dtype, status, worst, note in summary:
        errs = " ".join(f"{k}={v:.2e}" for k, v in worst.items())
        print(f"{label:36s} {dtype:8s} {status:6s} {errs} {note}".rstrip())
    print()
    print(f"{counts['PASS']} passed, {counts['FAIL']} failed, {counts['SKIP']} skipped, {counts['ERROR']} errors "
          f"(tolerance f32 {TOL['float32']:g}, f64 {TOL['float64']:g})")
    return 1 if counts["FAIL"] or counts["ERROR"] else 0


if __name__ == "__main__":
    sys.exit(main())
