"""`netc bench` and `netc build --optimize` on a tiny spec (a few forwards, well under a second)."""
from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from netc.backends.torch.benchmark import Timing  # noqa: E402

TINY = """
netc: 1
name: tiny
input: [3, 16, 16]
layers:
  - {name: conv, conv: {out: 8, k: 3, p: 1, bias: false}}
  - {name: bn, bn: {}}
  - relu
  - gap
  - flatten
  - {name: drop, dropout: {p: 0.2}}
  - {name: fc, linear: {out: 5}}
"""
# conv 8*16*16*3*3*3 + fc 8*5
TINY_MACS = 8 * 16 * 16 * 27 + 40


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return path


def test_bench_text(netc_cli, tiny):
    code, out, err = netc_cli("bench", tiny, "--device", "cpu", "--batch", "2", "--iters", "2", "--warmup", "1")
    assert code == 0, err
    assert "tiny on cpu" in out and "batch 2" in out and "2 timed forwards after 1 warm-up" in out
    assert "images/s" in out and "p50" in out and "p99" in out
    assert f"{TINY_MACS / 1e3:.2f} KMACs/image" in out


def test_bench_json_optimized(netc_cli, tiny):
    code, out, err = netc_cli("bench", tiny, "--device", "cpu", "--batch", "3", "--iters", "2", "--optimize",
                              "inference", "--json", "--threads", "1")
    assert code == 0, err
    r = json.loads(out)
    assert r["batch"] == 3 and r["iters"] == 2 and r["optimize"] == "inference"
    assert r["macs_per_image"] == TINY_MACS
    assert r["images_per_s"] > 0 and 0 < r["latency_min_ms"] <= r["latency_ms"]["p50"] <= r["latency_ms"]["p99"]
    # achieved FLOP/s is 2 x MACs x batch over the median latency
    assert r["achieved_flops_per_s"] == pytest.approx(2 * TINY_MACS * 3 / (r["latency_ms"]["p50"] / 1e3))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without CUDA")
def test_bench_cuda_without_gpu_is_a_clean_error(netc_cli, tiny):
    code, out, err = netc_cli("bench", tiny, "--device", "cuda", "--iters", "1")
    assert code == 2 and "CUDA" in err and "Traceback" not in err


def test_build_optimize_cli(netc_cli, tiny):
    code, out, err = netc_cli("build", tiny, "--device", "cpu", "--optimize", "inference", "-q", "--codegen-dir", "")
    assert code == 0, err
    # the folded conv gains a bias (8), the batch norm's 16 parameters go
    assert f"{8 * 27 + 8 + 45} parameters" in out
    assert "optimized for inference" in out


def test_timing_percentiles_and_throughput():
    t = Timing(batch=4, latencies=(0.4, 0.1, 0.2, 0.3))
    assert t.percentile(50) == 0.2 and t.percentile(99) == 0.4 and t.percentile(0) == 0.1
    assert t.images_per_s == pytest.approx(16 / 1.0)
    assert t.flops_per_s(1000) == pytest.approx(2 * 1000 * 4 / 0.2)


def test_api_bench_is_what_the_command_prints(tiny):
    """`Network.bench` runs the benchmark `netc bench` formats: the command only prints it."""
    import netc

    ticks = []
    result = netc.load(tiny).bench("cpu", batch=2, iters=3, warmup=1, threads=1, tick=ticks.append)
    assert ticks == ["warmup", "timed", "timed", "timed"]
    assert result.device.type == "cpu" and result.where == "cpu, 1 thread" and result.precision == "float32"
    assert len(result.timing.latencies) == 3 and result.timing.batch == 2 and result.macs == TINY_MACS
    assert result.flops_per_s == pytest.approx(2 * TINY_MACS * 2 / result.timing.percentile(50))
