"""Applies the spec's `init:` scheme (`Network.init_scheme`) to a freshly allocated torch module."""
from __future__ import annotations


def fill_(tensor, fill) -> None:
    """`fill`: a number, 'zeros', 'ones' or a `Fill` of the scheme (`netc.spec.init`)."""
    import torch
    from torch.nn import init

    with torch.no_grad():
        if isinstance(fill, (int, float)):
            tensor.fill_(float(fill))
        elif fill == "zeros":
            tensor.zero_()
        elif fill == "ones":
            tensor.fill_(1.0)
        else:
            kind = fill.kind
            args = getattr(fill, kind)
            if kind == "constant":
                tensor.fill_(args)
            elif kind == "normal":
                init.normal_(tensor, args.mean, args.std)
            elif kind == "uniform":
                init.uniform_(tensor, args.a, args.b)
            elif kind == "trunc_normal":
                init.trunc_normal_(tensor, args.mean, args.std, args.a, args.b)
            elif kind in ("kaiming_normal", "kaiming_uniform"):
                getattr(init, kind + "_")(tensor, a=args.a, mode=args.mode, nonlinearity=args.nonlinearity)
            else:  # xavier_normal, xavier_uniform, orthogonal
                getattr(init, kind + "_")(tensor, gain=args.gain)


def initialise(module, network, scheme=None) -> None:
    """Fill every parameter and buffer of a freshly allocated (`to_empty`) netc module by `scheme`
    (None: the spec's `init:`; 'default': PyTorch's own)."""
    ops = [(d.op, d.scope) for _, d in network.nodes() if not d.owned]
    fills = network.init_scheme(scheme).plan(ops)
    for _, d in network.nodes():
        if d.owned:  # a parameter an op keeps on its block starts at its own value, whatever the scheme
            fill_(module.get_parameter(d.scope), d.owned.init)
    for _, scope in ops:
        leaf = module.get_submodule(scope)
        mine = fills.get(scope, {})
        params = list(leaf.named_parameters())
        covered = all(any(name.endswith(kind) for kind in mine) for name, _ in params)
        if not covered or any(True for _ in leaf.buffers()):
            for sub in leaf.modules():
                if hasattr(sub, "reset_parameters"):
                    sub.reset_parameters()
                elif hasattr(sub, "reset_running_stats"):
                    sub.reset_running_stats()
        for name, p in params:
            for kind, fill in mine.items():
                if name.endswith(kind):
                    fill_(p, fill)
