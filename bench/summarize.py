#!/usr/bin/env python3
"""Medians of bench/run.sh's JSON lines, as a table on stdout and in bench/RESULTS.md.

A run's mode is its precision and memory format: PyTorch's lines carry both; this project's
carry their precision (fp32 where a line has none) and have no memory format to choose (contiguous).
"""
import argparse
import datetime
import json
import os
import statistics

import numpy as np

ARCHS = ["unet", "resnet18-unet", "resnet50-unet"]
TARGETS = {"train": 1.5, "refine": 2.0, "memory": 0.7}
# job: (its name in the summary, the speed's unit, its key in the JSON lines, digits shown)
SPEEDS = {"train": ("training", "tiles/s", "tiles_per_s", 2), "refine": ("refinement", "Mpx/s", "mpx_per_s", 3)}


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def median(runs, key):
    values = [r[key] for r in runs if key in r]
    return statistics.median(values) if values else float("nan")


def precision(r):
    return r.get("precision", "fp32")


def memory_format(r):
    return r.get("memory_format", "contiguous")


def is_default(r):
    """Each side as shipped: fp32 and contiguous, the mode of the fp32-against-fp32 rows."""
    return precision(r) == "fp32" and memory_format(r) == "contiguous"


def mode(r):
    return precision(r) + ("" if memory_format(r) == "contiguous" else f" + {memory_format(r)}")


def setting(r):
    if r["side"] == "pytorch":
        return f"{r['threads']} thread{'s' if r['threads'] > 1 else ''}"
    if r.get("mode") == "refine":
        return f"1 process × {r['threads']} threads"
    return f"{r['ranks']} rank{'s' if r['ranks'] > 1 else ''} × {r['threads']} thread{'s' if r['threads'] > 1 else ''}"


def group(runs, side, job, arch):
    """{"mode, setting": [runs]} for one side, job (train or refine) and architecture, in the log's order."""
    out = {}
    for r in runs:
        if r["side"] == side and r.get("mode", "train") == job and r["arch"] == arch:
            out.setdefault(f"{mode(r)}, {setting(r)}", []).append(r)
    return out


def best(groups, key, default_only):
    """The mode and setting with the highest median of `key` (among each side's default mode if
    `default_only`), its median and its runs."""
    names = [n for n in groups if not default_only or is_default(groups[n][0])]
    name = max(names, key=lambda n: median(groups[n], key))
    return name, median(groups[name], key), groups[name]


def summary_rows(arch, job, t, s):
    """The summary's rows for one model and job: speed and peak RSS, fp32 against fp32 (with the
    targets), then each side's fastest mode against the other's."""
    name, unit, key, digits = SPEEDS[job]
    what = f"{arch} {name}"
    rows = []
    for default_only, against in ((True, "fp32 against fp32"), (False, "fastest against fastest")):
        tn, tv, trs = best(t, key, default_only)
        sn, sv, srs = best(s, key, default_only)
        tm, sm = median(trs, "peak_rss_mb"), median(srs, "peak_rss_mb")
        rows.append((f"{what}, {unit}, {against}", f"{tv:.{digits}f} ({tn})", f"{sv:.{digits}f} ({sn})", sv / tv,
                     f"≥ {TARGETS[job]}×" if default_only else ""))
        rows.append((f"{what}, peak RSS MB, {against}", f"{tm:.0f}", f"{sm:.0f}", sm / tm,
                     f"≤ {TARGETS['memory']}×" if default_only else ""))
    return rows


def raw_heights(r):
    """The raw float32 heights of a refinement: PyTorch writes them, run.sh copies this project's GeoTIFF beside it."""
    return os.path.splitext(r["output"])[0] + ".f32" if "output" in r else None


def compare_outputs(path, reference):
    """Largest difference between two refinements' heights where both have a value."""
    if path is None or reference is None:
        return None
    try:
        a = np.fromfile(reference, dtype=np.float32)
        b = np.fromfile(path, dtype=np.float32)
    except FileNotFoundError:
        return None
    if a.size != b.size:
        return None
    both = np.isfinite(a) & np.isfinite(b) & (np.abs(a) < 1e30)
    return float(np.max(np.abs(a[both] - b[both]))) if both.any() else None


def main():
    p = argparse.ArgumentParser()
    p.add_argument("log")
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
    # bfloat16 dot products (AVX512_BF16's vdpbf16ps) do twice the multiply-adds of fp32 FMAs per instruction.
    bf16_peak = 2 * peak
    torch_version = next((r["torch"] for r in runs if r["side"] == "pytorch"), "?")

    lines = []
    emit = lines.append
    emit("# DeepDEM (Swift) against PyTorch on the same CPU")
    emit("")
    emit(f"Measured by `{a.invocation}` on {datetime.date.today().isoformat()}: {a.machine}. "
         f"Medians of {rounds} round(s); the two sides ran alternately. ")
    emit(f"This project: {a.swift}, `{a.build}`, OpenBLAS kernel **{kernel}** (OPENBLAS_CORETYPE and "
         f"OPENBLAS_L2_SIZE unset for this side only). PyTorch {torch_version} (its own oneDNN/MKL kernels). "
         f"sgemm peak of the 2 cores, measured by train-bench: {peak:.0f} GFLOPS; bf16 peak twice that, "
         f"{bf16_peak:.0f} GFLOPS.")
    emit("")
    emit("## Training (forward, masked-L1 backward, Adam; global batch 4)")
    emit("")
    emit("| model | side | mode, setting | tiles/s | GFLOPS (% of sgemm peak) | % of bf16 peak | peak RSS MB |")
    emit("|---|---|---|---:|---:|---:|---:|")
    summary = []
    for arch in ARCHS:
        for side in ("pytorch", "swift"):
            for name, rs in group(runs, side, "train", arch).items():
                gflops = median(rs, "gflops")
                of_bf16 = f"{100 * gflops / bf16_peak:.0f} %" if precision(rs[0]).startswith("bf16") else ""
                emit(f"| {arch} | {side} | {name} | {median(rs, 'tiles_per_s'):.2f} | "
                     f"{gflops:.0f} ({100 * gflops / peak:.0f} %) | {of_bf16} | {median(rs, 'peak_rss_mb'):.0f} |")
        t, s = group(runs, "pytorch", "train", arch), group(runs, "swift", "train", arch)
        if t and s:
            summary += summary_rows(arch, "train", t, s)
    emit("")
    emit("## Refinement (tiles of the chip size every half chip, batches of 8, blended)")
    emit("")
    emit("| model | side | mode, setting | Mpx/s | seconds | peak RSS MB | largest difference from this project's fp32 heights |")
    emit("|---|---|---|---:|---:|---:|---:|")
    for arch in ARCHS:
        t, s = group(runs, "pytorch", "refine", arch), group(runs, "swift", "refine", arch)
        reference = next((raw_heights(rs[0]) for rs in s.values() if is_default(rs[0])), None)
        for side, g in (("pytorch", t), ("swift", s)):
            for name, rs in g.items():
                size = f"{rs[0]['width']}×{rs[0]['height']}"
                diff = compare_outputs(raw_heights(rs[0]), reference)
                shown = "(the reference)" if raw_heights(rs[0]) == reference else "" if diff is None else f"{diff:.2g} m"
                emit(f"| {arch} ({size}) | {side} | {name} | {median(rs, 'mpx_per_s'):.3f} | {median(rs, 'seconds'):.1f} | "
                     f"{median(rs, 'peak_rss_mb'):.0f} | {shown} |")
        if t and s:
            summary += summary_rows(arch, "refine", t, s)
    emit("")
    emit("## Gradient all-reduce, 2 ranks (1 thread each)")
    emit("")
    emit("| model | gradient MB | bare MPI_Allreduce ms | left after backward ms | hidden behind backward |")
    emit("|---|---:|---:|---:|---:|")
    for arch in ARCHS:
        rs = [r for r in swift_train if r["arch"] == arch and r["ranks"] > 1 and is_default(r)]
        if rs:
            bare, left = median(rs, "allreduce_bare_s"), median(rs, "allreduce_exposed_s")
            emit(f"| {arch} | {rs[0]['gradient_mb']:.0f} | {1000 * bare:.1f} | {1000 * left:.1f} | "
                 f"{100 * max(0.0, 1 - left / bare):.0f} % |")
    emit("")
    emit("## Summary (fp32 against fp32, each side at its best setting; then each side's fastest mode and setting)")
    emit("")
    emit("| measure | PyTorch | this project | ratio | target |")
    emit("|---|---:|---:|---:|---|")
    for name, t, s, ratio, target in summary:
        emit(f"| {name} | {t} | {s} | {ratio:.2f}× | {target} |")
    emit("")
    emit("## Notes")
    emit("")
    emit("- GFLOPS count the direct convolutions' work (14.9 GFLOP per unet tile, 32.7 per resnet18-unet tile, 64.1 per resnet50-unet tile, "
         "forward and backward), so they measure throughput, not arithmetic: this project's 3×3 convolutions "
         "run by Winograd's algorithm (F(2×2, 3×3) and F(4×4, 3×3); bench/README.md says which where), which needs "
         "fewer multiplications, and can exceed the sgemm peak.")
    emit("- This project: 1 rank × 2 threads means one process whose layers split their work over 2 threads "
         "(OpenBLAS single-threaded inside them); 2 ranks × 1 thread means `mpirun -np 2`, each rank half of "
         "the batch, gradients all-reduced in buckets during backward. Peak RSS of 2 ranks is their sum.")
    emit("- Refinement: both sides tile the same synthetic scene with the same weights (written by PyTorch), "
         "chips every half chip, batches of 8, the same blending; the last column compares each mode's output "
         "with this project's fp32 output.")
    emit("- PyTorch's modes: fp32 is PyTorch as shipped; bf16 is `torch.autocast(\"cpu\", dtype=torch.bfloat16)` "
         "around the forward and the loss (backward outside it, weights and Adam in fp32; refinement's heights cast "
         "back to fp32); channels_last puts the model and its inputs in `torch.channels_last`. Its refinement runs at "
         "the thread count that was faster in fp32. % of bf16 peak is given for bf16 modes only: twice the sgemm peak.")
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
