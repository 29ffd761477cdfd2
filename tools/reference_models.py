"""The PyTorch modules whose state_dict() names a DeepDEM checkpoint uses (README, Checkpoints).

ResDepth's U-Net is written here from its published structure (prs-eth/ResDepth lib/UNet.py) so that
its parameter names and shapes are ResDepth's; the ResNet U-Nets are segmentation_models_pytorch's
Unet itself. Needs torch; segmentation_models_pytorch only for the ResNet ones.
"""
import torch
import torch.nn as nn

# A missing optional key of the `deepdem` metadata takes the reference's default; these are the
# defaults of ResDepth's UNet constructor and of smp.Unet, as Sources/NN/ModelConfig.swift reads them.
UNET_DEFAULTS = dict(depth=8, start_kernel=64, max_filter_depth=512, do_BN=True, bias_conv_layer=False,
                     outer_skip=True, outer_skip_BN=False, up_mode="transpose")
DECODER_CHANNELS = [256, 128, 64, 32, 16]


def _conv_block(cin, cout, do_bn):
    """conv3×3 (biased only without BatchNorm), [BatchNorm2d], ReLU: ResDepth's conv_block/bottleneck."""
    layers = [nn.Conv2d(cin, cout, 3, padding=1, bias=not do_bn)]
    if do_bn:
        layers.append(nn.BatchNorm2d(cout))
    layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def _upconv(channels, up_mode):
    """ResDepth's upconv: a 2×2/2 transposed conv, or (bilinear) nn.Upsample ×2 then a biased conv1×1."""
    if up_mode == "bilinear":
        return nn.Sequential(nn.Upsample(mode="bilinear", scale_factor=2), nn.Conv2d(channels, channels, 1))
    return nn.ConvTranspose2d(channels, channels, 2, 2)


class ResDepthUNet(nn.Module):
    """encoder.i = (conv block, max-pool); bottleneck; decoder.i = (up-conv, conv block) except the
    last, a bare up-conv; additive skips; last_layer conv3×3 → 1; optional outer
    skip adding input channel 0 (through layer_outer_skip.0, a BatchNorm2d(1), with outer_skip_BN)."""

    def __init__(self, n_input_channels, depth, start_kernel, max_filter_depth, do_BN, bias_conv_layer,
                 outer_skip, outer_skip_BN, up_mode="transpose"):
        super().__init__()
        if up_mode not in ("transpose", "bilinear"):
            raise ValueError(f"up_mode '{up_mode}' is not supported ('transpose' or 'bilinear')")
        widths = [min(start_kernel * 2 ** i, max_filter_depth) for i in range(depth)]
        self.encoder = nn.ModuleList()
        cin = n_input_channels
        for i, width in enumerate(widths):
            cout = start_kernel if i == 0 else width
            self.encoder.append(nn.Sequential(_conv_block(cin, cout, do_BN), nn.MaxPool2d(2, 2)))
            cin = cout
        self.bottleneck = _conv_block(widths[-1], widths[-1], do_BN)
        up = widths[::-1]
        self.decoder = nn.ModuleList(
            nn.Sequential(_upconv(c, up_mode), _conv_block(c, c_next, do_BN)) for c, c_next in zip(up, up[1:]))
        self.decoder.append(_upconv(up[-1], up_mode))
        self.last_layer = nn.Conv2d(start_kernel, 1, 3, padding=1, bias=bias_conv_layer)
        self.outer_skip = outer_skip
        if outer_skip and outer_skip_BN:
            self.layer_outer_skip = nn.ModuleList([nn.BatchNorm2d(1)])

    def forward(self, x):
        skips = []
        out = x
        for conv, pool in self.encoder:
            out = conv(out)
            skips.append(out)
            out = pool(out)
        out = self.bottleneck(out)
        for i, block in enumerate(self.decoder):
            if i < len(self.decoder) - 1:
                out = block[1](skips[-1 - i] + block[0](out))
            else:
                out = skips[-1 - i] + block(out)
        out = self.last_layer(out)
        if self.outer_skip:
            x0 = x[:, :1]
            if hasattr(self, "layer_outer_skip"):
                x0 = self.layer_outer_skip[0](x0)
            out = out + x0
        return out


def make_module(config):
    """The reference module for a `deepdem` configuration (a dict as in the metadata)."""
    if config["arch"] == "unet":
        return ResDepthUNet(**{**UNET_DEFAULTS, **config["unet"]})
    import segmentation_models_pytorch as smp  # slow to import; only the ResNet U-Nets need it
    encoder = config["encoder"]
    return smp.Unet(encoder["name"], encoder_weights=None, in_channels=encoder.get("in_channels", 3), classes=1,
                    activation=None, decoder_channels=tuple(encoder.get("decoder_channels", DECODER_CHANNELS)))


def residual_forward(module, x, gsf, normalize_in_float64=False):
    """DeepDEM's model (docs/ARCHITECTURE.md): channel 0 (asp_dsm) centred per chip and divided by gsf, then
    refined = initial + gsf · net(x). `normalize_in_float64` centres in float64: one of the float32
    variants whose spread the golden fixtures take as float32's own error."""
    initial = x[:, :1]
    xn = x.clone()
    if normalize_in_float64:
        i64 = initial.double()
        xn[:, :1] = ((i64 - i64.mean(dim=(2, 3), keepdim=True)) / gsf).to(x.dtype)
    else:
        xn[:, :1] = (initial - initial.mean(dim=(2, 3), keepdim=True)) / gsf
    return initial + gsf * module(xn)[:, :1]
