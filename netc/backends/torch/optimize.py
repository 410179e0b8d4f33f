"""Inference optimisation of a built network: `netc build --optimize inference`,
`Network.build(optimize="inference")` or `optimize_for_inference(module)`.

The passes rewrite the module's eval-mode fx graph (the forward without training-only side
heads; for a netc module its flat program, which inlines the blocks into one graph over the op
modules, so folding sees across block boundaries), so the result is an `fx.GraphModule` for
inference only:

- conv + batch-norm folding: a BatchNorm2d whose input is a Conv2d output used by nothing else
  is folded into the conv's weight and bias (`W' = W·γ/σ`, `b' = (b − μ)·γ/σ + β`) and removed;
- dropout and identity removal: both are the identity in eval mode, so their calls go;
- in-place activations: a ReLU/ReLU6/SiLU/... whose input is an intermediate value used by
  nothing else runs in place (one allocation less per activation);
- channels_last: parameters and the input are converted to NHWC, the layout oneDNN's CPU
  convolutions and cuDNN's tensor-core kernels prefer (the conversion of the input is the
  first node of the graph, so callers pass ordinary NCHW tensors).

The result pickles (`torch.save(model)`) like any GraphModule.

Measured on the 2-core CPU (benchmarks/bench_forward.py, RESULTS.md), resnet50 at batch 8
against torchvision's eval model: 1.35x on the quietest machine, 1.5-2.2x under load (where
channels_last alone gains more). TorchScript freezing (`torch.jit.freeze` +
`optimize_for_inference`) was measured too and was no faster than these passes, and TorchScript
is deprecated, so it is not used.

The folded model computes the same function as the unfused one in eval mode up to float
rounding (tests/test_optimize.py: max abs diff <= 1e-4 in float32). Its state_dict has no
batch-norm entries, so it is for running, not for loading checkpoints or training.
"""
from __future__ import annotations

import copy
from collections import Counter

import torch
from torch import fx, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from netc.errors import error
from netc.backends.torch.runtime import Add, Concat, SeparableConv2d, StochasticDepth

LEVELS = ("inference",)
INPLACE_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.SiLU, nn.Hardswish, nn.Hardtanh, nn.LeakyReLU, nn.ELU, nn.CELU,
                       nn.SELU, nn.Mish)
EVAL_IDENTITIES = (nn.Dropout, nn.Dropout2d, nn.Dropout1d, nn.AlphaDropout, nn.Identity, StochasticDepth)
# modules whose output is always a fresh tensor (never their input or a view of it), so an
# activation may overwrite it when nothing else reads it
FRESH_OUTPUT = (nn.Conv2d, nn.Linear, nn.BatchNorm2d, nn.BatchNorm1d, Add, Concat, SeparableConv2d)


def optimize(module: nn.Module, level: str = "inference") -> fx.GraphModule:
    """Dispatch on the optimisation level (only `inference` so far)."""
    if level not in LEVELS:
        from netc.errors import did_you_mean

        raise error("usage", f"unknown optimisation level '{level}'", None,
                    did_you_mean(level, LEVELS) or "use --optimize inference")
    return optimize_for_inference(module)


def optimize_for_inference(module: nn.Module, channels_last: bool = True) -> fx.GraphModule:
    """A copy of `module` (a NetcModule or any fx-traceable module) folded and simplified for
    eval-mode inference; the input module is left untouched."""
    gm = eval_graph_module(module)
    fold_conv_bn(gm)
    remove_identities(gm)
    inplace_activations(gm)
    gm.graph.eliminate_dead_code()
    gm.delete_all_unused_submodules()
    if channels_last:
        to_channels_last(gm)
    gm.graph.lint()
    gm.recompile()
    follow = getattr(getattr(module, "program", None), "follow_size", None)
    if follow is not None:  # another input size: followed, or refused, as by the module it rewrites
        gm.register_forward_pre_hook(follow)
    return gm.eval()


def eval_graph_module(module: nn.Module) -> fx.GraphModule:
    """An eval-mode fx.GraphModule over a deep copy of `module`'s parameters."""
    module = copy.deepcopy(module).eval()
    program = getattr(module, "program", None)
    if program is not None:  # a NetcModule: its eval forward drops the training-only heads
        graph = program.graph(training=False)
    elif isinstance(module, fx.GraphModule):
        graph = copy.deepcopy(module.graph)
    else:
        graph = fx.symbolic_trace(module).graph
    return fx.GraphModule(module, graph, type(module).__name__).eval()


def _only_user(node: fx.Node) -> fx.Node | None:
    users = list(node.users)
    return users[0] if len(users) == 1 else None


def fold_conv_bn(gm: fx.GraphModule) -> int:
    """Fold each BatchNorm2d that alone consumes a Conv2d's output into that conv; the count."""
    modules = dict(gm.named_modules())
    folded = 0
    for node in list(gm.graph.nodes):
        if node.op != "call_module" or not isinstance(modules.get(node.target), nn.BatchNorm2d):
            continue
        bn, src = modules[node.target], node.args[0]
        if not (isinstance(src, fx.Node) and src.op == "call_module" and _only_user(src) is node
                and type(modules.get(src.target)) is nn.Conv2d and bn.track_running_stats):
            continue
        fused = fuse_conv_bn_eval(modules[src.target].eval(), bn.eval())
        _set_submodule(gm, src.target, fused)
        node.replace_all_uses_with(src)
        gm.graph.erase_node(node)
        folded += 1
    return folded


def remove_identities(gm: fx.GraphModule) -> int:
    """Drop calls of modules that are the identity in eval mode (dropout, identity)."""
    modules = dict(gm.named_modules())
    removed = 0
    for node in list(gm.graph.nodes):
        if node.op == "call_module" and type(modules.get(node.target)) in EVAL_IDENTITIES and len(node.args) == 1:
            node.replace_all_uses_with(node.args[0])
            gm.graph.erase_node(node)
            removed += 1
    return removed


def inplace_activations(gm: fx.GraphModule) -> int:
    """Run an activation in place when its input is a fresh intermediate value nothing else reads.

    A module called from several places (possible in a hand-written fx graph, never in netc's)
    keeps its flag: one call site may not allow it."""
    modules = dict(gm.named_modules())
    calls = Counter(n.target for n in gm.graph.nodes if n.op == "call_module")
    changed = 0
    for node in gm.graph.nodes:
        act = modules.get(node.target) if node.op == "call_module" else None
        if not isinstance(act, INPLACE_ACTIVATIONS) or getattr(act, "inplace", True) or calls[node.target] > 1:
            continue
        src = node.args[0] if node.args else None
        if (isinstance(src, fx.Node) and src.op == "call_module" and _only_user(src) is node
                and type(modules.get(src.target)) in FRESH_OUTPUT):
            act.inplace = True
            changed += 1
    return changed


def to_channels_last(gm: fx.GraphModule) -> None:
    """NHWC parameters; and when the input feeds only convs (so it is 4-d), the graph's first node
    converts it (a method call, no Python branch: fx re-traces the forward when unpickling)."""
    gm.to(memory_format=torch.channels_last)
    modules = dict(gm.named_modules())
    placeholder = next(n for n in gm.graph.nodes if n.op == "placeholder")
    if not placeholder.users or not all(u.op == "call_module" and isinstance(modules.get(u.target), nn.Conv2d)
                                        for u in placeholder.users):
        return
    with gm.graph.inserting_after(placeholder):
        converted = gm.graph.call_method("contiguous", (placeholder,), {"memory_format": torch.channels_last})
    placeholder.replace_all_uses_with(converted, delete_user_cb=lambda user: user is not converted)


def _set_submodule(gm: nn.Module, target: str, module: nn.Module) -> None:
    parent, _, name = target.rpartition(".")
    setattr(gm.get_submodule(parent) if parent else gm, name, module)
