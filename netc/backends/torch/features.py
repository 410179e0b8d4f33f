"""features_only: a built network cut down to the feature maps a detection/segmentation head reads.

Built on the public build: the module is traced by torch.fx with every op module (a spec
scope) as a leaf, so the flat graph has one `call_module(scope)` per op whatever the module
hierarchy; the graph's output is replaced by the selected ops' values, and what no feature
needs is dropped (a ResNet's pool and classifier). The forward returns a list of tensors in
`feature_info` order, as timm's `features_only` models do.
"""
from __future__ import annotations

from torch import fx, nn


class _ScopeTracer(fx.Tracer):
    def __init__(self, leaves: set[str]):
        super().__init__()
        self.leaves = leaves

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return qualname in self.leaves or super().is_leaf_module(m, qualname)


def feature_module(module: nn.Module, network, info) -> fx.GraphModule:
    """`module` (built from `network`, eval forward) returning the maps of `info` (a FeatureInfo)."""
    leaves = {d["scope"] for _, d in network.nodes()}
    was_training = module.training
    module.eval()  # trace the eval forward: auxiliary heads are not part of a backbone
    graph = _ScopeTracer(leaves).trace(module)
    module.train(was_training)
    by_scope = {n.target: n for n in graph.nodes if n.op == "call_module"}
    outputs = [by_scope[f.scope] for f in info]
    graph.erase_node(next(n for n in graph.nodes if n.op == "output"))
    graph.output(list(outputs))
    features = fx.GraphModule(module, graph, f"{type(module).__name__}Features")
    features.graph.eliminate_dead_code()
    features.delete_all_unused_submodules()
    features.graph.lint()
    features.recompile()
    features.feature_info = info
    features.train(was_training)
    return features
