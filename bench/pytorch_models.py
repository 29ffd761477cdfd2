"""The PyTorch side of the benchmark: the configurations of bench/train-step/main.swift and the
masked L1; the modules and the residual step are tools/reference_models.py's, the ones checkpoint
conversion is checked against.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from reference_models import make_module, residual_forward  # noqa: E402,F401  (the benchmark's modules)

UNET_BANDS = ["asp_dsm", "ortho_channel1", "ortho_channel2", "ndvi", "nodata_mask"]
RESNET_BANDS = UNET_BANDS + ["triangulation_error"]

# arch: (deepdem configuration as in a checkpoint's metadata, forward+backward GFLOP per tile)
CONFIGS = {
    "unet": (dict(arch="unet", bands=UNET_BANDS, target="lidar_data", chip_size=128, gsf=20.0,
                  unet=dict(n_input_channels=5, depth=5, start_kernel=64, max_filter_depth=512, do_BN=False,
                            bias_conv_layer=True, outer_skip=False, outer_skip_BN=False, up_mode="transpose")),
             14.9),
    "resnet18-unet": (dict(arch="resnet18-unet", bands=RESNET_BANDS, target="lidar_data", chip_size=256, gsf=35.0,
                           encoder=dict(name="resnet18", in_channels=6)),
                      32.7),
    "resnet50-unet": (dict(arch="resnet50-unet", bands=RESNET_BANDS, target="lidar_data", chip_size=256, gsf=35.0,
                           encoder=dict(name="resnet50", in_channels=6)),
                      64.1),
}


def masked_l1(refined, target, mask):
    return (mask * (refined - target).abs()).sum() / mask.sum()
