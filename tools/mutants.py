"""Mutation testing of `netc verify`: small changes to a compiled network that change what it
computes but not its shapes or its state_dict - the mistakes a hand-written spec makes - must
each be rejected by the verifier against the network's reference model.

Operators, applied to one IR node (a site) of a compiled spec, the same site at every input size:
  act->identity   an activation (relu, silu, hardswish, ...) dropped
  bn.eps          a batch norm's eps x100 (1e-5 -> 1e-3)
  maxpool->avg    a max pool computed as an average pool of the same window
  conv.dilate     a 3x3 stride-1 conv with padding 1 given dilation 2 and padding 2 (same shapes)
  cat.swap        a concatenation's inputs in reverse order
  add->mul        a residual sum computed as a product (every input still read, shapes kept)
  scale.half      a constant scaling (residual scale) halved
A mutant the verifier accepts is a survivor: either the verifier is blind there, or the mutant is
equivalent (computes the same function); each is reported for a person to judge.

    python tools/mutants.py                       # every site of every operator (up to --per), RESULTS
    python tools/mutants.py --specs resnet18 --per 3
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from netc.errors import NetcError  # noqa: E402
from netc.ir.graph import set_inputs  # noqa: E402
from netc.ops import REGISTRY  # noqa: E402
from netc.ops.activation import Activation  # noqa: E402

# the bundled specs with a torchvision reference, at a small size that every one of them takes
SPECS = ["resnet18", "resnet50", "mobilenet_v3_small", "efficientnet_b0", "shufflenet_v2_x1_0", "googlenet",
         "densenet121", "regnet_y_400mf", "convnext_tiny", "vgg11_bn", "alexnet_torchvision", "resnext50_32x4d"]
SIZE = (3, 64, 64)


def _set(node, **fields) -> None:
    for name, value in fields.items():
        setattr(node, name, value)


def _attrs(node, **changes):
    return node.attrs.model_copy(update=changes)


def _is_activation(d) -> bool:
    return isinstance(REGISTRY[d.op], Activation) and len(d.inputs) == 1


def _dilatable(d) -> bool:
    a = d.attrs
    return d.op == "conv" and a.k in (3, [3, 3]) and a.s in (1, [1, 1]) and a.p in (1, [1, 1]) \
        and a.d in (1, [1, 1])


OPERATORS = {
    "act->identity": (_is_activation, lambda g, nid, d: _set(d, op="identity", attrs=REGISTRY["identity"].Attrs())),
    "bn.eps": (lambda d: d.op == "bn", lambda g, nid, d: _set(d, attrs=_attrs(d, eps=d.attrs.eps * 100))),
    "maxpool->avg": (lambda d: d.op == "maxpool" and d.attrs.d in (1, [1, 1]),
                     lambda g, nid, d: _set(d, op="avgpool", attrs=REGISTRY["avgpool"].Attrs(
                         k=d.attrs.k, s=d.attrs.s, p=d.attrs.p, ceil_mode=d.attrs.ceil_mode))),
    "conv.dilate": (_dilatable, lambda g, nid, d: _set(d, attrs=_attrs(d, d=2, p=2))),
    "cat.swap": (lambda d: d.op == "cat" and len(set(d.inputs)) > 1,
                 lambda g, nid, d: set_inputs(g, nid, list(reversed(d.inputs)))),
    "add->mul": (lambda d: d.op == "add" and not d.attrs.broadcast,
                 lambda g, nid, d: _set(d, op="mul", attrs=REGISTRY["mul"].Attrs())),
    "scale.half": (lambda d: d.op == "scale",
                   lambda g, nid, d: _set(d, attrs=_attrs(d, factor=d.attrs.factor / 2))),
}


def sites(network, per: int | None = None) -> list[tuple[str, str]]:
    """(operator, scope) of each place an operator applies, at most `per` per operator, spread
    over the network (first, last, and evenly between)."""
    found = {name: [d.scope for _, d in network.nodes() if applies(d)] for name, (applies, _) in OPERATORS.items()}
    out = []
    for name, scopes in found.items():
        if per is not None and len(scopes) > per:
            step = (len(scopes) - 1) / max(1, per - 1)
            scopes = [scopes[round(k * step)] for k in range(per)]
        out += [(name, scope) for scope in scopes]
    return out


def mutate(network, operator: str, scope: str):
    """`network` with `operator` applied at the node of `scope` (in place; returned)."""
    nid, d = next((nid, d) for nid, d in network.nodes() if d.scope == scope)
    OPERATORS[operator][1](network.graph, nid, d)
    return network


def run(spec: str, per: int | None, size=SIZE):
    """[(operator, scope, killed, the verifier's summary)] for the sites of one bundled spec."""
    import netc
    from netc.interop.source import load_source
    from netc.interop.verify import verify

    network = netc.load(spec, input_shape=size)
    reference = network.spec.meta["torchvision"]
    results = []
    for operator, scope in sites(network, per):
        report = verify(lambda shape, o=operator, s=scope: mutate(netc.load(spec, input_shape=shape), o, s),
                        load_source(f"torchvision:{reference}").module, size)
        results.append((operator, scope, not report.verified, report.summary()))
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--specs", nargs="+", default=SPECS)
    ap.add_argument("--per", type=int, default=4, help="sites per operator and network (0: all)")
    args = ap.parse_args()
    killed = total = 0
    for spec in args.specs:
        t = time.perf_counter()
        try:
            results = run(spec, args.per or None)
        except NetcError as exc:
            print(f"{spec:<20} not run: {exc}", flush=True)
            continue
        k = sum(r[2] for r in results)
        killed, total = killed + k, total + len(results)
        print(f"{spec:<20} {k}/{len(results)} killed ({time.perf_counter() - t:.0f} s)", flush=True)
        for operator, scope, dead, summary in results:
            if not dead:
                print(f"  SURVIVED {operator} at {scope}: {summary}", flush=True)
    print(f"mutation score: {killed}/{total} killed")


if __name__ == "__main__":
    main()
