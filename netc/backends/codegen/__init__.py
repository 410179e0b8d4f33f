"""The codegen backend: IR -> standalone, readable PyTorch source (`generated/<name>.py`).

Consumes a compiled `Network`; produces one Python module that imports only torch and the
standard library and reproduces the interpreter's state_dict keys and outputs. Stages: the
scope tree (`scopes.py`), expressions fitted back to the spec's (`fitting.py`), identifiers
(`names.py`), classes and source (`generate.py`, Jinja layouts in `templates/`).
"""
from netc.backends.codegen.generate import generate, output_name, write

__all__ = ["generate", "output_name", "write"]
