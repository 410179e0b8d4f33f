"""Stage 2b: the forward of one class instance, as source lines.

Consumes a box of the scope tree and the attribute each of its items is reached by; produces
one `Line` per item (`out = self.conv1(x)`, joins inline: `a + b`, `torch.cat([...], 1)`),
variables reused when they die, training-only aux lines marked, and the return statement
(a NamedTuple for several outputs, as the interpreter returns them). `render_forward` joins
the lines, aux lines under `if self.training:` and optional items under their test.
"""
from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Callable

from netc.backends.codegen.names import RESERVED, Names
from netc.backends.codegen.scopes import INLINE_OPS, Box, item_key
from netc.backends.codegen.sizes import runtime_sized
from netc.ir.blocks import schedule
from netc.ops.base import axis_index
from netc.ops.merge import CHANNEL_MUL
from netc.ops.shape import slice_bounds
from netc.ir.sized import SIZED

# how the forward applies a parameter an op owns on its module (`OwnedParam.fn`)
OWNED_OPERATORS = {"operator.mul": "*", "operator.add": "+"}


@dataclass
class Line:
    """One forward statement: the item it calls, whether it maps a variable onto itself
    (`x = self.downsample(x)`: can be made optional), inside an aux head, names to declare."""

    key: tuple
    text: str
    passthrough: bool
    aux: bool
    declare: tuple = ()


@dataclass
class Step:
    """One forward statement before its variables are named: the item it calls (`key`), the
    values it reads and writes, its expression given the names of what it reads, the name its
    result prefers, whether it runs in training only, and whether it is a module applied to one
    value (so it may write its result back into its input's variable)."""

    key: tuple
    ins: list
    outs: list
    expr: Callable[[list[str]], str]
    pref: str
    aux: bool
    module: bool
    op: str = ""  # the op of an op's step


def steps(data, box: Box, attr_of: dict, pos: dict[int, int], unfollowed: set | None = None) -> list[Step]:
    """The forward steps of a box, one per item, in the interpreter's execution order (`pos`,
    from `netc.ir.blocks.run_order`). An op whose sizes follow the input (`sizes.py`) also reads
    the value that binds them; one that cannot is added to `unfollowed`."""
    order, stuck = schedule([[it] if kind == "op" else it.nodes for kind, it in box.items], data, pos)
    items = box.items if stuck else [box.items[k] for k in order]
    visible = set(box.inputs if box.parent is not None else [0])
    visible.update(v for kind, it in box.items for v in ([it] if kind == "op" else it.outputs))
    out = []
    for kind, it in items:
        key = item_key(data, kind, it, box)
        if kind == "op":
            follow = runtime_sized(data, it, attr_of.get(key), visible)
            if follow is not None:
                out.append(Step(key, [*data[it].inputs, follow[0]], [it], follow[1], "out",
                                data[it].aux and not box.aux, False, data[it].op))
                continue
            if unfollowed is not None and SIZED in data[it].meta:
                unfollowed.add(it)
            out.append(Step(key, list(data[it].inputs), [it], _op_expr(data, it, attr_of.get(key)), "out",
                            data[it].aux and not box.aux, data[it].op not in INLINE_OPS, data[it].op))
        else:
            attr = attr_of[key]
            out.append(Step(key, list(it.inputs), list(it.outputs),
                            lambda args, attr=attr: f"{attr}({', '.join(args)})", it.local, it.aux and not box.aux,
                            True))
    return out


def _op_expr(data, nid, attr):
    d = data[nid]
    op = d.op
    if op in ("add", "mul"):
        return lambda args: (" + " if op == "add" else " * ").join(args)
    if op == "chunk":
        a = d.attrs
        dim = a.dim % len(data[d.inputs[0]].shape) + 1
        return lambda args: f"{args[0]}.chunk({a.parts}, {dim})[{a.index}]"
    if op == "slice":  # as the spec writes it (Python's slicing, negative from the end), or the
        a = d.attrs  # bounds kept on the module where the factory's arguments reach them
        axis = slice_bounds(a, data[d.inputs[0]].shape)[0]
        text = f"{attr}[0]:{attr}[1]" if attr else f"{a.start or ''}:{'' if a.end is None else a.end}"
        return lambda args: f"{args[0]}[{':, ' * (axis + 1)}{text}]"
    if d.owned is not None and d.owned.fn == CHANNEL_MUL:  # a flat layer scale, viewed per channel
        ones = ", ".join(["1"] * (len(data[d.inputs[0]].shape) - 1))
        return lambda args: f"{args[0]} * {attr}.reshape(-1{', ' if ones else ''}{ones})"
    if d.owned is not None:  # a parameter of this module (layer scale)
        return lambda args: f"{attr} {OWNED_OPERATORS[d.owned.fn]} {args[0]}"
    if op == "cat":
        axis = axis_index("cat", d.attrs.dim, len(data[d.inputs[0]].shape)) + 1
        return lambda args: f"torch.cat([{', '.join(args)}], {axis})"
    if op == "scale":
        factor = attr or repr(d.attrs.factor)
        return lambda args: f"{args[0]} * {factor}"
    return lambda args: f"{attr}({', '.join(args)})"


def forward(data, box: Box, attr_of: dict, outputs, pos: dict[int, int]) -> tuple[list[Line], list[str]]:
    """The forward lines of a box (each calls one item, in the interpreter's execution order:
    `pos`, from `netc.ir.blocks.run_order`) and its return."""
    inputs = [0] if box.parent is None else box.inputs
    lines, live = write(steps(data, box, attr_of, pos), inputs, result_values(box, outputs))
    return lines, returns(box, live, result_values(box, outputs), outputs)


def write(steps: list[Step], inputs: list, results: list, inplace=frozenset()) -> tuple[list[Line], dict]:
    """Lines of steps, their variables named: an input is `x`, `x1`, …, a value reuses the
    variable of one it replaces where that one dies, a step in `inplace` writes its result back
    into its first input's variable (the caller makes sure that holds the value nothing else
    reads). Returns the lines and the variable of each value live at the end."""
    names = Names(RESERVED)
    live: dict = {}
    for i, v in enumerate(inputs):
        live[v] = names.take("x" if i == 0 else f"x{i}")
    uses: dict = {}
    for idx, s in enumerate(steps):
        for v in s.ins:
            uses.setdefault(v, []).append(idx)
    end = len(steps)
    for v in results:
        uses.setdefault(v, []).append(end)
    lines: list[Line] = []
    for idx, s in enumerate(steps):
        ins, outs, aux = s.ins, s.outs, s.aux
        expr = s.expr([live[v] for v in ins])
        dead = [v for v in dict.fromkeys(ins) if max(uses[v]) == idx]
        # a training-only line never hands its names on: its outputs are declared `= None`
        # before the `if self.training:` block, which must not clobber a value read inside it
        # (a head written after the trunk reads an earlier value through `from:`)
        reuse = live[ins[0]] if len(outs) == 1 and len(ins) == 1 and dead == ins and not aux else None
        if s.key in inplace:
            reuse = live[ins[0]]
        for v in dead:
            if live[v] != reuse and not aux:
                names.used.discard(live[v])
        outnames = []
        for _ in outs:
            if reuse is not None:
                outnames.append(reuse)
            else:
                pref = s.pref
                outnames.append(names.take("out" if not pref or pref[0].isdigit() or pref.startswith("_") else pref))
        for v in dead:
            del live[v]
        declare = []
        for o, n in zip(outs, outnames):
            live[o] = n
            if aux and any(u > idx for u in uses.get(o, [])):
                declare.append(n)
        lines.append(Line(s.key, f"{', '.join(outnames)} = {expr}", reuse is not None and s.module, aux,
                          tuple(declare)))
    return lines, live


def render_forward(lines: list[Line], tail: list[str], guards: dict) -> str:
    """Forward body: aux lines under `if self.training:`, a line in `guards` under its test
    (`self.downsample is not None`, `self.use_res_connect`), consecutive lines under one `if`."""
    body: list[str] = []
    in_aux, guard = False, None
    for i, ln in enumerate(lines):
        if ln.aux and not in_aux:
            for later in lines[i:]:
                if not later.aux:
                    break
                body.extend(f"{n}: Optional[Tensor] = None" for n in later.declare)
            body.append("if self.training:")
        if ln.aux != in_aux:
            guard = None
        in_aux = ln.aux
        pad = "    " if ln.aux else ""
        test = guards.get(ln.key)
        if test is not None:
            if test != guard:
                body.append(f"{pad}if {test}:")
            pad += "    "
        guard = test
        body.append(pad + ln.text)
    return "\n".join(body + tail)


def result_values(box: Box, outputs) -> list[int]:
    if box.parent is not None:
        return box.outputs
    return [nid for _, nid, _ in outputs]


def returns(box: Box, live: dict, results: list[int], outputs) -> list[str]:
    if box.parent is not None:
        return [f"return {', '.join(live[v] for v in results)}"]
    outs = outputs
    if len(outs) == 1:
        return [f"return {live[outs[0][1]]}"]
    allv = ", ".join(live[nid] for _, nid, _ in outs)
    main = [live[nid] for _, nid, aux in outs if not aux]
    if not any(aux for _, _, aux in outs):
        return [f"return Outputs({allv})"]
    tail = main[0] if len(main) == 1 else f"EvalOutputs({', '.join(main)})"
    return ["if torch.jit.is_scripting() or self.training:", f"    return Outputs({allv})", f"return {tail}"]
