"""The torch backend: IR -> a `torch.nn.Module` that computes the spec.

Consumes a compiled `Network`; produces modules (`module.py`: one module per block of the spec,
`blocks.py`, as `netc.ir.blocks` plans them; built on the meta device, then allocated and filled
by the spec's `init:` scheme, `init.py`; `program.py`: the flat schedule of every op), an
inference rewrite of a built module (`optimize.py`), its compiled form (`compile.py`), timings of
it (`benchmark.py`, `timing.py`), the memory checks before building (`memory.py`) and the measured
peak memory of a training step (`train_memory.py`). `runtime.py` holds the few layers torch.nn
lacks. Importing this package imports no torch; its modules do.
"""
