#!/usr/bin/env python3
"""Side-by-side benchmark: marginloss's fused kernels against PyTorch's CPU autograd.

    python3 bench/compare.py [--reps 20] [--rounds 3] [--only hinge-embedding --only article ...]
        [--bin target/release/marginloss] [--torch-json bench/results/torch-DATE.json]
        [--torch-from bench/results/torch-DATE.json] [--out docs/BENCHMARKS.md]

What it does, in one process, one machine, one run:

1. Python: re-executes itself under a virtualenv that has torch 2.15.0 and numpy: the
   interpreter in $MARGINLOSS_BENCH_PYTHON if set, else `tools/.venv` (the fixtures'
   venv) if it exists, else `bench/.venv`, created on first use with
   `pip install torch==2.15.0 numpy` from PyPI.
2. torch: for every workload (below) builds the inputs as float32 leaves with
   `requires_grad`, and times the forward alone and the forward + backward
   (`torch.autograd.grad`, i.e. autograd's graph and every op's allocation included),
   median over R repetitions after warm-up; once with `torch.set_num_threads(1)` and once
   with all threads. `--torch-json` saves these raw figures; `--torch-from` reuses a saved
   file instead of timing torch again.
3. marginloss: runs `BIN bench NAME --n N [--dim D] [--classes C] --dtype f32
   --threads T --reps R --json` (T = 1 and T = all cores) and reads its JSON object
   (`name, n, dim, classes, dtype, threads, fwd_ns, fwd_bwd_ns, bytes_fwd_bwd, gbps,
   roofline_gbps`). A binary without `bench` (or missing) gives "n/a" in the table.
4. candle (optional): if the workspace has a `marginloss-candle` crate with an example
   `compare`, runs `cargo run --release -p marginloss-candle --example compare -- --json`
   and reads one JSON object per line, `{"name", "n", "composed_ns", "fused_ns"}`;
   otherwise that section says n/a.
5. burn (optional): if the workspace has a `marginloss-burn` crate with an example `bench`,
   runs `cargo run --release -p marginloss-burn --features rayon,simd --example bench --
   --json` and reads one JSON object per line, `{"name", "size", "bytes", "fused_ns",
   "composed_ns", "burn_nn_ns"}`: fused vs composed burn ops vs burn-nn, in one process.
6. Batch losses: reads the newest `bench/results/batch-*.jsonl` that `bench/batch_compare.py`
   wrote (marginloss's batch losses beside pytorch-metric-learning, timed in one run) into a
   section of its own; `--batch-only` rewrites just that section of an existing report.
7. Writes `docs/BENCHMARKS.md`: one table with torch 1-thread / all-threads, marginloss
   1-thread / all-threads, the ratios, the fraction of the roofline, and the issue's
   targets with met / missed.

Workloads: every loss is timed with reduction "mean" and upstream gradient 1, except the
distances (cosine-similarity, pairwise-distance), which are unreduced, with an upstream
gradient of ones per row. `n` is the number of samples (elements for elementwise losses,
rows otherwise), `dim` the row length D, `classes` C. `article` is the article's pipeline
x = 1 - cosine_similarity(a, b), hinge_embedding_loss(x, y, margin=0.2), forward and
backward to a and b (a, b of n x dim).
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TORCH_VERSION = "2.15.0"

# (name, n, dim, classes): the "large size" of every eval name, plus the extra sizes.
WORKLOADS = [
    ("hinge-embedding", 10_000_000, None, None),
    ("hinge-embedding", 1_000_000, None, None),
    ("hinge-embedding", 100, None, None),
    ("hinge", 10_000_000, None, None),
    ("squared-hinge", 10_000_000, None, None),
    ("soft-margin", 10_000_000, None, None),
    ("margin-ranking", 10_000_000, None, None),
    ("cosine-similarity", 4096, 128, None),
    ("pairwise-distance", 4096, 128, None),
    ("cosine-embedding", 4096, 128, None),
    ("contrastive", 4096, 128, None),
    ("triplet-margin", 4096, 128, None),
    ("article", 4096, 128, None),
    ("multi-margin", 4096, None, 1000),
    ("multiclass-hinge", 4096, None, 1000),
    ("multilabel-margin", 4096, None, 1000),
    ("multilabel-soft-margin", 4096, None, 1000),
]

# Targets from issue 6 (ratios are torch time / marginloss time, both one thread).
SPEEDUP_TARGET = {
    ("hinge-embedding", 10_000_000): 30.0,
    ("article", 4096): 8.0,
    ("multi-margin", 4096): 8.0,
}
DEFAULT_SPEEDUP = 5.0


# --------------------------------------------------------------------------- venv


def has_torch():
    try:
        import numpy  # noqa: F401
        import torch
    except ImportError:
        return False
    return torch.__version__.split("+")[0] == TORCH_VERSION


def ensure_venv():
    """Re-executes this script under a Python with torch 2.15.0 and numpy."""
    if has_torch():
        return
    candidates = [os.environ.get("MARGINLOSS_BENCH_PYTHON"),
                  os.path.join(ROOT, "tools", ".venv", "bin", "python"),
                  os.path.join(HERE, ".venv", "bin", "python")]
    for py in candidates:
        # venv interpreters are symlinks to the base one: compare the paths, not their targets
        if py and os.path.exists(py) and os.path.abspath(py) != os.path.abspath(sys.executable):
            ok = subprocess.run([py, "-c", "import numpy, torch; assert torch.__version__.split('+')[0] == "
                                 f"{TORCH_VERSION!r}"], capture_output=True).returncode == 0
            if ok:
                os.execv(py, [py] + sys.argv)
    venv = os.path.join(HERE, ".venv")
    print(f"creating {venv} and installing torch=={TORCH_VERSION} numpy (once)", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    py = os.path.join(venv, "bin", "python")
    subprocess.run([py, "-m", "pip", "install", "--quiet", f"torch=={TORCH_VERSION}", "numpy"], check=True)
    os.execv(py, [py] + sys.argv)


# --------------------------------------------------------------------------- machine


def machine():
    model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
            mem = f"{kb / 2**20:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    try:
        load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        load = "n/a"
    return {"cpu": model, "cores": os.cpu_count(), "memory": mem, "os": platform.platform(), "loadavg": load}


# --------------------------------------------------------------------------- torch


def torch_workload(name, n, dim, classes, seed=6):
    """Returns (leaves, fn): fn(*leaves) is the loss tensor (or per-row output)."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    r = np.random.default_rng(seed)
    f32 = np.float32

    def leaf(a):
        return torch.from_numpy(np.ascontiguousarray(a, dtype=f32)).requires_grad_(True)

    def const(a, dt=f32):
        return torch.from_numpy(np.ascontiguousarray(a, dtype=dt))

    def pm1(k):
        return const(np.where(r.random(k) < 0.5, -1.0, 1.0))

    def normal(*shape):
        return r.standard_normal(shape, dtype=f32)

    if name == "hinge":
        x, y = leaf(normal(n)), pm1(n)
        return [x], lambda x: torch.clamp_min(1.0 - y * x, 0).mean()
    if name == "squared-hinge":
        x, y = leaf(normal(n)), pm1(n)
        return [x], lambda x: (torch.clamp_min(1.0 - y * x, 0) ** 2).mean()
    if name == "hinge-embedding":
        x, y = leaf(np.abs(normal(n))), pm1(n)
        return [x], lambda x: F.hinge_embedding_loss(x, y)
    if name == "soft-margin":
        x, y = leaf(normal(n)), pm1(n)
        return [x], lambda x: F.soft_margin_loss(x, y)
    if name == "margin-ranking":
        a, b, y = leaf(normal(n)), leaf(normal(n)), pm1(n)
        return [a, b], lambda a, b: F.margin_ranking_loss(a, b, y)
    if name == "cosine-similarity":
        a, b = leaf(normal(n, dim)), leaf(normal(n, dim))
        return [a, b], lambda a, b: F.cosine_similarity(a, b, dim=1)
    if name == "pairwise-distance":
        a, b = leaf(normal(n, dim)), leaf(normal(n, dim))
        return [a, b], lambda a, b: F.pairwise_distance(a, b)
    if name == "cosine-embedding":
        a, b, y = leaf(normal(n, dim)), leaf(normal(n, dim)), pm1(n)
        return [a, b], lambda a, b: F.cosine_embedding_loss(a, b, y)
    if name == "contrastive":
        a, b, y = leaf(normal(n, dim) * 0.1), leaf(normal(n, dim) * 0.1), pm1(n)
        is_pos = y == 1

        def contrastive(a, b):
            d = F.pairwise_distance(a, b)
            return torch.where(is_pos, 0.5 * d ** 2, 0.5 * torch.clamp_min(1.0 - d, 0) ** 2).mean()
        return [a, b], contrastive
    if name == "triplet-margin":
        a, p, q = leaf(normal(n, dim)), leaf(normal(n, dim)), leaf(normal(n, dim))
        return [a, p, q], lambda a, p, q: F.triplet_margin_loss(a, p, q)
    if name == "article":
        a, b, y = leaf(normal(n, dim)), leaf(normal(n, dim)), pm1(n)

        def article(a, b):
            x = 1 - torch.cosine_similarity(a, b)
            return F.hinge_embedding_loss(x, y, margin=0.2)
        return [a, b], article
    if name == "multi-margin":
        x, y = leaf(normal(n, classes)), const(r.integers(0, classes, n), np.int64)
        return [x], lambda x: F.multi_margin_loss(x, y)
    if name == "multiclass-hinge":
        x, y = leaf(normal(n, classes)), const(r.integers(0, classes, n), np.int64)
        mask = F.one_hot(y, classes).bool()

        def multiclass_hinge(x):
            sy = x.gather(1, y[:, None])[:, 0]
            other = x.masked_fill(mask, float("-inf")).max(dim=1).values
            return torch.clamp_min(1.0 + other - sy, 0).mean()
        return [x], multiclass_hinge
    if name == "multilabel-margin":
        t = -np.ones((n, classes), dtype=np.int64)
        start, k = r.integers(0, classes, n), r.integers(1, 4, n)
        for j in range(3):
            rows = k > j
            t[rows, j] = (start[rows] + j) % classes
        x, y = leaf(normal(n, classes)), const(t, np.int64)
        return [x], lambda x: F.multilabel_margin_loss(x, y)
    if name == "multilabel-soft-margin":
        x, y = leaf(normal(n, classes)), const((r.random((n, classes)) < 0.5).astype(f32))
        return [x], lambda x: F.multilabel_soft_margin_loss(x, y)
    raise ValueError(f"unknown workload {name}")


def median_ns(call, reps, warmup):
    for _ in range(warmup):
        call()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter_ns()
        call()
        ts.append(time.perf_counter_ns() - t0)
    return statistics.median(ts)


def reps_for(estimate_ns, reps):
    """At most `reps`, fewer (at least 5) where one call is long, to keep the run short."""
    budget_ns = 3e9
    return max(5, min(reps, int(budget_ns / max(estimate_ns, 1))))


def time_torch(workloads, reps, threads_all):
    import torch

    results = []
    for name, n, dim, classes in workloads:
        leaves, fn = torch_workload(name, n, dim, classes)
        for threads in sorted({1, threads_all}):
            torch.set_num_threads(threads)

            def fwd():
                with torch.no_grad():
                    return fn(*leaves)

            def fwd_bwd():
                out = fn(*leaves)
                up = torch.ones_like(out)
                return torch.autograd.grad(out, leaves, grad_outputs=up)

            t0 = time.perf_counter_ns()
            fwd_bwd()
            r = reps_for(time.perf_counter_ns() - t0, reps)
            rec = {"name": name, "n": n, "dim": dim, "classes": classes, "dtype": "f32",
                   "threads": threads, "reps": r,
                   "fwd_ns": median_ns(fwd, r, 2), "fwd_bwd_ns": median_ns(fwd_bwd, r, 2)}
            results.append(rec)
            print(f"torch {name:24} n={n:<9} dim={dim} classes={classes} threads={threads}: "
                  f"fwd {rec['fwd_ns'] / 1e3:10.1f} us  fwd+bwd {rec['fwd_bwd_ns'] / 1e3:10.1f} us",
                  file=sys.stderr, flush=True)
        del leaves, fn
    return results


# --------------------------------------------------------------------------- marginloss


def bench_supported(binary):
    if not os.path.exists(binary):
        return False, f"{os.path.relpath(binary, ROOT)} not built"
    p = subprocess.run([binary, "bench", "--help"], capture_output=True, text=True)
    if p.returncode != 0:
        return False, f"{os.path.relpath(binary, ROOT)} has no `bench` command"
    return True, ""


def ml_command(binary, name, n, dim, classes, threads, reps):
    cmd = [binary, "bench", name, "--n", str(n)]
    if dim is not None:
        cmd += ["--dim", str(dim)]
    if classes is not None:
        cmd += ["--classes", str(classes)]
    return cmd + ["--dtype", "f32", "--threads", str(threads), "--reps", str(reps), "--json"]


def time_marginloss(binary, workloads, reps, threads_all, rounds=3):
    """Runs the whole sweep `rounds` times (one and all threads side by side) and keeps, per
    workload, the median of the rounds' medians: on a shared machine one round can land on a
    busy moment, and the one- and all-thread figures of a pair should see the same machine."""
    by_key = {}
    for rnd in range(rounds):
        for rec in time_marginloss_once(binary, workloads, reps, threads_all, rnd + 1, rounds):
            by_key.setdefault(tuple(rec["_key"]), []).append(rec)
    results = []
    for key, recs in by_key.items():
        rec = dict(recs[0])
        for field in ("fwd_ns", "fwd_bwd_ns", "roofline_gbps"):
            rec[field] = statistics.median(r[field] for r in recs)
        rec["gbps"] = rec["bytes_fwd_bwd"] / rec["fwd_bwd_ns"]
        rec["_rounds"] = len(recs)
        results.append(rec)
    return results


def time_marginloss_once(binary, workloads, reps, threads_all, rnd, rounds):
    results = []
    for name, n, dim, classes in workloads:
        for threads in sorted({1, threads_all}):
            cmd = ml_command(binary, name, n, dim, classes, threads, reps)
            p = subprocess.run(cmd, capture_output=True, text=True)
            rec = None
            if p.returncode == 0:
                for line in reversed(p.stdout.strip().splitlines()):
                    try:
                        rec = json.loads(line)
                        break
                    except json.JSONDecodeError:
                        continue
                if rec is None:
                    try:
                        rec = json.loads(p.stdout)
                    except json.JSONDecodeError:
                        rec = None
            if rec is None:
                print(f"marginloss {name} n={n} threads={threads}: failed ({p.returncode}): "
                      f"{p.stderr.strip()[:200]}", file=sys.stderr)
                continue
            rec.setdefault("threads", threads)
            rec["_key"] = [name, n, dim, classes, threads]
            results.append(rec)
            print(f"[{rnd}/{rounds}] marginloss {name:24} n={n:<9} threads={threads}: fwd+bwd {rec['fwd_bwd_ns'] / 1e3:10.2f} us"
                  f"  {rec.get('gbps', 0):.1f} GB/s of {rec.get('roofline_gbps', 0):.1f}",
                  file=sys.stderr, flush=True)
    return results


# --------------------------------------------------------------------------- candle


def run_example(crate, example, cmd):
    """Runs a crate's example that prints one JSON object per line: (rows, the command), or
    (None, why not)."""
    if not os.path.exists(os.path.join(ROOT, "crates", crate, "examples", f"{example}.rs")):
        return None, f"no `{crate}` crate with an example `{example}` in this checkout"
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if p.returncode != 0:
        return None, f"`{' '.join(cmd)}` failed: {p.stderr.strip()[-300:]}"
    rows = []
    for line in p.stdout.splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            pass
    return rows, " ".join(cmd)


def time_candle():
    cmd = ["cargo", "run", "--release", "-q", "-p", "marginloss-candle", "--example", "compare", "--", "--json"]
    return run_example("marginloss-candle", "compare", cmd)


# --------------------------------------------------------------------------- burn

BURN_CMD = ["cargo", "run", "--release", "-q", "-p", "marginloss-burn", "--features", "rayon,simd",
            "--example", "bench", "--", "--json"]


def time_burn():
    return run_example("marginloss-burn", "bench", BURN_CMD)


# The bars for marginloss-burn (fused on Flex, forward + backward of one step).
BURN_VS_COMPOSED = {"hinge_embedding": 10, "hinge": 10, "soft_margin": 10,
                    "triplet_margin": 5, "cosine_embedding": 5, "contrastive": 5, "multi_margin": 5,
                    "multiclass_hinge": 5, "multilabel_margin": 5, "multilabel_soft_margin": 5}
BURN_VS_NN = {"hinge_embedding": 10, "margin_ranking": 10, "multi_margin": 10, "triplet_margin": 10,
              "cosine_embedding": 10}


def burn_section(burn, burn_note, stream_gbps, when):
    """The marginloss-burn table; `stream_gbps` the all-core streaming bandwidth measured by
    `marginloss bench` in this run (None without it), for the floor no implementation can
    beat: the bytes one step must move over that bandwidth."""
    lines = ["## marginloss-burn: fused vs composed burn ops vs burn-nn\n"]
    if not burn:
        lines.append(f"n/a: {burn_note}.\n")
        return lines, []
    lines.append(
        "One process, one run, on `Device::flex().autodiff()`, float32, median of 15 after 3 warm-ups "
        f"({when}). A step marks every input a model produces as tracked (both inputs of a pair loss, "
        "all three of a triplet), evaluates the loss with reduction mean, calls `backward()` and takes "
        "each gradient tensor; so the adapter's data movement (host slices, gradient buffers, the "
        "autodiff node) is inside the figure. Copying a gradient out with `into_data()` is not: it costs "
        "the same on every path. burn-flex runs with its SIMD kernels and threads (burn's default "
        "features) and the core with its rayon split, so every path uses every core.\n")
    lines.append("Targets: fused ≥ 10× composed for hinge-embedding, hinge and soft-margin at N = 1e6, ≥ 5× "
                 "for the row and class losses; fused ≥ 10× burn-nn's own loss. *Floor*: the bytes the "
                 "step must read and write at the least over the streaming bandwidth measured in the same "
                 "run; *burn-nn ÷ floor* is the largest speed-up over burn-nn any implementation could "
                 "show on this machine.\n")
    lines.append("| loss | size | fused | composed | burn-nn | composed ÷ fused | target | met? | burn-nn ÷ fused "
                 "| target | met? | floor | fused ÷ floor | burn-nn ÷ floor |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    verdicts = []
    for r in burn:
        name, size = r.get("name"), r.get("size")
        f, c, b = r.get("fused_ns"), r.get("composed_ns"), r.get("burn_nn_ns")
        sc, sb = ratio(c, f), ratio(b, f)
        floor = None if not stream_gbps or not r.get("bytes") else r["bytes"] / stream_gbps

        def judge(kind, s, bar):
            if bar is None:
                return "–", "–"
            met = None if s is None else s >= bar
            verdict = "n/a" if met is None else ("met" if met else "**missed**")
            verdicts.append((f"burn {name} {kind}", size, f"≥ {bar}×", verdict))
            return f"≥ {bar}×", verdict

        tc, mc = judge("fused vs composed", sc, BURN_VS_COMPOSED.get(name))
        tb, mbn = judge("fused vs burn-nn", sb, BURN_VS_NN.get(name) if b is not None else None)
        lines.append(f"| {name} | {size} | {fmt_ns(f)} | {fmt_ns(c)} | {fmt_ns(b) if b is not None else '–'} | "
                     f"{fmt_ratio(sc)} | {tc} | {mc} | {fmt_ratio(sb) if b is not None else '–'} | {tb} | {mbn} | "
                     f"{fmt_ns(floor)} | {fmt_ratio(ratio(f, floor))} | "
                     f"{fmt_ratio(ratio(b, floor)) if b is not None else '–'} |")
    lines.append(f"\nMeasured with `{burn_note}`.\n")
    return lines, verdicts


# --------------------------------------------------------------------------- report


def fmt_ns(ns):
    if ns is None:
        return "n/a"
    if ns < 1e3:
        return f"{ns:.0f} ns"
    if ns < 1e6:
        return f"{ns / 1e3:.1f} µs"
    if ns < 1e9:
        return f"{ns / 1e6:.2f} ms"
    return f"{ns / 1e9:.2f} s"


def shape(name, n, dim, classes):
    if dim is not None:
        return f"{n}×{dim}"
    if classes is not None:
        return f"{n}×{classes}"
    return f"N={n:.0e}".replace("e+0", "e").replace("e+", "e") if n >= 1000 else f"N={n}"


def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def fmt_ratio(x):
    return "n/a" if x is None else f"{x:.1f}×"


def build_report(mach, torch_res, ml_res, ml_note, candle, candle_note, burn, burn_note, threads_all, reps,
                 command, when, torch_when=None):
    t = {(r["name"], r["n"], r["dim"], r["classes"], r["threads"]): r for r in torch_res}
    m = {tuple(r["_key"]): r for r in ml_res}

    def get(d, key, field):
        r = d.get(key)
        return None if r is None else r.get(field)

    lines = []
    lines.append("# Benchmarks\n")
    lines.append("marginloss's fused forward+backward kernels against PyTorch's CPU autograd on the same "
                 "workloads: one table, one machine, one run.\n")
    lines.append(f"- Machine: {mach['cpu']}, {mach['cores']} cores, {mach['memory']} RAM; {mach['os']}; load average "
                 f"at the start {mach.get('loadavg', 'n/a')} (the machine is shared: a load above the core "
                 "count inflates every figure)")
    lines.append(f"- Run: {when}; torch {TORCH_VERSION} (CPU), float32, medians over up to {reps} "
                 "repetitions after warm-up (fewer, at least 5, where one torch call is long); "
                 "marginloss: the median of "
                 f"{max((r.get('_rounds', 1) for r in ml_res), default=1)} rounds of its sweep, each a "
                 "median of its own, one- and all-thread runs side by side")
    lines.append(f"- Threads: \"1t\" = one thread (`torch.set_num_threads(1)`, `--threads 1`); "
                 f"\"{threads_all}t\" = all cores")
    lines.append("- Reduction: mean with upstream gradient 1, except the distances (unreduced, upstream "
                 "ones); torch times the forward under `no_grad` and the forward+backward with "
                 "`torch.autograd.grad`")
    if ml_note:
        lines.append(f"- marginloss: n/a: {ml_note}")
    if not torch_res:
        lines.append("- torch: n/a: not timed in this run")
    elif torch_when:
        lines.append(f"- torch figures: {torch_when}")
    lines.append("")
    lines.append("## Forward + backward\n")
    hdr = ["loss", "size", "torch 1t", f"torch {threads_all}t", "marginloss 1t", f"marginloss {threads_all}t",
           "speed-up 1t", f"speed-up {threads_all}t", "GB/s (1t)", "roofline", "of roofline",
           "target", "met?"]
    lines.append("| " + " | ".join(hdr) + " |")
    lines.append("|" + "---|" * len(hdr))
    verdicts = []
    for name, n, dim, classes in WORKLOADS:
        k1, ka = (name, n, dim, classes, 1), (name, n, dim, classes, threads_all)
        t1, ta = get(t, k1, "fwd_bwd_ns"), get(t, ka, "fwd_bwd_ns")
        m1, ma = get(m, k1, "fwd_bwd_ns"), get(m, ka, "fwd_bwd_ns")
        s1, sa = ratio(t1, m1), ratio(ta, ma)
        gbps, roof = get(m, k1, "gbps"), get(m, k1, "roofline_gbps")
        frac = ratio(gbps, roof)
        if name == "hinge-embedding" and n == 100:
            target = "< 1 µs per call"
            met = None if m1 is None else m1 < 1000
        elif name == "hinge-embedding" and n == 1_000_000:
            target = "(threads row)"
            met = "—"
        else:
            want = SPEEDUP_TARGET.get((name, n), DEFAULT_SPEEDUP)
            target = f"≥ {want:g}× torch"
            met = None if s1 is None else s1 >= want
            if name == "hinge-embedding" and n == 10_000_000:
                target += ", ≤ 1.5× roofline time"
                if met is not None and frac is not None:
                    met = met and frac >= 1 / 1.5
        verdict = "n/a" if met is None else met if isinstance(met, str) else ("met" if met else "**missed**")
        verdicts.append((name, shape(name, n, dim, classes), target, verdict))
        row = [name, shape(name, n, dim, classes), fmt_ns(t1), fmt_ns(ta), fmt_ns(m1), fmt_ns(ma),
               fmt_ratio(s1), fmt_ratio(sa),
               "n/a" if gbps is None else f"{gbps:.1f}", "n/a" if roof is None else f"{roof:.1f} GB/s",
               "n/a" if frac is None else f"{100 * frac:.0f}%", target, verdict]
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    lines.append("Per element, hinge-embedding at N = 1e7, one thread: torch "
                 f"{fmt_per_elem(get(t, ('hinge-embedding', 10_000_000, None, None, 1), 'fwd_bwd_ns'))}, "
                 f"marginloss {fmt_per_elem(get(m, ('hinge-embedding', 10_000_000, None, None, 1), 'fwd_bwd_ns'))}.")
    lines.append("")

    lines.append("## Forward only\n")
    hdr = ["loss", "size", "torch 1t", f"torch {threads_all}t", "marginloss 1t", f"marginloss {threads_all}t",
           "speed-up 1t"]
    lines.append("| " + " | ".join(hdr) + " |")
    lines.append("|" + "---|" * len(hdr))
    for name, n, dim, classes in WORKLOADS:
        k1, ka = (name, n, dim, classes, 1), (name, n, dim, classes, threads_all)
        t1, ta = get(t, k1, "fwd_ns"), get(t, ka, "fwd_ns")
        m1, ma = get(m, k1, "fwd_ns"), get(m, ka, "fwd_ns")
        lines.append("| " + " | ".join([name, shape(name, n, dim, classes), fmt_ns(t1), fmt_ns(ta), fmt_ns(m1),
                                         fmt_ns(ma), fmt_ratio(ratio(t1, m1))]) + " |")
    lines.append("")

    lines.append("## Threads (marginloss, rayon)\n")
    lines.append("Target: at N ≥ 1e6 all threads at least 1.6× the one-thread speed; below the size where "
                 "threads pay off, no slower than one thread.\n")
    lines.append("| loss | size | 1t | all | speed-up | target | met? |")
    lines.append("|---|---|---|---|---|---|---|")
    for name, n, dim, classes in WORKLOADS:
        big = n * (dim or 1) * (classes or 1) >= 1_000_000
        m1 = get(m, (name, n, dim, classes, 1), "fwd_bwd_ns")
        ma = get(m, (name, n, dim, classes, threads_all), "fwd_bwd_ns")
        s = ratio(m1, ma)
        # "No slower" allows 3% for timing noise: below the parallel threshold both runs
        # execute the same single-threaded code, so any gap is the clock's.
        want = "≥ 1.6×" if big else "≥ 1.0× (no slower, ±3%)"
        met = None if s is None else (s >= 1.6 if big else s >= 0.97)
        verdict = "n/a" if met is None else ("met" if met else "**missed**")
        verdicts.append((f"{name} threads", shape(name, n, dim, classes), want, verdict))
        lines.append(f"| {name} | {shape(name, n, dim, classes)} | {fmt_ns(m1)} | {fmt_ns(ma)} | "
                     f"{fmt_ratio(s)} | {want} | {verdict} |")
    lines.append("")

    lines.append("## marginloss-candle: fused vs composed candle ops\n")
    lines.append("Target: the fused op at least 5× the composed candle ops at N = 1e6.\n")
    if not candle:
        lines.append(f"n/a: {candle_note}.\n")
    else:
        lines.append("| loss | n | composed | fused | speed-up | met? |")
        lines.append("|---|---|---|---|---|---|")
        for r in candle:
            s = ratio(r.get("composed_ns"), r.get("fused_ns"))
            met = "n/a" if s is None else ("met" if s >= 5 or r.get("n", 0) < 1_000_000 else "**missed**")
            lines.append(f"| {r.get('name')} | {r.get('n')} | {fmt_ns(r.get('composed_ns'))} | "
                         f"{fmt_ns(r.get('fused_ns'))} | {fmt_ratio(s)} | {met} |")
        lines.append(f"\nMeasured with `{candle_note}`.\n")

    # The streaming bandwidth with every core, as `marginloss bench` measured it in this run.
    streams = [r.get("roofline_gbps") for r in ml_res if r.get("threads") == threads_all and r.get("roofline_gbps")]
    section, burn_verdicts = burn_section(burn, burn_note, statistics.median(streams) if streams else None, when)
    lines.extend(section)
    verdicts.extend(burn_verdicts)
    section, batch_verdicts = batch_section()
    lines.extend(section)
    verdicts.extend(batch_verdicts)

    lines.append("## Targets\n")
    missed = [v for v in verdicts if v[3] == "**missed**"]
    na = [v for v in verdicts if v[3] == "n/a"]
    lines.append(f"{sum(v[3] == 'met' for v in verdicts)} met, {len(missed)} missed, {len(na)} not measured.\n")
    for v in missed:
        lines.append(f"- missed: {v[0]} {v[1]} ({v[2]})")
    lines.append("")
    notes = os.path.join(HERE, "where-the-time-goes.md")
    if os.path.exists(notes):
        # Hand-written, from profiles: why the targets near their bar are where they are.
        with open(notes, encoding="utf-8") as f:
            lines.append(f.read().rstrip() + "\n")
    lines.append("## Reproduce\n")
    lines.append("```sh")
    lines.append("cargo build --release -p marginloss-cli")
    lines.append(command)
    lines.append("```\n")
    lines.append("Single workloads: `target/release/marginloss bench NAME --n N [--dim D] [--classes C] "
                 "--dtype f32 --threads T --reps R --json`; kernels against the plain reference "
                 "implementations: `cargo bench -p marginloss --bench bench_main`.")
    return "\n".join(lines) + "\n"


def fmt_per_elem(ns):
    return "n/a" if ns is None else f"{ns / 10_000_000:.2f} ns/element"


# --------------------------------------------------------------------------- batch losses

BATCH_HEADING = "## Batch metric-learning losses (issue 13)"
# marginloss loss, its batch_bench args, the pytorch-metric-learning row timed beside it, the
# speed-up bar over it (None: no bar).
BATCH_ROWS = [
    ("batch-hard-triplet", [], "pml BatchHardMiner + TripletMarginLoss", 8),
    ("batch-all-triplet", [], "pml TripletMarginLoss (all triplets)", 50),
    ("semihard-triplet", [], "pml TripletMarginMiner(semihard) + TripletMarginLoss", 50),
    ("pair-contrastive", [], "pml ContrastiveLoss", None),
    ("pair-contrastive", ["--neg-margin", "1.5"], "pml ContrastiveLoss(neg_margin=1.5)", None),
]


def newest_batch_results():
    """The newest `bench/results/batch-*.jsonl` that bench/batch_compare.py wrote (rows with
    the current fields), or None."""
    import glob
    for path in sorted(glob.glob(os.path.join(HERE, "results", "batch-*.jsonl")), reverse=True):
        rows = []
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if line.startswith("{"):
                    rows.append(json.loads(line))
        if any("args" in r for r in rows):
            return path, rows
    return None, []


def batch_section():
    """The batch losses' section: marginloss beside pytorch-metric-learning and one GEMM,
    from the newest batch_compare.py run (it times both in one run)."""
    path, rows = newest_batch_results()
    lines = [BATCH_HEADING + "\n"]
    if not rows:
        lines.append("Not measured: run `bench/batch_compare.py` (it writes "
                     "`bench/results/batch-DATE.jsonl`), then `python3 bench/compare.py --batch-only`.\n")
        return lines, []
    pml = {r["name"]: r for r in rows if "wall_ns" in r}
    ml = {(r["name"], tuple(r.get("args", [])), r["threads"]): r for r in rows if "fwd_bwd_ns" in r}
    load = next((r["loadavg"] for r in rows if "loadavg" in r), None)
    lines.append(
        f"f32, N = 1024, D = 128, 128 classes of 8, `normalize` on, `MeanNonzero`, forward + backward "
        f"into caller buffers with a reused `Workspace` (`crates/marginloss/examples/batch_bench.rs`, "
        f"the best of three processes, each the median of 100 calls), pytorch-metric-learning 2.9.0 on torch 2.15.0 timed in the same run, one "
        f"thread (`bench/batch_compare.py`; raw output `{os.path.relpath(path, ROOT)}`"
        + (f", load average {load[0]:.2f} at the end" if load else "") + "). \"GEMM\" is one "
        f"1024 × 128 × 1024 faer product in the same process, same threads.\n")
    lines.append("| workload | PML 1t | marginloss 1t | speed-up (bar) | ÷ GEMM (bar ≤ 2.5×) | marginloss 2t | 2t ÷ 1t (bar ≥ 1.6×) |")
    lines.append("|---|---|---|---|---|---|---|")
    verdicts = []
    for loss, extra, pml_name, bar in BATCH_ROWS:
        one, two = ml.get((loss, tuple(extra), 1)), ml.get((loss, tuple(extra), 2))
        ref = pml.get(pml_name)
        if not one:
            continue
        label = loss + (" " + " ".join(extra) if extra else "")
        t1 = one["fwd_bwd_ns"]
        speed = ref["wall_ns"] / t1 if ref else None
        gemm = t1 / one["gemm_ns"] if one.get("gemm_ns") else None
        scale = t1 / two["fwd_bwd_ns"] if two else None

        def mark(ok):
            return "met" if ok else "**missed**"
        sp = "n/a" if speed is None else (f"{speed:.1f}×" + (f" (≥ {bar}×: {mark(speed >= bar)})" if bar else ""))
        gm = "n/a" if gemm is None else f"{gemm:.2f}× ({mark(gemm <= 2.5)})"
        sc = "n/a" if scale is None else f"{scale:.2f}× ({mark(scale >= 1.6)})"
        lines.append(f"| {label} (`{pml_name[4:]}`) | {fmt_ns(ref['wall_ns']) if ref else 'n/a'} | {fmt_ns(t1)} | "
                     f"{sp} | {gm} | {fmt_ns(two['fwd_bwd_ns']) if two else 'n/a'} | {sc} |")
        if bar and speed is not None:
            verdicts.append((label, "vs pytorch-metric-learning", f"{speed:.1f}×, bar {bar}×", mark(speed >= bar)))
        if gemm is not None:
            verdicts.append((label, "÷ one GEMM", f"{gemm:.2f}×, bar ≤ 2.5×", mark(gemm <= 2.5)))
        if scale is not None:
            verdicts.append((label, "2 threads ÷ 1", f"{scale:.2f}×, bar 1.6×", mark(scale >= 1.6)))
    lines.append("\nSemi-hard: marginloss computes TF-Addons' definition, pytorch-metric-learning its "
                 "`TripletMarginMiner(\"semihard\")` (the closest it has). pair-contrastive's default "
                 "`neg_margin` 1 leaves almost every negative of random unit rows (about √2 apart) "
                 "inactive, so its backward takes the sparse path; `--neg-margin 1.5` makes nearly all "
                 "of them active (the dense GEMM backward). More figures, the peak-RSS probe and the "
                 "profile notes: [BENCHMARKS-batch.md](BENCHMARKS-batch.md).\n")
    return lines, verdicts


def replace_batch_section(out):
    """Rewrites only the batch section of an existing report (`--batch-only`)."""
    with open(out, encoding="utf-8") as f:
        text = f.read()
    lines, _ = batch_section()
    block = "\n".join(lines) + "\n"
    if BATCH_HEADING in text:
        start = text.index(BATCH_HEADING)
        nxt = text.find("\n## ", start + len(BATCH_HEADING))
        text = text[:start] + block + (text[nxt + 1:] if nxt >= 0 else "")
    else:
        at = text.find("## Targets")
        text = text[:at] + block + "\n" + text[at:] if at >= 0 else text + "\n" + block
    with open(out, "w", encoding="utf-8") as f:
        f.write(text)


# --------------------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "marginloss"))
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3, help="marginloss sweeps; the median per workload is kept")
    ap.add_argument("--only", action="append", help="only this eval name (repeatable)")
    ap.add_argument("--torch-json", help="save the raw torch figures here (default: bench/results/torch-DATE.json)")
    ap.add_argument("--torch-from", help="reuse torch figures saved by --torch-json instead of timing torch")
    ap.add_argument("--skip-torch", action="store_true", help="no torch figures (n/a)")
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "BENCHMARKS.md"))
    ap.add_argument("--no-report", action="store_true", help="do not write the markdown report")
    ap.add_argument("--batch-only", action="store_true",
                    help="only rewrite the batch losses' section of --out from the newest bench/results/batch-*.jsonl")
    args = ap.parse_args()
    if args.batch_only:
        replace_batch_section(args.out)
        print(f"rewrote the batch section of {os.path.relpath(args.out, ROOT)}", file=sys.stderr)
        return
    if not (args.torch_from or args.skip_torch):
        ensure_venv()

    global WORKLOADS
    if args.only:
        WORKLOADS = [w for w in WORKLOADS if w[0] in args.only]
    threads_all = os.cpu_count() or 1
    mach = machine()
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"machine: {mach['cpu']}, {mach['cores']} cores, {mach['memory']}", file=sys.stderr)

    torch_when = None
    if args.torch_from:
        with open(args.torch_from) as f:
            saved = json.load(f)
        torch_res = saved["results"]
        torch_when = (f"reused from {os.path.relpath(args.torch_from, ROOT)} (timed {saved.get('when')}, "
                      f"load average {saved.get('machine', {}).get('loadavg', 'n/a')})")
    elif args.skip_torch:
        torch_res = []
    else:
        torch_res = time_torch(WORKLOADS, args.reps, threads_all)
        path = args.torch_json or os.path.join(
            HERE, "results", f"torch-{datetime.date.today().isoformat()}.json")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        import torch
        with open(path, "w") as f:
            json.dump({"torch_version": torch.__version__, "machine": mach, "when": when,
                       "reps": args.reps, "results": torch_res}, f, indent=1)
        print(f"wrote {os.path.relpath(path, ROOT)}", file=sys.stderr)

    ok, ml_note = bench_supported(args.bin)
    ml_res = time_marginloss(args.bin, WORKLOADS, args.reps, threads_all, max(1, args.rounds)) if ok else []
    candle, candle_note = time_candle()
    burn, burn_note = time_burn()

    if not args.no_report:
        cmd = "python3 bench/compare.py" + (f" --reps {args.reps}" if args.reps != 20 else "") + (
            f" --rounds {args.rounds}" if args.rounds != 3 else "")
        report = build_report(mach, torch_res, ml_res, ml_note, candle, candle_note, burn, burn_note,
                              threads_all, args.reps, cmd, when, torch_when)
        os.makedirs(os.path.dirname(args.out), exist_ok=True)
        with open(args.out, "w") as f:
            f.write(report)
        print(f"wrote {os.path.relpath(args.out, ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
