#!/usr/bin/env python3
"""The fixture of EncoderInitTests: smp's own first-convolution adaptation of ImageNet weights.

    /work/venv/bin/python Tests/NNTests/Fixtures/make_encoder_fixture.py

CI never runs this; its output, encoder_adapt.safetensors, is committed. It needs torch,
torchvision, segmentation_models_pytorch and safetensors.

A torchvision resnet18 with its own random initialization (seeded) is loaded into smp's resnet18
encoder, and segmentation_models_pytorch.encoders._utils.patch_first_conv — what smp does to
pretrained weights for in_channels != 3 — adapts it to C input channels for each C in CHANNELS
(5 has a scale 3/5 that is not a binary fraction, so the rounding of the scale shows). Only the
first FILTERS output filters are kept (slicing changes no value) to keep the file small:
  conv1.weight          [FILTERS, 3, 7, 7]  the torchvision weight
  conv1.weight.C<C>     [FILTERS, C, 7, 7]  smp's adaptation
"""
import copy
from pathlib import Path

import torch
import torchvision
from safetensors.torch import save_file
from segmentation_models_pytorch.encoders import get_encoder
from segmentation_models_pytorch.encoders._utils import patch_first_conv

HERE = Path(__file__).resolve().parent
CHANNELS = (1, 2, 4, 5, 6)
FILTERS = 8


def main():
    torch.manual_seed(18)
    imagenet = {k: v for k, v in torchvision.models.resnet18(weights=None).state_dict().items() if not k.startswith("fc.")}
    encoder = get_encoder("resnet18", in_channels=3, weights=None)
    encoder.load_state_dict(imagenet, strict=True)
    tensors = {"conv1.weight": imagenet["conv1.weight"][:FILTERS].contiguous()}
    for c in CHANNELS:
        patched = copy.deepcopy(encoder)
        patch_first_conv(patched, new_in_channels=c, pretrained=True)
        tensors[f"conv1.weight.C{c}"] = patched.conv1.weight.detach()[:FILTERS].contiguous()
    save_file(tensors, HERE / "encoder_adapt.safetensors",
              metadata={"made_by": "make_encoder_fixture.py", "torch": torch.__version__})
    print(f"encoder_adapt.safetensors: {len(tensors)} tensors")


if __name__ == "__main__":
    main()
