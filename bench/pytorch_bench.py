#!/usr/bin/env python3
"""PyTorch on the same work as this project's benchmarks (bench/run.sh drives both sides).

    pytorch_bench.py train --arch unet --threads 2 [--steps 10 --warmup 2 --batch 4] [--precision bf16 --memory-format channels_last]
    pytorch_bench.py checkpoint --arch unet --out unet.safetensors      (random weights, deepdem metadata)
    pytorch_bench.py refine --checkpoint unet.safetensors --scene DIR --raw-dir DIR --out OUT.f32 --threads 2 [same two]
    pytorch_bench.py probe-refine --arch unet                           (1 or 2 threads, whichever is faster)

Every mode prints one line `JSON {...}` with its measurements, peak RSS included.

`train` and `refine` run as a PyTorch user who knows this CPU would: `--precision bf16` autocasts
the forward and the loss to bfloat16 (backward outside autocast, as PyTorch recommends; weights
and Adam stay float32), `--memory-format channels_last` stores the model and its inputs NHWC, the
layout oneDNN's convolutions prefer. Refinement writes float32 heights either way.

`refine` does what `deepdem refine` does (Sources/Data/Tiling/Tiler.swift): tiles of the chip size every
chip/2 pixels, the last row and column aligned to the scene's edge, batches of 8, nodata filled
per tile (asp_dsm with the tile's mean, other bands with 0), the residual model in eval mode,
predictions blended with a raised-cosine window floored at 1e-3, nodata where asp_dsm is nodata.
It reads the bands as raw float32 files (made once from the GeoTIFFs with gdal_translate, not
timed) strip by strip, as the Swift side reads its GeoTIFF windows.
"""
import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pytorch_models import CONFIGS, make_module, masked_l1, residual_forward  # noqa: E402


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def emit(fields):
    fields = dict(side="pytorch", torch=torch.__version__, peak_rss_mb=peak_rss_mb(), **fields)
    print("JSON " + json.dumps(fields, sort_keys=True), flush=True)


MEMORY_FORMATS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}


def autocast(args):
    """bf16: autocast to bfloat16 where PyTorch's CPU autocast does (convolutions, matrix products); fp32: off."""
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16")


def mode_fields(args):
    return dict(precision=args.precision, memory_format=args.memory_format)


def train(args):
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    config, gflop = CONFIGS[args.arch]
    chip, gsf, channels = config["chip_size"], config["gsf"], len(config["bands"])
    layout = MEMORY_FORMATS[args.memory_format]
    module = make_module(config).train().to(memory_format=layout)
    opt = torch.optim.Adam(module.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(args.batch, channels, chip, chip, generator=g).to(memory_format=layout)
    target = torch.randn(args.batch, 1, chip, chip, generator=g)
    mask = torch.ones_like(target)

    def step():
        opt.zero_grad(set_to_none=True)
        with autocast(args):
            loss = masked_l1(residual_forward(module, x, gsf), target, mask)
        loss.backward()
        opt.step()

    for _ in range(args.warmup):
        step()
    times, cpu = [], time.process_time()
    for _ in range(args.steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    cpu = (time.process_time() - cpu) / args.steps
    step_s = sorted(times)[len(times) // 2]
    tiles = args.batch / step_s
    emit(dict(mode="train", arch=args.arch, chip=chip, batch=args.batch, threads=args.threads, steps=args.steps,
              step_s=step_s, tiles_per_s=tiles, gflops=tiles * gflop, cpu_s_per_step=cpu, **mode_fields(args)))


def checkpoint(args):
    from safetensors.torch import save_file
    torch.manual_seed(args.seed)
    config, _ = CONFIGS[args.arch]
    module = make_module(config)
    state = {k: v.contiguous() for k, v in module.state_dict().items()}
    save_file(state, args.out, metadata={"deepdem": json.dumps(config)})


def probe_refine(args):
    """Forward passes of batches of 8 chips with 1 and 2 threads: the faster count refines."""
    config, _ = CONFIGS[args.arch]
    chip, channels = config["chip_size"], len(config["bands"])
    module = make_module(config).eval()
    x = torch.randn(8, channels, chip, chip)
    best = None
    for threads in (1, 2):
        torch.set_num_threads(threads)
        with torch.inference_mode():
            module(x)
            t0 = time.perf_counter()
            for _ in range(2):
                module(x)
            seconds = time.perf_counter() - t0
        if best is None or seconds < best[1]:
            best = (threads, seconds)
    emit(dict(mode="probe-refine", arch=args.arch, threads=best[0]))


def origins(length, chip, stride):
    out, p = [], 0
    while p + chip < length:
        out.append(p)
        p += stride
    out.append(length - chip)
    return out


def raw_bands(scene, bands, raw_dir):
    """Raw float32 copies of the scene's GeoTIFFs (made once) and each band's nodata value."""
    os.makedirs(raw_dir, exist_ok=True)
    files = []
    for band in bands:
        tif = os.path.join(scene, f"final_{band}.tif")
        raw = os.path.join(raw_dir, f"{band}.f32")
        info = json.loads(subprocess.run(["gdalinfo", "-json", tif], check=True, capture_output=True, text=True).stdout)
        if not os.path.exists(raw) or os.path.getmtime(raw) < os.path.getmtime(tif):
            subprocess.run(["gdal_translate", "-q", "-of", "ENVI", "-ot", "Float32", tif, raw], check=True)
        width, height = info["size"]
        files.append((raw, info["bands"][0].get("noDataValue")))
    return files, width, height


def read_strip(raw, nodata, top, rows, width):
    a = np.fromfile(raw, dtype=np.float32, count=rows * width, offset=top * width * 4).reshape(rows, width)
    if nodata is not None and not (isinstance(nodata, float) and math.isnan(nodata)):
        nodata = float(nodata)
        if abs(nodata) >= 3.4028234e38 * (1 - 1e-5):
            a[np.abs(a) >= np.float32(min(abs(nodata), 3.4028234e38))] = np.nan
        else:
            a[a == np.float32(nodata)] = np.nan
    return a


def refine(args):
    from safetensors import safe_open
    from safetensors.torch import load_file
    torch.set_num_threads(args.threads)
    with safe_open(args.checkpoint, "pt") as f:
        config = json.loads(f.metadata()["deepdem"])
    module = make_module(config).eval()
    module.load_state_dict(load_file(args.checkpoint), strict=True)
    layout = MEMORY_FORMATS[args.memory_format]
    module.to(memory_format=layout)
    chip, gsf, bands = config["chip_size"], float(config["gsf"]), config["bands"]
    stride, batch_size = chip // 2, args.batch_size
    files, width, height = raw_bands(args.scene, bands, args.raw_dir)
    window = np.maximum(1e-3, 0.5 - 0.5 * np.cos(2 * np.pi * (np.arange(chip) + 0.5) / chip))
    weights = np.outer(window, window)

    t0 = time.perf_counter()
    rows, columns = origins(height, chip, stride), origins(width, chip, stride)
    acc = np.zeros((chip, width))
    wsum = np.zeros((chip, width))
    finished = 0
    out = open(args.out, "wb")

    def flush(count):
        nonlocal finished, acc, wsum
        if count <= 0:
            return
        asp = read_strip(files[0][0], files[0][1], finished, count, width)
        with np.errstate(invalid="ignore", divide="ignore"):
            result = (acc[:count] / wsum[:count]).astype(np.float32)
        result[np.isnan(asp) | (wsum[:count] == 0)] = np.nan
        result.tofile(out)
        acc = np.concatenate([acc[count:], np.zeros((count, width))])
        wsum = np.concatenate([wsum[count:], np.zeros((count, width))])
        finished += count

    with torch.inference_mode(), autocast(args):
        for top in rows:
            flush(top - finished)
            strip = np.stack([read_strip(raw, nodata, top, chip, width) for raw, nodata in files])
            for start in range(0, len(columns), batch_size):
                xs = columns[start:start + batch_size]
                tiles = np.stack([strip[:, :, x0:x0 + chip] for x0 in xs]).copy()
                dsm = tiles[:, 0]
                for b in range(len(xs)):
                    if np.isnan(dsm[b]).any():
                        valid = ~np.isnan(dsm[b])
                        dsm[b][~valid] = dsm[b][valid].mean() if valid.any() else 0
                np.nan_to_num(tiles[:, 1:], copy=False, nan=0.0)
                batch = torch.from_numpy(tiles).to(memory_format=layout)
                refined = residual_forward(module, batch, gsf)[:, 0].float().numpy()
                for b, x0 in enumerate(xs):
                    acc[:, x0:x0 + chip] += weights * refined[b]
                    wsum[:, x0:x0 + chip] += weights
        flush(height - finished)
    out.close()
    seconds = time.perf_counter() - t0
    mpx = width * height / 1e6
    emit(dict(mode="refine", arch=config["arch"], threads=args.threads, width=width, height=height,
              seconds=seconds, mpx_per_s=mpx / seconds, output=args.out, **mode_fields(args)))


def add_mode_options(parser):
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--memory-format", choices=MEMORY_FORMATS, default="contiguous")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="mode", required=True)
    t = sub.add_parser("train")
    t.add_argument("--arch", choices=CONFIGS, required=True)
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--steps", type=int, default=10)
    t.add_argument("--warmup", type=int, default=2)
    t.add_argument("--batch", type=int, default=4)
    add_mode_options(t)
    c = sub.add_parser("checkpoint")
    c.add_argument("--arch", choices=CONFIGS, required=True)
    c.add_argument("--out", required=True)
    c.add_argument("--seed", type=int, default=1)
    q = sub.add_parser("probe-refine")
    q.add_argument("--arch", choices=CONFIGS, required=True)
    r = sub.add_parser("refine")
    r.add_argument("--checkpoint", required=True)
    r.add_argument("--scene", required=True)
    r.add_argument("--raw-dir", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--threads", type=int, default=2)
    r.add_argument("--batch-size", type=int, default=8)
    add_mode_options(r)
    args = p.parse_args()
    {"train": train, "checkpoint": checkpoint, "probe-refine": probe_refine, "refine": refine}[args.mode](args)


if __name__ == "__main__":
    main()
