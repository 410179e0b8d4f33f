"""`netc cache list|clear`: the compiled packages `build --compile` keeps, and removing them."""
from __future__ import annotations

import time

import click

from netc.cli.output import echo


@click.group()
def cache():
    """The compile cache: `--compile`'s packages ($NETC_CACHE_DIR; bound $NETC_CACHE_SIZE, default 2GiB)."""


@cache.command("list")
def list_():
    """List the cached packages, most recently used first, with their size and last use."""
    from netc.api.cache import cache_entries, cache_limit, cache_location

    found = cache_entries()
    for entry in found:
        used = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.used))
        note = "" if entry.recorded else "  (no recorded digest: never loaded)"
        echo(f"{entry.size / 2**20:10.1f} MiB  {used}  {entry.path.name}{note}")
    total = sum(e.size for e in found)
    echo(f"{len(found)} package{'s' * (len(found) != 1)}, {total / 2**20:,.1f} MiB of "
         f"{cache_limit() / 2**20:,.0f} MiB in {cache_location()}")


@cache.command()
def clear():
    """Remove every cached package (and the temp files of interrupted compiles)."""
    from netc.api.cache import cache_location, clear_cache

    removed = clear_cache()
    echo(f"removed {len(removed)} package{'s' * (len(removed) != 1)} "
         f"({sum(e.size for e in removed) / 2**20:,.1f} MiB) from {cache_location()}")
