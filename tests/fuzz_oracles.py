"""Differential oracles over generated specs: every number netc infers for a random valid spec
(tests/test_fuzz.py's `spec_text`, the one generator) against an independent measurement of the
module it builds. One function per oracle; each takes the spec's text and a scratch folder, and
raises AssertionError on a discrepancy. tests/test_fuzz_oracles.py runs each on a few examples,
`make fuzz` (tools/fuzz.py) on thousands.

- params and MACs: torch's parameter count of each op's module, and `FlopCounterMode` on a real
  forward. netc's MACs are those of conv, separable conv, transposed conv and linear, the ops whose
  kernels FlopCounterMode counts (convolution, mm/addmm/bmm: 2 FLOPs per MAC); it counts nothing
  for the other ops (normalisation, pooling, activations, resampling), which netc reports as other
  FLOPs, an estimate no counter checks. So the totals must be equal, and so must each module's own.
- shapes: every op's output shape from forward hooks on a real CPU forward (training mode, so
  auxiliary heads run), and the outputs';
- forward activation memory: the bytes `netc.analysis.train.predict` says a training-mode forward
  leaves alive (`saved`: what the backward reads, and the outputs the loss reads) against the
  distinct storages autograd saved (`saved_tensors_hooks`) and the outputs, with parameters,
  buffers and the input left out;
- generated code vs the interpreter: `test_fuzz.py::test_backends_agree_on_generated_specs`;
- ONNX: the exported file run by onnxruntime against the torch module, outputs and values;
- import: `netc import` of the built module gives a spec that verifies and has the same
  parameters, MACs and output shapes;
- verify: `netc verify` of the spec against its own generated code says verified.

A spec that does not compile or build is not an example (`assume`): counts are of valid specs.
A backend may refuse a network only with a NetcError; each refusal is a hypothesis `event`.
"""
from __future__ import annotations

import ast
from pathlib import Path

import torch
from hypothesis import assume, event

import netc
from netc.errors import NetcError
from tests.conftest import calibrate, randomise
from tests.test_fuzz import compile_or_error


def valid(text: str):
    """The Network of a spec that compiles and builds; any other spec is not an example."""
    net = compile_or_error(text, "fuzz.yaml")
    assume(net is not None)
    try:
        net.build(device="meta")
    except NetcError:
        assume(False)
    return net


def built(net):
    """The interpreter's module on the CPU with random weights and calibrated BN statistics."""
    torch.manual_seed(0)
    module = net.build()
    randomise(module)
    calibrate(module, net.input_shape)
    return module


def outputs(out) -> list:
    return list(out) if isinstance(out, (tuple, list)) else [out]


def params_and_macs(text: str, tmp: Path) -> None:
    from torch.utils.flop_counter import FlopCounterMode

    net = valid(text)
    module = net.build()
    leaves = module.leaves()
    for _, d in net.nodes():
        leaf = leaves.get(d.scope)
        own = leaf.numel() if isinstance(leaf, torch.nn.Parameter) else sum(
            p.numel() for p in (leaf.parameters() if leaf is not None else ()))
        assert own == d.params, (d.scope, d.op, own, d.params)
    assert sum(p.numel() for p in module.parameters()) == net.params
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        module.eval()(torch.zeros(1, *net.input_shape))
    assert counter.get_total_flops() == 2 * net.macs, (counter.get_total_flops(), net.macs)
    counts = counter.get_flop_counts()
    for _, d in net.nodes():
        if d.scope in counts and d.scope in leaves:
            assert sum(counts[d.scope].values()) == 2 * d.macs, (d.scope, d.op)


def shapes(text: str, tmp: Path) -> None:
    net = valid(text)
    module = built(net)
    seen: dict[str, tuple] = {}
    named = dict(module.named_modules())

    def record(scope):
        def hook(_m, _i, out):
            seen.setdefault(scope, tuple(out.shape[1:]))  # returns None: the output stays
        return hook

    hooks = [named[d.scope].register_forward_hook(record(d.scope))
             for _, d in net.nodes() if d.scope in named and named[d.scope] is not module]
    try:
        with torch.no_grad():  # training mode: auxiliary heads run too
            got = outputs(module.train()(torch.randn(2, *net.input_shape)))
    finally:
        for h in hooks:
            h.remove()
    for _, d in net.nodes():
        if d.scope in seen:
            assert seen[d.scope] == tuple(d.shape), (d.scope, d.op, seen[d.scope], d.shape)
    event(f"shapes: {'every op' if len(seen) == len(list(net.nodes())) else 'the ops with a module'} hooked")
    # as a multiset: the IR lists outputs as declared, the forward returns the main one first
    assert sorted(tuple(o.shape) for o in got) == sorted((2, *net.graph.node(nid).shape) for _, nid, _ in net.outputs)


def measured_forward_bytes(module, input_shape, batch: int) -> int:
    """Bytes of the distinct storages a training-mode forward leaves alive for the backward and
    the loss: what autograd saved, and the outputs; parameters, buffers and the input left out."""
    x = torch.randn(batch, *input_shape)
    held = {t.untyped_storage().data_ptr() for t in [x, *module.parameters(), *module.buffers()]}
    saved = []

    def pack(t):
        saved.append(t)  # held, so no storage is freed and reused while counting
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = outputs(module.train()(x))
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in [*saved, *out]}
    return sum(n for ptr, n in storages.items() if ptr not in held)


def forward_memory(text: str, tmp: Path) -> None:
    from netc.analysis.train import predict

    net = valid(text)
    module = built(net)
    predicted, measured = predict(net, 2).saved, measured_forward_bytes(module, net.input_shape, 2)
    assert predicted == measured, (predicted, measured)


def onnx_export(text: str, tmp: Path) -> None:
    import onnxruntime

    net = valid(text)
    module = built(net)
    path = tmp / "fuzz.onnx"
    try:
        net.export_onnx(path, verify=False, module=module)
    except NetcError as exc:
        event(f"onnx: refused ({exc.diagnostics[0].code})")
        return
    x = torch.randn(1, *net.input_shape, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        want = outputs(module.eval()(x))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    assert len(got) == len(want), f"ONNX returns {len(got)} outputs, the eval module {len(want)}"
    for g, w in zip(got, want):
        g = torch.from_numpy(g)
        assert g.shape == w.shape, (g.shape, w.shape)
        assert torch.allclose(g, w, atol=1e-4, rtol=1e-4, equal_nan=True), (g - w).abs().max()
    event("onnx: exported and compared")


def import_built(text: str, tmp: Path) -> None:
    from netc.api import import_spec

    net = valid(text)
    (tmp / "fuzz.yaml").write_text(text, encoding="utf-8")
    path = tmp / "fuzz_source.py"
    path.write_text(f"import netc\n\n\ndef make():\n    return netc.load({str(tmp / 'fuzz.yaml')!r}).build()\n",
                    encoding="utf-8")
    try:
        imported, report = import_spec(f"{path}:make", {}, net.input_shape)
    except NetcError as exc:
        message = exc.diagnostics[0].message
        first = "x".join(map(str, net.input_shape))
        if net.graph.size_from_input is not None and f"at {first}:" not in message:
            # the built module follows the input where the spec reads $in_h/$in_w; the import writes the
            # sizes it traced as numbers, so it agrees at the traced size only (a limit of netc import)
            assert "the imported spec differs" in message, message
            event("import: sized by the input, equal at the traced size only")
            return
        assert "the imported spec differs" not in message, message
        event(f"import: refused ({exc.diagnostics[0].code})")
        return
    assert report.verified, report.summary()
    again = netc.loads(imported, "<import>")
    assert (again.params, again.macs) == (net.params, net.macs)
    # the IR lists outputs as declared, the import as the forward returns them (the main one first)
    assert sorted(again.graph.node(n).shape for _, n, _ in again.outputs) == sorted(
        net.graph.node(n).shape for _, n, _ in net.outputs)
    event("import: imported and verified")


def verify_generated(text: str, tmp: Path) -> None:
    from netc.api import verify

    net = valid(text)
    try:
        code = net.codegen()
    except NetcError as exc:
        event(f"verify: codegen refused ({exc.diagnostics[0].code})")
        return
    path = tmp / "fuzz_generated.py"
    path.write_text(code, encoding="utf-8")
    factory = [n.name for n in ast.parse(code).body if isinstance(n, ast.FunctionDef)][-1]

    def compile_at(shape=None):
        return netc.loads(text, "fuzz.yaml", input_shape=shape)

    report = verify(compile_at, f"{path}:{factory}")
    assert report.verified, report.summary()
    event("verify: verified" + (" (a second size the spec refuses)" if report.refused_sizes else ""))


def codegen(text: str, tmp: Path) -> None:
    from tests.test_fuzz import test_backends_agree_on_generated_specs

    valid(text)
    test_backends_agree_on_generated_specs.hypothesis.inner_test(text)


ORACLES = {"params_macs": params_and_macs, "shapes": shapes, "forward_memory": forward_memory,
           "codegen": codegen, "onnx": onnx_export, "import": import_built, "verify": verify_generated}
