#!/usr/bin/env python3
"""Golden fixtures for the NN tests, computed by PyTorch itself.

    /work/venv/bin/python Tests/NNTests/Fixtures/make_fixtures.py            # rewrite the fixtures
    /work/venv/bin/python Tests/NNTests/Fixtures/make_fixtures.py --only resnet18 optim
    /work/venv/bin/python Tests/NNTests/Fixtures/make_fixtures.py --check-swift FILE...

CI never runs this; its outputs are committed. It needs torch, segmentation_models_pytorch,
safetensors and numpy.

Models are DeepDEM's (docs/ARCHITECTURE.md), from tools/reference_models.py (as checkpoint conversion and the benchmark
use them): ResDepth's UNet and segmentation_models_pytorch.Unet with a ResNet encoder, wrapped in
DeepDEM's residual formulation (`residual_forward`).

Weights are not random draws but a formula that the Swift tests regenerate exactly (see
`formula_weights`; GoldenTests.swift has the same generator). For the k-th floating tensor in
state_dict order (k from 0; parameters and float buffers count, num_batches_tracked does not)
and its flat element i:
    z = splitmix64(k * 0x9E3779B97F4A7C15 XOR i)          (all mod 2^64)
    u = float32(z >> 40) / 2^24                           (in [0, 1), exact in float32)
    rank >= 2:            (2u - 1) * s,  s = 1 / sqrt(prod(shape[1:]))   (float32 sqrt, division)
    BN weight:            1 + 0.1 * (2u - 1)
    bias, running_mean:   (2u - 1) * 0.1
    running_var:          1 + 0.5 * u
every operation in float32, so both sides produce the same bits.

Outputs (in this folder):
  <config>.safetensors     per model configuration (CONFIGS): input, target, mask,
      refined_eval (eval mode, formula running stats), refined_train and loss (training mode),
      for each parameter p: grad_index.p (I64), grad_sample.p, grad_absmax.p;
      after two Adam steps on the same batch: adam2_sample.p, adam2_absmax.p, and for each
      BatchNorm buffer b: running_index.b, running_sample.b. __metadata__: deepdem (the model
      configuration JSON), golden (JSON: gsf, Adam settings).
  unet_a_weights.safetensors, unet_b_weights.safetensors: the formula weights saved by
      safetensors.torch.save_file, i.e. real PyTorch-written checkpoints.
  optim.safetensors: Adam and SGD trajectories and ReduceLROnPlateau / StepLR rate sequences.

--check-swift FILE...: loads Swift-written checkpoints strictly into the matching PyTorch
module and runs the residual forward in eval mode on the input of the golden fixture named
by the file's `golden_input` metadata, comparing with the Swift result stored in
`golden_refined_eval` (JSON list) when present.
"""
import argparse
import json
import math
import pathlib
import sys

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[3] / "tools"))
from reference_models import make_module, residual_forward  # noqa: E402  (the modules checkpoints name)

HERE = pathlib.Path(__file__).resolve().parent
GOLDEN = 0x9E3779B97F4A7C15
MASK64 = (1 << 64) - 1
SAMPLES = 64
BANDS = ["asp_dsm", "ortho_channel1", "ortho_channel2", "ndvi", "nodata_mask", "triangulation_error"]

# name: model configuration (the checkpoints' `deepdem` metadata) and the batch to run.
CONFIGS = {
    "unet_a": dict(config=dict(arch="unet", unet=dict(n_input_channels=3, depth=3, start_kernel=4, max_filter_depth=8,
                                                      do_BN=False, bias_conv_layer=True, outer_skip=False,
                                                      outer_skip_BN=False, up_mode="transpose")),
                   channels=3, chip=16, batch=3, gsf=3.5, seed=11),
    "unet_b": dict(config=dict(arch="unet", unet=dict(n_input_channels=5, depth=2, start_kernel=4, max_filter_depth=16,
                                                      do_BN=True, bias_conv_layer=False, outer_skip=True,
                                                      outer_skip_BN=True, up_mode="transpose")),
                   channels=5, chip=8, batch=3, gsf=2.0, seed=12),
    "unet_c": dict(config=dict(arch="unet", unet=dict(n_input_channels=3, depth=3, start_kernel=4, max_filter_depth=8,
                                                      do_BN=False, bias_conv_layer=True, outer_skip=False,
                                                      outer_skip_BN=False, up_mode="bilinear")),
                   channels=3, chip=16, batch=2, gsf=3.0, seed=15),
    "resnet18": dict(config=dict(arch="resnet18-unet", encoder=dict(name="resnet18", in_channels=4)),
                     channels=4, chip=64, batch=2, gsf=4.0, seed=13),
    # Chip 64, not 32: at 32 the last encoder stage is 1x1 and with batch 1 PyTorch's training-mode
    # BatchNorm refuses a single value per channel.
    "resnet34": dict(config=dict(arch="resnet34-unet", encoder=dict(name="resnet34", in_channels=3)),
                     channels=3, chip=64, batch=1, gsf=5.0, seed=14),
    # Bottleneck blocks. Batch 4 at chip 64: the last stage is 2x2, so its training-mode BatchNorms
    # see 16 values per channel. Batch 2 (8 values) is allowed too, but left float32's noise above 1/8
    # of the tensor's largest gradient in 12 of 191 gradients (so 8x that noise bounds nothing there)
    # against 4 at batch 4, for 0.33 MB more fixture.
    "resnet50": dict(config=dict(arch="resnet50-unet", encoder=dict(name="resnet50", in_channels=6)),
                     channels=6, chip=64, batch=4, gsf=6.0, seed=15),
}
ADAM = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-4)


# ---------------------------------------------------------------- formula weights

def splitmix64(z):
    with np.errstate(over="ignore"):
        z = z + np.uint64(GOLDEN)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def formula_tensor(k, name, shape):
    n = math.prod(shape)
    z = splitmix64(np.uint64((k * GOLDEN) & MASK64) ^ np.arange(n, dtype=np.uint64))
    u = (z >> np.uint64(40)).astype(np.float32) / np.float32(2 ** 24)
    signed = np.float32(2) * u - np.float32(1)
    if len(shape) >= 2:
        v = signed * (np.float32(1) / np.sqrt(np.float32(math.prod(shape[1:]))))
    elif name.endswith("running_var"):
        v = np.float32(1) + np.float32(0.5) * u
    elif name.endswith("running_mean") or name.endswith("bias"):
        v = signed * np.float32(0.1)
    else:
        assert name.endswith("weight") and len(shape) == 1, name  # BatchNorm weight
        v = np.float32(1) + np.float32(0.1) * signed
    assert v.dtype == np.float32
    return torch.from_numpy(v.reshape(shape).copy())


def formula_weights(module):
    state = {}
    k = 0
    for name, t in module.state_dict().items():
        if name.endswith("num_batches_tracked"):
            state[name] = torch.zeros_like(t)
            continue
        state[name] = formula_tensor(k, name, tuple(t.shape))
        k += 1
    module.load_state_dict(state, strict=True)
    return state


# ---------------------------------------------------------------- data and residual model

def make_batch(n, c, size, gsf, seed):
    """Chips whose channel 0 looks like a DSM (heights around 100 with relief of a few gsf)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.arange(size, dtype=np.float64), np.arange(size, dtype=np.float64), indexing="ij")
    x = np.zeros((n, c, size, size))
    for b in range(n):
        a = rng.uniform(0.5, 1.5, 4)
        phase = rng.uniform(0, 2 * np.pi, 2)
        relief = (a[0] * np.sin(xx / (0.3 * size) + phase[0]) + a[1] * np.cos(yy / (0.25 * size) + phase[1])
                  + a[2] * (xx - size / 2) / size + a[3] * (yy - size / 2) / size)
        x[b, 0] = 100 + gsf * relief + 0.2 * gsf * rng.standard_normal((size, size))
        for ch in range(1, c):
            x[b, ch] = np.sin((xx + ch) / (0.2 * size) + rng.uniform(0, 6)) * 0.5 + 0.3 * rng.standard_normal((size, size))
    target = x[:, 0] + gsf * (0.3 * rng.standard_normal((n, size, size)) + 0.1)
    mask = (rng.random((n, size, size)) < 0.85).astype(np.float64)
    f = lambda a: torch.from_numpy(a.astype(np.float32))
    return f(x), f(target[:, None]), f(mask[:, None])


def masked_l1(refined, target, mask):
    return (mask * (refined - target).abs()).sum() / mask.sum()


# ---------------------------------------------------------------- golden model fixtures

# Float32 variants of the same computation whose spread measures float32's own error: plain,
# channel 0 normalized in float64, and weights moved by about one ulp (eight seeds).
FLOAT32_VARIANTS = ("plain", "normalize_in_float64") + tuple(f"ulp_{i}" for i in range(1, 9))
# The Swift test accepts this multiple of the measured float32 error (GoldenTests.swift reads it).
# Swift's error is one more draw of the same kind (another BLAS kernel, another summation order);
# over OpenBLAS's Haswell, SkylakeX, Zen, Sandybridge, Nehalem and Prescott kernels it stayed below
# 4x the largest of six variants.
NOISE_FACTOR = 8.0


def sample_indices(values, rng, threshold=None):
    """Up to SAMPLES flat indices. With a threshold (for gradients), only elements with |g| at least
    the threshold and the median |g| qualify: Adam's first step moves an element by about
    lr * sign(gradient), so an element whose gradient is within float32 noise of zero would make the
    comparison after the Adam steps meaningless."""
    v = values.abs().reshape(-1).numpy()
    candidates = np.arange(v.size) if threshold is None else np.flatnonzero(v >= max(threshold, np.median(v)))
    if candidates.size <= SAMPLES:
        return candidates.astype(np.int64)
    return np.sort(rng.choice(candidates, SAMPLES, replace=False)).astype(np.int64)


def run_model(config, gsf, x, target, mask, dtype, variant="plain"):
    """Eval forward, then training forward/backward and two Adam steps on the same batch."""
    module = make_module(config)
    state = formula_weights(module)
    module = module.to(dtype)
    if variant.startswith("ulp_"):
        g = torch.Generator().manual_seed(int(variant[4:]))
        with torch.no_grad():
            for t in module.state_dict().values():
                if t.is_floating_point():
                    t.mul_(1 + torch.randint(-1, 2, t.shape, generator=g).to(dtype) * 2.0 ** -23)
    in64 = variant == "normalize_in_float64"
    x, target, mask = x.to(dtype), target.to(dtype), mask.to(dtype)
    r = {}
    module.eval()
    with torch.no_grad():
        r["refined_eval"] = residual_forward(module, x, gsf, in64)
    module.train()
    opt = torch.optim.Adam(module.parameters(), foreach=False, **ADAM)
    refined = residual_forward(module, x, gsf, in64)
    loss = masked_l1(refined, target, mask)
    loss.backward()
    r["refined_train"] = refined.detach()
    r["loss"] = loss.detach().reshape(1)
    r["grads"] = {n: p.grad.detach().double() for n, p in module.named_parameters()}
    opt.step()
    opt.zero_grad()
    loss2 = masked_l1(residual_forward(module, x, gsf, in64), target, mask)
    loss2.backward()
    opt.step()
    r["loss2"] = loss2.item()
    r["params"] = {n: p.detach().double() for n, p in module.named_parameters()}
    r["buffers"] = {n: b.double() for n, b in module.named_buffers()}
    return r, state


def model_fixture(name, spec):
    """The reference is computed in float64, so it is exact up to the float32 rounding of the stored
    values. Float32 arithmetic cannot reproduce it everywhere: in the ResNet U-Nets, training-mode
    BatchNorm, ReLU and max-pool kinks make some gradients move by percents of a tensor's largest
    gradient when inputs or weights move by one ulp (PyTorch's own float32 runs disagree with
    float64 and with each other that much), while the UNets' stay near 1e-6. So besides each value
    the fixture stores how far PyTorch's float32 variants strayed from it (*_noise: the largest
    deviation over FLOAT32_VARIANTS, for gradients relative to the tensor's largest gradient). The
    Swift test allows 1e-4 of the magnitude or NOISE_FACTOR times that noise, whichever is larger."""
    config = dict(spec["config"], bands=BANDS[:spec["channels"]], target="lidar_data", chip_size=spec["chip"],
                  gsf=spec["gsf"])
    gsf = spec["gsf"]
    x, target, mask = make_batch(spec["batch"], spec["channels"], spec["chip"], gsf, spec["seed"])
    ref, state = run_model(config, gsf, x, target, mask, torch.float64)
    variants = [run_model(config, gsf, x, target, mask, torch.float32, v)[0] for v in FLOAT32_VARIANTS]
    f = lambda t: t.to(torch.float32).contiguous()
    out = {"input": x, "target": target, "mask": mask}
    for key in ("refined_eval", "refined_train", "loss"):
        out[key] = f(ref[key])

    rng = np.random.default_rng(spec["seed"] + 1000)
    worst = 0.0
    for p_name, g in ref["grads"].items():
        g = g.reshape(-1)
        absmax = g.abs().max()
        noise = max(((v["grads"][p_name].reshape(-1) - g).abs().max() / absmax).item() for v in variants)
        worst = max(worst, noise)
        idx = sample_indices(g, rng, threshold=min(NOISE_FACTOR * noise, 0.5) * absmax.item())
        out[f"grad_index.{p_name}"] = torch.from_numpy(idx)
        out[f"grad_sample.{p_name}"] = f(g[idx])
        out[f"grad_absmax.{p_name}"] = f(absmax.reshape(1))
        out[f"grad_noise.{p_name}"] = torch.tensor([noise], dtype=torch.float32)
        v = ref["params"][p_name].reshape(-1)
        out[f"adam2_sample.{p_name}"] = f(v[idx])
        out[f"adam2_absmax.{p_name}"] = f(v.abs().max().reshape(1))
        out[f"adam2_noise.{p_name}"] = f(max((w["params"][p_name].reshape(-1)[idx] - v[idx]).abs().max() for w in variants).reshape(1))
    for b_name, b in ref["buffers"].items():
        if b_name.endswith("num_batches_tracked"):
            assert int(b) == 2
            continue
        flat = b.reshape(-1)
        idx = sample_indices(flat, rng)
        out[f"running_index.{b_name}"] = torch.from_numpy(idx)
        out[f"running_sample.{b_name}"] = f(flat[idx])
        out[f"running_noise.{b_name}"] = f(max((w["buffers"][b_name].reshape(-1)[idx] - flat[idx]).abs().max() for w in variants).reshape(1))

    golden = dict(gsf=gsf, loss_after_step1=ref["loss2"], noise_factor=NOISE_FACTOR,
                  loss_after_step1_noise=max(abs(v["loss2"] - ref["loss2"]) for v in variants), **ADAM)
    metadata = {"deepdem": json.dumps(config), "golden": json.dumps(golden)}
    save_file(out, str(HERE / f"{name}.safetensors"), metadata=metadata)
    if name in ("unet_a", "unet_b"):
        save_file(state, str(HERE / f"{name}_weights.safetensors"), metadata={"deepdem": json.dumps(config)})
    n_params = sum(g.numel() for g in ref["grads"].values())
    residual = lambda key: (ref[key] - x[:, :1].double()).abs().max().item()
    print(f"{name}: {n_params} parameters, loss {ref['loss'].item():.6f} -> {ref['loss2']:.6f}, "
          f"max |refined - initial| train {residual('refined_train'):.4f} eval {residual('refined_eval'):.4f}, "
          f"float32 gradient noise up to {worst:.1e} of a tensor's max")


# ---------------------------------------------------------------- optimizers and schedules

def optim_fixture():
    rng = np.random.default_rng(7)
    n, steps = 37, 6
    p0 = rng.standard_normal(n).astype(np.float32)
    grads = (rng.standard_normal((steps, n)) * np.exp(rng.uniform(-6, 1, (steps, n)))).astype(np.float32)
    grads[:, 3] = 0          # a parameter that never gets a gradient (weight decay still moves it)
    grads[2, 5] = 0          # and one that misses one step
    out = {"p0": torch.from_numpy(p0), "grads": torch.from_numpy(grads)}
    cases = {
        "adam": ("adam", dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)),
        "adam_wd": ("adam", dict(lr=3e-3, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05)),
        "sgd": ("sgd", dict(lr=0.1, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False)),
        "sgd_momentum": ("sgd", dict(lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01, nesterov=False)),
        "sgd_nesterov": ("sgd", dict(lr=0.05, momentum=0.8, dampening=0.0, weight_decay=0.001, nesterov=True)),
    }
    for case, (kind, hp) in cases.items():
        p = torch.nn.Parameter(torch.from_numpy(p0.copy()))
        opt = (torch.optim.Adam([p], foreach=False, **hp) if kind == "adam"
               else torch.optim.SGD([p], foreach=False, **hp))
        trajectory = []
        for t in range(steps):
            p.grad = torch.from_numpy(grads[t].copy())
            opt.step()
            trajectory.append(p.detach().clone())
        out[f"{case}.params"] = torch.stack(trajectory)
        for key, value in opt.state[p].items():
            if key != "step":
                out[f"{case}.{key}"] = value.clone()

    # Rates are strings of Python's shortest round-trip form, so they parse back to the same doubles
    # (Foundation's JSON number parsing is not always correctly rounded); metrics are
    # float32-representable so the tensor holds them exactly.
    exact = lambda values: [repr(float(v)) for v in values]
    exact_settings = lambda hp: {k: repr(v) if isinstance(v, float) else v for k, v in hp.items()}
    metrics = np.array([5, 4, 3.9, 3.85, 3.84, 3.9, 3.83, 3.0, 3.0, 2.99, 2.98, np.nan, 2.98, 2.5, 2.5, 2.5, 2.5,
                        2.5, 2.4, 2.45, 2.45, 2.45, 2.45, 2.45, 2.45, 2.45, 2.45, 2.45, 2.45, 2.45, 2.45],
                       dtype=np.float32)
    out["metrics"] = torch.from_numpy(metrics)
    schedules = {}
    plateau_cases = {
        "plateau_rel": dict(lr=0.1, factor=0.5, patience=2, threshold=0.01, threshold_mode="rel", cooldown=0,
                            min_lr=0.004, eps=1e-8),
        "plateau_abs_cooldown": dict(lr=0.1, factor=0.3, patience=1, threshold=0.05, threshold_mode="abs",
                                     cooldown=2, min_lr=0.0, eps=1e-8),
        # min_lr within eps of the reduced rate: the last reduction is skipped.
        "plateau_eps": dict(lr=1e-3, factor=0.5, patience=0, threshold=1e-4, threshold_mode="rel", cooldown=1,
                            min_lr=2.4e-4, eps=1e-5),
    }
    for case, hp in plateau_cases.items():
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=hp["lr"])
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", **{k: v for k, v in hp.items() if k != "lr"})
        lrs, bad, cooldown = [], [], []
        for m in metrics:
            sched.step(float(m))
            lrs.append(opt.param_groups[0]["lr"])
            bad.append(sched.num_bad_epochs)
            cooldown.append(sched.cooldown_counter)
        schedules[case] = dict(kind="plateau", settings=exact_settings(hp), lrs=exact(lrs), num_bad_epochs=bad, cooldown_counter=cooldown,
                               best=repr(sched.best), last_epoch=sched.last_epoch)
    for case, hp in {"step_3": dict(lr=0.2, step_size=3, gamma=0.5), "step_1": dict(lr=1.0, step_size=1, gamma=0.9)}.items():
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=hp["lr"])
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=hp["step_size"], gamma=hp["gamma"])
        lrs = []
        for _ in range(10):
            opt.step()
            sched.step()
            lrs.append(opt.param_groups[0]["lr"])
        schedules[case] = dict(kind="step", settings=exact_settings(hp), lrs=exact(lrs))
    for schedule in schedules.values():
        assert len(set(schedule["lrs"])) > 2, schedule   # every case must actually change the rate
    metadata = {"optimizers": json.dumps({case: dict(kind=kind, **hp) for case, (kind, hp) in cases.items()}),
                "schedules": json.dumps(schedules, allow_nan=False)}
    save_file(out, str(HERE / "optim.safetensors"), metadata=metadata)
    print("optim:", {k: v["lrs"][-1] for k, v in schedules.items()})


# ---------------------------------------------------------------- Swift-written checkpoints

def check_swift(path):
    with safe_open(path, "pt") as f:
        metadata = f.metadata() or {}
    config = json.loads(metadata["deepdem"])
    module = make_module(config)
    module.load_state_dict(load_file(path), strict=True)
    module.eval()
    golden = metadata.get("golden_input")
    if golden:
        with safe_open(str(HERE / f"{golden}.safetensors"), "pt") as f:
            x = f.get_tensor("input")
    else:
        x = make_batch(1, len(config["bands"]), config["chip_size"], config["gsf"], 0)[0]
    with torch.no_grad():
        refined = residual_forward(module, x, config["gsf"])
    line = f"{path}: {config['arch']} loads strictly ({len(module.state_dict())} tensors), forward {tuple(refined.shape)}"
    if "golden_refined_eval" in metadata:
        swift = torch.tensor(json.loads(metadata["golden_refined_eval"])).reshape(refined.shape)
        residual = (refined - x[:, :1]).abs().max().item()
        diff = (swift - refined).abs().max().item()
        line += f", max |Swift - PyTorch| {diff:.3g} (residual magnitude {residual:.3g})"
        if diff > 1e-4 * max(residual, 1.0):
            print(line + " MISMATCH")
            return False
    print(line + " OK")
    return True


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check-swift", nargs="+", metavar="FILE")
    parser.add_argument("--only", nargs="+", metavar="NAME", choices=[*CONFIGS, "optim"],
                        help="rewrite only these fixtures (another torch version may change the others' last bits)")
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    if args.check_swift:
        sys.exit(0 if all([check_swift(p) for p in args.check_swift]) else 1)
    for name, spec in CONFIGS.items():
        if not args.only or name in args.only:
            model_fixture(name, spec)
    if not args.only or "optim" in args.only:
        optim_fixture()
    total = sum(p.stat().st_size for p in HERE.glob("*.safetensors"))
    print(f"fixtures: {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
