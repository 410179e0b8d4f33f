"""What the weights reader's pickle bound (netc.backends.torch.weights.MAX_PICKLE_BYTES) buys: the
time and memory torch's weights_only unpickler spends on a hostile pickle of N bytes (N empty dicts
appended to one list: the cheapest opcode that makes a new object), next to the pickle of a real
state_dict (torchvision's resnet152, 932 tensors) and its bytes per tensor. Each size runs in a
fresh process (its peak RSS is its own). Nothing is asserted.

    .venv/bin/python benchmarks/bench_weights.py [--sizes 1000000 4194304 8000000]
"""
from __future__ import annotations

import argparse
import subprocess
import sys

PROBE = """
import io, resource, sys, time, zipfile, torch
n = int(sys.argv[1])
buf = io.BytesIO()
with zipfile.ZipFile(buf, "w") as z:
    z.writestr("archive/data.pkl", b"\\x80\\x02](" + b"}" * n + b"e.")
    z.writestr("archive/version", b"3\\n")
    z.writestr("archive/byteorder", b"little")
buf.seek(0)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
torch.load(buf, weights_only=True)
print(f"{n:>10,} B pickle   {time.perf_counter() - t0:6.2f} s   "
      f"+{(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024:6.0f} MiB peak RSS")
"""

REAL = """
import io, zipfile, torch, torchvision
state = torchvision.models.resnet152(weights=None).state_dict()
buf = io.BytesIO()
torch.save(state, buf)
pkl = next(m for m in zipfile.ZipFile(buf).infolist() if m.filename.endswith("/data.pkl"))
print(f"resnet152: {len(state)} tensors, pickle {pkl.file_size:,} B ({pkl.file_size / len(state):.0f} B a tensor)")
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", type=int, default=[1_000_000, 4 * 2**20, 8_000_000])
    args = ap.parse_args()
    subprocess.run([sys.executable, "-c", REAL], check=True)
    for n in args.sizes:
        subprocess.run([sys.executable, "-c", PROBE, str(n)], check=True)


if __name__ == "__main__":
    main()
