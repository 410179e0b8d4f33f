"""The torch backend: IR -> a `torch.nn.Module` that computes the spec.

Consumes a compiled `Network`; produces modules (`module.py`: built on the meta device, then
allocated and filled by the spec's `init:` scheme, `init.py`), an inference rewrite of a built
module (`optimize.py`), its compiled form (`compile.py`), timings of it (`benchmark.py`,
`timing.py`) and the measured peak memory of a training step (`memory.py`). `runtime.py` holds the few layers
torch.nn lacks. Importing this package imports no torch; its modules do.
"""
