#!/usr/bin/env python3
"""Medians of bench/run.sh's JSON lines, as a table on stdout and in bench/RESULTS.md."""
import argparse
import datetime
import json
import os
import statistics

import numpy as np

ARCHS = ["unet", "resnet18-unet"]
TARGETS = {"train": 1.5, "refine": 2.0, "memory": 0.7}


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def median(runs, key):
    values = [r[key] for r in runs if key in r]
    return statistics.median(values) if values else float("nan")


def setting(r):
    if r["side"] == "pytorch":
        return f"{r['threads']} thread{'s' if r['threads'] > 1 else ''}"
    if r.get("mode") == "refine":
        return f"1 process × {r['threads']} threads"
    return f"{r['ranks']} rank{'s' if r['ranks'] > 1 else ''} × {r['threads']} thread{'s' if r['threads'] > 1 else ''}"


def group(runs, side, mode, arch):
    """{setting: [runs]} for one side, mode and architecture."""
    out = {}
    for r in runs:
        if r["side"] == side and r.get("mode", "train") == mode and r["arch"] == arch:
            out.setdefault(setting(r), []).append(r)
    return out


def best(groups, key):
    """The setting with the highest median of `key`, its median and its runs."""
    name = max(groups, key=lambda s: median(groups[s], key))
    return name, median(groups[name], key), groups[name]


def memory_row(what, torch_runs, swift_runs):
    """The summary row comparing the median peak RSS of two settings' runs."""
    t, s = median(torch_runs, "peak_rss_mb"), median(swift_runs, "peak_rss_mb")
    return (f"{what}, peak RSS MB", f"{t:.0f}", f"{s:.0f}", s / t, f"≤ {TARGETS['memory']}×")


def compare_outputs(data, arch):
    """Largest difference between the two sides' refined heights where both have a value."""
    try:
        a = np.fromfile(os.path.join(data, f"swift_{arch}.f32"), dtype=np.float32)
        b = np.fromfile(os.path.join(data, f"torch_{arch}.f32"), dtype=np.float32)
    except FileNotFoundError:
        return None
    if a.size != b.size:
        return None
    both = np.isfinite(a) & np.isfinite(b) & (np.abs(a) < 1e30)
    return float(np.max(np.abs(a[both] - b[both]))) if both.any() else None


def main():
    p = argparse.ArgumentParser()
    p.add_argument("log")
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--machine", default="")
    p.add_argument("--swift", default="")
    p.add_argument("--build", default="")
    p.add_argument("--invocation", default="")
    p.add_argument("--profile", default="", help="markdown from bench/layer_profile.py to append")
    a = p.parse_args()
    runs = load(a.log)
    rounds = max(r["round"] for r in runs)
    swift_train = [r for r in runs if r["side"] == "swift" and r.get("mode", "train") == "train"]
    kernel = swift_train[0]["kernel"] if swift_train else "?"
    peak = statistics.median(r["sgemm_peak_gflops"] for r in swift_train if r["ranks"] * r["threads"] == 2) \
        if swift_train else float("nan")
    torch_version = next((r["torch"] for r in runs if r["side"] == "pytorch"), "?")

    lines = []
    emit = lines.append
    emit("# DeepDEM (Swift) against PyTorch on the same CPU")
    emit("")
    emit(f"Measured by `{a.invocation}` on {datetime.date.today().isoformat()}: {a.machine}. "
         f"Medians of {rounds} round(s); the two sides ran alternately. ")
    emit(f"This project: {a.swift}, `{a.build}`, OpenBLAS kernel **{kernel}** (OPENBLAS_CORETYPE and "
         f"OPENBLAS_L2_SIZE unset for this side only). PyTorch {torch_version} (its own oneDNN/MKL kernels). "
         f"sgemm peak of the 2 cores, measured by train-bench: {peak:.0f} GFLOPS.")
    emit("")
    emit("## Training (forward, masked-L1 backward, Adam; global batch 4)")
    emit("")
    emit("| model | side | setting | tiles/s | GFLOPS (% of sgemm peak) | peak RSS MB |")
    emit("|---|---|---|---:|---:|---:|")
    summary = []
    for arch in ARCHS:
        for side in ("pytorch", "swift"):
            for name, rs in sorted(group(runs, side, "train", arch).items()):
                emit(f"| {arch} | {side} | {name} | {median(rs, 'tiles_per_s'):.2f} | "
                     f"{median(rs, 'gflops'):.0f} ({100 * median(rs, 'gflops') / peak:.0f} %) | {median(rs, 'peak_rss_mb'):.0f} |")
        t, s = group(runs, "pytorch", "train", arch), group(runs, "swift", "train", arch)
        if t and s:
            tn, tv, trs = best(t, "tiles_per_s")
            sn, sv, srs = best(s, "tiles_per_s")
            summary.append((f"{arch} training, tiles/s", f"{tv:.2f} ({tn})", f"{sv:.2f} ({sn})", sv / tv,
                            f"≥ {TARGETS['train']}×"))
            summary.append(memory_row(f"{arch} training", trs, srs))
    emit("")
    emit("## Refinement (tiles of the chip size every half chip, batches of 8, blended)")
    emit("")
    emit("| model | side | setting | Mpx/s | seconds | peak RSS MB | largest difference of the refined heights |")
    emit("|---|---|---|---:|---:|---:|---:|")
    for arch in ARCHS:
        diff = compare_outputs(a.data, arch)
        t, s = group(runs, "pytorch", "refine", arch), group(runs, "swift", "refine", arch)
        for side, g in (("pytorch", t), ("swift", s)):
            for name, rs in sorted(g.items()):
                mpx = [r["width"] * r["height"] / 1e6 / r["seconds"] for r in rs]
                size = f"{rs[0]['width']}×{rs[0]['height']}"
                emit(f"| {arch} ({size}) | {side} | {name} | {statistics.median(mpx):.3f} | {median(rs, 'seconds'):.1f} | "
                     f"{median(rs, 'peak_rss_mb'):.0f} | {'' if diff is None else f'{diff:.2g} m'} |")
        if t and s:
            tn, trs = next(iter(t.items()))
            sn, srs = next(iter(s.items()))
            tv, sv = median(trs, "seconds"), median(srs, "seconds")
            summary.append((f"{arch} refinement, Mpx/s", f"{trs[0]['width'] * trs[0]['height'] / 1e6 / tv:.3f} ({tn})",
                            f"{srs[0]['width'] * srs[0]['height'] / 1e6 / sv:.3f} ({sn})", tv / sv, f"≥ {TARGETS['refine']}×"))
            summary.append(memory_row(f"{arch} refinement", trs, srs))
    emit("")
    emit("## Gradient all-reduce, 2 ranks (1 thread each)")
    emit("")
    emit("| model | gradient MB | bare MPI_Allreduce ms | left after backward ms | hidden behind backward |")
    emit("|---|---:|---:|---:|---:|")
    for arch in ARCHS:
        rs = [r for r in swift_train if r["arch"] == arch and r["ranks"] > 1]
        if rs:
            bare, left = median(rs, "allreduce_bare_s"), median(rs, "allreduce_exposed_s")
            emit(f"| {arch} | {rs[0]['gradient_mb']:.0f} | {1000 * bare:.1f} | {1000 * left:.1f} | "
                 f"{100 * max(0.0, 1 - left / bare):.0f} % |")
    emit("")
    emit("## Summary (each side at its best setting)")
    emit("")
    emit("| measure | PyTorch | this project | ratio | target |")
    emit("|---|---:|---:|---:|---|")
    for name, t, s, ratio, target in summary:
        emit(f"| {name} | {t} | {s} | {ratio:.2f}× | {target} |")
    emit("")
    emit("## Notes")
    emit("")
    emit("- GFLOPS count the direct convolutions' work (14.9 GFLOP per unet tile, 32.7 per resnet18-unet tile, "
         "forward and backward), so they measure throughput, not arithmetic: this project's 3×3 convolutions "
         "run by Winograd's algorithm (F(2×2, 3×3) and F(4×4, 3×3); bench/README.md says which where), which needs "
         "fewer multiplications, and can exceed the sgemm peak.")
    emit("- This project: 1 rank × 2 threads means one process whose layers split their work over 2 threads "
         "(OpenBLAS single-threaded inside them); 2 ranks × 1 thread means `mpirun -np 2`, each rank half of "
         "the batch, gradients all-reduced in buckets during backward. Peak RSS of 2 ranks is their sum.")
    emit("- Refinement: both sides tile the same synthetic scene with the same weights (written by PyTorch), "
         "chips every half chip, batches of 8, the same blending; the last column compares the outputs.")
    emit("")
    emit("## Commands")
    emit("")
    emit("```")
    seen = set()
    for r in runs:
        if r["command"] not in seen:
            seen.add(r["command"])
            emit(r["command"])
    emit("```")
    text = "\n".join(lines) + "\n"
    if a.profile and os.path.exists(a.profile):
        with open(a.profile) as f:
            text += "\n" + f.read()
    with open(a.out, "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
