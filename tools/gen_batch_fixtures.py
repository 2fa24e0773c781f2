#!/usr/bin/env python3
"""Golden fixtures for marginloss's batch losses (crates/marginloss/src/batch).

Run through tools/gen_batch_fixtures.sh (tools/.venv with torch==2.15.0 and
pytorch-metric-learning==2.9.0). Writes fixtures/batch/<loss>.json:
  {"torch_version", "pml_version", "loss", "cases": [CASE, ...]}
  CASE = {"name", "dtype", "source", "options", "inputs", "output", "grad"}
  options: margin / pos_margin / neg_margin, soft, distance, normalize, reduction,
           mode ("strict" | "compat"), reference ("pml" | "tfa")
  inputs: embeddings [N, D], labels [N], optional ref_embeddings [M, D] + ref_labels [M],
          upstream (1 value, or N for reduction "none")
  grad: d(sum(upstream * output))/d embeddings (and ref_embeddings)
source: "pml" = pytorch-metric-learning's own losses/miners/reducers (checked against the
formula written in torch below, which must agree); "tfa" = TensorFlow Addons'
triplet_semihard_loss / triplet_hard_loss ported line by line to torch (masked_minimum /
masked_maximum included); "formula" = the formula in torch where pytorch-metric-learning
has no such configuration (cosine without normalisation).
"""
import json
import math
import os
import sys

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np
import torch
import torch.nn.functional as F
import pytorch_metric_learning
from pytorch_metric_learning import distances, losses, miners, reducers

assert torch.__version__.startswith("2.15.0"), torch.__version__
assert pytorch_metric_learning.__version__ == "2.9.0", pytorch_metric_learning.__version__
torch.set_num_threads(1)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "fixtures", "batch")
DTYPES = {"float32": torch.float32, "float64": torch.float64}
REDUCTIONS = ("mean", "mean-nonzero", "sum", "none")
DISTS = ("euclidean", "squared-euclidean", "cosine")


def num(v):
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
    return v


def tj(t):
    t = t.detach()
    data = [num(float(v)) if t.is_floating_point() else int(v) for v in t.reshape(-1).tolist()]
    return {"dtype": str(t.dtype).replace("torch.", ""), "shape": list(t.shape), "data": data}


# ---------------------------------------------------------------------------------------
# the formulas, in torch


def dist_matrix(q, r, dist, normalize, self_ref):
    if normalize:
        q = F.normalize(q, dim=1, eps=1e-12)
        r = q if self_ref else F.normalize(r, dim=1, eps=1e-12)
    if dist == "cosine":
        d = 1 - F.cosine_similarity(q[:, None, :], r[None, :, :], dim=-1, eps=1e-8)
    else:
        s = ((q[:, None, :] - r[None, :, :]) ** 2).sum(-1)
        if dist == "squared-euclidean":
            d = s
        else:
            pos = s > 0
            d = torch.where(pos, torch.sqrt(torch.where(pos, s, torch.ones_like(s))), torch.zeros_like(s))
    if self_ref:
        d = d * (1 - torch.eye(d.shape[0], dtype=d.dtype))
    return d


def masks(labels, ref_labels, self_ref):
    same = labels[:, None] == ref_labels[None, :]
    if self_ref:
        same = same & ~torch.eye(len(labels), dtype=torch.bool)
    neg = labels[:, None] != ref_labels[None, :]
    return same, neg


def hinge(v, soft):
    return F.softplus(v) if soft else torch.clamp_min(v, 0)


def reduce_terms(l, anchors, n, reduction, upstream):
    """l: tuple losses (1-D), anchors: their anchor index. Returns (output, scalar to differentiate)."""
    if reduction == "none":
        per = torch.zeros(n, dtype=l.dtype).index_add(0, anchors, l)
        return per, (per * upstream).sum()
    if reduction == "mean":
        v = l.mean() if l.numel() else l.sum() * 0
    elif reduction == "mean-nonzero":
        nz = l[l > 0]
        v = nz.mean() if nz.numel() else l.sum() * 0
    else:
        v = l.sum()
    return v.reshape(()), v * upstream[0]


def formula(kind, o, q, labels, r, ref_labels, reduction, upstream):
    self_ref = r is None
    d = dist_matrix(q, q if self_ref else r, o["distance"], o["normalize"], self_ref)
    pos, neg = masks(labels, labels if self_ref else ref_labels, self_ref)
    n = len(labels)
    if kind == "batch_all_triplet":
        v = d[:, :, None] - d[:, None, :] + o["margin"]
        mask = pos[:, :, None] & neg[:, None, :]
        a = torch.arange(n)[:, None, None].expand_as(mask)[mask]
        return reduce_terms(hinge(v[mask], o["soft"]), a, n, reduction, upstream)
    if kind == "batch_hard_triplet":
        ok = pos.any(1) & neg.any(1)
        hp = d.masked_fill(~pos, -math.inf).max(1).values
        hn = d.masked_fill(~neg, math.inf).min(1).values
        v = hp[ok] - hn[ok] + (0 if o["soft"] else o["margin"])
        return reduce_terms(hinge(v, o["soft"]), torch.arange(n)[ok], n, reduction, upstream)
    if kind == "semihard_triplet":
        ls, anchors = [], []
        for i in range(n):
            if not neg[i].any():
                continue
            far = d[i].masked_fill(~neg[i], -math.inf).max()
            for p in torch.nonzero(pos[i]).reshape(-1).tolist():
                cand = neg[i] & (d[i] > d[i, p])
                nn = d[i].masked_fill(~cand, math.inf).min() if cand.any() else far
                ls.append(torch.clamp_min(d[i, p] - nn + o["margin"], 0))
                anchors.append(i)
        l = torch.stack(ls) if ls else d.sum() * 0 + torch.zeros(0, dtype=d.dtype)
        return reduce_terms(l, torch.tensor(anchors, dtype=torch.long), n, reduction, upstream)
    if kind == "pair_contrastive":
        lp = torch.clamp_min(d[pos] - o["pos_margin"], 0)
        ln = torch.clamp_min(o["neg_margin"] - d[neg], 0)
        ar = torch.arange(n)[:, None]
        ap, an = ar.expand_as(pos)[pos], ar.expand_as(neg)[neg]
        if reduction == "none":
            per = torch.zeros(n, dtype=d.dtype).index_add(0, ap, lp).index_add(0, an, ln)
            return per, (per * upstream).sum()
        vp, _ = reduce_terms(lp, ap, n, reduction, upstream)
        vn, _ = reduce_terms(ln, an, n, reduction, upstream)
        v = vp + vn
        return v, v * upstream[0]
    raise ValueError(kind)


# TF-Addons (tensorflow_addons/losses/triplet.py @ f5d905dc), ported to torch.


def masked_maximum(data, mask):
    axis_minimums = data.min(1, keepdim=True).values
    return ((data - axis_minimums) * mask).max(1, keepdim=True).values + axis_minimums


def masked_minimum(data, mask):
    axis_maximums = data.max(1, keepdim=True).values
    return ((data - axis_maximums) * mask).min(1, keepdim=True).values + axis_maximums


def tfa_semihard_terms(pdist, labels, margin):
    n = labels.shape[0]
    adjacency = labels[:, None] == labels[None, :]
    adjacency_not = ~adjacency
    pdist_tile = pdist.repeat(n, 1)
    mask = adjacency_not.repeat(n, 1) & (pdist_tile > pdist.t().reshape(-1, 1))
    mask_final = (mask.to(pdist.dtype).sum(1, keepdim=True) > 0).reshape(n, n).t()
    negatives_outside = masked_minimum(pdist_tile, mask.to(pdist.dtype)).reshape(n, n).t()
    negatives_inside = masked_maximum(pdist, adjacency_not.to(pdist.dtype)).repeat(1, n)
    semi_hard_negatives = torch.where(mask_final, negatives_outside, negatives_inside)
    loss_mat = margin + pdist - semi_hard_negatives
    mask_positives = adjacency.to(pdist.dtype) - torch.eye(n, dtype=pdist.dtype)
    return torch.clamp_min(loss_mat * mask_positives, 0), mask_positives


def tfa(kind, o, q, labels, reduction, upstream):
    n = len(labels)
    pdist = dist_matrix(q, q, o["distance"], o["normalize"], True)
    if kind == "semihard_triplet":
        lm, mp = tfa_semihard_terms(pdist, labels, o["margin"])
        if reduction == "none":
            per = lm.sum(1)
            return per, (per * upstream).sum()
        if reduction == "mean":
            v = lm.sum() / mp.sum()
        elif reduction == "mean-nonzero":
            nz = lm[lm > 0]
            v = nz.mean() if nz.numel() else lm.sum() * 0
        else:
            v = lm.sum()
        return v.reshape(()), v * upstream[0]
    adjacency = labels[:, None] == labels[None, :]
    mask_pos = adjacency.to(pdist.dtype) - torch.eye(n, dtype=pdist.dtype)
    hp = masked_maximum(pdist, mask_pos).reshape(-1)
    hn = masked_minimum(pdist, (~adjacency).to(pdist.dtype)).reshape(-1)
    l = torch.log1p(torch.exp(hp - hn)) if o["soft"] else torch.clamp_min(hp - hn + o["margin"], 0)
    return reduce_terms(l, torch.arange(n), n, reduction, upstream)


# pytorch-metric-learning


def pml_distance(o):
    if o["distance"] == "cosine":
        assert o["normalize"]
        return distances.CosineSimilarity()
    power = 2 if o["distance"] == "squared-euclidean" else 1
    return distances.LpDistance(normalize_embeddings=o["normalize"], p=2, power=power)


def pml_reducer(reduction):
    return {
        "mean": reducers.MeanReducer(),
        "mean-nonzero": reducers.AvgNonZeroReducer(),
        "sum": reducers.SumReducer(),
        "none": reducers.DoNothingReducer(),
    }[reduction]


def pml(kind, o, q, labels, r, ref_labels, reduction, upstream):
    dist = pml_distance(o)
    red = pml_reducer(reduction)
    kw = {} if r is None else {"ref_emb": r, "ref_labels": ref_labels}
    n = len(labels)
    if kind == "batch_all_triplet":
        out = losses.TripletMarginLoss(margin=o["margin"], smooth_loss=o["soft"], distance=dist, reducer=red)(
            q, labels, **kw)
    elif kind == "batch_hard_triplet":
        idx = miners.BatchHardMiner(distance=pml_distance(o))(q, labels, *([r, ref_labels] if r is not None else []))
        m = 0.0 if o["soft"] else o["margin"]
        out = losses.TripletMarginLoss(margin=m, smooth_loss=o["soft"], distance=dist, reducer=red)(q, labels, idx, **kw)
    elif kind == "pair_contrastive":
        pm, nm = o["pos_margin"], o["neg_margin"]
        if o["distance"] == "cosine":  # a similarity s = 1 - d
            pm, nm = 1 - pm, 1 - nm
        out = losses.ContrastiveLoss(pos_margin=pm, neg_margin=nm, distance=dist, reducer=red)(q, labels, **kw)
    else:
        raise ValueError(kind)
    if reduction != "none":
        return out.reshape(()), out * upstream[0]
    per = torch.zeros(n, dtype=q.dtype)
    for part in out.values():
        l = part["losses"]
        if torch.is_tensor(l) and l.numel():
            per = per.index_add(0, part["indices"][0], l.reshape(-1))
    per = per + q.sum() * 0
    return per, (per * upstream).sum()


def run(fn, q64, r64, dtype):
    q = q64.to(dtype).clone().requires_grad_(True)
    r = None if r64 is None else r64.to(dtype).clone().requires_grad_(True)
    out, total = fn(q, r)
    grads = torch.autograd.grad(total, [q] + ([r] if r is not None else []), allow_unused=True)
    grads = [torch.zeros_like(x) if g is None else g for g, x in zip(grads, [q] + ([r] if r is not None else []))]
    return q, r, out, grads


def case(cases, kind, name, o, source, x, y, rx=None, ry=None, upstream=None):
    for dname, dtype in DTYPES.items():
        up = torch.tensor(upstream if upstream is not None else [1.0], dtype=dtype)
        red = o["reduction"]

        def fn(q, r, f=None):
            if source == "pml":
                return pml(kind, o, q, y, r, ry, red, up)
            if source == "tfa":
                return tfa(kind, o, q, y, red, up)
            return formula(kind, o, q, y, r, ry, red, up)

        q, r, out, grads = run(fn, x, rx, dtype)
        if source == "pml":  # the formula must agree with the library
            _, _, out2, grads2 = run(lambda q, r: formula(kind, o, q, y, r, ry, red, up), x, rx, dtype)
            tol = 2e-5 if dtype == torch.float32 else 1e-10
            for a, b in [(out, out2)] + list(zip(grads, grads2)):
                scale = max(1e-3, float(b.detach().abs().max())) if b.numel() else 1.0
                assert torch.allclose(a, b, atol=tol * scale, rtol=0, equal_nan=True), (kind, name, dname, a, b)
        c = {
            "name": name,
            "dtype": dname,
            "source": source,
            "options": o,
            "inputs": {"embeddings": tj(q), "labels": tj(y), "upstream": tj(up)},
            "output": tj(out),
            "grad": {"embeddings": tj(grads[0])},
        }
        if rx is not None:
            c["inputs"]["ref_embeddings"] = tj(r)
            c["inputs"]["ref_labels"] = tj(ry)
            c["grad"]["ref_embeddings"] = tj(grads[1])
        cases.append(c)


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(2015)
    n, m, dim = 10, 7, 4
    for kind in ("batch_all_triplet", "batch_hard_triplet", "semihard_triplet", "pair_contrastive"):
        cases = []
        softs = (False, True) if kind in ("batch_all_triplet", "batch_hard_triplet") else (False,)
        for dist in DISTS:
            for normalize in (False, True):
                for red in REDUCTIONS:
                    for soft in softs:
                        for with_ref in (False, True):
                            if kind == "semihard_triplet" and with_ref:
                                continue  # no reference implementation has it
                            x = torch.tensor(rng.normal(size=(n, dim)))
                            rx = torch.tensor(rng.normal(size=(m, dim))) if with_ref else None
                            while True:  # an ordinary batch: strict mode accepts it
                                y = torch.tensor(rng.integers(0, 3, size=n))
                                ry = torch.tensor(rng.integers(0, 3, size=m)) if with_ref else None
                                cand = ry if with_ref else y
                                if len(set(cand.tolist())) >= 2 and len(set(y.tolist())) >= 2 and all(
                                        (cand == v).sum() >= (1 if with_ref else 2) for v in y.tolist()):
                                    break
                            cos = dist == "cosine"
                            o = {
                                "margin": 0.1 if cos else (0.4 if dist == "euclidean" else 1.5),
                                "pos_margin": 0.1 if cos else 0.3,
                                "neg_margin": 0.8 if cos else (1.6 if dist == "euclidean" else 4.0),
                                "soft": soft,
                                "distance": dist,
                                "normalize": normalize,
                                "reduction": red,
                                "mode": "strict",
                                "reference": "pml",
                            }
                            up = list(rng.uniform(0.5, 2.0, size=n)) if red == "none" else [1.0]
                            if kind == "semihard_triplet":
                                o["reference"] = "tfa"
                                source = "tfa"
                            elif cos and not normalize:
                                source = "formula"
                            else:
                                source = "pml"
                            name = f"{dist}{'-normalize' if normalize else ''}-{red}{'-soft' if soft else ''}{'-ref' if with_ref else ''}"
                            case(cases, kind, name, o, source, x, y, rx, ry, up)
        # TF-Addons' triplet_hard_loss (mean over all anchors, fallbacks) on ordinary batches
        if kind == "batch_hard_triplet":
            for dist in ("euclidean", "squared-euclidean"):
                for soft in (False, True):
                    for red in REDUCTIONS:
                        x = torch.tensor(rng.normal(size=(n, dim)))
                        y = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 3, 4])  # two singletons
                        o = {"margin": 1.0, "pos_margin": 0.0, "neg_margin": 1.0, "soft": soft, "distance": dist,
                             "normalize": False, "reduction": red, "mode": "compat", "reference": "tfa"}
                        up = list(rng.uniform(0.5, 2.0, size=n)) if red == "none" else [1.0]
                        case(cases, kind, f"tfa-{dist}-{red}{'-soft' if soft else ''}-singletons", o, "tfa", x, y, None, None, up)
        # degenerate batches, torch-compat: no positive pair, one class, singletons among pairs
        for label, y in (("no-positives", list(range(6))), ("one-class", [3] * 6), ("singletons", [0, 0, 1, 2, 3, 3])):
            for red in REDUCTIONS:
                x = torch.tensor(rng.normal(size=(6, dim)))
                ref = "tfa" if kind == "semihard_triplet" else "pml"
                o = {"margin": 0.4, "pos_margin": 0.3, "neg_margin": 1.6, "soft": False, "distance": "euclidean",
                     "normalize": True, "reduction": red, "mode": "compat", "reference": ref}
                up = list(rng.uniform(0.5, 2.0, size=6)) if red == "none" else [1.0]
                case(cases, kind, f"degenerate-{label}-{red}", o, ref, x, torch.tensor(y), None, None, up)
                if kind == "batch_hard_triplet":
                    o2 = dict(o, reference="tfa", normalize=False)
                    case(cases, kind, f"degenerate-tfa-{label}-{red}", o2, "tfa", x, torch.tensor(y), None, None, up)
        # a larger batch (torch.cdist's matmul path, N > 25)
        x = torch.tensor(rng.normal(size=(40, 8)))
        y = torch.tensor(rng.integers(0, 6, size=40))
        o = {"margin": 0.2, "pos_margin": 0.3, "neg_margin": 1.2, "soft": False, "distance": "euclidean",
             "normalize": True, "reduction": "mean", "mode": "strict",
             "reference": "tfa" if kind == "semihard_triplet" else "pml"}
        case(cases, kind, "n40-euclidean-normalize-mean", o, o["reference"], x, y)
        doc = {"torch_version": torch.__version__, "pml_version": pytorch_metric_learning.__version__, "loss": kind,
               "cases": cases}
        path = os.path.join(OUT, f"{kind}.json")
        with open(path, "w") as f:
            json.dump(doc, f, separators=(",", ":"))
            f.write("\n")
        print(f"{path}: {len(cases)} cases", file=sys.stderr)


if __name__ == "__main__":
    main()
