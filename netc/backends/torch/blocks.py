"""Scope plans (`netc.ir.blocks`) -> modules: every block of the spec is a module that computes it.

A block that can run on its own is a `Block`, a `torch.fx.GraphModule` whose forward is
straight-line code generated from its `Plan` (`out = self.bn1(self.conv1(x))`, ...): it takes
the values entering the block (one argument each) and returns the values leaving it (a tuple
when there are several), so `m.layer4(x)`, forward hooks on a block, `nn.Sequential(*children)`,
activation checkpointing and FSDP's per-block sharding work as on a hand-written model. Its
children are registered in the spec's order, which is the order of the state_dict.

A block whose training forward returns training-only (aux) outputs gets a second, eval forward
without them, chosen per call by `self.training`.

A block the data flow leaves and re-enters cannot run alone (see `netc.ir.blocks`): it is a
`Parts` container, which its parent reaches into, and calling it raises `BlockNotCallable`
with the reason.
"""
from __future__ import annotations

import operator

from torch import fx, nn
from torch.fx.graph_module import _forward_from_src

from netc.backends.torch.program import call_op, outputs_type
from netc.ir.blocks import Plan, Scope


class BlockNotCallable(RuntimeError):
    """A block of the spec that cannot be called on its own (its parent calls its parts)."""


class Parts(nn.Module):
    """A block whose parts its parent calls one by one; calling it alone raises BlockNotCallable."""

    def __init__(self, scope: str, reason: str):
        super().__init__()
        self.scope, self.reason = scope, reason

    def forward(self, *args, **kwargs):
        raise BlockNotCallable(f"block '{self.scope}' cannot be called on its own: {self.reason}; "
                               "its parent calls its parts instead (leave the block unnamed, or take the "
                               "'from:' input from outside it, to make it one module)")

    def extra_repr(self) -> str:
        return f"not callable: {self.reason}"


def graph_of(plan: Plan, training: bool) -> fx.Graph:
    """The fx graph of a block's training forward (every output) or eval forward (no aux ones)."""
    g = fx.Graph()
    names = ["x"] if len(plan.inputs) == 1 else [f"x{k}" for k in range(len(plan.inputs))]
    env = {v: g.placeholder(n) for v, n in zip(plan.inputs, names)}
    for call, made in plan.schedule(training):
        result = call_op(g, call.target, tuple(env[i] for i in call.inputs), call.apply, _value_name(call.target))
        if len(made) == 1:
            env[made[0]] = result
        else:
            for k, v in enumerate(made):
                env[v] = g.call_function(operator.getitem, (result, k))
    outs = plan.outputs if training else plan.eval_outputs
    values = [env[v] for v in outs]
    if len(values) == 1:
        g.output(values[0])
    elif plan.names:  # the network: a namedtuple of its outputs (two names may share a value)
        keep = [k for k, a in enumerate(plan.aux) if training or not a] if outs != plan.outputs else None
        names = plan.names if keep is None else tuple(plan.names[k] for k in keep)
        g.output(g.call_function(outputs_type(names), tuple(values)))
    else:
        g.output(tuple(values))
    g.lint()
    return g


def _value_name(target: str) -> str:
    """The forward's variable for a child's result: its name, but never `self` (the forward's own)."""
    name = target.replace(".", "_")
    return "self_" if name == "self" else name


def _dispatch(graph: fx.Graph):
    """A forward taking the graph's inputs by name (so torch.fx can trace it, which `*xs` does
    not allow), running the training or the eval graph."""
    args = ", ".join(n.name for n in graph.nodes if n.op == "placeholder")
    src = (f"def forward(self, {args}):\n    if self.training:\n        return self._forward_train({args})\n"
           f"    return self._forward_eval({args})\n")
    return _forward_from_src(src, {}, {})


class Block(fx.GraphModule):
    """One block of the spec as a module (see the module doc)."""

    _netc_base = True

    def __init__(self, children: dict[str, nn.Module | nn.Parameter], plan: Plan, class_name: str = "Block"):
        object.__setattr__(self, "_netc_plan", plan)  # recompile() needs it during __init__
        holder = _holder(children)
        super().__init__(holder, graph_of(plan, training=True), class_name)
        # GraphModule registers what its graph calls, in call order; keep the spec's order and
        # every child (an aux head is not called by an eval graph, a Parts container never);
        # a parameter an op owns on this block (layer scale) is the block's own
        self._modules.clear()
        self._modules.update(holder._modules)
        self._parameters.clear()
        self._parameters.update(holder._parameters)

    def recompile(self):
        code = super().recompile()  # forward from self.graph: the training forward
        plan = self.__dict__.get("_netc_plan")
        if plan is not None and plan.has_aux:
            cls = type(self)
            cls._forward_train = cls.forward
            ev = graph_of(plan, training=False).python_code(root_module="self")
            cls._forward_eval = _forward_from_src(ev.src, ev.globals, {})
            cls.forward = _dispatch(self.graph)
        return code

    def __getitem__(self, index: int | str) -> nn.Module:
        """A child by position or name, as in nn.Sequential (`m.layer1[0]`)."""
        if isinstance(index, int):
            return list(self._modules.values())[index]
        return self._modules[index]

    def __len__(self) -> int:
        return len(self._modules)

    def _netc_init_args(self) -> tuple:
        """What __init__ takes besides the children (NetcModule adds its flat program)."""
        return (self._netc_plan, type(self).__name__)

    # copy, deepcopy and pickle rebuild the same class in the same order (GraphModule's own would
    # give a plain GraphModule registering its children in call order)
    def _deepcopy_init(self):
        base, args = _base_class(self), self._netc_init_args()

        def init(res, fake_mod, _graph):
            base.__init__(res, _children(fake_mod), *args)
            res.training = fake_mod.__dict__["training"]

        return init

    def __copy__(self):
        res = _base_class(self)(_children(self), *self._netc_init_args())
        res.meta = getattr(self, "meta", {})
        res.train(self.training)
        return res

    def __reduce__(self):
        return (_rebuild, (_base_class(self), _children(self), self._netc_init_args(), self.training))


def _children(module: nn.Module) -> dict[str, nn.Module | nn.Parameter]:
    """A block's children: its submodules and the parameters ops own on it (not a method, so that
    no layer name can shadow it)."""
    return {**module._parameters, **module._modules}


def _holder(children: dict[str, nn.Module | nn.Parameter], into: nn.Module | None = None) -> nn.Module:
    """A module owning `children`: submodules, and the parameters ops own on the block."""
    holder = nn.Module() if into is None else into
    for name, child in children.items():
        if isinstance(child, nn.Parameter):
            holder.register_parameter(name, child)
        else:
            holder.add_module(name, child)
    return holder


def _base_class(module: Block) -> type:
    """Block or NetcModule, under the classes GraphModule (one per instance) or FSDP derive from it."""
    return next(c for c in type(module).__mro__ if c.__dict__.get("_netc_base"))


def _rebuild(cls: type, children: dict, args: tuple, training: bool) -> Block:
    m = cls(children, *args)
    m.train(training)
    return m


def class_name(scope: Scope) -> str:
    """A readable class for a block: its template's name, else the kind of block it is."""
    block = scope.block
    name = getattr(block, "template", None) if getattr(block, "kind", None) == "use" else None
    if not name and block is not None:
        name = block.kind.capitalize()
    return name if name and name.isidentifier() else "Block"


def assemble(scope: Scope, leaves: dict[int, nn.Module | nn.Parameter]) -> nn.Module | dict[str, nn.Module]:
    """The module of `scope` from the op modules (or owned parameters) by node id; the root's
    children as a dict."""
    if scope.op is not None:
        return leaves[scope.op]
    children = {c.name: assemble(c, leaves) for c in scope.children}
    if scope.parent is None:
        return children
    if scope.plan is None:
        return _holder(children, Parts(scope.path, scope.reason))
    return Block(children, scope.plan, class_name(scope))
