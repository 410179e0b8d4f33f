"""Interleaved lists: ModuleLists indexed in one loop beside each other (timm's Res2Net runs
`convs[i]`, then `bns[i]`, then a ReLU, for each i; HRNet its `branches` and the rows of its
`fuse_layers`).

Their items run apart, between other layers, so no nesting of the execution order holds them
(`structure.split_blocks` finds them). Each list becomes one layer at its first use, a `seq` of
its items in registration order (so the state_dict keys come in the source's order), and every
layer of the region names its inputs by `from:` where it does not read the layer written above
it; references may point forward (docs/language.md).
"""
from __future__ import annotations

from netc.errors import error
from netc.interop import structure
from netc.interop.structure import (
    ENTRY_KEYS,
    Block,
    _out,
    drop_keys,
    external_inputs,
    reads_ahead,
    relative,
)


class Emitter(structure.Emitter):
    """structure.Emitter writing the regions that hold occurrences of `lists` (paths, from
    `structure.split_blocks`) with `interleaved`."""

    def __init__(self, *args, lists: set = frozenset(), **kwargs):
        super().__init__(*args, **kwargs)
        self.lists = lists

    def _region(self, items: list, entry, parent: str) -> list:
        if any(isinstance(it, Block) and it.path in self.lists for it in items):
            return interleaved(self, items, entry, parent)
        return super()._region(items, entry, parent)


def merged(items: list, lists: set, order: dict, owners: dict) -> list:
    """`items` with each list's occurrences merged into one Block at its first, its items in
    registration order (unregistered ones keep their place after them). An occurrence's
    `output:` (`owners`) goes to the item computing it."""
    units, by_path = [], {}
    for item in items:
        if isinstance(item, Block) and item.path in lists:
            if id(item) in owners:
                owners[id(item.items[-1])] = owners.pop(id(item))
            if item.path not in by_path:
                by_path[item.path] = Block(item.path, item.module_type)
                units.append(by_path[item.path])
            by_path[item.path].items.extend(item.items)
        else:
            units.append(item)
    for block in by_path.values():
        block.items.sort(key=lambda it: order.get(it.path if isinstance(it, Block) else it.scope, len(order)))
    return units


def _result_last(units: list, result, owners: dict) -> list:
    """`units` with the one computing the region's result written last: a structure's result is
    its last layer's. A list's result is its last item's, unless an output name publishes it
    (a feature pyramid's top-down loop ends at its first level)."""
    for k, unit in enumerate(units):
        if isinstance(unit, Block) and any(_out(it) is result for it in unit.items):
            last = unit.items[-1]
            if _out(last) is not result and id(last) not in owners:
                raise error("import", f"the result of the block holding list '{unit.path}' is one of its "
                                      "items but not its last; a netc structure's result is its last layer")
            return units[:k] + units[k + 1:] + [unit]
    return units


def publish(emitter, items: list) -> None:
    """The scope each value of `items` is read under, before any is written: a `from:` may name a
    layer written later."""
    for item in items:
        if isinstance(item, Block):
            publish(emitter, item.items)
            if item.path not in emitter.lists:
                emitter.scope_of[id(item.out)] = item.path
        else:
            emitter.scope_of[id(item.node)] = item.scope


def interleaved(emitter, items: list, entry, parent: str) -> list:
    """Layers computing `items` (some of them occurrences of lists) from `entry`."""
    result = _out(items[-1])
    # the other modules too in registration order (focalnet registers `h` and `proj` before the list its
    # forward runs first): references may point forward
    units = merged(items, emitter.lists, emitter.order, emitter.owners)
    units = _result_last(emitter._by_registration(units), result, emitter.owners)
    publish(emitter, units)
    referenced = {id(v) for unit in units for v in external_inputs(unit, set()) if v is not entry}
    layers, cur = [], entry
    written_at = {id(_out(it)): k for k, unit in enumerate(units)
                  for it in (unit.items if isinstance(unit, Block) and unit.path in emitter.lists else [unit])}
    for k, unit in enumerate(units):
        start = len(layers)
        if isinstance(unit, Block) and unit.path in emitter.lists:
            emitter.entry_of[unit.path] = emitter.entry_of.get(parent)
            seq = interleaved(emitter, unit.items, cur, unit.path)  # lists nest: HRNet's fuse_layers[i][j]
            layers.append({"name": relative(unit.path, parent), "seq": seq})
            cur = _out(unit.items[-1])
        else:
            layers.extend(emitter.fallback([unit], cur, parent, referenced))
            if not isinstance(unit, Block):  # named if a later region's `from:` reads it
                emitter.emitted[id(unit.node)] = (layers, len(layers) - 1, unit, parent)
            cur = _out(unit)
        if reads_ahead(unit, k, written_at):
            drop_keys(layers[start:], ENTRY_KEYS)  # its input's shape is not known where it is written: no `$in_c`
    if next((u for u in units if _out(u) is result), units[-1]) is not units[-1]:  # a structure's result is its
        emitter._name_read(result)  # last layer's
        layers.append({"identity": {}, "from": emitter._ref(result, parent)})
    return layers
