"""The few torch modules netc needs that torch.nn lacks.

Each class is self-contained (imports only torch) so the code generator can copy its source
into generated files.
"""
import torch
from torch import nn


class Add(nn.Module):
    def forward(self, *xs):
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out


class Concat(nn.Module):
    def forward(self, *xs):
        return torch.cat(xs, 1)


class Scale(nn.Module):
    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return x * self.factor

    def extra_repr(self):
        return f"factor={self.factor}"


class PadChannels(nn.Module):
    """Option-A shortcut: subsample by `stride`, zero-pad channels from `in_channels` to `out_channels`."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, where: str = "both"):
        super().__init__()
        extra = out_channels - in_channels
        self.before = extra // 2 if where == "both" else 0
        self.after = extra - self.before
        self.stride = stride

    def forward(self, x):
        if self.stride > 1:
            x = x[:, :, ::self.stride, ::self.stride]
        return nn.functional.pad(x, (0, 0, 0, 0, self.before, self.after))

    def extra_repr(self):
        return f"before={self.before}, after={self.after}, stride={self.stride}"


class SeparableConv2d(nn.Module):
    """Depthwise conv then pointwise 1x1 conv (names as timm's legacy Xception)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size=1, stride=1, padding=0,
                 dilation=1, bias: bool = False):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, in_channels, kernel_size, stride, padding, dilation,
                               groups=in_channels, bias=bias)
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=bias)

    def forward(self, x):
        return self.pointwise(self.conv1(x))
