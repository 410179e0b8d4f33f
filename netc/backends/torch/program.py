"""The flat schedule of a network: every op in execution order, as one straight-line fx graph.

The built module computes each block in its own module (`blocks.py`); this flat view of the same
computation is what shape confirmation (`module.confirm_shapes`) records and what the inference
rewrites (`optimize.py`) fold and simplify: one graph over the leaf modules, addressed by their
full scopes (`layer1.0.conv1`), so the hierarchy is inlined.
"""
from __future__ import annotations

import importlib
import keyword
from collections import namedtuple
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from torch import fx

from netc.errors import did_you_mean, error


@dataclass(frozen=True)
class Step:
    """One op: the submodule at `scope` applied to the values in `inputs` (0 = network input)."""

    scope: str
    inputs: tuple[int, ...]
    apply: str = ""  # an op owning the parameter at `scope`: `apply(param, *inputs)` (see `call_op`)


@dataclass(frozen=True)
class Program:
    """The straight-line schedule of a network: step k produces value k + 1.

    `outputs` are (name, value, aux) in the order a training forward returns them.
    """

    name: str
    steps: tuple[Step, ...]
    outputs: tuple[tuple[str, int, bool], ...]
    # the forward pre-hook that follows other input sizes or refuses them (`size_guard.FollowSize`)
    follow_size: Any = field(default=None, compare=False)

    @property
    def has_aux(self) -> bool:
        return any(aux for _, _, aux in self.outputs)

    def graph(self, training: bool) -> fx.Graph:
        """The fx graph of the training forward (all outputs) or the eval forward (no aux heads)."""
        outs = [o for o in self.outputs if training or not o[2]]
        live = _live_values(self.steps, [v for _, v, _ in outs])
        g = fx.Graph()
        values: list = [g.placeholder("x")]
        for k, step in enumerate(self.steps, 1):
            values.append(call_op(g, step.scope, tuple(values[i] for i in step.inputs), step.apply)
                          if k in live else None)
        results = [values[v] for _, v, _ in outs]
        if len(results) == 1:
            g.output(results[0])
        else:
            g.output(g.call_function(outputs_type(tuple(n for n, _, _ in outs)), tuple(results)))
        g.lint()
        return g


def resolve(path: str):
    """The object at a dotted path: a module class of a `ModuleSpec` (`torch.nn.Conv2d`,
    `netc.backends.torch.runtime.Add`) or the function of an `OwnedParam` (`operator.mul`)."""
    mod, _, attr = path.rpartition(".")
    return getattr(importlib.import_module(mod), attr)


def call_op(g: fx.Graph, target: str, args: tuple, apply: str = "", name: str | None = None) -> fx.Node:
    """One op in an fx graph: a call of the module at `target`, or, for an op that owns a parameter
    on its block (`netc.ops.base.OwnedParam`), `apply(param, *args)` with the parameter at `target`.
    The node's meta records the op's scope-relative target either way."""
    if not apply:
        node = g.create_node("call_module", target, args, name=name)
    else:
        node = g.call_function(resolve(apply), (g.get_attr(target), *args), name=name)
    node.meta["netc_target"] = target
    return node


def _live_values(steps: tuple[Step, ...], wanted: list[int]) -> set[int]:
    live, stack = set(), list(wanted)
    while stack:
        v = stack.pop()
        if v in live or v == 0:
            continue
        live.add(v)
        stack.extend(steps[v - 1].inputs)
    return live


@lru_cache(maxsize=None)
def outputs_type(names: tuple[str, ...]) -> type:
    """A namedtuple type for several outputs, registered in this module so it pickles."""
    fields = [n if n.isidentifier() and not keyword.iskeyword(n) and not n.startswith("_") else f"out{i}"
              for i, n in enumerate(names)]
    qual = "Outputs_" + "_".join(fields)
    cls = namedtuple(qual, fields)
    cls.__module__ = __name__
    globals()[qual] = cls
    return cls


def output_order(network) -> list[tuple[str, int, bool]]:
    """The IR outputs in the order a forward returns them: the spec's `outputs:` list, then the
    others; by default the main output (the last non-aux one to be computed) first.

    A name in `outputs:` that some `output:` of the spec declares but an `if:` left out is
    skipped (GoogLeNet with aux_logits false); any other unknown name is an error."""
    outs = list(network.outputs)
    position = {nid: k for k, nid in enumerate(network.order)}
    main = max((o for o in outs if not o[2]), key=lambda o: position[o[1]])
    outs = [main] + [o for o in outs if o is not main]
    wanted = network.spec.outputs
    if not wanted:
        return outs
    by_name = {name: (name, nid, aux) for name, nid, aux in outs}
    declared = network.source.declared_outputs()
    for name in wanted:
        if name not in by_name and name not in declared:
            raise error("ref", f"'outputs' names '{name}', which is not an output of the network",
                        network.source.start_loc("outputs"),
                        did_you_mean(name, by_name) or "outputs: " + ", ".join(by_name))
    first = [by_name[n] for n in wanted if n in by_name]
    return first + [o for o in outs if o[0] not in wanted]


def program_of(network, outputs: list[tuple[str, int, bool]] | None = None) -> Program:
    """The flat schedule of `network` in the IR's order; `outputs` as from `output_order`."""
    slot = {0: 0}
    steps = []
    for nid, data in network.nodes():
        slot[nid] = len(steps) + 1
        owned = data.owned
        steps.append(Step(data.scope, tuple(slot[i] for i in data.inputs), owned.fn if owned else ""))
    outputs = tuple((name, slot[nid], aux) for name, nid, aux in outputs or output_order(network))
    return Program(network.name, tuple(steps), outputs)




def eval_outputs_type(network) -> type | None:
    """The namedtuple type `network`'s eval forward returns its several outputs in, else None
    (`returned_type` of its module, known without building it)."""
    names = tuple(name for name, _, aux in output_order(network) if not aux)
    return outputs_type(names) if len(names) > 1 else None


def returned_type(gm) -> type | None:
    """The namedtuple type a netc module's forward returns its several outputs in, else None."""
    out = next(n for n in gm.graph.nodes if n.op == "output").args[0]
    target = getattr(out, "target", None)
    return target if isinstance(target, type) and issubclass(target, tuple) else None


def plain_tuple_outputs(program) -> None:
    """A spec's several outputs leave an ExportedProgram as a plain tuple, in the forward's order:
    torch.export.save (and AOTInductor's package) cannot serialize netc's namedtuple of them, and a
    process loading the file would have to register that type first; a tuple needs nothing."""
    import torch.utils._pytree as pytree

    signature = program.module_call_graph[0].signature
    spec = signature.out_spec
    if spec.num_leaves > 1 and spec.type is not tuple:
        signature.out_spec = pytree.tree_flatten(tuple(range(spec.num_leaves)))[1]
