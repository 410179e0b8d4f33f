"""Stage 5 of the code generator: the file, from its classes.

Consumes a built `Generator` (its classes, what they use, the network's outputs); produces the
module's source: docstring, imports, the runtime modules torch lacks (their source copied from
`netc.backends.torch.runtime`), the outputs NamedTuples, the classes and the factory, rendered
by the Jinja layouts in `templates/` and formatted by `ruff format` (pinned), byte-identical
for the same spec. Also the spec's `init:` scheme as a torchvision-style init loop.
"""
from __future__ import annotations

import inspect
import subprocess
import sys
import textwrap
from functools import lru_cache
from pathlib import Path

import jinja2

from netc.backends.codegen.fitting import literal, norm
from netc.backends.codegen.names import RUNTIME
from netc.errors import error


@lru_cache(maxsize=None)
def env_tpl(name):
    """A Jinja template of `templates/` (`module.py.j2`, `class.py.j2`)."""
    env = jinja2.Environment(loader=jinja2.PackageLoader("netc.backends.codegen", "templates"),
                             keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True,
                             undefined=jinja2.StrictUndefined, autoescape=False)
    env.filters["doc"] = doc_text
    env.filters["indent_body"] = lambda s, n: textwrap.indent(s, " " * n) if s else " " * n + "pass"
    return env.get_template(name)


def render_module(gen, hidden: bool = False) -> str:
    """The file's text (unformatted) from a built `Generator`; `hidden` writes `_` for every
    value of this compile's params (signature defaults, totals, fixed values)."""
    from netc.backends.torch.module import outputs_type

    classes, net, outputs = gen.classes, gen.net, gen.outputs
    model = classes.classes[-1]
    factory = gen.factory
    fields = outputs_type(tuple(n for n, _, _ in outputs))._fields if len(outputs) > 1 else ()
    eval_fields = [f for f, (_, _, aux) in zip(fields, outputs) if not aux]
    runtime = [inspect.getsource(getattr(_runtime(), n)) for n in RUNTIME if n in gen.drafter.runtime_used]
    params = [(py, "_" if hidden else literal(d)) for _, py, d in model.params]
    guard = _guard(net, gen.drafter.unfollowed)
    text = env_tpl("module.py.j2").render(
        spec_name=net.name, file=display_path(net.file), description=net.spec.description,
        params="_" if hidden else f"{net.params:,}", macs="_" if hidden else f"{net.macs:,}",
        input=" x ".join(str(d) for d in net.input_shape),
        uses_math=classes.uses_math, uses_ordered=gen.drafter.uses_ordered, uses_fnmatch=classes.uses_fnmatch,
        init_note=classes.init_note,
        tensor=bool(fields),
        typing=", ".join(t for t, on in (("NamedTuple", bool(fields)), ("Optional", any(
            aux for _, _, aux in outputs)), ("Tuple", guard is not None)) if on),
        runtime=runtime, classes=[c.shape if hidden else c.code for c in classes.classes],
        fields=fields, aux=[aux for _, _, aux in outputs],
        eval_fields=eval_fields if len(eval_fields) > 1 and len(eval_fields) < len(fields) else [],
        model=model.name, factory=factory, factory_params=params,
        fixed=", ".join(p if hidden else f"{p}={norm(v)!r}" for p, v in classes.fixed),
        features=gen.features, probe="_" if hidden else repr(tuple(net.input_shape)), guard=guard,
        outputs=[(f, aux) for f, (_, _, aux) in zip(fields, outputs)])
    return text


def _guard(network, unfollowed) -> dict | None:
    """The check of the input size in the factory of a network whose generated code cannot follow it
    (netc.backends.torch.size_guard.codegen_guard)."""
    from netc.backends.torch.size_guard import codegen_guard

    guard = codegen_guard(network, unfollowed)
    if guard is None:
        return None
    size, message = guard
    where = network.graph.size_fixed or next((d.loc for nid, d in network.nodes() if nid in unfollowed), None)
    if where is not None and Path(where.file).is_absolute():  # the spec's path as the header writes it
        message = message.replace(str(where.file), display_path(where.file), 1)
    # compared as lists: a shape is a list in TorchScript (the hook must script) and list() of one in eager
    return {"axes": len(size), "size": repr(list(size)), "message": repr(message)}


def init_loop(network, callee_of) -> tuple[list[str], bool] | None:
    """The spec's `init:` scheme (a preset, then rules; later rules win) as
    torchvision writes it: a loop over the modules at the end of the model's `__init__`.
    Returns (lines, whether they use fnmatch), or None where a rule tells `conv` from `sepconv` (the
    separable conv's inner convs are `nn.Conv2d` too, so the loop could not tell them apart)."""
    scheme = network.init_scheme()
    classes: dict[str, set[str]] = {}
    for nid, d in network.nodes():
        classes.setdefault(d.op, set()).add(callee_of(nid))
    lines, scoped, uses_fnmatch = [], False, False
    for rule in scheme.in_order():
        conds = []
        if rule.op is not None:
            names = [rule.op] if isinstance(rule.op, str) else list(rule.op)
            if "sepconv" in classes and ("conv" in names) != ("sepconv" in names):
                return None
            cls = sorted({c for n in names for c in classes.get(n, ())} - {"SeparableConv2d"}
                         | ({"nn.Conv2d"} if "sepconv" in names and "sepconv" in classes else set()))
            if not cls:
                continue
            conds.append(f"isinstance(m, {cls[0]})" if len(cls) == 1 else f"isinstance(m, ({', '.join(cls)}))")
        if rule.scope is not None:
            scoped = True
            if any(c in rule.scope for c in "*?["):
                uses_fnmatch = True
                conds.append(f"(fnmatch.fnmatchcase(name, {rule.scope!r}) or "
                             f"fnmatch.fnmatchcase(name, {rule.scope + '.*'!r}))")
            else:
                conds.append(f"(name == {rule.scope!r} or name.startswith({rule.scope + '.'!r}))")
        body = []
        for kind in ("weight", "bias"):
            fill = getattr(rule, kind)
            if fill is None or fill == "default":
                continue
            call = _fill_call(fill, "m." + kind)
            # a bias may be off, BN may have no affine weight, a scope also matches containers
            if kind == "bias" or rule.scope is not None or "bn" in (rule.op or ()):
                body += [f"if getattr(m, {kind!r}, None) is not None:", f"    {call}"]
            else:
                body.append(call)
        if body:
            lines.append(f"if {' and '.join(conds) if conds else 'True'}:")
            lines += ["    " + b for b in body]
    if not lines:
        return [], False
    head = "for name, m in self.named_modules():" if scoped else "for m in self.modules():"
    return [head] + ["    " + ln for ln in lines], uses_fnmatch


def _fill_call(fill, target: str) -> str:
    if isinstance(fill, (int, float)):
        return f"nn.init.constant_({target}, {float(fill)!r})"
    if fill in ("zeros", "ones"):
        return f"nn.init.{fill}_({target})"
    kind = fill.kind
    args = getattr(fill, kind)
    if kind == "constant":
        return f"nn.init.constant_({target}, {float(args)!r})"
    kwargs = ", ".join(f"{k}={v!r}" for k, v in args.model_dump().items())
    return f"nn.init.{kind}_({target}, {kwargs})"


def _runtime():
    import netc.backends.torch.runtime

    return netc.backends.torch.runtime


def doc_text(s: str) -> str:
    """Free text made safe inside a triple-quoted docstring (escaped, never closes it)."""
    return repr(str(s))[1:-1].replace('"', '\\"')


def display_path(file: str) -> str:
    p = Path(file)
    root = Path(__file__).resolve().parents[3]
    try:
        return p.resolve().relative_to(root).as_posix()
    except ValueError:
        return p.name


def format_source(text: str) -> str:
    try:
        out = subprocess.run([sys.executable, "-m", "ruff", "format", "--isolated", "--line-length", "100", "-"],
                             input=text, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise error("codegen", f"cannot run ruff to format the generated code: {exc}") from None
    if out.returncode != 0:
        raise error("codegen", "ruff could not format the generated code (a bug in netc): "
                    + out.stderr.strip()[:500])
    return out.stdout
