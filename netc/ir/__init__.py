"""The graph IR and the passes over it.

`netc.ir.graph.Graph` (a networkx DiGraph) holds one typed `netc.ir.node.Node` per primitive op,
and the network's outputs and named blocks; the frontend (`netc.spec`) produces it. The passes
(`netc.ir.passes`: structure checks, shape inference with costs, limits) fill the nodes' shape
and cost fields; `netc.ir.transform` rewrites a checked graph (lesion, reorder) and `netc.ir.blocks`
plans the module tree of blocks. The analysis and every backend read the IR, and only through
its fields.
"""
