"""SPEC arguments that name many specs: a folder (its *.yaml and *.yml, sorted) or a glob pattern
(`specs/resnet*.yaml`, `**` for subfolders), expanded in place; anything else is one spec."""
from __future__ import annotations

import glob
import os

import click

PATTERN = set("*?[")


def expand_specs(names) -> list[str]:
    out: list[str] = []
    for name in names:
        if os.path.isdir(name):
            found = sorted(e.path for e in os.scandir(name) if e.is_file() and e.name.endswith((".yaml", ".yml")))
            where = f"the folder '{name}' holds no .yaml or .yml spec"
        elif PATTERN & set(name):
            found = sorted(p for p in glob.iglob(name, recursive=True) if os.path.isfile(p))
            where = f"no file matches '{name}'"
        else:
            out.append(name)
            continue
        if not found:
            raise click.BadParameter(where, param_hint="SPEC")
        out += found
    return out
