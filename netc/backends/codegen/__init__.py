"""The codegen backend: IR -> standalone, readable PyTorch source (`generated/<name>.py`).

Consumes a compiled `Network`; produces one Python module that imports only torch and the
standard library and reproduces the interpreter's state_dict keys and outputs. Stages, each a
module: the spec index (`spec_index.py`), the scope tree (`scopes.py`), instances drafted with
holes (`instances.py`, their forward in `forward.py`), holes fitted to the spec's expressions
(`fitting.py`), classes (`classes.py`, optional modules merged in `merge.py`), the file
(`source.py`, Jinja layouts in `templates/`), run in order by `pipeline.py`; `exact.py` keeps
only the factory arguments that other compiles of the spec confirm; `generate.py` is the entry
point. Identifiers: `names.py`.
"""
from netc.backends.codegen.generate import generate, output_name, write

__all__ = ["generate", "output_name", "write"]
