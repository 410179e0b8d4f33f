"""Traced ops -> netc layers with the source's structure.

Ops are grouped into blocks by module path (a submodule becomes a named `seq`). Inside each
block a fork is closed at its join — the first item after which every open value comes from
that item (a linear sweep, as for the trunk in `netc.analysis.features`) — and a fork that
joins in an `add` becomes `residual` (a constant `scale` on one branch becomes its `scale:`,
an empty branch the identity shortcut), one that joins in a `cat` becomes `concat`. A
region that is not series-parallel falls back to `from:` references by scope.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from netc.errors import error
from netc.interop.concrete import CHANNELS
from netc.interop.grid import GRID, VALUE
from netc.interop.trace import TracedOp

TYPE_KEY = "__type__"  # a block's class, for netc.interop.templates; stripped before writing
PATH_KEY = "__path__"  # a block's module path, for the constructor arguments that name a template's (signature.py)
IN_C_KEY = "__in_c__"  # a block's input channels, for template arguments that follow them (`$in_c * 6`)
IN_GRID_KEY = "__in_grid__"  # its input's grid (grid.GRID), for sizes read inside it (`netc.interop.local_size`)
ENTRY_KEYS = (IN_C_KEY, IN_GRID_KEY)  # what a block records of its input


@dataclass
class Block:
    path: str
    module_type: str
    items: list = field(default_factory=list)  # TracedOp | Block, in execution order

    @property
    def ops(self):
        for item in self.items:
            yield from (item.ops if isinstance(item, Block) else [item])

    @property
    def out(self):
        return self.items[-1].out if isinstance(self.items[-1], Block) else self.items[-1].node


def _out(item):
    return item.out if isinstance(item, Block) else item.node


def _op_out(op: TracedOp):
    return op.node


TracedOp.out = property(_op_out)


def group(ops: list[TracedOp], types: dict[str, str]) -> Block:
    """The block tree by module path; a module that runs in two separate places is split."""
    root = Block("", "")
    stack = [root]
    for op in ops:
        while stack[-1].path and stack[-1].path not in op.parents:
            stack.pop()
        for path in op.parents[op.parents.index(stack[-1].path) + 1 if stack[-1].path else 0:]:
            block = Block(path, types.get(path, ""))
            stack[-1].items.append(block)
            stack.append(block)
        stack[-1].items.append(op)
    return root


def nest(ops: list[TracedOp], modules: set[str]) -> None:
    """Containers the forward never calls (a ModuleList iterated in a loop) join each op's parents,
    so that `layers.0` nests in a block `layers`, as its state_dict key does."""
    for op in ops:
        path = op.scope if op.named else (op.parents[-1] if op.parents else "")
        parts = path.split(".") if path else []
        chain = [p for p in (".".join(parts[:k]) for k in range(1, len(parts) + (0 if op.named else 1)))
                 if p in modules]
        if set(op.parents) <= set(chain):
            op.parents = tuple(chain)


def split_blocks(root: Block) -> list[str]:
    """Module paths whose ops run in more than one place between other layers (a block opened twice)."""
    seen, twice = set(), []
    queue = [root]
    for block in queue:
        for item in block.items:
            if isinstance(item, Block):
                if item.path in seen and item.path not in twice:
                    twice.append(item.path)
                seen.add(item.path)
                queue.append(item)
    return twice


def external_inputs(item, inside: set) -> list:
    """The values an item reads from outside itself, in order, without repeats."""
    if isinstance(item, Block):
        own = {id(op.node) for op in item.ops}
        seen, out = set(), []
        for op in item.ops:
            for v in op.inputs:
                if id(v) not in own and id(v) not in seen:
                    seen.add(id(v))
                    out.append(v)
        return out
    return list(dict.fromkeys(item.inputs))


def relative(path: str, parent: str) -> str:
    return path[len(parent) + 1:] if parent else path


INPUT_KEY = "__input__"  # positions of a layer's `from:` that read its block's input


class Emitter:
    """Layers (YAML-ready dicts) of a block tree; `refs` counts the `from:` fallbacks used."""

    lists: set = frozenset()  # paths of interleaved lists (netc.interop.lists.Emitter)

    def __init__(self, input_node, names: set = frozenset(), heads=None, order: dict | None = None,
                 owners: dict | None = None, stateful: set | None = None):
        self.input_node = input_node
        self.heads = heads  # netc.interop.sides.Heads: training-only side heads, or None
        self.owners = owners or {}  # id(item) -> the output name its layer publishes (`output_owners`)
        self.order = order or {}  # module path -> its registration index in the source
        # the paths (among `order`'s) of modules holding parameters or buffers: only their order is the
        # state_dict's (torchvision's Bottleneck registers its one relu last and calls it after bn1)
        self.stateful = set(self.order) if stateful is None else stateful & set(self.order)
        self.refs = 0
        self.scope_of = {}
        self.names = names  # every scope path the spec will publish (for relative `from:` references)
        self.entry_of = {}  # block path -> the value entering it
        # blocks with children named 0, 1, ... (ModuleList, ModuleDict): an unnamed layer's default
        # name is its position, which may be one of theirs, so such blocks name every layer
        self.numbered = {n.rpartition(".")[0] for n in names if n.rpartition(".")[2].isdigit()}
        self.emitted = {}  # id(value) -> (its layer's list, index, op) of a layer written in series

    def _name_read(self, value) -> None:
        """Name the layer computing `value`, which a later `from:` reads (a function's result is
        unnamed in series)."""
        layers, k, op, parent = self.emitted.get(id(value), (None, 0, None, ""))
        if layers is None or self.scope_of.get(id(value)) != op.scope:
            return  # not a layer's own result, or one its block publishes under the block's name
        if not (isinstance(layers[k], dict) and "name" in layers[k]):
            layer = layers[k] if isinstance(layers[k], dict) else {layers[k]: {}}
            layers[k] = {"name": relative(op.scope, parent), **layer}

    def block(self, block: Block, entry, parent: str) -> dict:
        self.entry_of[block.path] = entry
        layer = {"name": relative(block.path, parent), "seq": self.scope(block.items, entry, block.path),
                 TYPE_KEY: block.module_type, PATH_KEY: block.path}
        if _channels_first(entry):
            layer[IN_C_KEY] = int(entry.meta[VALUE].shape[1])
            if entry.meta.get(GRID) is not None:
                layer[IN_GRID_KEY] = entry.meta[GRID]
        if id(block) in self.owners:
            layer["output"] = self.owners[id(block)]
        self.scope_of[id(block.out)] = block.path  # a named block publishes its name to its output
        return layer

    def item(self, item, entry, parent: str) -> dict | str:
        if isinstance(item, Block):
            return self.block(item, entry, parent)
        self.scope_of[id(item.node)] = item.scope
        layer = {}
        named = item.named or parent in self.numbered
        if named:
            layer["name"] = relative(item.scope, parent)
        layer[item.op] = dict(item.attrs)
        if id(item) in self.owners:
            layer["output"] = self.owners[id(item)]
        return layer if len(layer) > 1 or item.attrs else item.op

    def scope(self, items: list, entry, path: str) -> list:
        """The layers of the block at `path` (its children `items`), registering its modules in the
        source's order: where the series-parallel layers would register a module before one the
        source registers first (timm's fasternet registers its mlp before the spatial mixing that runs
        first), the children are written in registration order, each reading its input by `from:`
        (execution follows the data flow, not the written order)."""
        refs = self.refs
        layers = self.region(items, entry, path)
        children = (f"{path}.{n}" if path else n for n in _written_names(layers))
        written = [self.order[c] for c in children if c in self.stateful]
        if written == sorted(written) or any(isinstance(it, Block) and it.path in self.lists for it in items):
            return layers  # (interleaved lists are written in registration order: netc.interop.lists)
        self.refs = refs  # those layers are not written: only the `from:` of the ones below count
        ordered = self._by_registration(items)
        layers = self.fallback(ordered, entry, path)
        written_at = {id(_out(item)): k for k, item in enumerate(ordered)}
        for k, item in enumerate(ordered):
            if reads_ahead(item, k, written_at):
                drop_keys(layers[k], ENTRY_KEYS)  # its input's shape is not known where it is written: no `$in_c`
        if ordered[-1] is not items[-1]:  # a block's result is its last layer's
            self._name_read(_out(items[-1]))
            layers.append({"identity": {}, "from": self._ref(_out(items[-1]), path)})
            self.refs += 1
        return layers

    def _by_registration(self, items: list) -> list:
        """`items` in the source's registration order; an item without modules stays after the one
        it follows."""
        keys, last = [], -1
        for item in items:
            k = self._registered([item])
            last = k if k < len(self.order) else last
            keys.append(last)
        return [item for _, _, item in sorted(zip(keys, range(len(items)), items), key=lambda t: t[:2])]

    def region(self, items: list, entry, parent: str) -> list:
        """Layers computing `items` from `entry` (their single input from outside), side heads
        among them (`netc.interop.sides`) written as `side:` layers."""
        heads = [it for it in items if self.heads and isinstance(it, Block) and id(it.out) in self.heads.by_node]
        if not heads:
            return self._region(items, entry, parent)
        from netc.interop.sides import place

        layers = self._region([it for it in items if not any(it is h for h in heads)], entry, parent)
        sides = []
        for head in heads:
            reads = external_inputs(head, set())
            if len(reads) > 1:  # a `side:` layer has one input (found by the generated-spec oracle)
                raise error("import", f"cannot import the training-only head '{head.path}': it reads {len(reads)} "
                                      "values from outside it, and a side head reads one", None,
                            "import the model without its auxiliary heads")
            (value,) = reads or [None]
            seq = self.block(head, value, parent)
            source = self._ref(value, parent)
            sides.append((seq["name"], source, {"name": seq["name"], "from": source,
                                                "side": {"seq": seq["seq"], TYPE_KEY: seq[TYPE_KEY]},
                                                "output": self.heads.by_node[id(head.out)], "aux": True}))
        return place(layers, sides, self.order, parent)

    def _region(self, items: list, entry, parent: str) -> list:
        layers, cur, i = [], entry, 0
        readers: dict[int, int] = {}
        for item in items:
            for v in external_inputs(item, set()):
                readers[id(v)] = readers.get(id(v), 0) + 1
        while i < len(items):
            ins = external_inputs(items[i], set())
            if ins == [cur] and readers.get(id(cur), 0) <= 1:
                layers.append(self.item(items[i], cur, parent))
                if not isinstance(items[i], Block):
                    self.emitted[id(_out(items[i]))] = (layers, len(layers) - 1, items[i], parent)
                cur, i = _out(items[i]), i + 1
                continue
            j = _join(items, i, cur)
            made = self.fork(items[i:j], items[j], cur, parent) if j is not None else None
            if made is None:
                return layers + self.fallback(items[i:], cur, parent)
            layers.extend(made)
            cur, i = _out(items[j]), j + 1
        return layers

    def fork(self, branch_items: list, join, entry, parent: str):
        """A residual or concat closing the fork at `entry`; None if the join is neither."""
        if isinstance(join, Block) or join.op not in ("add", "cat") or join.attrs.get("dim"):
            return None  # `concat:` joins channels; a cat along another axis stays a layer with `from:`
        branches = _split(branch_items, join.inputs, entry)
        if branches is None:
            return None
        if join.op == "cat":
            starts = [branch_items.index(b[0]) for b in branches if b]
            if starts != sorted(starts):
                return None  # a concat runs its branches in the cat's order; these run in another (CSPNeXt)
            return [{"concat": [self.region(b, entry, parent) or [{"identity": {}}] for b in branches]}]
        if len(branches) != 2:
            return None
        a, b = branches
        if not a or (b and (_scaled(b) or (not _scaled(a) and b[0] is branch_items[0]))):
            a, b = b, a
        body, shortcut = a, b
        res = {}
        if _scaled(body):
            res["scale"] = body[-1].attrs["factor"]
            body = body[:-1]
        res = {"body": self.region(body, entry, parent), **res}
        if shortcut:
            sc = self.region(shortcut, entry, parent)
            res["shortcut"] = sc[0] if len(sc) == 1 else {"seq": sc}
            if self._registered(shortcut) < self._registered(body):  # timm's byobnet: keys in the source's order
                res = {"shortcut": res.pop("shortcut"), **res}
        return [{"residual": res}]

    def _registered(self, items: list) -> int:
        """The source's registration index of the first module among `items`."""
        paths = (it.path if isinstance(it, Block) else it.scope for it in items)
        return min((self.order[p] for p in paths if p in self.stateful), default=len(self.order))

    def fallback(self, items: list, cur, parent: str, referenced: set | None = None) -> list:
        """Explicit `from:` references where the region is not series-parallel; `referenced`: the
        values some `from:` reads (by default those these items read out of series)."""
        layers = []
        for item in items:  # a `from:` may read a layer written further down
            self.scope_of.setdefault(id(_out(item)), item.path if isinstance(item, Block) else item.scope)
        prev = [cur] + [_out(it) for it in items[:-1]]
        if referenced is None:
            referenced = {id(v) for it, p in zip(items, prev)
                          if (ins := external_inputs(it, set())) != [p] for v in ins}
        for item in items:
            ins = external_inputs(item, set())
            # a block that reads one value enters with that value (not the previous item's), so
            # its own layers read their input without `from:`, alike in every instance of its class
            layer = self.item(item, ins[0] if isinstance(item, Block) and len(ins) == 1 else cur, parent)
            if isinstance(layer, str):
                layer = {layer: {}}
            if "name" not in layer and id(_out(item)) in referenced:  # a function's result read by `from:`
                layer = {"name": relative(item.scope, parent), **layer}
            if ins != [cur] and not (isinstance(item, Block) and len(ins) > 1):  # else its own ops say `from:`
                self.refs += 1
                for v in ins:
                    self._name_read(v)
                refs = [self._ref(v, parent) for v in ins]
                layer = {**layer, "from": refs[0] if len(refs) == 1 else refs}
                entry = [k for k, v in enumerate(ins) if parent and v is self.entry_of.get(parent)]
                if entry:  # the block's input: `from: input` if the block becomes a template
                    layer[INPUT_KEY] = entry
                if "name" not in layer and not isinstance(item, Block):
                    layer = {"name": relative(item.scope, parent), **layer}
            layers.append(layer)
            cur = _out(item)
        return layers

    def _ref(self, value, parent: str) -> str:
        """The shortest name that `from:` inside `parent` resolves to `value` (innermost scope first,
        as netc.spec.refs.lookup), so that instances of one class refer alike."""
        if value is self.input_node:
            return "input"
        full = self.scope_of.get(id(value))
        if full is None:
            return value.name
        scopes = parent.split(".") if parent else []
        for k in range(len(scopes), -1, -1):
            base = ".".join(scopes[:k])
            if k and not full.startswith(base + "."):
                continue
            ref = full[len(base) + 1:] if k else full
            if not any(".".join(scopes[:n] + [ref]) in self.names for n in range(k + 1, len(scopes) + 1)):
                return ref
        return full


def _channels_first(entry) -> bool:
    """Whether axis 1 of the block's input holds its channels, which no input size changes (`$in_c`
    follows them); an H×W×C map's axis 1 is its height (MambaOut's blocks), so `$in_c * 2` would
    hold at one input size only."""
    meta = getattr(entry, "meta", {})
    rank = getattr(meta.get(VALUE), "ndim", 0)
    return rank >= 2 and meta.get(CHANNELS, 1) == 1


def drop_keys(value, keys: tuple) -> None:
    """Remove `keys` from every dict in `value`, however deep."""
    if isinstance(value, dict):
        for key in keys:
            value.pop(key, None)
        for v in value.values():
            drop_keys(v, keys)
    elif isinstance(value, list):
        for v in value:
            drop_keys(v, keys)


def reads_ahead(item, k: int, written_at: dict) -> bool:
    """Whether `item`, written k-th, reads a value written after it (`written_at`: id(value) -> position)."""
    return any(written_at.get(id(v), -1) > k for v in external_inputs(item, set()))


def _written_names(layers) -> list[str]:
    """The names of the children a block's layers register, in written order (a residual, a concat
    and an unnamed seq are transparent: their layers register in the enclosing block)."""
    names = []
    for layer in layers if isinstance(layers, list) else [layers]:
        if isinstance(layer, list):
            names += _written_names(layer)
        elif isinstance(layer, dict) and "name" in layer:
            names.append(str(layer["name"]).split(".")[0])
        elif isinstance(layer, dict):
            for key in ("residual", "concat", "seq", "body", "shortcut"):
                if key in layer:
                    names += _written_names(list(layer[key].values()) if key == "residual" else layer[key])
    return names


def output_owners(root: Block, named: dict) -> dict:
    """id(item) -> output name: for each named output value (`named`: id(value) -> name), the
    outermost block or op that computes it, whose layer then says `output:`."""
    owners, todo = {}, dict(named)
    queue = [root]
    for block in queue:  # breadth first: an enclosing block before the blocks and ops inside it
        for item in block.items:
            name = todo.pop(id(_out(item)), None)
            if name is not None:
                owners[id(item)] = name
            if isinstance(item, Block):
                queue.append(item)
    return owners


def _scaled(items: list) -> bool:
    return bool(items) and not isinstance(items[-1], Block) and items[-1].op == "scale"


def _join(items: list, i: int, entry):
    """Index of the item that closes the fork at `entry` starting at items[i], or None."""
    consumers: dict[int, int] = {}
    for item in items[i:]:
        for v in external_inputs(item, set()):
            consumers[id(v)] = consumers.get(id(v), 0) + 1
    open_from = {id(entry): consumers.get(id(entry), 0)}
    for j in range(i, len(items)):
        for v in external_inputs(items[j], set()):
            if id(v) in open_from:
                open_from[id(v)] -= 1
            else:
                return None  # reads a value from before the fork: not single-entry
        out = _out(items[j])
        open_from[id(out)] = consumers.get(id(out), 0)
        live = {k for k, n in open_from.items() if n > 0}
        if j > i and live <= {id(out)}:
            return j
    return None


def _split(items: list, join_inputs: list, entry):
    """Partition `items` into the items each join input depends on (in the join's order);
    None unless the branches are disjoint and cover every item."""
    producer = {id(_out(it)): k for k, it in enumerate(items)}
    deps: list[set] = []
    for k, item in enumerate(items):
        d = {k}
        for v in external_inputs(item, set()):
            if id(v) in producer:
                d |= deps[producer[id(v)]]
            elif v is not entry:
                return None
        deps.append(d)
    branches, used = [], set()
    for v in join_inputs:
        if v is entry:
            branches.append([])
            continue
        if id(v) not in producer:
            return None
        members = deps[producer[id(v)]]
        if members & used:
            return None
        used |= members
        branches.append([items[k] for k in sorted(members)])
    return branches if len(used) == len(items) else None
