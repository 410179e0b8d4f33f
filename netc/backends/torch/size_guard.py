"""A network fixed to its input size: one whose spec sizes something by the input's height or
width (`$in_h`, `$in_w`, as an `upsample` back to the input size does) computes those sizes at
compile time, so the module built for one size would give wrong shapes at another. Its module
checks the size of each input before any op runs and refuses another with the spec's location.
"""
from __future__ import annotations

from dataclasses import dataclass


class InputSizeError(ValueError):
    """A module called at an input size other than the one its sizes were computed for."""


@dataclass(frozen=True)
class FixedSize:
    """The input's spatial size the module was compiled at, and where the spec reads it."""

    size: tuple[int, ...]
    where: str

    def __call__(self, module, args) -> None:  # a forward pre-hook
        x = args[0] if args else None
        got = tuple(getattr(x, "shape", ())[-len(self.size):])
        if len(got) == len(self.size) and got != self.size:
            raise InputSizeError(self.message() % "×".join(map(str, got)))

    def message(self) -> str:
        """The error, with `%s` where the size it was called at goes (generated code writes it too)."""
        return (f"{self.where}: the spec sizes layers by the input's height and width ($in_h, $in_w) here, so the "
                f"module built for {'×'.join(map(str, self.size))} cannot run at %s; compile it at that size "
                "(netc.load(..., input_shape=...), --input CxHxW)").replace("%", "%%").replace("%%s", "%s", 1)


def fixed_size(network) -> FixedSize | None:
    """The guard of `network` (a `netc.api.Network`), or None when its sizes follow any input."""
    where, shape = network.graph.size_from_input, network.input_shape
    return FixedSize(tuple(shape[1:]), str(where)) if where is not None and len(shape) == 3 else None
