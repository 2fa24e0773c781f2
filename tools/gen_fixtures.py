#!/usr/bin/env python3
"""Golden fixture generator for marginloss: PyTorch 2.15.0, CPU, single thread.

Run through tools/gen_fixtures.sh (it creates tools/.venv and installs torch==2.15.0).
Writes fixtures/torch/<loss>.json (+ fixtures/torch/large/*.npy) and fixtures/article/*.

Format of each JSON file:
  {"torch_version": ..., "loss": ..., "cases": [CASE, ...]}
  CASE = {"name", "dtype", "options", "compat_only", "inputs", "output", "grad"}
  TENSOR = {"dtype", "shape", "data"} or {"dtype", "shape", "npy"}
Everything is deterministic: random data is drawn in float64 with
numpy.random.default_rng(seed) and cast to the case dtype before torch sees it.
"""
import json
import math
import os
import sys
import zlib

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np
import torch
import torch.nn.functional as F

assert torch.__version__.startswith("2.15.0"), torch.__version__
torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TORCH_DIR = os.path.join(ROOT, "fixtures", "torch")
LARGE_DIR = os.path.join(TORCH_DIR, "large")
ARTICLE_DIR = os.path.join(ROOT, "fixtures", "article")
# `marginloss demo` embeds these; a package cannot reach outside its crate.
CLI_ARTICLE_DIR = os.path.join(ROOT, "crates", "marginloss-cli", "data", "article")
CLI_ARTICLE_FILES = ("a.npy", "b.npy", "y.npy", "expected.json")

DTYPES = {"float32": (np.float32, torch.float32), "float64": (np.float64, torch.float64)}
REDUCTIONS = ("none", "mean", "sum")
TARGET_LIKE = ("target", "weight")  # never differentiated


# ----------------------------------------------------------------------------------------
# serialisation helpers


def _num(v):
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return v
    if isinstance(v, list):
        return [_num(e) for e in v]
    return v


def _flat(a):
    return a.reshape(-1).tolist()


def tensor_json(x, npy_name=None):
    """numpy array or torch tensor -> TENSOR dict (exact values)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    if x.dtype == np.float32:
        dt = "float32"
    elif x.dtype == np.float64:
        dt = "float64"
    elif x.dtype == np.int64:
        dt = "int64"
    else:
        raise TypeError(x.dtype)
    out = {"dtype": dt, "shape": list(x.shape)}
    if npy_name is not None:
        os.makedirs(LARGE_DIR, exist_ok=True)
        arr = np.ascontiguousarray(x).astype(x.dtype.newbyteorder("<"), copy=False)
        np.save(os.path.join(LARGE_DIR, npy_name), arr)
        out["npy"] = "large/" + npy_name
    else:
        out["data"] = _num(_flat(x))
    return out


def rng_for(*key):
    return np.random.default_rng(zlib.crc32("/".join(map(str, key)).encode()))


# ----------------------------------------------------------------------------------------
# case construction


def _to_torch(arr, tdt, grad):
    arr = np.asarray(arr)
    if arr.dtype.kind == "i":
        return torch.from_numpy(arr.astype(np.int64))
    t = torch.from_numpy(np.ascontiguousarray(arr)).to(tdt)
    if grad:
        t.requires_grad_(True)
    return t


def build_case(name, dtype, options, compat_only, inputs, fn, *, with_grad=True, npy=False,
               grad_fn=None, post=None):
    """inputs: dict name -> float64 (or int64) numpy array.  Floating arrays are cast to
    `dtype` first.  fn(tensors: dict, options) -> torch output.  grad_fn, if given,
    replaces autograd: grad_fn(np_inputs_cast, options) -> dict name -> np array."""
    ndt, tdt = DTYPES[dtype]
    cast = {}
    for k, v in inputs.items():
        v = np.asarray(v)
        cast[k] = v.astype(np.int64) if v.dtype.kind == "i" else v.astype(ndt)
    diff_names = [k for k, v in cast.items() if v.dtype.kind == "f" and k not in TARGET_LIKE]
    tens = {k: _to_torch(v, tdt, with_grad and grad_fn is None and k in diff_names)
            for k, v in cast.items()}
    out = fn(tens, options)
    grad = None
    if with_grad:
        if grad_fn is not None:
            grad = {k: tensor_json(np.asarray(g).astype(ndt)) for k, g in grad_fn(cast, options).items()}
        else:
            leaves = [tens[k] for k in diff_names]
            gs = torch.autograd.grad(out.sum(), leaves, allow_unused=True)
            grad = {}
            for k, g in zip(diff_names, gs):
                if g is None:
                    g = torch.zeros_like(tens[k])
                grad[k] = tensor_json(g)
    # consistency: compat_only must be set for non-finite / empty inputs
    auto_compat = any(v.size == 0 or (v.dtype.kind == "f" and not np.all(np.isfinite(v)))
                      for v in cast.values())
    if auto_compat and not compat_only:
        raise AssertionError(f"{name}: non-finite or empty input but compat_only=False")
    ins = {}
    for k, v in cast.items():
        ins[k] = tensor_json(v, npy_name=f"{CURRENT_LOSS}_{name}_{k}.npy" if npy else None)
    case = {
        "name": name,
        "dtype": dtype,
        "options": dict(options),
        "compat_only": bool(compat_only),
        "inputs": ins,
        "output": tensor_json(out),
        "grad": grad,
    }
    if post is not None:
        post(case, cast, out)
    return case


def reduce_(l, reduction):
    if reduction == "none":
        return l
    if reduction == "mean":
        return l.mean()
    if reduction == "sum":
        return l.sum()
    raise ValueError(reduction)


CURRENT_LOSS = None  # set by main(); prefixes the names of large .npy files

SHORT = {"float32": "f32", "float64": "f64"}


def expand(spec_name, inputs, fn, options, compat_only=False, reductions=REDUCTIONS, **kw):
    """One spec -> cases for both dtypes x given reductions (reductions=None: no reduction key)."""
    cases = []
    for dtype in DTYPES:
        if reductions is None:
            cases.append(build_case(f"{spec_name}_{SHORT[dtype]}", dtype, dict(options), compat_only,
                                    inputs, fn, **kw))
            continue
        for r in reductions:
            opts = {"reduction": r, **options}
            cases.append(build_case(f"{spec_name}_{SHORT[dtype]}_{r}", dtype, opts, compat_only,
                                    inputs, fn, **kw))
    return cases


def large_cases(spec_name, inputs, fn, options):
    cases = []
    for dtype in DTYPES:
        opts = {"reduction": "mean", **options}
        cases.append(build_case(f"{spec_name}_{SHORT[dtype]}_mean", dtype, opts, False, inputs, fn,
                                with_grad=False, npy=True))
    return cases


def pm1(rng, shape):
    return np.where(rng.random(shape) < 0.5, -1.0, 1.0)


def arr(x, dtype=np.float64):
    return np.array(x, dtype=dtype)


# ----------------------------------------------------------------------------------------
# loss definitions (torch formulas)


def f_hinge(t, o):
    y = 2 * t["target"] - 1 if o["labels"] == "01" else t["target"]
    return reduce_(torch.clamp_min(o["margin"] - y * t["input"], 0), o["reduction"])


def f_squared_hinge(t, o):
    y = 2 * t["target"] - 1 if o["labels"] == "01" else t["target"]
    return reduce_(torch.clamp_min(o["margin"] - y * t["input"], 0) ** 2, o["reduction"])


def f_hinge_embedding(t, o):
    return F.hinge_embedding_loss(t["input"], t["target"], margin=o["margin"], reduction=o["reduction"])


def f_cosine_similarity(t, o):
    return F.cosine_similarity(t["input1"], t["input2"], dim=1, eps=o["eps"])


def f_pairwise_distance(t, o):
    return F.pairwise_distance(t["input1"], t["input2"], p=o["p"], eps=o["eps"], keepdim=False)


def f_multi_margin(t, o):
    return F.multi_margin_loss(t["input"], t["target"], p=o["p"], margin=o["margin"],
                               weight=t.get("weight"), reduction=o["reduction"])


def f_multiclass_hinge(t, o):
    s, y = t["input"], t["target"]
    sy = s.gather(1, y[:, None])[:, 0]
    mask = F.one_hot(y, s.shape[1]).bool()
    other = s.masked_fill(mask, float("-inf")).max(dim=1).values
    return reduce_(torch.clamp_min(o["margin"] + other - sy, 0), o["reduction"])


def g_multiclass_hinge(c, o):
    """Gradient rule from the brief, computed in numpy in the case dtype."""
    s, y = c["input"], c["target"]
    dt = s.dtype.type
    n, C = s.shape
    g = np.zeros_like(s)
    up = dt(1) if o["reduction"] != "mean" else dt(1) / dt(n)
    for i in range(n):
        others = [j for j in range(C) if j != y[i]]
        m = max(s[i, j] for j in others)
        jstar = min(j for j in others if s[i, j] == m)
        if (dt(o["margin"]) + m) - s[i, y[i]] > 0:
            g[i, y[i]] = -up
            g[i, jstar] = up
    return {"input": g}


def f_multilabel_margin(t, o):
    return F.multilabel_margin_loss(t["input"], t["target"], reduction=o["reduction"])


def f_margin_ranking(t, o):
    return F.margin_ranking_loss(t["input1"], t["input2"], t["target"], margin=o["margin"],
                                 reduction=o["reduction"])


def f_cosine_embedding(t, o):
    return F.cosine_embedding_loss(t["input1"], t["input2"], t["target"], margin=o["margin"],
                                   reduction=o["reduction"])


def f_soft_margin(t, o):
    return F.soft_margin_loss(t["input"], t["target"], reduction=o["reduction"])


def f_multilabel_soft_margin(t, o):
    return F.multilabel_soft_margin_loss(t["input"], t["target"], weight=t.get("weight"),
                                         reduction=o["reduction"])


def f_triplet_margin(t, o):
    return F.triplet_margin_loss(t["anchor"], t["positive"], t["negative"], margin=o["margin"],
                                 p=o["p"], eps=o["eps"], swap=o["swap"], reduction=o["reduction"])


def _dist(name):
    if name == "euclidean":
        return lambda x, y: F.pairwise_distance(x, y)  # p=2, eps=1e-6
    if name == "cosine":
        return lambda x, y: 1.0 - F.cosine_similarity(x, y, dim=1)  # eps=1e-8
    raise ValueError(name)


def f_triplet_margin_with_distance(t, o):
    return F.triplet_margin_with_distance_loss(
        t["anchor"], t["positive"], t["negative"], distance_function=_dist(o["distance"]),
        margin=o["margin"], swap=o["swap"], reduction=o["reduction"])


def f_contrastive(t, o):
    d = F.pairwise_distance(t["input1"], t["input2"], p=2.0, eps=1e-6)
    pos = 0.5 * d ** 2
    neg = 0.5 * torch.clamp_min(o["margin"] - d, 0) ** 2
    is_pos = t["target"] == 1
    return reduce_(torch.where(is_pos, pos, neg), o["reduction"])


# ----------------------------------------------------------------------------------------
# case lists


ARTICLE_X = [0.8, -0.5, 2.0]
ARTICLE_Y = [-1.0, 1.0, -1.0]


def cases_hinge(fn, loss):
    cs = []
    base = {"margin": 1.0, "labels": "pm1"}
    r = rng_for(loss, "random7")
    cs += expand("random_7", {"input": r.normal(size=7) * 1.5, "target": pm1(r, 7)}, fn, base)
    r = rng_for(loss, "random3x4")
    cs += expand("random_3x4", {"input": r.normal(size=(3, 4)) * 1.5, "target": pm1(r, (3, 4))}, fn, base)
    for m, tag in ((0.5, "0p5"), (2.0, "2")):
        r = rng_for(loss, "margin", tag)
        cs += expand(f"margin_{tag}", {"input": r.normal(size=8) * 1.5, "target": pm1(r, 8)}, fn,
                     {**base, "margin": m})
    r = rng_for(loss, "labels01")
    cs += expand("labels_01", {"input": r.normal(size=8) * 1.5,
                               "target": (r.random(8) < 0.5).astype(np.float64)}, fn,
                 {**base, "labels": "01"})
    # y*x == margin exactly at entries 0,1,3 (margin 1)
    cs += expand("kink", {"input": arr([1.0, -1.0, 0.5, 1.0, 2.0, -0.25]),
                          "target": arr([1.0, -1.0, 1.0, 1.0, -1.0, 1.0])}, fn, base)
    cs += expand("kink_margin_2", {"input": arr([2.0, -2.0, 0.25, 4.0]),
                                   "target": arr([1.0, -1.0, 1.0, 1.0])}, fn, {**base, "margin": 2.0})
    cs += expand("kink_margin_0p5", {"input": arr([0.5, -0.5, 0.25, 1.0]),
                                     "target": arr([1.0, -1.0, 1.0, -1.0])}, fn, {**base, "margin": 0.5})
    cs += expand("kink_labels_01", {"input": arr([1.0, -1.0, 0.5, 2.0]),
                                    "target": arr([1.0, 0.0, 0.0, 1.0])}, fn, {**base, "labels": "01"})
    cs += expand("article", {"input": arr(ARTICLE_X), "target": arr(ARTICLE_Y)}, fn, base)
    cs += expand("empty", {"input": np.zeros(0), "target": np.zeros(0)}, fn, base, compat_only=True)
    cs += expand("target_zero_pm1", {"input": arr([0.3, -1.5, 2.0, 0.5]),
                                     "target": arr([0.0, 1.0, 0.0, -1.0])}, fn, base, compat_only=True)
    cs += expand("nonfinite", {"input": arr([np.nan, np.inf, -np.inf, 0.5]),
                               "target": arr([1.0, 1.0, 1.0, -1.0])}, fn, base, compat_only=True)
    r = rng_for(loss, "large")
    cs += large_cases("large_100000", {"input": r.normal(size=100000), "target": pm1(r, 100000)}, fn, base)
    return cs


def cases_hinge_embedding():
    fn, cs = f_hinge_embedding, []
    base = {"margin": 1.0}
    r = rng_for("he", "random9")
    cs += expand("random_9", {"input": np.abs(r.normal(size=9)) * 1.2, "target": pm1(r, 9)}, fn, base)
    r = rng_for("he", "random2x5")
    cs += expand("random_2x5", {"input": np.abs(r.normal(size=(2, 5))) * 1.2, "target": pm1(r, (2, 5))},
                 fn, base)
    for m, tag in ((0.2, "0p2"), (2.0, "2")):
        r = rng_for("he", "margin", tag)
        cs += expand(f"margin_{tag}", {"input": np.abs(r.normal(size=8)) * m * 1.2, "target": pm1(r, 8)},
                     fn, {"margin": m})
    cs += expand("kink", {"input": arr([1.0, 1.0, 0.5, 2.0, 1.0]),
                          "target": arr([-1.0, -1.0, -1.0, -1.0, 1.0])}, fn, base)
    cs += expand("kink_margin_0p5", {"input": arr([0.5, 0.25, 0.5]), "target": arr([-1.0, -1.0, 1.0])},
                 fn, {"margin": 0.5})
    cs += expand("article_scores", {"input": arr(ARTICLE_X), "target": arr(ARTICLE_Y)}, fn, base,
                 compat_only=True)
    cs += expand("spec_golden", {"input": arr([0.3, 0.3, 0.3, 0.3, 0.3, 2, 2, -0.5]),
                                 "target": arr([1, -1, 0, 2, 0.5, 0, -1, 3])}, fn, base, compat_only=True)
    cs += expand("empty", {"input": np.zeros(0), "target": np.zeros(0)}, fn, base, compat_only=True)
    r = rng_for("he", "large")
    cs += large_cases("large_100000", {"input": np.abs(r.normal(size=100000)), "target": pm1(r, 100000)},
                      fn, base)
    return cs


def cases_cosine_similarity():
    fn, cs = f_cosine_similarity, []
    base = {"eps": 1e-8}
    for (n, d) in ((1, 1), (5, 3), (64, 17)):
        r = rng_for("cs", n, d)
        cs += expand(f"random_{n}x{d}", {"input1": r.normal(size=(n, d)), "input2": r.normal(size=(n, d))},
                     fn, base, reductions=None)
    r = rng_for("cs", "zero_tiny")
    x1 = r.normal(size=(4, 3))
    x2 = r.normal(size=(4, 3))
    x1[1] = 0.0
    x1[2] = r.normal(size=3) * 1e-10
    cs += expand("zero_and_tiny_rows", {"input1": x1, "input2": x2}, fn, base, reductions=None)
    cs += expand("spec_tiny_norm", {"input1": arr([[1e-10, 0, 0], [3e-9, 4e-9, 0]]),
                                    "input2": arr([[1, 2, 2], [3, 4, 0]])}, fn, base, reductions=None)
    r = rng_for("cs", "ident")
    x = r.normal(size=(4, 5))
    cs += expand("identical_rows", {"input1": x, "input2": x.copy()}, fn, base, reductions=None)
    r = rng_for("cs", "eps")
    x1 = r.normal(size=(4, 3))
    x1[0] *= 1e-4
    cs += expand("eps_1em3", {"input1": x1, "input2": r.normal(size=(4, 3))}, fn, {"eps": 1e-3},
                 reductions=None)
    return cs


def cases_pairwise_distance():
    fn, cs = f_pairwise_distance, []
    for p, tag in ((1.0, "1"), (2.0, "2"), (3.0, "3"), (1.5, "1p5")):
        for (n, d) in ((4, 3), (32, 10)):
            r = rng_for("pd", tag, n, d)
            cs += expand(f"p{tag}_{n}x{d}", {"input1": r.normal(size=(n, d)), "input2": r.normal(size=(n, d))},
                         fn, {"p": p, "eps": 1e-6}, reductions=None)
    r = rng_for("pd", "ident")
    x = r.normal(size=(3, 4))
    for p, tag in ((1.0, "1"), (2.0, "2"), (3.0, "3")):
        cs += expand(f"identical_rows_p{tag}", {"input1": x, "input2": x.copy()}, fn, {"p": p, "eps": 1e-6},
                     reductions=None)
    r = rng_for("pd", "eps0")
    cs += expand("eps_0", {"input1": r.normal(size=(5, 4)), "input2": r.normal(size=(5, 4))}, fn,
                 {"p": 2.0, "eps": 0.0}, reductions=None)
    return cs


def cases_multi_margin():
    fn, cs = f_multi_margin, []
    base = {"p": 1, "margin": 1.0}

    def rand(key, n=6, c=5):
        r = rng_for("mm", key)
        return r.normal(size=(n, c)) * 0.7, r.integers(0, c, size=n).astype(np.int64), r

    x, y, _ = rand("p1")
    cs += expand("random_6x5_p1", {"input": x, "target": y}, fn, base)
    x, y, _ = rand("p2")
    cs += expand("random_6x5_p2", {"input": x, "target": y}, fn, {**base, "p": 2})
    x, y, r = rand("weight")
    w = r.uniform(0.2, 2.0, size=5)
    cs += expand("weight_p1", {"input": x, "target": y, "weight": w}, fn, base)
    cs += expand("weight_p2", {"input": x, "target": y, "weight": w}, fn, {**base, "p": 2})
    x, y, _ = rand("m05")
    cs += expand("margin_0p5", {"input": x, "target": y}, fn, {**base, "margin": 0.5})
    r = rng_for("mm", "1d")
    cs += expand("one_d_c4", {"input": r.normal(size=4), "target": np.array(2, dtype=np.int64)}, fn, base)
    cs += expand("spec_golden", {"input": arr([[0.1, 0.2, 0.4, 0.8], [0.5, 0.1, 0.3, 0.0]]),
                                 "target": np.array([3, 0], dtype=np.int64)}, fn, base)
    kx = arr([[0.0, 1.0, 0.5, 0.25], [2.0, 1.0, 1.5, 0.0], [0.5, 0.5, 0.5, 0.5]])
    ky = np.array([1, 0, 2], dtype=np.int64)
    cs += expand("kink_p1", {"input": kx, "target": ky}, fn, base)
    cs += expand("kink_p2", {"input": kx, "target": ky}, fn, {**base, "p": 2})
    cs += expand("nan_ignored", {"input": arr([[0.1, np.nan, 0.4, 0.8], [np.nan, 0.1, 0.3, 0.0]]),
                                 "target": np.array([3, 0], dtype=np.int64)}, fn, base, compat_only=True)
    r = rng_for("mm", "large")
    cs += large_cases("large_2000x10", {"input": r.normal(size=(2000, 10)),
                                        "target": r.integers(0, 10, size=2000).astype(np.int64)}, fn, base)
    return cs


def cases_multiclass_hinge():
    fn, cs = f_multiclass_hinge, []
    kw = {"grad_fn": g_multiclass_hinge}
    base = {"margin": 1.0}
    r = rng_for("mch", "random")
    x, y = r.normal(size=(6, 4)), r.integers(0, 4, size=6).astype(np.int64)
    cs += expand("random_6x4", {"input": x, "target": y}, fn, base, **kw)
    tx = arr([[0.5, 0.5, 0.1, 0.5], [1.0, 0.2, 1.0, 0.2], [0.3, 0.3, 0.3, 0.3], [-1.0, 2.0, 2.0, 0.0]])
    ty = np.array([2, 0, 3, 0], dtype=np.int64)
    cs += expand("ties", {"input": tx, "target": ty}, fn, base, **kw)
    kx = arr([[2.0, 1.0, 0.5, -1.0], [0.0, 0.5, 1.5, 0.25], [1.0, 1.0, 0.0, 0.0]])
    ky = np.array([0, 2, 2], dtype=np.int64)  # rows 0 and 1: margin + max_other - s_y == 0
    cs += expand("kink", {"input": kx, "target": ky}, fn, base, **kw)
    r = rng_for("mch", "m05")
    cs += expand("margin_0p5", {"input": r.normal(size=(6, 4)) * 0.5,
                                "target": r.integers(0, 4, size=6).astype(np.int64)},
                 fn, {"margin": 0.5}, **kw)
    cs += expand("optax_example", {"input": arr([[1, .5, -.2], [-5, -3, -2.5], [.2, .2, .9]]),
                                   "target": np.array([0, 2, 0], dtype=np.int64)}, fn, base, **kw)
    return cs


def cases_multilabel_margin():
    fn, cs = f_multilabel_margin, []
    r = rng_for("mlm", "random")
    x = r.normal(size=(4, 5)) * 0.7
    t = -np.ones((4, 5), dtype=np.int64)
    for i in range(4):
        k = int(r.integers(1, 4))
        t[i, :k] = r.permutation(5)[:k]
    cs += expand("random_4x5", {"input": x, "target": t}, fn, {})
    r = rng_for("mlm", "special")
    x = r.normal(size=(3, 4))
    t = np.array([[-1, 0, 1, 2], [2, 0, 3, 1], [1, -1, -1, -1]], dtype=np.int64)
    cs += expand("no_labels_and_all_labels", {"input": x, "target": t}, fn, {})
    cs += expand("one_d", {"input": arr([0.1, 0.2, 0.4, 0.8]), "target": np.array([3, 0, -1, 1])}, fn, {})
    r = rng_for("mlm", "after")
    cs += expand("ignored_after_first_minus1", {"input": r.normal(size=(2, 5)),
                                                "target": np.array([[3, 0, -1, 1, -1], [4, -1, 2, 2, 0]])},
                 fn, {})
    cs += expand("duplicates", {"input": arr([[0.1, 0.2, 0.4, 0.8]]), "target": np.array([[3, 3, -1, 0]])},
                 fn, {})
    cs += expand("spec_golden", {"input": arr([[0.1, 0.2, 0.4, 0.8], [0.3, 0.9, 0.1, 0.0]]),
                                 "target": np.array([[3, 0, -1, 1], [1, -1, 2, 2]])}, fn, {})
    cs += expand("kink", {"input": arr([[1.0, 0.0, 0.5, 0.25], [0.0, 2.0, 1.0, 1.5]]),
                          "target": np.array([[0, -1, -1, -1], [1, 3, -1, -1]])}, fn, {})
    cs += expand("nan_skipped", {"input": arr([[0.1, np.nan, 0.4, 0.8]]),
                                 "target": np.array([[3, -1, 0, 0]])}, fn, {}, compat_only=True)
    return cs


def cases_margin_ranking():
    fn, cs = f_margin_ranking, []
    r = rng_for("mr", "random")
    cs += expand("random_8", {"input1": r.normal(size=8), "input2": r.normal(size=8), "target": pm1(r, 8)},
                 fn, {"margin": 0.0})
    r = rng_for("mr", "m05")
    cs += expand("margin_0p5", {"input1": r.normal(size=8) * 0.5, "input2": r.normal(size=8) * 0.5,
                                "target": pm1(r, 8)}, fn, {"margin": 0.5})
    cs += expand("kink", {"input1": arr([1.0, 0.25, 2.0, 0.0]), "input2": arr([0.5, 0.75, 0.5, 1.0]),
                          "target": arr([1.0, -1.0, 1.0, -1.0])}, fn, {"margin": 0.5})
    cs += expand("kink_margin_0", {"input1": arr([1.0, -0.5, 2.0]), "input2": arr([1.0, -0.5, 3.0]),
                                   "target": arr([1.0, -1.0, 1.0])}, fn, {"margin": 0.0})
    cs += expand("target_zero", {"input1": arr([1.0, 0.3, -2.0]), "input2": arr([0.5, 0.6, 1.0]),
                                 "target": arr([0.0, 1.0, 0.0])}, fn, {"margin": 0.5}, compat_only=True)
    cs += expand("empty", {"input1": np.zeros(0), "input2": np.zeros(0), "target": np.zeros(0)}, fn,
                 {"margin": 0.0}, compat_only=True)
    return cs


def cases_cosine_embedding():
    fn, cs = f_cosine_embedding, []

    def rand(key, n=6, d=4):
        r = rng_for("ce", key)
        return {"input1": r.normal(size=(n, d)), "input2": r.normal(size=(n, d)), "target": pm1(r, n)}

    cs += expand("random_6x4", rand("random"), fn, {"margin": 0.0})
    cs += expand("margin_0p3", rand("m03"), fn, {"margin": 0.3})
    cs += expand("margin_neg0p5", rand("mneg"), fn, {"margin": -0.5})
    cs += expand("kink", {"input1": arr([[1.0, 0.0], [2.0, 0.0], [1.0, 1.0]]),
                          "input2": arr([[0.0, 1.0], [0.0, 3.0], [1.0, 1.0]]),
                          "target": arr([-1.0, -1.0, 1.0])}, fn, {"margin": 0.0})
    inp = rand("zero")
    inp["input1"][1] = 0.0
    inp["target"][1] = 1.0
    inp["input2"][3] = 0.0
    inp["target"][3] = -1.0
    cs += expand("zero_vector_rows", inp, fn, {"margin": 0.0})
    inp = rand("tiny")
    inp["input1"][0] *= 1e-9
    inp["input2"][2] *= 1e-9
    cs += expand("tiny_norm_rows", inp, fn, {"margin": 0.0})
    inp = rand("t0")
    inp["target"][[1, 4]] = 0.0
    cs += expand("target_zero", inp, fn, {"margin": 0.0}, compat_only=True)
    return cs


def _stable_softplus_post(case, cast, out):
    """Overflow case: replace torch's output/grad by the stable values when they differ."""
    x = cast["input"].astype(np.float64)
    y = cast["target"].astype(np.float64)
    ndt, tdt = DTYPES[case["dtype"]]
    z = y * x
    sp = np.maximum(-z, 0.0) + np.log1p(np.exp(-np.abs(z)))
    elem = torch.from_numpy(sp.astype(ndt))
    red = case["options"]["reduction"]
    stable = reduce_(elem, red)
    sig = 1.0 / (1.0 + np.exp(z))  # sigmoid(-z) (stable for these magnitudes)
    g = -y * sig
    if red == "mean":
        g = g / x.size
    torch_out = out.detach().numpy()
    if np.array_equal(torch_out, stable.numpy()) and case["grad"] == {"input": tensor_json(g.astype(ndt))}:
        return
    case["torch_output"] = case["output"]
    case["output"] = tensor_json(stable)
    case["grad"] = {"input": tensor_json(g.astype(ndt))}
    case["differs_from_torch"] = "torch overflows in exp"


def cases_soft_margin():
    fn, cs = f_soft_margin, []
    r = rng_for("sm", "random")
    cs += expand("random_10", {"input": r.normal(size=10) * 2, "target": pm1(r, 10)}, fn, {})
    r = rng_for("sm", "big")
    cs += expand("magnitudes_50", {"input": r.uniform(-50, 50, size=8), "target": pm1(r, 8)}, fn, {})
    cs += expand("overflow", {"input": arr([-100.0, 100.0, 5.0]), "target": arr([1.0, -1.0, 1.0])}, fn, {},
                 post=_stable_softplus_post)
    cs += expand("target_zero", {"input": arr([0.5, -1.0, 2.0]), "target": arr([0.0, 1.0, 0.0])}, fn, {},
                 compat_only=True)
    return cs


def cases_multilabel_soft_margin():
    fn, cs = f_multilabel_soft_margin, []
    r = rng_for("mlsm", "random")
    cs += expand("random_5x4", {"input": r.normal(size=(5, 4)) * 1.5,
                                "target": (r.random((5, 4)) < 0.5).astype(np.float64)}, fn, {})
    r = rng_for("mlsm", "weight")
    cs += expand("weight", {"input": r.normal(size=(5, 4)) * 1.5,
                            "target": (r.random((5, 4)) < 0.5).astype(np.float64),
                            "weight": r.uniform(0.1, 2.0, size=4)}, fn, {})
    r = rng_for("mlsm", "big")
    cs += expand("magnitudes_60", {"input": r.uniform(-60, 60, size=(4, 3)),
                                   "target": (r.random((4, 3)) < 0.5).astype(np.float64)}, fn, {})
    r = rng_for("mlsm", "soft")
    t = np.round(r.uniform(0, 1, size=(3, 4)), 2)
    t[0, 0] = 0.3
    cs += expand("soft_targets", {"input": r.normal(size=(3, 4)), "target": t}, fn, {})
    cs += expand("spec_golden", {"input": arr([[0.3, -1.2, 2.0], [0, 0.5, -0.5]]),
                                 "target": arr([[1, 0, 1], [0, 1, 1]]), "weight": arr([1, 2, 0.5])}, fn, {})
    return cs


def cases_triplet_margin():
    fn, cs = f_triplet_margin, []
    base = {"margin": 1.0, "p": 2.0, "eps": 1e-6, "swap": False}

    def rand(key, n=6, d=5):
        r = rng_for("tm", key)
        a = r.normal(size=(n, d))
        return {"anchor": a, "positive": a + r.normal(size=(n, d)) * 0.6, "negative": r.normal(size=(n, d))}

    cs += expand("random_6x5", rand("random"), fn, base)
    cs += expand("random_6x5_swap", rand("swap"), fn, {**base, "swap": True})
    cs += expand("p1", rand("p1"), fn, {**base, "p": 1.0})
    cs += expand("p3", rand("p3"), fn, {**base, "p": 3.0})
    cs += expand("margin_0p5", rand("m05"), fn, {**base, "margin": 0.5})
    inp = rand("ap")
    inp["positive"][[0, 3]] = inp["anchor"][[0, 3]]
    cs += expand("anchor_eq_positive", inp, fn, base)
    inp = rand("tie")
    inp["positive"] = inp["anchor"].copy()  # d(a,n) == d(p,n): torch splits the gradient 0.5/0.5
    inp["negative"] = inp["anchor"] + rng_for("tm", "tie_n").normal(size=inp["anchor"].shape) * 0.25
    cs += expand("swap_tie", inp, fn, {**base, "swap": True})
    cs += expand("kink_eps0", {"anchor": arr([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0]]),
                               "positive": arr([[1.0, 0.0], [3.0, 0.0], [1.0, 2.0]]),
                               "negative": arr([[2.0, 0.0], [0.0, 4.0], [1.0, 2.5]])},
                 fn, {**base, "eps": 0.0})
    return cs


def cases_triplet_margin_with_distance():
    fn, cs = f_triplet_margin_with_distance, []
    for dist in ("euclidean", "cosine"):
        for swap in (False, True):
            r = rng_for("tmwd", dist, swap)
            a = r.normal(size=(6, 5))
            inp = {"anchor": a, "positive": a + r.normal(size=(6, 5)) * 0.6, "negative": r.normal(size=(6, 5))}
            cs += expand(f"{dist}_swap_{str(swap).lower()}_6x5", inp, fn,
                         {"margin": 1.0, "swap": swap, "distance": dist})
        r = rng_for("tmwd", dist, "m05")
        a = r.normal(size=(6, 5))
        inp = {"anchor": a, "positive": a + r.normal(size=(6, 5)) * 0.6, "negative": r.normal(size=(6, 5))}
        cs += expand(f"{dist}_margin_0p5", inp, fn, {"margin": 0.5, "swap": False, "distance": dist})
    return cs


def cases_contrastive():
    fn, cs = f_contrastive, []
    base = {"margin": 1.0, "labels": "pm1"}

    def rand(key, scale=0.35):
        r = rng_for("con", key)
        return {"input1": r.normal(size=(6, 4)) * scale, "input2": r.normal(size=(6, 4)) * scale,
                "target": pm1(r, 6)}

    cs += expand("random_6x4", rand("random"), fn, base)
    cs += expand("margin_2", rand("m2", 0.7), fn, {**base, "margin": 2.0})
    inp = rand("01")
    inp["target"] = (inp["target"] > 0).astype(np.float64)
    cs += expand("labels_01", inp, fn, {**base, "labels": "01"})
    inp = rand("ident")
    inp["input2"][[0, 1]] = inp["input1"][[0, 1]]
    inp["target"][0], inp["target"][1] = 1.0, -1.0
    cs += expand("identical_pair_rows", inp, fn, base)
    return cs


# labels=01 for contrastive: 0 means y=-1, i.e. only target==1 is positive; the torch
# formula above (target == 1 -> positive) already covers both encodings.

LOSSES = {
    "hinge": lambda: cases_hinge(f_hinge, "hinge"),
    "squared_hinge": lambda: cases_hinge(f_squared_hinge, "squared_hinge"),
    "hinge_embedding": cases_hinge_embedding,
    "cosine_similarity": cases_cosine_similarity,
    "pairwise_distance": cases_pairwise_distance,
    "multi_margin": cases_multi_margin,
    "multiclass_hinge": cases_multiclass_hinge,
    "multilabel_margin": cases_multilabel_margin,
    "margin_ranking": cases_margin_ranking,
    "cosine_embedding": cases_cosine_embedding,
    "soft_margin": cases_soft_margin,
    "multilabel_soft_margin": cases_multilabel_soft_margin,
    "triplet_margin": cases_triplet_margin,
    "triplet_margin_with_distance": cases_triplet_margin_with_distance,
    "contrastive": cases_contrastive,
}


def write_loss_file(loss, cases):
    names = [c["name"] for c in cases]
    dup = {n for n in names if names.count(n) > 1}
    assert not dup, f"{loss}: duplicate case names {dup}"
    path = os.path.join(TORCH_DIR, f"{loss}.json")
    head = json.dumps({"torch_version": torch.__version__, "loss": loss})[:-1]
    body = ",\n".join(json.dumps(c, allow_nan=False, separators=(",", ":")) for c in cases)
    with open(path, "w") as f:
        f.write(head + ', "cases": [\n' + body + "\n]}\n")
    return path


# ----------------------------------------------------------------------------------------
# article fixture


def article():
    os.makedirs(ARTICLE_DIR, exist_ok=True)
    import torch.nn as nn
    torch.manual_seed(20)
    a = torch.randn(100, 128, requires_grad=True)
    b = torch.randn(100, 128, requires_grad=True)
    x = 1 - torch.cosine_similarity(a, b)
    y = 2 * torch.empty(100).random_(2) - 1
    output = nn.HingeEmbeddingLoss(margin=0.2)(x, y)
    print(output.item())
    output.backward()
    none = F.hinge_embedding_loss(x.detach(), y, margin=0.2, reduction="none")
    np.save(os.path.join(ARTICLE_DIR, "a.npy"), a.detach().numpy())
    np.save(os.path.join(ARTICLE_DIR, "b.npy"), b.detach().numpy())
    np.save(os.path.join(ARTICLE_DIR, "y.npy"), y.numpy())
    np.save(os.path.join(ARTICLE_DIR, "grad_a.npy"), a.grad.numpy())
    np.save(os.path.join(ARTICLE_DIR, "grad_b.npy"), b.grad.numpy())
    si = torch.tensor(ARTICLE_X)
    st = torch.tensor(ARTICLE_Y)
    he = F.hinge_embedding_loss(si, st).item()
    hm = torch.clamp_min(1 - st * si, 0).mean().item()
    exp = {
        "torch_version": torch.__version__,
        "margin": 0.2,
        "mean": output.item(),
        "x": x.detach().tolist(),
        "none": none.tolist(),
        "grad_a_norm": float(a.grad.norm()),
        "grad_b_norm": float(b.grad.norm()),
        "scores_example": {"input": ARTICLE_X, "target": ARTICLE_Y, "hinge_embedding_mean": he,
                           "hinge_mean": hm},
    }
    with open(os.path.join(ARTICLE_DIR, "expected.json"), "w") as f:
        json.dump(exp, f, indent=1, allow_nan=False)
        f.write("\n")
    os.makedirs(CLI_ARTICLE_DIR, exist_ok=True)
    import shutil
    for name in CLI_ARTICLE_FILES:
        shutil.copyfile(os.path.join(ARTICLE_DIR, name), os.path.join(CLI_ARTICLE_DIR, name))
    return output.item()


def main():
    global CURRENT_LOSS
    os.makedirs(LARGE_DIR, exist_ok=True)
    only = set(sys.argv[1:])
    unknown = only - set(LOSSES) - {"article"}
    if unknown:
        sys.exit(f"unknown loss(es): {sorted(unknown)}")
    if not only:  # full regeneration: drop stale large arrays
        for fname in os.listdir(LARGE_DIR):
            if fname.endswith(".npy"):
                os.remove(os.path.join(LARGE_DIR, fname))
    for loss, gen in LOSSES.items():
        if only and loss not in only:
            continue
        CURRENT_LOSS = loss
        cases = gen()
        path = write_loss_file(loss, cases)
        print(f"{loss}: {len(cases)} cases, {os.path.getsize(path)} bytes")
    if not only or "article" in only:
        mean = article()
        target = 0.4938560426235199
        print(f"article mean = {mean!r}; equals {target!r}: {mean == target}")


if __name__ == "__main__":
    main()
