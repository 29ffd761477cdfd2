"""The PyTorch side of the benchmark: the same two models, configurations and residual step.

ResDepth's U-Net is written out from its published structure (as Tests/NNTests/Fixtures/
make_fixtures.py does, with in-place ReLUs as ResDepth has them); the ResNet U-Net is
segmentation_models_pytorch's Unet itself. The configurations match bench/train-step/main.swift.
"""
import torch
import torch.nn as nn

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
}


def conv_block(cin, cout, do_bn):
    layers = [nn.Conv2d(cin, cout, 3, padding=1, bias=not do_bn)]
    if do_bn:
        layers.append(nn.BatchNorm2d(cout))
    layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class ResDepthUNet(nn.Module):
    def __init__(self, n_input_channels, depth, start_kernel, max_filter_depth, do_BN, bias_conv_layer,
                 outer_skip, outer_skip_BN, up_mode="transpose"):
        super().__init__()
        assert up_mode == "transpose" and not outer_skip
        widths = [min(start_kernel * 2 ** i, max_filter_depth) for i in range(depth)]
        self.encoder = nn.ModuleList()
        cin = n_input_channels
        for width in widths:
            self.encoder.append(nn.Sequential(conv_block(cin, width, do_BN), nn.MaxPool2d(2, 2)))
            cin = width
        self.bottleneck = conv_block(widths[-1], widths[-1], do_BN)
        up = widths[::-1]
        self.decoder = nn.ModuleList(
            nn.Sequential(nn.ConvTranspose2d(c, c, 2, 2), conv_block(c, c_next, do_BN)) for c, c_next in zip(up, up[1:]))
        self.decoder.append(nn.ConvTranspose2d(up[-1], up[-1], 2, 2))
        self.last_layer = nn.Conv2d(start_kernel, 1, 3, padding=1, bias=bias_conv_layer)

    def forward(self, x):
        skips = []
        out = x
        for conv, pool in self.encoder:
            out = conv(out)
            skips.append(out)
            out = pool(out)
        out = self.bottleneck(out)
        for i, block in enumerate(self.decoder):
            if isinstance(block, nn.Sequential):
                out = block[1](skips[-1 - i] + block[0](out))
            else:
                out = skips[-1 - i] + block(out)
        return self.last_layer(out)


def make_module(config):
    if config["arch"] == "unet":
        return ResDepthUNet(**config["unet"])
    import segmentation_models_pytorch as smp
    enc = config["encoder"]
    return smp.Unet(enc["name"], encoder_weights=None, in_channels=enc["in_channels"], classes=1, activation=None)


def residual_forward(module, x, gsf):
    """DESIGN.md: channel 0 centred on the chip mean and divided by gsf; refined = initial + gsf·net."""
    initial = x[:, :1]
    xn = x.clone()
    xn[:, :1] = (initial - initial.mean(dim=(2, 3), keepdim=True)) / gsf
    return initial + gsf * module(xn)[:, :1]


def masked_l1(refined, target, mask):
    return (mask * (refined - target).abs()).sum() / mask.sum()
