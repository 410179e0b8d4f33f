"""IR -> standalone PyTorch source (`generated/<name>.py`): readable, formatted, deterministic.

Design: classes are derived from the *IR*, and their constructor arguments are *fitted* to
the spec's expressions.

Why not translate a template body symbolically (its YAML, `$` dropped)? Because what the
interpreter builds depends on evaluation, not only on text: `if:` and positional naming
interact (an unnamed layer after a conditional one is `3` or `4`), op facets turn
attributes into constructor arguments with their own rules (`module()` omits defaults,
resolves `same` padding), and `from:` / `side` can cross template boundaries. A symbolic
translation would re-implement the expander and could drift from it. Instead:

1. Every named block of the IR becomes a module container (a scope). A container that
   is a plain chain of modules named 0..n-1 (or any names) becomes an inline
   `nn.Sequential`; runs of identical repeated blocks become `*[Block(...) for _ in
   range(n)]`. Every named template instance (`use:` with a name) becomes an instance of a
   class named after its template; any other non-chain block gets a class of its own.
2. Each instance is rendered once with *holes* for its constructor values (read from the
   op registry's `module()` facet, the same `ModuleSpec` the interpreter builds from).
   Instances of one template whose code agrees apart from the holes share one class.
   Each hole is then fitted to a Python expression over the class's arguments: candidates
   are the spec's own expressions for that attribute (`$planes * 4` -> `planes * 4`), the
   tracked channel count of the op's input (`in_channels`, `planes * 4`, `a + b + c` after
   a concat), or a literal. A candidate is kept only if it reproduces the value of every
   instance (evaluated with each instance's bound template arguments, recorded on its IR
   Block), so the code is exact by construction; a hole no candidate explains becomes an
   explicit constructor argument.
3. Instances of one template whose code differs only by items the spec writes under `if:`
   share one class (`merge.py`), written as torchvision writes such blocks: an optional module
   is built under the spec's own condition (`if project:`, `if act == "relu":`, checked on every
   instance) and called under `if self.downsample is not None:`; optional children of an inline
   `nn.Sequential` are appended to a list under their conditions (`layers.append(...)`,
   `nn.Sequential(*layers)`), so positional names shift as the interpreter's do; an optional
   parameter-free join (a residual add) runs under a flag set from its condition
   (`self.use_res_connect = s == 1 and in_channels == out`). A condition Python cannot compute
   (`make_divisible`) becomes a boolean argument. Fallback, by design: other structural
   differences (a repeat count that is an argument, an item under no `if:`) give one class per
   distinct structure (`Block`, `Block2`, …); a value no expression explains becomes an explicit
   argument (`arg0`). An argument a template use leaves out is its declared default, never a name
   of the parent's that happens to have that value. Blocks that are
   not named (transparent `use`/`seq`) are inlined into their parent, as the interpreter's
   state_dict keys require; expressions written inside such inlined templates are rewritten
   through their `args:` into the enclosing class's names (`$out` -> `pool`).

A named block that is not a template instance and whose modules are each called on values from
outside it, or that the data flow leaves and re-enters between its parts, is registered as an
`nn.ModuleList` (`nn.ModuleDict` where its children have names) and its items are the parent's:
the parent's forward calls `self.convs[i]`, `self.fuse_layers[i][j]` and writes the block's joins
inline, as timm's Res2Net and HRNet do (`scopes.py`). A class registers its modules (a list at
its first-written item) in the spec's order, the interpreter's state_dict order, even where a
`from:` naming a later layer makes the forward run them in another. A template instance the data
flow re-enters stays an error: its class has one forward.

The top-level class ends its `__init__` with the spec's `init:` scheme written as torchvision
writes its init loop (`for m in self.modules(): if isinstance(m, nn.Conv2d): ...`), so a model
built from the file starts from the same distributions as `netc build` (not the same draws).

The top-level class computes the spec's `vars` in Python (`c2 = math.ceil(base * width / 3)`)
and its factory takes as keyword arguments the params the code expresses; params that decide
structure (`if:`, repeat counts), are unused, or feed a var Python cannot recompute
(`make_divisible`) are fixed at their compiled value and listed in the factory's docstring.
Fitting explains one compile, so every param the factory would take is also checked against
other compiles of the spec (`exact.py`): one whose other values give other code is fixed too.

The stages, each a module: the spec index (`spec_index.py`), the scope tree (`scopes.py`),
instances drafted with holes (`instances.py`, `forward.py`), holes fitted to expressions
(`fitting.py`), classes (`classes.py`, `merge.py`), the file (`source.py`); `Generator`
(`pipeline.py`) runs them in that order.

Module attributes reproduce the interpreter's names (and so its state_dict keys): names
that are not identifiers are registered with `add_module(repr)` and read with `getattr`,
except stateless modules (activations, pooling), which may be renamed and shared since they
own no state. Parameter-free joins are written inline: `a + b`, `torch.cat([...], 1)`,
`x * 0.17`. Every identifier comes from `netc.backends.codegen.names`; every value from the spec is
emitted with `repr` or as an expression re-printed from its parsed AST with its names
mapped, so nothing in a spec can inject code. Output is formatted by `ruff format`
(pinned) and is byte-identical for the same spec.

Forward conventions are the interpreter's (`netc.backends.torch.module`): eval returns the
main output; with training-only aux heads, training returns a NamedTuple in the spec's
`outputs` order. Under TorchScript the NamedTuple is always returned (aux entries None in
eval), as torchvision's GoogLeNet and Inception3 do.
"""
from __future__ import annotations

from pathlib import Path

from netc.backends.codegen.exact import exact_generator
from netc.backends.codegen.names import sanitize


def generate(network) -> str:
    """The generated PyTorch source of a compiled `netc.api.Network`."""
    return exact_generator(network).generate()


def output_name(network) -> str:
    """`<name>.py`, the name made a valid module name (so the file can be imported)."""
    return f"{sanitize(network.name, 'net')}.py"


def write(network, out_dir: str | Path = "generated") -> Path:
    """Generate and write `<out_dir>/<name>.py` atomically; nothing is written on error."""
    from netc.fsutil import write_atomic

    source = generate(network)
    return write_atomic(Path(out_dir) / output_name(network), source)
