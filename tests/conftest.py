import ast
import contextlib
import functools
import importlib.util
import math
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"

# pytest -n N runs N workers: each gets its share of the cores for torch's (and onnxruntime's, see
# verify.py) intra-op threads. Oversubscribed OpenMP threads spin at every barrier: with 2 workers of
# 2 threads on 2 cores, test_torch_train's step over every spec took 210 s; with 1 thread each, 93 s.
# Set before torch is imported (it reads OMP_NUM_THREADS once); subprocesses inherit it.
if "PYTEST_XDIST_WORKER_COUNT" in os.environ:
    os.environ.setdefault("OMP_NUM_THREADS",
                          str(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))))



def pytest_collection_modifyitems(items):
    """Tests marked `heavy` first, longest first within their parametrization: pytest-xdist hands
    tests out in collection order, and a long test handed out last keeps one worker busy while the
    others idle (a full run ended with ~6 minutes on one of two workers)."""
    items.sort(key=lambda item: item.get_closest_marker("heavy") is None)


@pytest.fixture
def netc_cli():
    """Run the CLI in-process via click's runner: (exit code, stdout, stderr)."""
    from click.testing import CliRunner

    from netc.cli import main

    def run(*args):
        runner = CliRunner()
        result = runner.invoke(main, [str(a) for a in args], catch_exceptions=False)
        return result.exit_code, result.stdout, result.stderr

    return run


def run_without_torch(*argv: str) -> str:
    """Run `netc ARGV` in a fresh interpreter, assert it succeeded without importing torch; its stdout."""
    code = ("import sys\n"
            "from netc.cli import main\n"
            f"try:\n    main({list(argv)!r})\n"
            "except SystemExit as e:\n    assert e.code in (0, None), e.code\n"
            f"assert 'torch' not in sys.modules, 'netc {argv[0]} imported torch'\n"
            "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("ok")
    return out.stdout


# --- reference models -------------------------------------------------------------------------

def reference_model(name: str, source: str = "torchvision", device: str | None = None, **kwargs):
    """The reference implementation `name` from torchvision (`torchvision.models.<name>`) or timm
    (`timm.create_model(name)`), randomly initialised, never pretrained (a segmentation model's
    backbone neither: torchvision's default is ImageNet weights), built on `device` (None:
    torch's current default device). Models on the `meta` device hold no data, so each is built
    once per session and shared (callers may switch train/eval, not change the model); on any
    other device every call builds a fresh one. GoogLeNet and Inception-v3 warn unless told their
    init: `init_weights=False` (PyTorch's defaults) unless given."""
    if source == "torchvision" and name in ("googlenet", "inception_v3"):
        kwargs.setdefault("init_weights", False)
    if device == "meta":
        return _reference_on_meta(name, source, tuple(sorted(kwargs.items())))
    return _build_reference(name, source, device, kwargs)


@functools.lru_cache(maxsize=None)
def _reference_on_meta(name, source, kwargs):
    return _build_reference(name, source, "meta", dict(kwargs))


def _build_reference(name, source, device, kwargs):
    import torch

    with torch.device(device) if device else contextlib.nullcontext():
        if source == "timm":
            import timm

            return timm.create_model(name, pretrained=False, **kwargs)
        if source != "torchvision":
            raise ValueError(f"unknown reference source {source!r}")
        import torchvision

        if name in torchvision.models.list_models(module=torchvision.models.segmentation):
            kwargs.setdefault("weights_backbone", None)
        with _regnet_stages_on_cpu():
            return torchvision.models.get_model_builder(name)(**kwargs)


@contextlib.contextmanager
def _regnet_stages_on_cpu():
    """torchvision computes RegNet's stage widths from (w0, wa, wm) with tensor ops
    (BlockParams.from_init_params), which cannot be read back on the meta device: compute them on
    the CPU; the modules are still built on the current device."""
    from torchvision.models import regnet

    original = regnet.BlockParams.__dict__["from_init_params"]

    def on_cpu(cls, *args, **kwargs):
        import torch

        with torch.device("cpu"):
            return original.__func__(cls, *args, **kwargs)

    regnet.BlockParams.from_init_params = classmethod(on_cpu)
    try:
        yield
    finally:
        regnet.BlockParams.from_init_params = original


# --- interpreter vs generated code --------------------------------------------------------------

def import_source(source: str, tmp_path: Path):
    path = tmp_path / f"gen_{uuid.uuid4().hex}.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def factory(mod):
    """The module's factory: its last top-level function (the template puts it last)."""
    tree = ast.parse(Path(mod.__file__).read_text(encoding="utf-8"))
    name = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)][-1]
    return getattr(mod, name)


def shapes(module) -> dict:
    """state_dict keys and tensor shapes."""
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def randomise(module):
    """Weights scaled by fan-in and BN statistics away from their defaults, so every
    parameter and buffer matters to the output and deep nets stay finite."""
    import torch

    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in module.named_parameters():
            _fill_like_a_parameter(name, p, g)
        # after to_empty a buffer holds whatever was in memory: every one a forward reads is set
        for name, b in module.named_buffers():
            if name.endswith("num_batches_tracked"):
                b.zero_()
            elif name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=g) + 0.5)
            elif name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=g) * 0.1)
            elif name.endswith(("weight", "bias")):  # an affine kept as buffers (FrozenBatchNorm2d)
                _fill_like_a_parameter(name, b, g)


def _fill_like_a_parameter(name, t, g):
    import torch

    if t.dim() > 1:
        t.copy_(torch.randn(t.shape, generator=g) / math.sqrt(t[0].numel()))
    else:
        t.copy_(torch.randn(t.shape, generator=g) * 0.1 + (1.0 if name.endswith("weight") else 0.0))


def calibrate(module, input_shape):
    """BN running statistics set to those of one batch, so eval outputs stay finite even
    through 600 residual blocks (ResNet-1202). A batch of 8: on 1x1 maps (EfficientNetV2's last
    stages at a 32x32 input) two samples give near-zero variances whose inverses blow the eval
    outputs up to 1e19."""
    import torch

    bns = [m for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.momentum = None  # cumulative average: after one batch, exactly its statistics
        m.reset_running_stats()
    if bns:
        with torch.no_grad():
            module.train()(torch.randn(8, *input_shape, generator=torch.Generator().manual_seed(4)))
    module.eval()


def committed_source(network) -> str:
    """generated/<file> of a bundled spec compiled at its defaults, as committed. It is what
    generate() writes for that network (test_codegen::test_committed_file_is_current), so the tests
    of the generated code's behaviour read it rather than generate every bundled spec again."""
    from netc.backends.codegen import output_name

    return (ROOT / "generated" / output_name(network)).read_text(encoding="utf-8")


def pair(network, tmp_path, input_shape=None, source=None):
    """(interpreter module, generated module) holding the same weights, with the same state_dict
    keys in the same order; the generated module from `source`, by default generated from
    `network`."""
    import torch

    from netc.backends.torch.module import build_module

    ref = build_module(network, device="meta")
    ref.to_empty(device="cpu")
    with torch.no_grad():  # memory after to_empty differs by machine: NaN where randomise misses a tensor, on every one
        for t in (*ref.parameters(), *ref.buffers()):
            if t.is_floating_point():
                t.fill_(float("nan"))
    randomise(ref)
    calibrate(ref, input_shape or network.input_shape)
    mod = import_source(network.codegen() if source is None else source, tmp_path)
    with torch.device("meta"):
        gen = factory(mod)()
    assert shapes(gen) == shapes(ref)
    assert list(gen.state_dict()) == list(ref.state_dict())  # and in the interpreter's order
    gen.load_state_dict(ref.state_dict(), strict=True, assign=True)
    return ref, gen
