"""What a layer, output, template or spec may be called: one rule, used by every backend.

Names become module paths, Python identifiers in generated code, DOT labels and file names:
plain ASCII only, so no quoting, path traversal or look-alike characters can get through. A
layer name is also an attribute of its parent module (the fx forward and generated classes
reach submodules as `self.<name>`), so it may not be one that torch's modules or netc's own
module classes already own: `forward`, `to`, `training`, `_modules`, `meta`, … (TORCH_OWNED),
nor start with `__` (Python mangles `self.__w` inside a class body). An output name is a field
of the namedtuple a forward returns: an identifier not starting with `_`.

TORCH_OWNED is written out here, not computed, because the frontend never imports torch;
tests/test_names.py checks it against what `nn.Module`, `nn.Sequential`, `fx.GraphModule` and
`NetcModule` (classes and instances) really own in the installed torch.
"""
from __future__ import annotations

import keyword
import re

from netc.errors import clip

# a layer name may hold "-" (torchvision's RegNet names its blocks block1-0), though not first: it reaches
# command lines (--lesion, out_indices); generated code registers such names with add_module
MODULE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,63}")
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
RESERVED_NAMES = {"input"}  # `from: input` means the network input

# attributes of nn.Module / nn.Sequential / fx.GraphModule / netc's NetcModule (classes and
# instances), without dunders (refused by their prefix). `self` is allowed: the generated forwards
# name their children so that a child called `self` cannot shadow the receiver.
TORCH_OWNED = frozenset("""
    T_destination _apply _backward_hooks _backward_pre_hooks _boxed_call _buffers _call_impl
    _code _compiled_call_impl _create_node_hooks _deepcopy_hooks _deepcopy_init
    _erase_node_hooks _forward_eval _forward_hooks
    _forward_hooks_always_called _forward_hooks_with_kwargs _forward_pre_hooks
    _forward_pre_hooks_with_kwargs _forward_train _get_backward_hooks _get_backward_pre_hooks
    _get_item_by_idx _get_name _graph _is_full_backward_hook _lineno_map _load_from_state_dict
    _load_state_dict_post_hooks _load_state_dict_pre_hooks _maybe_warn_non_full_backward_hook
    _modules _named_members _netc_base _netc_flat _netc_init_args _netc_plan _netc_program
    _non_persistent_buffers_set _parameters
    _prologue_start _recompile_submodules _register_create_node_hook _register_deepcopy_hook
    _register_erase_node_hook _register_load_state_dict_pre_hook _register_replace_node_hook
    _register_state_dict_hook _replace_hooks _replicate_for_data_parallel _save_to_state_dict
    _set_replace_hook _slow_forward _state_dict_hooks _state_dict_pre_hooks _tracer_cls
    _tracer_extras _unregister_create_node_hook _unregister_deepcopy_hook
    _unregister_erase_node_hook _unregister_replace_node_hook _version _wrapped_call
    _wrapped_call_impl add_module add_submodule append apply bfloat16 buffers call_super_init
    children code compile cpu cuda delete_all_unused_submodules delete_submodule double
    dump_patches eval extend extra_repr float forward get_buffer get_extra_state get_parameter
    get_submodule graph half insert ipu leaves load_state_dict meta modules mtia named_buffers
    named_children named_modules named_parameters parameters pop print_readable program
    recompile register_backward_hook register_buffer register_forward_hook
    register_forward_pre_hook register_full_backward_hook register_full_backward_pre_hook
    register_load_state_dict_post_hook register_load_state_dict_pre_hook register_module
    register_parameter register_state_dict_post_hook register_state_dict_pre_hook requires_grad_
    set_extra_state set_submodule shape_env share_memory state_dict to to_empty to_folder train
    training type xpu zero_grad
""".split())


class BadName(ValueError):
    """A well-formed name that collides with something (reported as error[name]; a malformed
    one is a plain ValueError, error[schema], like any other malformed value)."""


def _plain(value: str, what: str, pattern: re.Pattern) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        if pattern is IDENTIFIER:
            raise ValueError(f"{what} {clip(repr(value))} must be an identifier: an ASCII letter or '_', then "
                             "letters, digits or '_' (at most 64)")
        raise ValueError(f"{what} {clip(repr(value))} must be 1 to 64 ASCII letters, digits, '_' or '-' "
                         "(not first)")
    if value in RESERVED_NAMES:
        raise ValueError(f"{what} {clip(repr(value))} is reserved ('from: input' means the network input)")
    if keyword.iskeyword(value):
        # a module path is Python attribute access in the fx forward and in generated code
        raise ValueError(f"{what} {clip(repr(value))} is a Python keyword; names cannot be keywords")
    return value


def check_identifier(value: str | None, what: str) -> str | None:
    """A template or spec name (they name classes and files)."""
    return None if value is None else _plain(value, what, IDENTIFIER)


def check_module_name(value: str | None, what: str = "name") -> str | None:
    """A layer name: a submodule attribute of its parent module."""
    if value is None:
        return None
    _plain(value, what, MODULE_NAME)
    if value in TORCH_OWNED:
        raise BadName(f"{what} {value!r} is an attribute torch modules already have; "
                         "a layer of that name would replace it")
    if value.startswith("__"):
        raise BadName(f"{what} {value!r} starts with '__', which Python mangles inside a class")
    return value


def check_output_name(value: str | None, what: str = "output name") -> str | None:
    """An output name: a field of the namedtuple a forward returns."""
    if value is None:
        return None
    _plain(value, what, IDENTIFIER)
    if value.startswith("_"):
        raise BadName(f"{what} {value!r} starts with '_'; output names are the fields of a named tuple")
    return value


def output_name_for_key(key: str) -> str:
    """The output name an imported forward's dict key `key` becomes: the key itself where it is an
    output name (`out`, `aux`, `pool`); else `out` + the key with every character other than an ASCII
    letter, digit or '_' replaced by '_' (torchvision's FPN keys '0'..'3' -> `out0`..`out3`, as the
    items of a returned list are named; 'layer1.0' -> `out_layer1_0`; 'class' -> `out_class`).
    ValueError where even that is no output name (longer than 64 characters)."""
    try:
        return check_output_name(key)
    except ValueError:
        pass
    text = re.sub(r"[^A-Za-z0-9_]", "_", str(key))
    return check_output_name("out" + (text if text[:1].isdigit() or text.startswith("_") else "_" + text))


def check_module_path(value) -> str:
    """What `from:` may name: `input`, or a module path of layer names (`layer1.0.conv1`)."""
    if value == "input":
        return value
    if not isinstance(value, str) or len(value) > 1024 or not all(MODULE_NAME.fullmatch(p) for p in value.split(".")):
        raise ValueError(f"{clip(repr(value))} is not a layer name or a dotted module path such as layer1.0.conv1")
    return value
