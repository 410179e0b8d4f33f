"""The frontend: spec text becomes the graph IR.

Consumes a YAML spec (a file, or text with a file name for messages) and parameter overrides;
produces the validated `Spec` (pydantic) and, through `netc.spec.compile`, the shape-checked IR
(`netc.ir.graph.Graph`). Reading keeps a location for every mapping and value, so every error
points at the text. Nothing here imports a backend or torch.
"""
