#!/usr/bin/env python3
"""Where the time of a training step and of a refinement goes, by layer type (Linux perf).

    layer_profile.py --bin BUILD_BIN_DIR --scene SCENE_DIR --checkpoints DIR [--steps 3] > profile.md

Runs train-bench (1 thread, so that every sample's call stack runs from the step down to the
instruction) and `deepdem refine` under `perf record --call-graph dwarf`, and charges each
sample to the innermost frame that belongs to a layer type below; the share that OpenBLAS's
sgemm takes inside each type is shown too. Prints a markdown section.
"""
import argparse
import collections
import os
import re
import subprocess
import sys
import tempfile

# (label, regular expression on a frame's symbol); the innermost matching frame wins.
CATEGORIES = [
    # WinogradTiling's shared code shows up specialized for each variant (…0B6F4ConvV_Tg5, …0B4ConvV_Tg5).
    ("3×3 convolution, Winograd F(2×2) (training forward, input gradients, images 8² to 15²)",
     r"NN12WinogradConvV|NN14WinogradTilingP.*0B4ConvV"),
    ("3×3 convolution, Winograd F(4×4) (inference, weight gradients)", r"NN14WinogradF4ConvV|NN14WinogradTilingP.*F4ConvV"),
    ("BatchNorm, shortcut sum and ReLU folded into the convolution (inference)", r"NN8EpilogueV"),
    ("other convolutions (im2col + sgemm: stem, strided, 1×1, first layer, images < 8²; direct: last layer)",
     r"NN6Conv2dC|NN6im2col|NN6col2im|NN10PhasePlane|NN10NarrowConvV"),
    ("transposed convolution 2×2/2", r"NN15ConvTranspose2dC"),
    ("BatchNorm", r"NN11BatchNorm2dC"),
    ("ReLU", r"NN4ReLUC"),
    ("max-pool", r"NN9MaxPool2dC"),
    ("nearest upsampling", r"NN8UpsampleC"),
    ("skip sums, concatenation", r"NN3add_|NN10accumulate|copyChannels|splitChannels"),
    ("Adam", r"NN4AdamC"),
    ("residual normalization, masked L1", r"NN13ResidualModelC"),
    ("tiling, GeoTIFF reading and writing", r"Data5TilerV|GDAL|gdal"),
]
COMPILED = [(label, re.compile(pattern)) for label, pattern in CATEGORIES]


def record(command, data):
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    subprocess.run(["perf", "record", "-q", "-F", "499", "--call-graph", "dwarf,16384", "-o", data, "--"] + command,
                   check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out = subprocess.run(["perf", "script", "-i", data, "-F", "ip,sym,dso"], check=True, capture_output=True,
                         text=True, errors="replace").stdout
    return [block.strip().splitlines() for block in out.split("\n\n") if block.strip()]


def breakdown(stacks, inside):
    """{label: (samples, samples in sgemm)} over the stacks that have a frame matching `inside`."""
    counts, gemm, total = collections.Counter(), collections.Counter(), 0
    for frames in stacks:
        if not any(inside.search(f) for f in frames):
            continue
        total += 1
        label = next((lab for f in frames for lab, rx in COMPILED if rx.search(f)), "other")
        counts[label] += 1
        if "libopenblas" in frames[0] or "sgemm" in frames[0]:
            gemm[label] += 1
    return counts, gemm, total


def table(title, counts, gemm, total):
    lines = [f"| {title} | share | of which in sgemm |", "|---|---:|---:|"]
    order = [label for label, _ in CATEGORIES] + ["other"]
    for label in sorted(counts, key=lambda lab: -counts[lab]):
        if counts[label] == 0 or label not in order:
            continue
        share = 100 * counts[label] / total
        lines.append(f"| {label} | {share:.1f} % | {100 * gemm[label] / counts[label]:.0f} % |")
    all_gemm = sum(gemm.values())
    lines.append(f"| total ({total} samples) | 100 % | {100 * all_gemm / max(total, 1):.0f} % |")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bin", required=True)
    p.add_argument("--scene", required=True)
    p.add_argument("--checkpoints", required=True)
    p.add_argument("--steps", type=int, default=3)
    a = p.parse_args()
    out = ["## Where the time goes, by layer type", "",
           "`perf record --call-graph dwarf` at 499 Hz, 1 thread (so that each sample's stack is whole), "
           "each sample charged to the innermost layer on its stack (bench/layer_profile.py).", ""]
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "perf.data")
        for arch in ("unet", "resnet18-unet"):
            stacks = record([os.path.join(a.bin, "train-bench"), "--arch", arch, "--threads", "1",
                             "--steps", str(a.steps), "--warmup", "1"], data)
            out += [table(f"{arch} training step", *breakdown(stacks, re.compile(r"train_bench4step"))), ""]
        for arch in ("unet", "resnet18-unet"):
            stacks = record([os.path.join(a.bin, "deepdem"), "refine", "--checkpoint",
                             os.path.join(a.checkpoints, f"{arch}.safetensors"), "--data", a.scene,
                             "--out", os.path.join(tmp, "refined.tif"), "--threads", "1", "--overwrite"], data)
            out += [table(f"{arch} refinement", *breakdown(stacks, re.compile(r"Refine|Tiler"))), ""]
    print("\n".join(out))


if __name__ == "__main__":
    sys.exit(main())
