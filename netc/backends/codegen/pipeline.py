"""The code generator's stages run in order for one compiled network (see `generate.py`).

Consumes a compiled `Network` (and the params to write as constants); produces, once built,
the classes of the file, its factory's name and arguments, the formatted source (`generate`)
and a `fingerprint`: the source with this compile's param values hidden, which `exact.py`
compares across compiles.
"""
from __future__ import annotations

from netc.backends.codegen.classes import ClassBuilder
from netc.backends.codegen.features import backbone_points
from netc.backends.codegen.instances import Drafter
from netc.backends.codegen.scopes import scope_tree
from netc.backends.codegen.source import format_source, render_module
from netc.backends.codegen.spec_index import SpecIndex


class Generator:
    """The stages for one compiled network: spec index, scope tree, drafts, classes, source.

    `fixed` names spec params to write as constants rather than take as factory arguments."""

    def __init__(self, network, fixed=()):
        self.net = network
        self.index = SpecIndex(network, fixed)

    def build(self) -> Generator:
        from netc.backends.torch.module import output_order

        self.outputs = output_order(self.net)
        self.drafter = Drafter(self.net, self.index, self.outputs)
        self.classes = ClassBuilder(self.net, self.index, self.drafter)
        root = scope_tree(self.net)
        self.classes.finish_classes(root)
        self.factory = self.classes.module_names.take(self.net.name, prefix="build")
        self.features = backbone_points(self.net, root)
        if self.features:
            self.drafter.runtime_used |= {"feature_graph", "FeatureInfo", "backbone"}
        return self

    @property
    def exposed(self) -> list[str]:
        """The spec params the factory takes as keyword arguments."""
        return [p for p, _, _ in self.classes.classes[-1].params]

    def generate(self) -> str:
        return format_source(render_module(self))

    def fingerprint(self) -> str:
        """The source with every value of this compile's params hidden: equal for two compiles
        exactly when the code of one, called with the other's values, is the code of the other."""
        return render_module(self, hidden=True)
