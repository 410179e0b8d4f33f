"""features_only: a built network cut down to the feature maps a detection/segmentation head reads.

Built on the public build: `runtime.feature_graph` traces the module with torch.fx, the block
(or op) each feature map is the output of kept as a leaf, replaces the graph's output by their
values and drops what no feature needs (a ResNet's pool and classifier). The forward returns a
list of tensors in `feature_info` order, as timm's `features_only` models do; generated code
uses the same function (copied into the file).
"""
from __future__ import annotations

from torch import fx, nn

from netc.backends.torch.runtime import feature_graph


def feature_module(module: nn.Module, info) -> fx.GraphModule:
    """`module` (built from the network `info` describes) returning the maps of `info` (a FeatureInfo)."""
    features = feature_graph(module, [f.name for f in info])
    features.feature_info = info
    return features
