#!/usr/bin/env python3
"""Moves trained models between PyTorch checkpoints and this project's safetensors checkpoints.

    convert_checkpoint.py to-safetensors IN.ckpt|IN.pth OUT.safetensors [--bands B ...] [--target T]
                                         [--chip-size N] [--gsf X | --dsm-normalization FILE.p] [--arch A]
                                         [--image-normalization FILE.p | --ortho-mean M --ortho-std S]
                                         [--trust-pickle]
    convert_checkpoint.py to-lightning   IN.safetensors OUT.ckpt
    convert_checkpoint.py to-resdepth    IN.safetensors OUT.pth
    convert_checkpoint.py from-torchvision resnet18-f37072fd.pth OUT.safetensors [--trust-pickle]
    (each also takes --overwrite to replace an existing output)

Needs torch and safetensors (segmentation_models_pytorch for the ResNet U-Nets). Every output is
checked against the reference PyTorch module its configuration implies (tools/reference_models.py):
same tensor names, same shapes. Tensors are written as float32, BatchNorm's num_batches_tracked as
int64. Errors are one line on stderr with exit status 1; outputs are written under a temporary name
and renamed when complete.

Inputs of to-safetensors, told apart by their contents:
  * a DeepDEM Lightning checkpoint (uw-cryo/DeepDEM, DeepDEMRegressionTask): weights under `model.`
    in `state_dict`, settings in `hyper_parameters` — `bands` (inputs, then the target last),
    `chip_size`, `model` ("unet" or "smp-unet"), `encoder`, and `GSF_DICT` when it was overridden;
    otherwise gsf is DeepDEM's built-in value for the chip size (a note says so).
  * a bare state_dict (what DeepDEM's scripts save as model_weights*.pth), with DeepDEM's meaning;
    it records no settings, so --bands, --chip-size and --gsf are required.
  * a ResDepth checkpoint (prs-eth/ResDepth: a dict with `model_state_dict`); --bands, --chip-size
    and --gsf (the DSM `std` of ResDepth's normalization file; --dsm-normalization
    DSM_normalization_parameters.p reads it from there) are required. ResDepth standardizes its
    orthoimages as (x - mean)/std with its training set's mean and std (mean None: each chip
    centred on its views' mean), kept in Image_normalization_parameters.p: with ortho bands,
    --image-normalization that file (or --ortho-mean M|none --ortho-std S) is required, and
    becomes the model's "ortho_standardization" {"mean": M, "std": S}. ResDepth's output is
    the normalized DSM itself — mean + std·net(x) with net's outer skip adding channel 0 — which is
    exactly this project's initial + gsf·net(x) for the same weights *without* the outer skip. So
    ResDepth's default outer_skip becomes "outer_skip": false here; a model with outer_skip_BN has
    no equivalent and is refused.
The network's structure (depth, widths, BatchNorm, biases, encoder) is read from the tensors
themselves; flags override what the checkpoint says, and --arch must agree with the weights.

to-lightning writes what DeepDEMRegressionTask.load_from_checkpoint reads — `state_dict` with the
`model.` prefix and `hyper_parameters` with DeepDEM's keys (GSF_DICT {chip_size: gsf}, so DeepDEM
uses this gsf; encoder_weights None, since the weights come from the checkpoint) — plus this
project's configuration under `deepdem`, so converting back is exact. DeepDEM itself can rebuild
only its own U-Net (start_kernel 64, max_filter_depth 512, depth log2(chip_size), no outer skip)
and decoder_channels; for other models a note says so, and the file still loads with torch.load.
from-torchvision turns the ImageNet weights of a torchvision ResNet-18/34/50 (the state_dict file
torchvision downloads, e.g. resnet18-f37072fd.pth) into the `encoder.*` tensors of smp's Unet, for
`deepdem train`'s init_encoder; `fc.*` is dropped. The depth is read from the blocks per stage and
from conv3 (Bottleneck blocks), names and shapes are checked against torchvision's own module
(built offline, without weights), and metadata `encoder` records {"name", "in_channels": 3, "source"}.
to-resdepth writes {model_state_dict, model_settings (ResDepth's UNet(**model_settings)),
dsm_std (= gsf), deepdem}; only "unet" models without the outer skip have a ResDepth equivalent.
"""
import argparse
import json
import math
import os
import pickle
import re
import sys
from collections import OrderedDict
from pathlib import Path

TARGETS = ("lidar_data", "lidar_dtm_data")
ARCHITECTURES = ("unet", "resnet18-unet", "resnet34-unet", "resnet50-unet")
# Blocks per ResNet stage and whether they are bottlenecks (a conv3), which tell the encoders apart
# (torchvision's ResNets and smp's encoders alike).
RESNET_BLOCKS = {((2, 2, 2, 2), False): "resnet18", ((3, 4, 6, 3), False): "resnet34", ((3, 4, 6, 3), True): "resnet50"}
# DeepDEM's DeepDEMRegressionTask.GSF_DICT (lib/task_module.py, since 2024-12-12).
DEEPDEM_GSF = {64: 9.86, 128: 18.59, 256: 34.90, 512: 63.51, 1024: 112.11}
DEEPDEM_GSF_BEFORE_2024_12 = {64: 9.88, 128: 18.71, 256: 35.16, 512: 64.32, 1024: 111.88}
# Keys DeepDEMRegressionTask reads without a default, with the values of DeepDEM's training notebook.
DEEPDEM_HPARAM_DEFAULTS = dict(lr=5e-4, lr_scheduler=True, lr_scheduler_scale_factor=0.5, lr_scheduler_patience=50,
                               channel_swap=True)
# The version Lightning's checkpoint migration compares with; from 2.0 on it needs no migration.
LIGHTNING_VERSION = "2.4.0"
PROG = "convert_checkpoint"


class Refusal(Exception):
    """A user error, reported as one line."""


def note(message):
    print(f"{PROG}: note: {message}", file=sys.stderr)


def first_line(error):
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def names(items, shown=3):
    items = list(items)
    text = ", ".join(f"'{n}'" for n in items[:shown])
    return text + (f" and {len(items) - shown} more" if len(items) > shown else "")


# ---------------------------------------------------------------- reading PyTorch pickles

# Why an input cannot be opened, by the error opening it raises.
UNREADABLE_PROBLEMS = {FileNotFoundError: "no such file", IsADirectoryError: "is a directory",
                       PermissionError: "cannot read: permission denied"}
UNREADABLE = tuple(UNREADABLE_PROBLEMS)


def unreadable(path, error):
    """The one line for an input that cannot be opened."""
    return Refusal(f"{path}: {UNREADABLE_PROBLEMS[type(error)]}")


def load_pickle(path, trust):
    import torch
    try:
        return torch.load(path, map_location="cpu", weights_only=not trust)
    except pickle.UnpicklingError as e:
        found = re.search(r"GLOBAL ([\w.]+)", str(e))
        if not found:
            reason = re.search(r"WeightsUnpickler error: \s*(.+)", str(e))
            raise Refusal(f"{path}: not a PyTorch checkpoint ({reason.group(1) if reason else first_line(e)})") from None
        raise Refusal(f"{path}: holds Python objects besides tensors and plain values ({found.group(1)}); "
                      f"if you trust the file, add --trust-pickle (runs its pickled code)") from None
    except (AttributeError, ImportError) as e:
        raise Refusal(f"{path}: cannot unpickle without the code that wrote it ({first_line(e)})") from None
    except UNREADABLE as e:
        raise unreadable(path, e) from None
    except Exception as e:
        raise Refusal(f"{path}: not a PyTorch checkpoint ({first_line(e)})") from None


class _PlainUnpickler(pickle.Unpickler):
    """Unpickles plain values only: any class or function a pickle names is refused, never imported."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"names {module}.{name}")


def read_normalization(path):
    """ResDepth's *_normalization_parameters.p: {'mean': float or None, 'std': float}, read without
    running any pickled code."""
    try:
        with open(path, "rb") as f:
            params = _PlainUnpickler(f).load()
    except UNREADABLE as e:
        raise unreadable(path, e) from None
    except Exception as e:
        raise Refusal(f"{path}: not a ResDepth normalization file ({first_line(e)})") from None
    plain = lambda v: v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))
    if not isinstance(params, dict) or set(params) != {"mean", "std"} or not all(plain(v) for v in params.values()):
        raise Refusal(f"{path}: not a ResDepth normalization file (a dictionary of 'mean' and 'std', numbers or None)")
    mean, std = params["mean"], params["std"]
    if std is None or not math.isfinite(std) or std <= 0:
        raise Refusal(f"{path}: std {std} is not a positive number")
    if mean is not None and not math.isfinite(mean):
        raise Refusal(f"{path}: mean {mean} is not a number")
    return (None if mean is None else float(mean)), float(std)


class Source:
    """A PyTorch checkpoint's weights and whatever it says about them."""

    def __init__(self, path, kind, weights, hparams=None, embedded=None):
        self.path, self.kind, self.weights = path, kind, weights
        self.hparams = hparams or {}
        self.embedded = embedded    # a `deepdem` configuration written by this tool

    @property
    def description(self):
        return {"lightning": "DeepDEM Lightning checkpoint", "state_dict": "PyTorch state_dict",
                "resdepth": "ResDepth checkpoint"}[self.kind]


def read_source(path, trust):
    import torch
    obj = load_pickle(path, trust)
    is_state = lambda d: isinstance(d, dict) and d and all(isinstance(v, torch.Tensor) for v in d.values())
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        state = obj["state_dict"]
        outside = [k for k in state if not k.startswith("model.")]
        if outside or not state:
            raise Refusal(f"{path}: state_dict has entries outside 'model.' ({names(outside)}): "
                          "not a DeepDEM checkpoint" if outside else f"{path}: empty state_dict")
        hparams = obj.get("hyper_parameters") or {}
        if not isinstance(hparams, dict):
            raise Refusal(f"{path}: hyper_parameters is not a dictionary")
        weights = OrderedDict((k[len("model."):], v) for k, v in state.items())
        return Source(path, "lightning", weights, dict(hparams), hparams.get("deepdem"))
    if isinstance(obj, dict) and "model_state_dict" in obj:
        if not is_state(obj["model_state_dict"]):
            raise Refusal(f"{path}: model_state_dict is not a dictionary of tensors")
        return Source(path, "resdepth", OrderedDict(obj["model_state_dict"]), embedded=obj.get("deepdem"))
    if is_state(obj):
        return Source(path, "state_dict", OrderedDict(obj))
    raise Refusal(f"{path}: neither a Lightning checkpoint (state_dict), a ResDepth checkpoint "
                  "(model_state_dict) nor a bare state_dict")


# ---------------------------------------------------------------- configuration

def resnet_kind(weights, prefix):
    """(blocks per stage, bottleneck blocks?) of the ResNet whose tensors are named `prefix`layerK.B.…:
    a key of RESNET_BLOCKS when it is one of the supported encoders."""
    blocks = []
    for stage in range(1, 5):
        n = 0
        while f"{prefix}layer{stage}.{n}.conv1.weight" in weights:
            n += 1
        blocks.append(n)
    return tuple(blocks), f"{prefix}layer1.0.conv3.weight" in weights


def infer_architecture(weights, path, resdepth):
    """arch with its `unet` or `encoder` settings, read from the tensors' names and shapes."""
    shape = lambda name: tuple(weights[name].shape)
    if "encoder.0.0.0.weight" in weights:
        depth = 0
        while f"encoder.{depth}.0.0.weight" in weights:
            depth += 1
        widths = [shape(f"encoder.{i}.0.0.weight")[0] for i in range(depth)]
        n_in, start = shape("encoder.0.0.0.weight")[1], widths[0]
        # The last, bare up-conv: ConvTranspose2d's own weight, or bilinear's Sequential(Upsample, conv1x1).
        up_mode = "bilinear" if f"decoder.{depth - 1}.1.weight" in weights else "transpose"
        # Any cap at or above the widest layer gives the same network; ResDepth's default if it fits.
        uncapped = start * 2 ** (depth - 1)
        cap = widths[-1] if widths[-1] < uncapped else max(512, widths[-1])
        outer_skip_bn = "layer_outer_skip.0.weight" in weights
        if resdepth and outer_skip_bn:
            raise Refusal(f"{path}: ResDepth's outer_skip_BN has no equivalent in DeepDEM's residual formulation")
        unet = dict(n_input_channels=n_in, depth=depth, start_kernel=start, max_filter_depth=cap,
                    do_BN="encoder.0.0.1.weight" in weights, bias_conv_layer="last_layer.bias" in weights,
                    outer_skip=outer_skip_bn, outer_skip_BN=outer_skip_bn, up_mode=up_mode)
        return dict(arch="unet", unet=unet)
    if "encoder.conv1.weight" in weights:
        kind = resnet_kind(weights, "encoder.")
        blocks = list(kind[0])
        if kind not in RESNET_BLOCKS:
            raise Refusal(f"{path}: a U-Net whose encoder is not ResNet-18, -34 or -50 "
                          f"({'bottleneck' if kind[1] else 'basic'} blocks per stage {blocks}); "
                          f"supported: {', '.join(ARCHITECTURES)}")
        name = RESNET_BLOCKS[kind]
        decoder = []
        while f"decoder.blocks.{len(decoder)}.conv1.0.weight" in weights:
            decoder.append(shape(f"decoder.blocks.{len(decoder)}.conv1.0.weight")[0])
        if "segmentation_head.0.weight" in weights and shape("segmentation_head.0.weight")[0] != 1:
            raise Refusal(f"{path}: the U-Net predicts {shape('segmentation_head.0.weight')[0]} classes, not 1 height")
        encoder = dict(name=name, in_channels=shape("encoder.conv1.weight")[1], decoder_channels=decoder)
        return dict(arch=f"{name}-unet", encoder=encoder)
    raise Refusal(f"{path}: tensors ({names(weights)}) are neither ResDepth's UNet nor "
                  "segmentation_models_pytorch's Unet")


def input_channels(config):
    return config["unet"]["n_input_channels"] if config["arch"] == "unet" else config["encoder"]["in_channels"]


def number(value):
    """A plain float from a hyper-parameter that may be a tensor or numpy scalar."""
    try:
        return float(value.item() if hasattr(value, "item") else value)
    except (TypeError, ValueError):
        return None


def deepdem_gsf(hparams, chip, path):
    """gsf as DeepDEMRegressionTask computes it: GSF_DICT[chip_size], overridable by the GSF_DICT
    hyper-parameter, else the built-in table."""
    table = hparams.get("GSF_DICT")
    if isinstance(table, dict):
        for key, value in table.items():
            if number(key) == chip:
                return number(value)
    if chip in DEEPDEM_GSF:
        note(f"{path}: gsf {DEEPDEM_GSF[chip]} is DeepDEM's built-in value for {chip}-pixel chips "
             f"(DeepDEM before 2024-12-12 used {DEEPDEM_GSF_BEFORE_2024_12[chip]}); --gsf overrides")
        return DEEPDEM_GSF[chip]
    return None


def resolve_config(source, args):
    """The `deepdem` configuration: the tensors give the structure; flags, then the checkpoint's
    settings, give bands, target, chip size and gsf."""
    path, hp = source.path, source.hparams
    if source.embedded is not None:
        config = parse_config(source.embedded, f"{path}: 'deepdem' entry")
        if args.arch and args.arch != config["arch"]:
            raise Refusal(f"{path}: holds a '{config['arch']}' model, not '{args.arch}'")
    else:
        config = infer_architecture(source.weights, path, source.kind == "resdepth")
        if args.arch and args.arch != config["arch"]:
            raise Refusal(f"{path}: the weights are a '{config['arch']}' model, not '{args.arch}'")
        if source.kind == "lightning":
            check_deepdem_hparams(config, hp, path)
        hp_bands = hp.get("bands")
        if hp_bands is not None and (not isinstance(hp_bands, (list, tuple)) or len(hp_bands) < 2
                                     or not all(isinstance(b, str) for b in hp_bands)):
            raise Refusal(f"{path}: hyper-parameter 'bands' is not a list of input bands and the target")
        config["bands"] = list(hp_bands[:-1]) if hp_bands else None
        config["target"] = hp_bands[-1] if hp_bands else "lidar_data"
        config["chip_size"] = hp.get("chip_size")
        config["gsf"] = None
    if args.bands:
        config["bands"] = args.bands
    if args.target:
        config["target"] = args.target
    if args.chip_size is not None:
        config["chip_size"] = args.chip_size
    if args.gsf is not None and args.dsm_normalization:
        raise Refusal("give --gsf or --dsm-normalization, not both")
    if args.dsm_normalization:
        config["gsf"] = read_normalization(args.dsm_normalization)[1]
    if args.gsf is not None:
        config["gsf"] = args.gsf
    elif config["gsf"] is None and source.kind == "lightning" and isinstance(config["chip_size"], int):
        config["gsf"] = deepdem_gsf(hp, config["chip_size"], path)
    missing = [flag for flag, key in (("--bands", "bands"), ("--chip-size", "chip_size"), ("--gsf", "gsf"))
               if config.get(key) is None]
    if missing:
        gsf_hint = ""
        if "--gsf" in missing:
            gsf_hint = (" (ResDepth: the DSM std of its normalization file)" if source.kind == "resdepth"
                        else f" (for {config['chip_size']}-pixel chips)" if config.get("chip_size") else "")
        raise Refusal(f"{path}: a {source.description} that does not record {', '.join(m[2:].replace('-', ' ') for m in missing)}: "
                      f"give {' '.join(missing)}{gsf_hint}")
    check_config(config, path)
    ortho = ortho_standardization(args)
    has_orthos = any(b.startswith("ortho_") for b in config["bands"])
    if ortho is not None and not has_orthos:
        raise Refusal(f"{path}: no band is an ortho_* band, so there is nothing to standardize: "
                      "leave out --image-normalization and --ortho-mean/--ortho-std")
    if ortho is not None:
        config["ortho_standardization"] = ortho
    elif source.kind == "resdepth" and source.embedded is None and has_orthos:
        raise Refusal(f"{path}: ResDepth standardized this model's orthoimages with its training set's mean and std: "
                      "give --image-normalization Image_normalization_parameters.p (or --ortho-mean M --ortho-std S)")
    if source.kind == "lightning" and "left_ortho_mean" in hp:
        note(f"{path}: this DeepDEM version standardized ortho_left/ortho_right inside the model "
             "(left/right_ortho_mean, _std); the Swift model takes the bands as they are")
    return config


def ortho_standardization(args):
    """{"mean": M or None, "std": S} from --image-normalization or --ortho-mean/--ortho-std, else None."""
    given = args.ortho_mean is not None or args.ortho_std is not None
    if args.image_normalization and given:
        raise Refusal("give --image-normalization or --ortho-mean/--ortho-std, not both")
    if args.image_normalization:
        mean, std = read_normalization(args.image_normalization)
        # ResDepth's dataset tests `if not self.ortho_mean`, so a stored mean of 0 centred each chip too.
        return dict(mean=mean or None, std=std)
    if not given:
        return None
    if args.ortho_mean is None or args.ortho_std is None:
        raise Refusal("--ortho-mean and --ortho-std go together (--ortho-mean none centres each chip)")
    if not math.isfinite(args.ortho_std) or args.ortho_std <= 0:
        raise Refusal(f"--ortho-std {args.ortho_std:g} is not a positive number")
    return dict(mean=None if args.ortho_mean == "none" else args.ortho_mean, std=args.ortho_std)


def ortho_mean(text):
    if text.lower() in ("none", "null"):
        return "none"
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def check_deepdem_hparams(config, hp, path):
    """The weights must be what DeepDEMRegressionTask would have built from its hyper-parameters."""
    model = hp.get("model")
    if model is not None:
        expected = "unet" if model == "unet" else f"{hp.get('encoder')}-unet" if model == "smp-unet" else None
        if expected is None:
            raise Refusal(f"{path}: hyper-parameter model '{model}' is neither 'unet' nor 'smp-unet'")
        if expected != config["arch"]:
            raise Refusal(f"{path}: hyper-parameters describe a '{expected}' model but the weights are a '{config['arch']}'")
    if config["arch"] == "unet":
        for key in ("do_BN", "bias_conv_layer"):
            if key in hp and bool(hp[key]) != config["unet"][key]:
                raise Refusal(f"{path}: hyper-parameter {key} is {hp[key]} but the weights say {config['unet'][key]}")


def check_config(config, path):
    bands, target = config["bands"], config["target"]
    if not bands or bands[0] != "asp_dsm":
        raise Refusal(f"{path}: the input bands must start with asp_dsm (got {', '.join(bands or [])})")
    if len(set(bands)) != len(bands):
        raise Refusal(f"{path}: a band is listed twice in {', '.join(bands)}")
    if target in bands:
        raise Refusal(f"{path}: the target {target} is also an input band")
    if target not in TARGETS:
        raise Refusal(f"{path}: target '{target}' is none of {', '.join(TARGETS)}")
    if config["arch"] not in ARCHITECTURES:
        raise Refusal(f"{path}: unknown architecture '{config['arch']}' (known: {', '.join(ARCHITECTURES)})")
    channels = input_channels(config)
    if channels != len(bands):
        raise Refusal(f"{path}: the model takes {channels} input channels but {len(bands)} bands are given "
                      f"({', '.join(bands)})")
    chip, gsf = config["chip_size"], config["gsf"]
    factor = 2 ** config["unet"]["depth"] if config["arch"] == "unet" else 32
    if not isinstance(chip, int) or chip <= 0 or chip % factor:
        raise Refusal(f"{path}: chip size {chip} is not a positive multiple of {factor}, which this model needs")
    if not isinstance(gsf, (int, float)) or not math.isfinite(gsf) or gsf <= 0:
        raise Refusal(f"{path}: gsf {gsf} is not a positive number")


def parse_config(text, where):
    """A `deepdem` configuration as the Swift side reads it (Sources/NN/ModelConfig.swift)."""
    from reference_models import UNET_DEFAULTS, DECODER_CHANNELS
    try:
        config = json.loads(text) if isinstance(text, str) else None
    except json.JSONDecodeError:
        config = None
    if not isinstance(config, dict):
        raise Refusal(f"{where} is not a JSON model configuration")
    for key in ("arch", "bands", "target", "chip_size", "gsf"):
        if key not in config:
            raise Refusal(f"{where} lacks '{key}'")
    if config["arch"] == "unet":
        if not isinstance(config.get("unet"), dict) or "n_input_channels" not in config["unet"]:
            raise Refusal(f"{where} of a 'unet' model lacks 'unet.n_input_channels'")
        config["unet"] = {**UNET_DEFAULTS, **config["unet"]}
    elif config["arch"] in ARCHITECTURES:
        if not isinstance(config.get("encoder"), dict) or "name" not in config["encoder"]:
            raise Refusal(f"{where} of a '{config['arch']}' model lacks 'encoder.name'")
        config["encoder"] = {"in_channels": 3, "decoder_channels": DECODER_CHANNELS, **config["encoder"]}
    return config


# ---------------------------------------------------------------- tensors

def checked_state(config, weights, path):
    """`weights` in the reference module's state_dict order, float32 (int64 counters), after checking
    names and shapes; counters the file lacks are 0, as PyTorch's BatchNorm assumes."""
    import torch
    from reference_models import make_module
    try:
        expected = make_module(config).state_dict()
    except Exception as e:
        raise Refusal(f"{path}: cannot build the '{config['arch']}' reference module: {e}") from None
    counter = lambda name: name.endswith("num_batches_tracked")
    missing = [k for k in expected if k not in weights and not counter(k)]
    if missing:
        raise Refusal(f"{path}: missing tensor{'s' if len(missing) > 1 else ''} {names(missing)} "
                      f"for this '{config['arch']}' model")
    extra = [k for k in weights if k not in expected]
    if extra:
        raise Refusal(f"{path}: unexpected tensor{'s' if len(extra) > 1 else ''} {names(extra)} "
                      f"for this '{config['arch']}' model")
    state = OrderedDict()
    for name, reference in expected.items():
        t = weights.get(name)
        if t is None:
            state[name] = torch.zeros((), dtype=torch.int64)
            continue
        if not isinstance(t, torch.Tensor):
            raise Refusal(f"{path}: entry '{name}' is not a tensor")
        if counter(name):
            if t.numel() != 1:
                raise Refusal(f"{path}: tensor '{name}' has shape {list(t.shape)}, expected a single count")
            state[name] = t.detach().to(torch.int64).reshape(reference.shape).clone()
            continue
        if t.shape != reference.shape:
            raise Refusal(f"{path}: tensor '{name}' has shape {list(t.shape)}, expected {list(reference.shape)}")
        if t.is_complex():
            raise Refusal(f"{path}: tensor '{name}' is complex")
        state[name] = t.detach().to(torch.float32).contiguous().clone()
    return state


def deepdem_json(config):
    return json.dumps(config, sort_keys=True)


def plain_hparams(hp):
    """The hyper-parameters that survive as JSON (tensors become numbers; other objects are dropped)."""
    out = {}
    for key, value in hp.items():
        if key == "deepdem":
            continue
        if hasattr(value, "tolist"):
            value = value.tolist()
        if isinstance(value, dict):
            value = {str(k): number(v) if hasattr(v, "item") else v for k, v in value.items()}
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            continue
        out[str(key)] = value
    return out


# ---------------------------------------------------------------- writing

def write_atomically(path, write):
    """`write(temporary)` then rename over `path`, so `path` is the complete file or untouched."""
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except Exception as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        reason = e.strerror if isinstance(e, OSError) and e.strerror else first_line(e)
        raise Refusal(f"{path}: cannot write: {reason}") from None
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def check_output(args):
    out = Path(args.output)
    if not out.parent.is_dir():
        raise Refusal(f"{out}: no such directory {out.parent}")
    if out.exists():
        if out.is_dir():
            raise Refusal(f"{out}: is a directory")
        if Path(args.input).exists() and out.samefile(args.input):
            raise Refusal(f"{out}: is the input file")
        if not args.overwrite:
            raise Refusal(f"{out}: exists (add --overwrite to replace it)")


def parameter_count(state):
    return sum(t.numel() for n, t in state.items() if not n.endswith(("running_mean", "running_var", "num_batches_tracked")))


def summary(config, state):
    return (f"{config['arch']}, bands {', '.join(config['bands'])} -> {config['target']}, chip {config['chip_size']}, "
            f"gsf {config['gsf']:g}, {len(state)} tensors, {parameter_count(state):,} parameters")


# ---------------------------------------------------------------- commands

def to_safetensors(args):
    from safetensors.torch import save_file
    source = read_source(args.input, args.trust_pickle)
    config = resolve_config(source, args)
    state = checked_state(config, source.weights, args.input)
    metadata = {"deepdem": deepdem_json(config), "source": f"{source.description} {Path(args.input).name}"}
    if source.hparams:
        metadata["hyper_parameters"] = json.dumps(plain_hparams(source.hparams), sort_keys=True)
    check_output(args)
    write_atomically(args.output, lambda tmp: save_file(state, tmp, metadata=metadata))
    print(f"{args.output}: {summary(config, state)}")


def read_safetensors(path):
    from safetensors import safe_open
    if not Path(path).is_file():
        raise Refusal(f"{path}: no such file")
    try:
        with safe_open(path, "pt") as f:
            metadata = f.metadata() or {}
            weights = OrderedDict((k, f.get_tensor(k)) for k in f.keys())
    except Exception as e:
        raise Refusal(f"{path}: not a safetensors file ({first_line(e)})") from None
    if "deepdem" not in metadata:
        raise Refusal(f"{path}: no 'deepdem' metadata: not a DeepDEM checkpoint (see README, Checkpoints)")
    config = parse_config(metadata["deepdem"], f"{path}: 'deepdem' metadata")
    check_config(config, path)
    return config, checked_state(config, weights, path), metadata


def deepdem_rebuilds(config):
    """Whether DeepDEMRegressionTask.configure_models builds this very module."""
    if config["arch"] != "unet":
        return config["encoder"]["decoder_channels"] == [256, 128, 64, 32, 16]
    u, chip = config["unet"], config["chip_size"]
    depth = int(math.log2(chip))
    widths = lambda start, cap: [min(start * 2 ** i, cap) for i in range(u["depth"])]
    return (u["depth"] == depth and 2 ** depth == chip and u["start_kernel"] == 64 and not u["outer_skip"]
            and widths(u["start_kernel"], u["max_filter_depth"]) == widths(64, 512))


def to_lightning(args):
    import torch
    config, state, metadata = read_safetensors(args.input)
    try:
        hp = json.loads(metadata.get("hyper_parameters", "{}"))
    except json.JSONDecodeError:
        hp = {}
    for key, value in DEEPDEM_HPARAM_DEFAULTS.items():
        hp.setdefault(key, value)
    chip = config["chip_size"]
    gsf_table = {int(number(k)): number(v) for k, v in (hp.get("GSF_DICT") or {}).items()
                 if number(k) is not None and number(v) is not None}
    gsf_table[chip] = float(config["gsf"])
    unet = config["arch"] == "unet"
    hp.update(model="unet" if unet else "smp-unet", encoder=None if unet else config["encoder"]["name"],
              # The weights come from the checkpoint; "imagenet" would only make DeepDEM download
              # weights that load_from_checkpoint then overwrites.
              encoder_weights=None, bands=config["bands"] + [config["target"]], chip_size=chip,
              GSF_DICT=gsf_table, deepdem=deepdem_json(config))
    if unet:
        hp.update(do_BN=config["unet"]["do_BN"], bias_conv_layer=config["unet"]["bias_conv_layer"])
    checkpoint = {"epoch": 0, "global_step": 0, "pytorch-lightning_version": LIGHTNING_VERSION,
                  "state_dict": OrderedDict((f"model.{k}", v) for k, v in state.items()),
                  "hparams_name": "kwargs", "hyper_parameters": hp}
    check_output(args)
    write_atomically(args.output, lambda tmp: torch.save(checkpoint, tmp))
    print(f"{args.output}: {summary(config, state)}")
    if not deepdem_rebuilds(config):
        note(f"{args.output}: DeepDEM's DeepDEMRegressionTask builds a different network for these settings "
             "(its U-Net: start_kernel 64, max_filter_depth 512, depth log2(chip_size), no outer skip; default "
             "decoder_channels); the file loads with torch.load and converts back, not with load_from_checkpoint")


def to_resdepth(args):
    import torch
    config, state, _ = read_safetensors(args.input)
    if config["arch"] != "unet":
        raise Refusal(f"{args.input}: a '{config['arch']}' model; ResDepth has only the U-Net")
    u = config["unet"]
    if u["outer_skip"]:
        raise Refusal(f"{args.input}: this model's outer skip adds the DSM on top of DeepDEM's residual; "
                      "ResDepth has no equivalent (only models without outer_skip convert)")
    ortho = config.get("ortho_standardization", "none")
    if ortho == "tile":
        raise Refusal(f"{args.input}: this model standardizes each ortho band per tile; ResDepth has only one mean "
                      "and std for all its orthoimages, so it would see other inputs")
    settings = dict(n_input_channels=u["n_input_channels"], depth=u["depth"], start_kernel=u["start_kernel"],
                    max_filter_depth=u["max_filter_depth"], do_BN=u["do_BN"], bias_conv_layer=u["bias_conv_layer"],
                    up_mode=u["up_mode"], outer_skip=True, outer_skip_BN=False)
    checkpoint = {"model_state_dict": state, "model_settings": settings, "dsm_std": float(config["gsf"]),
                  "deepdem": deepdem_json(config)}
    check_output(args)
    write_atomically(args.output, lambda tmp: torch.save(checkpoint, tmp))
    print(f"{args.output}: {summary(config, state)}")
    if isinstance(ortho, dict):
        note(f"{args.output}: ResDepth reads the ortho normalization from its own file: give its test.py an "
             f"Image_normalization_parameters.p of {{'mean': {ortho.get('mean')}, 'std': {ortho['std']}}}")


def from_torchvision(args):
    import torch
    import torchvision
    from safetensors.torch import save_file
    obj = load_pickle(args.input, args.trust_pickle)
    if not (isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values())):
        raise Refusal(f"{args.input}: not a torchvision state_dict (a dictionary of tensors)")
    if "conv1.weight" not in obj or "layer1.0.conv1.weight" not in obj:
        raise Refusal(f"{args.input}: no 'conv1.weight' and 'layer1.0.conv1.weight': not a torchvision ResNet state_dict")
    key = resnet_kind(obj, "")
    blocks = list(key[0])
    if key not in RESNET_BLOCKS:
        raise Refusal(f"{args.input}: a ResNet with {blocks} {'Bottleneck' if key[1] else 'basic'} blocks per stage; "
                      f"supported: {', '.join(RESNET_BLOCKS.values())}")
    name = RESNET_BLOCKS[key]
    expected = {k: v for k, v in getattr(torchvision.models, name)(weights=None).state_dict().items()
                if not k.startswith("fc.")}
    weights = {k: v for k, v in obj.items() if not k.startswith("fc.")}
    counter = lambda k: k.endswith("num_batches_tracked")
    missing = [k for k in expected if k not in weights and not counter(k)]
    if missing:
        raise Refusal(f"{args.input}: missing tensor{'s' if len(missing) > 1 else ''} {names(missing)} of torchvision's {name}")
    extra = [k for k in weights if k not in expected]
    if extra:
        raise Refusal(f"{args.input}: unexpected tensor{'s' if len(extra) > 1 else ''} {names(extra)} for torchvision's {name}")
    state = OrderedDict()
    for k, reference in expected.items():
        t = weights.get(k)
        if t is None:   # files saved before BatchNorm counted its batches
            continue
        if counter(k):
            state[f"encoder.{k}"] = t.detach().to(torch.int64).reshape(()).clone()
            continue
        if t.shape != reference.shape:
            raise Refusal(f"{args.input}: tensor '{k}' has shape {list(t.shape)}, torchvision's {name} has {list(reference.shape)}")
        if t.is_complex() or not t.is_floating_point():
            raise Refusal(f"{args.input}: tensor '{k}' is not a real floating-point tensor")
        t = t.detach().to(torch.float32).contiguous().clone()
        if not torch.isfinite(t).all():
            raise Refusal(f"{args.input}: tensor '{k}' holds NaN or infinite values")
        state[f"encoder.{k}"] = t
    metadata = {"encoder": json.dumps(dict(name=name, in_channels=3, source=Path(args.input).name), sort_keys=True)}
    check_output(args)
    write_atomically(args.output, lambda tmp: save_file(state, tmp, metadata=metadata))
    print(f"{args.output}: {name} encoder from {Path(args.input).name}, {len(state)} tensors, "
          f"{parameter_count(state):,} parameters")


def parse_arguments(argv):
    parser = argparse.ArgumentParser(prog="convert_checkpoint.py", description=__doc__.split("\n")[0],
                                     epilog="See the module docstring (or README.md, From PyTorch to here).")
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("to-safetensors", help="a DeepDEM .ckpt, a state_dict or a ResDepth .pth to safetensors")
    p.add_argument("input", metavar="IN.ckpt|IN.pth")
    p.add_argument("output", metavar="OUT.safetensors")
    p.add_argument("--bands", nargs="+", metavar="BAND", help="input bands in channel order, asp_dsm first (no target)")
    p.add_argument("--target", choices=TARGETS, help="the band it was trained against (default: the checkpoint's, else lidar_data)")
    p.add_argument("--chip-size", type=int, metavar="N", help="the chip size gsf belongs to")
    p.add_argument("--gsf", type=float, metavar="X", help="global scale factor")
    p.add_argument("--dsm-normalization", metavar="FILE.p",
                   help="ResDepth's DSM_normalization_parameters.p, whose std is gsf (instead of --gsf)")
    p.add_argument("--image-normalization", metavar="FILE.p",
                   help="ResDepth's Image_normalization_parameters.p: the orthos' (x - mean)/std, stored in the checkpoint")
    p.add_argument("--ortho-mean", type=ortho_mean, metavar="M|none",
                   help="ResDepth's ortho mean (none: each chip centred on its orthos' mean), with --ortho-std")
    p.add_argument("--ortho-std", type=float, metavar="S", help="ResDepth's ortho standard deviation")
    p.add_argument("--arch", choices=ARCHITECTURES, help="assert the architecture (it is read from the weights)")
    p.add_argument("--trust-pickle", action="store_true", help="load pickled Python objects (only for files you trust)")
    for name, help_text in (("to-lightning", "safetensors to a DeepDEM Lightning checkpoint"),
                            ("to-resdepth", "safetensors to a ResDepth checkpoint")):
        q = commands.add_parser(name, help=help_text)
        q.add_argument("input", metavar="IN.safetensors")
        q.add_argument("output", metavar="OUT.ckpt" if name == "to-lightning" else "OUT.pth")
    q = commands.add_parser("from-torchvision", help="a torchvision ResNet state_dict to encoder tensors for init_encoder")
    q.add_argument("input", metavar="IN.pth")
    q.add_argument("output", metavar="OUT.safetensors")
    q.add_argument("--trust-pickle", action="store_true", help="load pickled Python objects (only for files you trust)")
    for q in commands.choices.values():
        q.add_argument("--overwrite", action="store_true", help="replace an existing output")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_arguments(sys.argv[1:] if argv is None else argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    try:
        import torch  # noqa: F401
        import safetensors  # noqa: F401
    except ImportError as e:
        print(f"{PROG}: error: needs torch and safetensors ({e}); e.g. pip install torch safetensors "
              "segmentation-models-pytorch", file=sys.stderr)
        return 1
    command = {"to-safetensors": to_safetensors, "to-lightning": to_lightning, "to-resdepth": to_resdepth,
               "from-torchvision": from_torchvision}
    try:
        command[args.command](args)
    except Refusal as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # a bug or an unforeseen file; still one line, as every refusal
        print(f"{PROG}: error: {type(e).__name__}: {first_line(e)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
