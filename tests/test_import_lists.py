"""`netc import` of interleaved ModuleLists: lists indexed in one loop beside each other (timm's
Res2Net, HRNet, SKNet, LCNetV2) import as one layer per list, exact (same outputs, the same
state_dict keys in the same order), the other layers reading their items by `from:`."""
import pytest
import yaml

from netc.api import import_spec, loads
from tests.conftest import ROOT

timm = pytest.importorskip("timm")

LISTS = ROOT / "tests" / "fixtures" / "interop" / "lists.py"
FIXTURE = ROOT / "tests" / "fixtures" / "interop" / "models.py"


def _layer(layers: list, name: str) -> dict:
    """The layer named `name` anywhere in `layers` (depth first)."""
    stack = list(reversed(layers))
    while stack:
        layer = stack.pop()
        if isinstance(layer, dict):
            if layer.get("name") == name:
                return layer
            stack.extend(v for v in reversed(list(layer.values())) if isinstance(v, (dict, list)))
        elif isinstance(layer, list):
            stack.extend(reversed(layer))
    raise KeyError(name)


def _body(spec: dict, layer: dict) -> list:
    """A block's layers: its own `seq`, or its template's body."""
    return layer["seq"] if "seq" in layer else spec["templates"][layer["use"]]["body"]


def _imported(factory: str, size: int = 32, **kwargs):
    text, verdict = import_spec(f"{LISTS}:{factory}", kwargs, (3, size, size))
    assert verdict.max_diff <= 1e-5 and verdict.same_order, verdict.summary()
    return text, yaml.safe_load(text)


@pytest.mark.parametrize("factory", ["res2net", "res2net_deep"])
def test_res2net_convs_and_bns_are_two_lists(factory):
    """convs[i] and bns[i] alternate in the forward; each list is one layer, written where it is
    first used, its items in index order reading the splits and sums written after it."""
    text, spec = _imported(factory)
    scale = 4 if factory == "res2net" else 3
    body = _body(spec, _layer(spec["layers"], "layer1")["seq"][0])
    convs, bns = _layer(body, "convs"), _layer(body, "bns")
    assert [item["name"] for item in convs["seq"]] == [str(i) for i in range(scale - 1)]
    assert all("conv" in item for item in convs["seq"]) and all("bn" in item for item in bns["seq"])
    assert [item["from"] for item in bns["seq"]] == [f"convs.{i}" for i in range(scale - 1)]
    assert "convs.0" in text and "run apart" not in text


def test_res2net_later_blocks_add_the_previous_split():
    """A stage's second block feeds split i + the previous 3x3's result to convs[i] (a `from:`
    naming an add written after the list), exactly."""
    _, spec = _imported("res2net_deep")
    convs = _layer(_body(spec, _layer(spec["layers"], "layer1")["seq"][1]), "convs")
    reads = [item.get("from") for item in convs["seq"]]
    assert reads[0] is None or "slice" in reads[0]
    assert all(r and r.startswith("add") for r in reads[1:]), reads


def test_hrnet_branches_and_fuse_rows_import():
    """HRNet's fuse_layers (a list of lists) read the branches of their module; each nested list
    is one layer, and a module's second instance reads the first's fused outputs."""
    text, spec = _imported("hrnet")
    stage2 = _layer(spec["layers"], "stage2")
    assert "fuse_layers" in text and "branches" in text
    assert len(stage2["seq"]) == 2 if "seq" in stage2 else stage2["repeat"] == 2
    net = loads(text)
    assert net.params > 0


def test_sknet_paths_read_their_split():
    """SKNet with split input: path i reads half i of the input, taken after path i - 1 ran."""
    _, spec = _imported("sknet")
    conv1 = _layer(_body(spec, _layer(spec["layers"], "layer1")["seq"][0]), "conv1")
    paths = _layer(_body(spec, conv1), "paths")["seq"]
    assert [p["name"] for p in paths] == ["0", "1"]
    assert "from" not in paths[0] and paths[1]["from"].startswith("slice")  # path 0 reads the split above it


def test_interleaved_lists_in_a_plain_loop():
    text, verdict = import_spec(f"{FIXTURE}:Looped", {"interleave": True}, (3, 16, 16))
    assert verdict.max_diff <= 1e-5 and verdict.same_order
    spec = yaml.safe_load(text)
    names = [layer["name"] for layer in spec["layers"]]
    assert names == ["layers", "acts"]
    acts = _layer(spec["layers"], "acts")["seq"]
    assert [a["from"] for a in acts] == ["layers.0", "layers.1", "layers.2"]
    layers = _layer(spec["layers"], "layers")["seq"]
    assert [item.get("from") for item in layers] == [None, "acts.0", "acts.1"]  # forward references


def test_pyramid_lists_publish_each_level():
    """A feature pyramid's inner and outer lists run top-down in one loop; each level's output is
    published by the list item computing it (`output:`), in the source's key order."""
    _, spec = _imported("PyramidFeatures")
    assert spec["outputs"] == ["p2", "p3", "p4"]
    outer = _layer(spec["layers"], "layer_blocks")["seq"]
    assert [item.get("output") for item in outer] == ["p2", "p3", "p4"]
    assert [item["name"] for item in _layer(spec["layers"], "inner_blocks")["seq"]] == ["0", "1", "2"]
