"""`netc bench --vs PEER`: netc's module against the reference implementation under a peer
runtime, same weights, outputs compared before timing."""
import json

import pytest

from netc.backends.torch.benchmark import paired_ratio


def _run(netc_cli, *args):
    code, out, err = netc_cli("bench", *args, "--iters", "2", "--warmup", "1", "--json")
    assert code == 0, err
    return json.loads(out)


def test_vs_torchvision_same_weights(netc_cli):
    # resnet18's spec names torchvision's model: its weights load into it with strict=True
    report = _run(netc_cli, "resnet18", "--input", "3x64x64", "--vs", "torchvision", "--batch", "2",
                  "--optimize", "inference")
    assert report["peer"] == "torchvision resnet18 under eager PyTorch"
    assert [r["batch"] for r in report["results"]] == [1, 2]
    assert all(r["max_abs_diff"] <= 1e-3 and r["speedup"] > 0 for r in report["results"])


def test_vs_onnxruntime(netc_cli):
    pytest.importorskip("onnxruntime", reason="onnxruntime is an optional peer of netc bench --vs")
    report = _run(netc_cli, "lenet5", "--vs", "onnxruntime", "--batch", "4")
    assert report["peer"].startswith("netc's plain module") and report["peer"].endswith("under onnxruntime")
    assert all(r["max_abs_diff"] <= 1e-4 for r in report["results"])


def test_vs_onnxruntime_compares_every_output(netc_cli, tmp_path, monkeypatch):
    """A spec with named outputs: all of them are compared, netc's module compiled or not."""
    pytest.importorskip("onnxruntime", reason="onnxruntime is an optional peer of netc bench --vs")
    monkeypatch.setenv("NETC_CACHE_DIR", str(tmp_path))
    from tests.test_compile import SEVERAL_OUTPUTS

    spec = tmp_path / "several.yaml"
    spec.write_text(SEVERAL_OUTPUTS, encoding="utf-8")
    for extra in ((), ("--optimize", "inference", "--compile")):
        report = _run(netc_cli, str(spec), "--vs", "onnxruntime", "--batch", "2", *extra)
        assert all(r["max_abs_diff"] <= 1e-4 for r in report["results"])


@pytest.mark.heavy
def test_vs_compile(netc_cli, tmp_path, monkeypatch):
    # torch.compile of the reference (one batch size: one compile); netc's side compiled too
    pytest.importorskip("onnxruntime", reason="netc's --compile default backend")
    monkeypatch.setenv("NETC_CACHE_DIR", str(tmp_path))
    report = _run(netc_cli, "lenet5", "--vs", "compile", "--batch", "1", "--optimize", "inference", "--compile")
    assert report["peer"].endswith("under compile") and report["netc"].endswith("--compile default")
    assert [r["batch"] for r in report["results"]] == [1] and report["results"][0]["max_abs_diff"] <= 1e-4


def test_vs_text_report(netc_cli):
    code, out, err = netc_cli("bench", "lenet5", "--vs", "torchvision", "--batch", "3", "--iters", "2")
    assert code == 0, err
    assert "batch 1" in out and "batch 3" in out and "outputs agree" in out


def test_vs_needs_the_cpu(netc_cli):
    code, out, err = netc_cli("bench", "lenet5", "--vs", "compile", "--device", "cuda")
    assert code == 2 and "--vs compares on the CPU" in err


def test_paired_ratio_is_per_repetition():
    times = {"a": [2.0, 4.0, 6.0], "b": [1.0, 4.0, 2.0]}
    assert paired_ratio(times, "a", "b") == 2.0
