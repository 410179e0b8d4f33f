"""Stage 2b: the forward of one class instance, as source lines.

Consumes a box of the scope tree and the attribute each of its items is reached by; produces
one `Line` per item (`out = self.conv1(x)`, joins inline: `a + b`, `torch.cat([...], 1)`),
variables reused when they die, training-only aux lines marked, and the return statement
(a NamedTuple for several outputs, as the interpreter returns them). `render_forward` joins
the lines, aux lines under `if self.training:` and optional modules under a None test.
"""
from __future__ import annotations

from dataclasses import dataclass

from netc.backends.codegen.names import RESERVED, Names
from netc.backends.codegen.scopes import INLINE_OPS, Box, local_name
from netc.ir.blocks import schedule

# how the forward applies a parameter an op owns on its module (`OwnedParam.fn`)
OWNED_OPERATORS = {"operator.mul": "*"}


@dataclass
class Line:
    """One forward statement: the item it calls, whether it maps a variable onto itself
    (`x = self.downsample(x)`: can be made optional), inside an aux head, names to declare."""

    key: tuple
    text: str
    passthrough: bool
    aux: bool
    declare: tuple = ()


def forward(data, box: Box, attr_of: dict, outputs, pos: dict[int, int]) -> tuple[list[Line], list[str]]:
    """The forward lines of a box (each calls one item, in the interpreter's execution order:
    `pos`, from `netc.ir.blocks.run_order`) and its return."""
    order, stuck = schedule([[it] if kind == "op" else it.nodes for kind, it in box.items], data, pos)
    items = box.items if stuck else [box.items[k] for k in order]
    names = Names(RESERVED)
    live: dict[int, str] = {}
    if box.parent is None:
        live[0] = names.take("x")
    else:
        for i, nid in enumerate(box.inputs):
            live[nid] = names.take("x" if i == 0 else f"x{i}")
    uses: dict[int, list[int]] = {}
    for idx, (kind, it) in enumerate(items):
        ins = data[it]["inputs"] if kind == "op" else it.inputs
        for v in ins:
            uses.setdefault(v, []).append(idx)
    end = len(items)
    results = result_values(box, outputs)
    for v in results:
        uses.setdefault(v, []).append(end)
    lines: list[Line] = []
    for idx, (kind, it) in enumerate(items):
        ins = data[it]["inputs"] if kind == "op" else it.inputs
        outs = [it] if kind == "op" else it.outputs
        args = [live[v] for v in ins]
        if kind == "op":
            op = data[it]["op"]
            if op in ("add", "mul"):
                expr = (" + " if op == "add" else " * ").join(args)
            elif op == "chunk":
                a = data[it]["attrs"]
                dim = a.dim % len(data[ins[0]]["shape"]) + 1
                expr = f"{args[0]}.chunk({a.parts}, {dim})[{a.index}]"
            elif data[it].get("owned") is not None:  # a parameter of this module (layer scale)
                expr = f"{attr_of[('op', local_name(data, it, box))]} {OWNED_OPERATORS[data[it]['owned'].fn]} {args[0]}"
            elif op == "cat":
                expr = f"torch.cat([{', '.join(args)}], 1)"
            elif op == "scale":
                factor = attr_of.get(("op", local_name(data, it, box))) or repr(data[it]["attrs"].factor)
                expr = f"{args[0]} * {factor}"
            else:
                expr = f"{attr_of[('op', local_name(data, it, box))]}({', '.join(args)})"
            pref = "out"
        else:
            expr = f"{attr_of[('box', it.local)]}({', '.join(args)})"
            pref = it.local
        dead = [v for v in dict.fromkeys(ins) if max(uses[v]) == idx]
        aux = (data[it]["aux"] if kind == "op" else it.aux) and not box.aux
        # a training-only line never hands its names on: its outputs are declared `= None`
        # before the `if self.training:` block, which must not clobber a value read inside it
        # (a head written after the trunk reads an earlier value through `from:`)
        reuse = live[ins[0]] if len(outs) == 1 and len(ins) == 1 and dead == ins and not aux else None
        for v in dead:
            if live[v] != reuse and not aux:
                names.used.discard(live[v])
        outnames = []
        for _ in outs:
            if reuse is not None:
                outnames.append(reuse)
            else:
                outnames.append(names.take("out" if not pref or pref[0].isdigit() or pref.startswith("_")
                                           else pref))
        for v in dead:
            del live[v]
        declare = []
        for o, n in zip(outs, outnames):
            live[o] = n
            if aux and any(u > idx for u in uses.get(o, [])):
                declare.append(n)
        key = ("op", local_name(data, it, box)) if kind == "op" else ("box", it.local)
        lines.append(Line(key, f"{', '.join(outnames)} = {expr}", reuse is not None and kind == "box" or (
            reuse is not None and data[it]["op"] not in INLINE_OPS), aux, tuple(declare)))
    return lines, returns(box, live, results, outputs)


def render_forward(lines: list[Line], tail: list[str], optional: dict) -> str:
    """Forward body: aux lines under `if self.training:`, optional modules under a None test."""
    body: list[str] = []
    in_aux = False
    for i, ln in enumerate(lines):
        if ln.aux and not in_aux:
            for later in lines[i:]:
                if not later.aux:
                    break
                body.extend(f"{n}: Optional[Tensor] = None" for n in later.declare)
            body.append("if self.training:")
        in_aux = ln.aux
        pad = "    " if ln.aux else ""
        if ln.key in optional:
            body.append(f"{pad}if {optional[ln.key]} is not None:")
            pad += "    "
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
