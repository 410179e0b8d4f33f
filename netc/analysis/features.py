"""The backbone contract, statically: which feature maps a network offers to a detection or
segmentation head, with their channels and reductions (timm's `feature_info`), without torch.

A feature point is an op on the network's trunk — a value every path from input to output
passes through — whose output is a feature map. By default there is one per reduction: the
last trunk op before the total stride changes (timm's `features_only` convention: ResNet-50
gives relu/2, layer1/4, layer2/8, layer3/16, layer4/32). A point is named after the
outermost block it is the output of (`layer1`, `Mixed_5d`), else its op's scope.
"""
from __future__ import annotations

from dataclasses import dataclass

from netc.analysis.cost import finer
from netc.errors import did_you_mean, error
from netc.ops import REGISTRY

GLOBAL_OPS = {"gap", "adaptive_avgpool", "adaptive_maxpool"}


@dataclass(frozen=True)
class Feature:
    name: str       # block or op scope the map is the output of
    scope: str      # the op that computes it
    num_chs: int
    reduction: int  # total stride from the input
    shape: tuple[int, ...]


class FeatureInfo(list):
    """The selected feature points, with timm's accessors."""

    def channels(self, idx: int | None = None):
        return self[idx].num_chs if idx is not None else [f.num_chs for f in self]

    def reduction(self, idx: int | None = None):
        return self[idx].reduction if idx is not None else [f.reduction for f in self]

    def module_name(self, idx: int | None = None):
        return self[idx].name if idx is not None else [f.name for f in self]

    def get_dicts(self) -> list[dict]:
        return [{"module": f.name, "num_chs": f.num_chs, "reduction": f.reduction} for f in self]


def _strides(network) -> dict[int, int | None]:
    """Total stride of every node's output (None once the map was globally pooled or flattened).
    A join with a pooled input keeps the stride of its maps (a squeeze-excitation gate times the
    map it gates is still that map)."""
    stride = {0: 1}
    for nid, d in network.nodes():
        ins = [stride[i] for i in d.inputs if stride[i] is not None]
        if not ins or len(d.shape) != 3 or d.op in GLOBAL_OPS:
            stride[nid] = None
            continue
        op = REGISTRY[d.op]
        w = op.window(d.attrs)
        stride[nid] = finer(max(ins) * (max(w.s) if w else 1),
                            max(op.upsampling(d.attrs, [network.graph.node(i).shape for i in d.inputs])))
    return stride


def _trunk(network) -> list[int]:
    """Nodes every input-to-output path passes through, in order: after such a node, every edge
    still open leaves it (one linear sweep over the execution order)."""
    g, eval_nodes = network.graph, {nid for nid, d in network.nodes() if not d.aux}
    open_edges, trunk = 0, []
    for nid in network.order:
        if nid and nid not in eval_nodes:
            continue
        succ = [s for s in g.successors(nid) if s in eval_nodes]
        open_edges -= sum(1 for i in set(g.node(nid).inputs) if i == 0 or i in eval_nodes) if nid else 0
        open_edges += len(succ)
        if nid and open_edges == len(succ):
            trunk.append(nid)
    return trunk


def _aliases(network) -> dict[int, list[str]]:
    """Each node's names, outermost first: the blocks whose output it is, then its op scope."""
    last = {}
    for nid, d in network.nodes():
        for block in d.blocks:
            last[block] = nid
    return {nid: [b for b in d.blocks if last[b] == nid] + [d.scope] for nid, d in network.nodes()}


def feature_points(network) -> list[Feature]:
    """Every trunk feature map, in order (the candidates `out_indices` names may pick from)."""
    stride, names, nodes = _strides(network), _aliases(network), network.graph.node_table()
    return [Feature(names[n][0], nodes[n].scope, nodes[n].shape[0], stride[n], tuple(nodes[n].shape))
            for n in _trunk(network) if stride[n] is not None]


def default_features(network) -> list[Feature]:
    """For each reduction, the last trunk map that is the output of one of the outermost blocks
    there (a stage, as timm's features: DenseNet's `denseblock1`, not the transition's conv that
    follows it at the same stride; EfficientNet's `features.1`, not the expansion of the next
    stage's first block), else the last trunk op of that reduction (a stem's `relu`)."""
    runs: list[list[Feature]] = []
    for f in feature_points(network):
        if runs and runs[-1][0].reduction == f.reduction:
            runs[-1].append(f)
        else:
            runs.append([f])
    chosen = []
    for run in runs:
        blocks = [f for f in run if f.name != f.scope]
        depth = min((f.name.count(".") for f in blocks), default=0)
        chosen.append(([f for f in blocks if f.name.count(".") == depth] or run)[-1])
    return chosen


def feature_info(network, out_indices=None) -> FeatureInfo:
    """The features `out_indices` selects: indices into the default features (negative from the
    end, as timm), or names of blocks/ops on the trunk; None = all default features."""
    default = default_features(network)
    if out_indices is None:
        return FeatureInfo(default)
    aliases = _aliases(network)
    by_scope = {d.scope: nid for nid, d in network.nodes()}
    points = {alias: f for f in feature_points(network) for alias in aliases[by_scope[f.scope]]}
    chosen = []
    for item in out_indices:
        if isinstance(item, bool) or not isinstance(item, (int, str)):
            raise error("usage", f"out_indices: {item!r} is neither a stage index nor a name")
        if isinstance(item, int):
            if not -len(default) <= item < len(default):
                raise error("usage", f"out_indices: {item} is out of range: {network.name} has "
                            f"{len(default)} feature stages", None,
                            "stages: " + ", ".join(f"{k}={f.name}" for k, f in enumerate(default)))
            chosen.append(default[item])
        elif item in points:
            chosen.append(points[item])
        else:
            raise error("usage", f"out_indices: '{item}' is not a feature map on the trunk of {network.name}",
                        None, did_you_mean(item, points) or "trunk feature maps: "
                        + ", ".join(f.name for f in feature_points(network)[:20]))
    return FeatureInfo(chosen)
