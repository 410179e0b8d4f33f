"""Check a spec against a source model, as `netc verify` and `netc import` do.

The checks: the spec's module loads the source's state_dict with strict=True (key order
reported, an error with `strict_order`); parameter counts (the IR's, the built module's, the
source's); MACs (the IR's against `torch.utils.flop_counter.FlopCounterMode` on the source:
conv and linear, half its count); and outputs in eval and in training mode (the same random
stream for both) at the spec's input size and a second one. Before comparing, **every**
parameter and buffer of the source is drawn at random: a branch whose last BN weight starts at
zero (timm's zero_init_last), a layer scale of 1e-6 or fresh BN statistics would otherwise hide
whatever is inside it. When outputs differ, forward hooks name the first module (in the source's
execution order) whose output differs.
"""
from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field

from netc.errors import NetcError, error

TOLERANCE = 1e-5  # relative to the output's largest magnitude (at least 1)


@dataclass
class Report:
    """What `verify` found: `problems` empty means verified."""

    params: int
    max_diff: float = 0.0
    same_order: bool = True
    sizes: list[tuple[int, ...]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    # input sizes the source runs at and the spec refuses to compile for: exact where it compiles
    refused_sizes: list[str] = field(default_factory=list)
    reference: str | None = None  # what the source stands for where it is a part of the named model

    @property
    def verified(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        if not self.verified:
            return "differs: " + "; ".join(self.problems + self.refused_sizes)
        order = "in the same order" if self.same_order else "(keys in a different order)"
        sizes = ", ".join("x".join(map(str, s)) for s in self.sizes)
        text = (f"verified: loads the source's state_dict strictly {order}, {self.params:,} parameters, "
                f"MACs agree, outputs agree in eval and training mode at {sizes} with every parameter and "
                f"buffer randomised (max |diff| {self.max_diff:.1e})")
        text += "".join(f"; but {r}" for r in self.refused_sizes)
        return text + (f"; the source: {self.reference}" if self.reference else "")


def randomise(module, seed: int = 0) -> None:
    """Draws every floating parameter and buffer of `module` at random, scaled to keep activations
    near unit size: weights ~ N(0, 1/fan_in), biases and running means ~ N(0, 0.1), scales (BN
    weight, layer scale, PReLU) and running variances ~ U(0.5, 1.5). Non-persistent buffers are
    constants of the model, not state (timm BlurPool2d's binomial filter): they are kept."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    state = module.state_dict(keep_vars=True)
    with torch.no_grad():
        for name, t in [*module.named_parameters(), *module.named_buffers()]:
            if not t.is_floating_point() or name not in state:
                continue
            leaf = name.rpartition(".")[2]
            if t.dim() >= 2:
                value = torch.randn(t.shape, generator=gen) / max(1, t[0].numel()) ** 0.5
            elif leaf.endswith("bias") or leaf == "running_mean":
                value = 0.1 * torch.randn(t.shape, generator=gen)
            else:
                value = 0.5 + torch.rand(t.shape, generator=gen)
            t.copy_(value.to(t.dtype))


def verify(compile_at, module, input_shape: tuple[int, ...], strict_order: bool = False) -> Report:
    """The spec (`compile_at(shape)` -> a netc.api.Network compiled for that input shape, or a
    NetcError where the spec refuses it) against the source `module`, which is randomised."""
    import torch

    from netc.backends.torch.memory import check_activations

    network = compile_at(tuple(input_shape))
    check_activations(network, torch.device("cpu"), 2, "use a smaller --input")  # before any forward
    with allocation_is_a_limit(input_shape):
        check_input(module, input_shape)
        return _verify(compile_at, network, module, input_shape, strict_order)


def _verify(compile_at, network, module, input_shape, strict_order: bool) -> Report:
    import torch

    from netc.backends.torch.memory import check_activations as fits

    randomise(module)
    state = module.state_dict()
    report, ours = _loaded(network, state, strict_order, "the source's")
    if ours is None:
        return report
    source_params = sum(p.numel() for p in module.parameters())
    built = sum(p.numel() for p in ours.parameters())
    if not network.params == built == source_params:
        report.problems.append(f"parameters: the spec counts {network.params:,}, its module holds {built:,}, "
                               f"the source {source_params:,}")
    macs = _source_macs(module, input_shape)
    if macs != network.macs:
        report.problems.append(f"MACs: the spec counts {network.macs:,}, FlopCounterMode on the source {macs:,}")
    for shape in (tuple(input_shape), second_size(input_shape)):
        net, model, refused = network, ours, None
        if shape != tuple(input_shape):
            try:
                net = compile_at(shape)
                fits(net, torch.device("cpu"), 2, "use a smaller --input")
                model = _load(net, state)
            except NetcError as exc:
                if exc.diagnostics[0].code == "limit":
                    continue  # the second size does not fit this machine: the first one is compared
                refused = exc.diagnostics[0].message
            if not _accepts(module, shape):
                continue  # a size the source does not take either
            if refused is not None:
                report.refused_sizes.append(f"at {'x'.join(map(str, shape))} the source runs and the spec does "
                                            f"not ({refused})")
                continue
        report.sizes.append(shape)
        for train in (False, True):
            _compare_outputs(report, model, module, shape, train)
    return report


def verify_state_dict(network, path: str, strict_order: bool = False) -> Report:
    """The spec against a saved state_dict: it loads strictly (keys, shapes), in order, and holds
    as many parameters; there is no model to compare outputs with."""
    from netc.backends.torch.weights import read_state_dict

    return _loaded(network, read_state_dict(path), strict_order, "the file's")[0]


def _loaded(network, state: dict, strict_order: bool, whose: str):
    """(the Report of loading `state` strictly into the spec's module, the module or None where
    it does not load): key order reported, a problem with `strict_order`."""
    try:
        ours = _load(network, state)
    except NetcError as exc:
        return Report(network.params, problems=[exc.diagnostics[0].message]), None
    report = Report(network.params, same_order=list(ours.state_dict()) == list(state))
    if not report.same_order and strict_order:
        report.problems.append(f"the spec's state_dict keys come in another order than {whose}")
    return report, ours


def second_size(input_shape: tuple[int, ...]) -> tuple[int, ...]:
    """A second input size: a quarter larger on H and W, rounded up to a multiple of 8."""
    c, *hw = input_shape
    return (c, *(-(-(n + max(8, n // 4)) // 8) * 8 for n in hw))


def _load(network, state):
    ours = network.build(device="meta")
    try:
        ours.load_state_dict({k: v.clone() for k, v in state.items()}, strict=True, assign=True)
    except RuntimeError as exc:
        if out_of_memory(exc):
            raise
        raise error("verify", f"the spec does not load the source's state_dict: {' '.join(str(exc).split())[:400]}",
                    None, "the spec's module paths or shapes differ from the source's (see 'netc table')") from None
    return ours


def _source_macs(module, input_shape) -> int:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    module.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(torch.zeros(1, *input_shape))
    return counter.get_total_flops() // 2


def _accepts(module, shape) -> bool:
    import torch

    module.eval()
    try:
        with torch.no_grad():
            module(torch.zeros(1, *shape))
    except Exception as exc:  # noqa: BLE001 - any failure but memory means the source does not take this size
        if out_of_memory(exc):
            raise
        return False
    return True


def check_input(module, input_shape) -> None:
    """A usage error unless the source runs on `input_shape`; where its first layer takes
    another number of channels than the input has, the error says both."""
    import torch

    x = torch.zeros(1, *input_shape)
    took_x = []  # the modules called on the input itself, outermost first

    def record(m, args):
        if args and args[0] is x:
            took_x.append(m)

    hooks = [m.register_forward_pre_hook(record) for m in module.modules()]
    module.eval()
    try:
        with torch.no_grad():
            module(x)
    except Exception as exc:  # noqa: BLE001 - the source's own code, whatever it raises
        if out_of_memory(exc):
            raise
        where = "x".join(map(str, input_shape))
        names = {m: n for n, m in module.named_modules()}
        layer = next((m for m in took_x if hasattr(m, "in_channels") or hasattr(m, "num_features")), None)
        channels = getattr(layer, "in_channels", None) or getattr(layer, "num_features", None)
        if channels is not None and channels != input_shape[0]:
            raise error("usage", f"--input {where} gives the source {input_shape[0]} channel(s), but its first "
                                 f"layer '{names[layer]}' ({type(layer).__name__}) takes {channels}", None,
                        f"use --input {channels}x{'x'.join(map(str, input_shape[1:]))}") from None
        raise error("usage", f"the source does not run on --input {where}: {type(exc).__name__}: "
                             f"{' '.join(str(exc).split())[:300]}", None, "give an input size the source takes") from None
    finally:
        for h in hooks:
            h.remove()


def out_of_memory(exc: BaseException) -> bool:
    """An allocation that failed: torch's CPU allocator, CUDA's, or Python's."""
    import torch

    text = str(exc)
    return isinstance(exc, (MemoryError, torch.OutOfMemoryError)) or (
        isinstance(exc, RuntimeError) and ("can't allocate memory" in text or "out of memory" in text))


@contextlib.contextmanager
def allocation_is_a_limit(input_shape):
    """An allocation failure inside is error[limit], with the size the allocator was asked for."""
    try:
        yield
    except Exception as exc:
        if not out_of_memory(exc):
            raise
        # torch's CPU allocator says "you tried to allocate N bytes", CUDA's "Tried to allocate 2.00 GiB"
        asked = re.search(r"(?:you tried to allocate|Tried to allocate) ([\d.]+) ?(\w*)", str(exc))
        size = f"{asked.group(1)} {asked.group(2)}" if asked else "more than was free"
        if asked and asked.group(2) == "bytes":
            size = f"{int(asked.group(1)) / 2**30:,.2f} GiB ({int(asked.group(1)):,} bytes)"
        sizes = " and ".join("x".join(map(str, s)) for s in (tuple(input_shape), second_size(input_shape)))
        raise error("limit", f"verification (forwards at {sizes}) ran out of memory: an allocation of {size} "
                             "failed", None, "use a smaller --input, or free memory") from None


def _outputs(out) -> list:
    """A forward's outputs in order: a dict's values (torchvision's segmentation models), a tuple's items."""
    if isinstance(out, dict):
        return list(out.values())
    return list(out) if isinstance(out, (tuple, list)) else [out]


def _run(model, x, train: bool):
    import torch

    model.train(train)
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return _outputs(model(x))


def _compare_outputs(report: Report, ours, theirs, shape, train: bool) -> None:
    import torch

    x = torch.randn(2, *shape, generator=torch.Generator().manual_seed(1))
    try:
        want, got = _run(theirs, x, train), _run(ours, x, train)
    finally:
        theirs.eval()
        ours.eval()
    mode = "training" if train else "eval"
    where = "x".join(map(str, shape))
    if len(got) != len(want):
        report.problems.append(f"{mode} mode at {where}: the spec returns {len(got)} outputs, the source {len(want)}")
        return
    for k, (g, w) in enumerate(zip(got, want)):
        if g.shape != w.shape:
            report.problems.append(f"{mode} mode at {where}: output {k} has shape {tuple(g.shape)[1:]}, "
                                   f"the source's {tuple(w.shape)[1:]}")
            return
        diff = (g - w).abs().max().item()
        report.max_diff = max(report.max_diff, diff)
        if not diff <= TOLERANCE * max(1.0, w.abs().max().item()):
            first = None if report.problems else first_difference(ours, theirs, x, train)  # named once
            report.problems.append(f"{mode} mode at {where}: output {k} differs by {diff:.2e}"
                                   + (f"; the first module whose output differs is '{first}'" if first else ""))
            return


def first_difference(ours, theirs, x, train: bool) -> str | None:
    """The first module of `theirs`, in execution order, whose output differs from the module of
    the same path in `ours` (both in the given mode, with the same random stream)."""
    import torch

    both = set(dict(ours.named_modules())) & set(dict(theirs.named_modules()))
    seen: dict[str, list] = {"ours": [], "theirs": []}
    hooks = []
    for side, model in (("ours", ours), ("theirs", theirs)):
        for name, m in model.named_modules():
            if name and name in both:
                hooks.append(m.register_forward_hook(  # a copy: a later in-place op would change it
                    lambda _m, _i, out, name=name, side=side: seen[side].append(
                        (name, out.clone() if isinstance(out, torch.Tensor) else out))))
    try:
        _run(theirs, x, train)
        _run(ours, x, train)
    finally:
        for h in hooks:
            h.remove()
        theirs.eval()
        ours.eval()
    got = {}
    for name, out in seen["ours"]:
        got.setdefault(name, out)
    for name, want in seen["theirs"]:
        g = got.get(name)
        if not isinstance(want, torch.Tensor) or not isinstance(g, torch.Tensor):
            continue
        if g.shape != want.shape or (g - want).abs().max().item() > TOLERANCE * max(1.0, want.abs().max().item()):
            return name
    return None
