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
    def __init__(self, dim: int = 1):
        super().__init__()
        self.dim = dim

    def forward(self, *xs):
        return torch.cat(xs, self.dim)


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


def pad_same(x, kernel_size, stride, dilation=(1, 1), value: float = 0.0):
    """TensorFlow's 'SAME' padding of `x` for a window: the output has ceil(n / stride) entries
    per axis, the odd pixel (if any) padded after, from the input's own size (timm's `pad_same`)."""
    k2, s2, d2 = ((v, v) if isinstance(v, int) else tuple(v) for v in (kernel_size, stride, dilation))
    widths = []
    for n, k, s, d in zip(reversed(x.shape[-2:]), reversed(k2), reversed(s2), reversed(d2)):
        total = max((-(-n // s) - 1) * s + (k - 1) * d + 1 - n, 0)
        widths += [total // 2, total - total // 2]
    return nn.functional.pad(x, widths, value=value)


class Conv2dSame(nn.Conv2d):
    """A conv padded as TensorFlow's 'SAME' (`pad_same`) for whatever input size it gets."""

    def forward(self, x):
        return self._conv_forward(pad_same(x, self.kernel_size, self.stride, self.dilation), self.weight, self.bias)


class StdConv2d(nn.Conv2d):
    """A weight-standardised conv (timm's StdConv2d, ScaledStdConv2d): each filter standardised to
    zero mean and unit variance (eps) before the conv; with `gain`, then scaled by a learned gain per
    filter times gamma / sqrt(fan-in); `same_pad`: TensorFlow 'SAME' padding (`pad_same`)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, eps: float = 1e-6, gain: bool = False, gamma: float = 1.0,
                 same_pad: bool = False):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias)
        self.eps, self.same_pad = eps, same_pad
        self.scale = gamma * self.weight[0].numel() ** -0.5
        self.gain = nn.Parameter(torch.ones(out_channels, 1, 1, 1)) if gain else None

    def reset_parameters(self):
        super().reset_parameters()
        if getattr(self, "gain", None) is not None:  # None while nn.Conv2d's constructor runs
            nn.init.ones_(self.gain)

    def forward(self, x):
        if self.same_pad:
            x = pad_same(x, self.kernel_size, self.stride, self.dilation)
        affine = None if self.gain is None else (self.gain * self.scale).view(-1)
        weight = nn.functional.batch_norm(self.weight.reshape(1, self.out_channels, -1), None, None, weight=affine,
                                          training=True, momentum=0.0, eps=self.eps).reshape_as(self.weight)
        return self._conv_forward(x, weight, self.bias)


class MaxPool2dSame(nn.MaxPool2d):
    """Max pooling padded as TensorFlow's 'SAME' (`pad_same`, with -inf)."""

    def forward(self, x):
        x = pad_same(x, self.kernel_size, self.stride, self.dilation, value=-float("inf"))
        return nn.functional.max_pool2d(x, self.kernel_size, self.stride, 0, self.dilation, self.ceil_mode)


class AvgPool2dSame(nn.AvgPool2d):
    """Average pooling padded as TensorFlow's 'SAME' (`pad_same`; the padded zeros are averaged)."""

    def forward(self, x):
        x = pad_same(x, self.kernel_size, self.stride)
        return nn.functional.avg_pool2d(x, self.kernel_size, self.stride, 0, self.ceil_mode, self.count_include_pad)


class Affine(nn.Module):
    """A learned scalar scale and bias: scale * x + bias (timm's hgnet LearnableAffineBlock)."""

    def __init__(self, scale: float = 1.0, bias: float = 0.0):
        super().__init__()
        self.scale_value, self.bias_value = scale, bias
        self.scale = nn.Parameter(torch.tensor([scale]))
        self.bias = nn.Parameter(torch.tensor([bias]))

    def reset_parameters(self):
        with torch.no_grad():
            self.scale.fill_(self.scale_value)
            self.bias.fill_(self.bias_value)

    def forward(self, x):
        return self.scale * x + self.bias


class GlobalResponseNorm(nn.Module):
    """ConvNeXt-V2's global response normalisation: each channel's L2 norm over H and W, divided by
    its mean over the channels (+ eps), gates x; x + bias + weight * x * that. `channels_last`: of
    an N×H×W×C tensor (timm's default), else of N×C×H×W."""

    def __init__(self, channels: int, eps: float = 1e-6, channels_last: bool = True):
        super().__init__()
        self.eps, self.channels_last = eps, channels_last
        self.weight = nn.Parameter(torch.zeros(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def reset_parameters(self):
        nn.init.zeros_(self.weight)
        nn.init.zeros_(self.bias)

    def forward(self, x):
        spatial, channel, shape = ((1, 2), -1, (1, 1, 1, -1)) if self.channels_last else ((2, 3), 1, (1, -1, 1, 1))
        x_g = x.norm(p=2, dim=spatial, keepdim=True)
        x_n = x_g / (x_g.mean(dim=channel, keepdim=True) + self.eps)
        return x + torch.addcmul(self.bias.view(shape), self.weight.view(shape), x * x_n)


class Sub(nn.Module):
    def forward(self, x, y):
        return x - y


class Div(nn.Module):
    def forward(self, x, y):
        return x / y


class Pow(nn.Module):
    def __init__(self, exponent: float):
        super().__init__()
        self.exponent = exponent

    def forward(self, x):
        return x ** self.exponent

    def extra_repr(self):
        return f"exponent={self.exponent}"


class ExpandAs(nn.Module):
    """The first input broadcast to the second's shape (a view: x.expand_as(y))."""

    def forward(self, x, y):
        return x.expand_as(y)


class BlurPool2d(nn.Module):
    """Anti-aliased downsampling (timm's BlurPool2d): pad by ((stride - 1) + (filt_size - 1)) // 2
    (`pad_mode`), then a depthwise conv with the binomial filter of `filt_size` taps per axis (its
    coefficients C(n, k) / 2^n, n = filt_size - 1) at `stride`. The filter is built in the forward:
    a constant, no state."""

    def __init__(self, channels: int, filt_size: int = 3, stride: int = 2, pad_mode: str = "reflect"):
        super().__init__()
        self.channels, self.filt_size, self.stride, self.pad_mode = channels, filt_size, stride, pad_mode
        self.padding = ((stride - 1) + (filt_size - 1)) // 2

    def forward(self, x):
        row = [1.0]
        for _ in range(self.filt_size - 1):
            row = [a + b for a, b in zip([0.0, *row], [*row, 0.0])]
        taps = torch.tensor(row, dtype=x.dtype, device=x.device) / 2 ** (self.filt_size - 1)
        filt = (taps[:, None] * taps[None, :]).expand(self.channels, 1, self.filt_size, self.filt_size)
        x = nn.functional.pad(x, [self.padding] * 4, mode=self.pad_mode)
        return nn.functional.conv2d(x, filt, stride=self.stride, groups=self.channels)

    def extra_repr(self):
        return f"channels={self.channels}, filt_size={self.filt_size}, stride={self.stride}, pad_mode={self.pad_mode!r}"


class FrozenBatchNorm2d(nn.Module):
    """Batch norm with fixed statistics and affine, all buffers (torchvision.ops.FrozenBatchNorm2d)."""

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def reset_parameters(self):
        for name, value in (("weight", 1.0), ("bias", 0.0), ("running_mean", 0.0), ("running_var", 1.0)):
            getattr(self, name).fill_(value)

    def forward(self, x):
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        shift = self.bias - self.running_mean * scale
        return x * scale.reshape(1, -1, 1, 1) + shift.reshape(1, -1, 1, 1)


class Normalize(nn.Module):
    """x / max(‖x‖_p, eps) along `dim` (batch axis counted), torch.nn.functional.normalize."""

    def __init__(self, p: float = 2.0, dim: int = 1, eps: float = 1e-12, out=None):
        super().__init__()
        if out is not None:  # F.normalize's own arguments build this module (netc import): no out=
            raise ValueError("normalize into an out= tensor")
        self.p, self.dim, self.eps = p, dim, eps

    def forward(self, x):
        return torch.nn.functional.normalize(x, self.p, self.dim, self.eps)

    def extra_repr(self):
        return f"p={self.p}, dim={self.dim}, eps={self.eps}"


class ChannelScale(nn.Module):
    """A learned scale per channel in a module of its own (timm's LayerScale2d, LayerScale, MetaFormer's
    Scale): x * the parameter `param`, per channel of N×C×H×W (`over_channels`) or on the last axis."""

    def __init__(self, channels: int, init: float = 1e-5, over_channels: bool = True, param: str = "gamma"):
        super().__init__()
        self.init, self.over_channels, self.param = init, over_channels, param
        self.register_parameter(param, nn.Parameter(torch.full((channels,), init)))

    def reset_parameters(self):
        with torch.no_grad():
            getattr(self, self.param).fill_(self.init)

    def forward(self, x):
        scale = getattr(self, self.param)
        return x * (scale.view(-1, *(1,) * (x.dim() - 2)) if self.over_channels else scale)


class Mul(nn.Module):
    def forward(self, *xs):
        out = xs[0]
        for x in xs[1:]:
            out = out * x
        return out


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW map (torchvision's convention: permute to NHWC and back)."""

    def forward(self, x):
        x = x.permute(0, 2, 3, 1)
        x = nn.functional.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class Permute(nn.Module):
    """Reorder the axes (batch included), as torchvision.ops.misc.Permute."""

    def __init__(self, dims):
        super().__init__()
        self.dims = list(dims)

    def forward(self, x):
        return torch.permute(x, self.dims)

    def extra_repr(self):
        return f"dims={self.dims}"


class Reshape(nn.Module):
    """Reshape each sample to `shape` (the batch axis is kept)."""

    def __init__(self, shape):
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x):
        return x.reshape(x.shape[0], *self.shape)

    def extra_repr(self):
        return f"shape={self.shape}"


def channel_mul(param, x):
    """A flat layer scale: one scale per channel of `x` (axis 1), as timm's `x.mul(gamma.reshape(1, -1, 1, 1))`."""
    return x * param.reshape(-1, *(1,) * (x.dim() - 2))


class Reduce(nn.Module):
    """`how` ('sum' or 'mean') over axes `dims` (batch axis counted: dims >= 1)."""

    def __init__(self, how: str, dims, keepdim: bool = False):
        super().__init__()
        self.how, self.dims, self.keepdim = how, tuple(dims), keepdim

    def forward(self, x):
        return getattr(x, self.how)(self.dims, keepdim=self.keepdim)

    def extra_repr(self):
        return f"how={self.how!r}, dims={self.dims}, keepdim={self.keepdim}"


class Stack(nn.Module):
    """The inputs joined along a new axis `dim` (batch axis counted: dim >= 1)."""

    def __init__(self, dim: int = 1):
        super().__init__()
        self.dim = dim

    def forward(self, *xs):
        return torch.stack(xs, self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"


class Chunk(nn.Module):
    """Part `index` of the input split into `parts` equal chunks along `dim`."""

    def __init__(self, parts: int, index: int, dim: int = 1):
        super().__init__()
        self.parts, self.index, self.dim = parts, index, dim

    def forward(self, x):
        return x.chunk(self.parts, self.dim)[self.index]

    def extra_repr(self):
        return f"parts={self.parts}, index={self.index}, dim={self.dim}"


class Slice(nn.Module):
    """Entries start..end (exclusive) of axis `dim`: a view, x[:, start:end] for dim 1."""

    def __init__(self, start: int, end: int, dim: int = 1):
        super().__init__()
        self.start, self.end, self.dim = start, end, dim

    def forward(self, x):
        return x.narrow(self.dim, self.start, self.end - self.start)

    def extra_repr(self):
        return f"start={self.start}, end={self.end}, dim={self.dim}"


class StochasticDepth(nn.Module):
    """torchvision.ops.StochasticDepth: in training, drop the input per sample ('row') or for the
    whole batch ('batch') with probability p and scale survivors by 1 / (1 - p); the same
    Bernoulli draw (and random stream) as torchvision's."""

    def __init__(self, p: float, mode: str = "row"):
        super().__init__()
        self.p, self.mode = p, mode

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        survival = 1.0 - self.p
        size = [x.shape[0]] + [1] * (x.ndim - 1) if self.mode == "row" else [1] * x.ndim
        noise = torch.empty(size, dtype=x.dtype, device=x.device).bernoulli_(survival)
        if survival > 0.0:
            noise.div_(survival)
        return x * noise

    def extra_repr(self):
        return f"p={self.p}, mode={self.mode}"


def feature_graph(model: nn.Module, names) -> torch.fx.GraphModule:
    """`model`'s eval forward cut at the outputs of its submodules `names` (each called once by
    the forward), returning their maps as a list; what no map needs (a classifier) is dropped."""
    wanted, calls = set(names), {}

    class Cut(torch.fx.Tracer):
        def call_module(self, m, forward, args, kwargs):  # the value a module returns, nested or leaf
            out = super().call_module(m, forward, args, kwargs)
            name = self.path_of_module(m)
            if name in wanted:
                calls.setdefault(name, []).append(out.node if isinstance(out, torch.fx.Proxy) else None)
            return out

    was_training = model.training
    graph = Cut().trace(model.eval())  # the eval forward: auxiliary heads are no part of a backbone
    model.train(was_training)
    bad = [n for n in names if len(calls.get(n, ())) != 1 or calls[n][0] is None]
    if bad:
        raise ValueError(f"a feature map is the tensor a module returns, called once by the forward: not {bad}")
    graph.erase_node(next(n for n in graph.nodes if n.op == "output"))
    graph.output([calls[n][0] for n in names])
    cut = torch.fx.GraphModule(model, graph, f"{type(model).__name__}Features")
    cut.graph.eliminate_dead_code()
    cut.delete_all_unused_submodules()
    cut.recompile()
    return cut.train(was_training)


class FeatureInfo(list):
    """timm's `feature_info`: one dict per feature map (module, num_chs, reduction)."""

    def channels(self, idx=None):
        return self[idx]["num_chs"] if idx is not None else [f["num_chs"] for f in self]

    def reduction(self, idx=None):
        return self[idx]["reduction"] if idx is not None else [f["reduction"] for f in self]

    def module_name(self, idx=None):
        return self[idx]["module"] if idx is not None else [f["module"] for f in self]

    def get_dicts(self):
        return list(self)


def backbone(model: nn.Module, points, out_indices=None, input_shape=(3, 224, 224)) -> torch.fx.GraphModule:
    """timm's `features_only` contract for a generated model: the maps of `points` ((module,
    reduction) pairs) that `out_indices` selects (default all; negative from the end) as a list,
    with `feature_info`; the channels are measured by a forward of meta tensors (no compute)."""
    chosen = [points[i] for i in (range(len(points)) if out_indices is None else out_indices)]
    cut = feature_graph(model, [m for m, _ in chosen])
    meta = {k: torch.empty_like(v, device="meta") for k, v in cut.state_dict().items()}
    maps = torch.func.functional_call(cut, meta, (torch.zeros(1, *input_shape, device="meta"),))
    cut.feature_info = FeatureInfo({"module": m, "num_chs": y.shape[1], "reduction": r} for (m, r), y in zip(chosen, maps))
    return cut
