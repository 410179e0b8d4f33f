"""The long differential run (`make fuzz`): every oracle of tests/fuzz_oracles.py on N valid
generated specs (FUZZ_EXAMPLES, default 1,000), without stopping at a discrepancy: each one is
recorded with its spec and the run goes on. Writes a JSON summary (examples, refusals and
discrepancies per oracle) to FUZZ_OUT (default fuzz-result.json) and exits 1 if any.

    make fuzz                                  # every oracle, 1,000 examples each
    .venv/bin/python tools/fuzz.py onnx 200    # one oracle, 200 examples
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import UnsatisfiedAssumption

from tests import fuzz_oracles
from tests.test_fuzz import spec_text


def run(name: str, examples: int, progress=lambda partial: None) -> dict:
    """`examples` valid specs through one oracle; every discrepancy recorded, none stops it.
    `progress` gets the partial result every 25 examples (a long run can be read while it runs)."""
    oracle = fuzz_oracles.ORACLES[name]
    found: list[dict] = []
    outcomes: Counter = Counter()
    start = time.monotonic()

    def result() -> dict:
        return {"examples": sum(outcomes.values()), **outcomes, "seconds": round(time.monotonic() - start),
                "discrepancies": found}

    @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(spec_text())
    def each(text):
        with tempfile.TemporaryDirectory() as tmp:
            try:
                oracle(text, Path(tmp))
            except UnsatisfiedAssumption:
                raise
            except Exception as exc:  # noqa: BLE001 - a discrepancy or a crash: recorded, the run goes on
                outcomes["discrepancy"] += 1
                found.append({"error": f"{type(exc).__name__}: {exc}"[:2000], "spec": text,
                              "where": traceback.format_exc(limit=-3)[-2000:]})
                return
            finally:
                if sum(outcomes.values()) % 25 == 24:
                    progress(result())
        outcomes["agreed"] += 1

    each()
    return result()


def write(path: Path, result: dict) -> None:
    """Whole or not at all: the file can be read while the run goes on."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(result, indent=1), encoding="utf-8")
    tmp.replace(path)


def main(argv: list[str]) -> int:
    names = [a for a in argv if a in fuzz_oracles.ORACLES] or list(fuzz_oracles.ORACLES)
    counts = [int(a) for a in argv if a.isdigit()]
    examples = counts[0] if counts else int(os.environ.get("FUZZ_EXAMPLES", "1000"))
    out = Path(os.environ.get("FUZZ_OUT", "fuzz-result.json"))
    result = {}
    for name in names:
        def progress(partial, name=name):
            write(out, {**result, name: {**partial, "running": True}})

        result[name] = run(name, examples, progress)
        r = result[name]
        print(f"{name}: {r['examples']} examples, {len(r['discrepancies'])} discrepancies, {r['seconds']} s", flush=True)
        write(out, result)
    return 1 if any(r["discrepancies"] for r in result.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
