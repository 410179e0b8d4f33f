"""The API of the compile cache (`netc cache list|clear`): where it is, its bound, its entries.
Torch is never imported here."""
from __future__ import annotations

from pathlib import Path

from netc.backends.torch.cache import CacheWarning  # noqa: F401  (what a skipped entry warns with)


def cache_location() -> Path:
    """The folder `--compile` keeps its packages in (`$NETC_CACHE_DIR`, else the user's cache folder)."""
    from netc.backends.torch.cache import cache_dir

    return cache_dir()


def cache_limit() -> int:
    """The size bound in bytes past which least recently used packages are evicted (`$NETC_CACHE_SIZE`)."""
    from netc.backends.torch.cache import max_bytes

    return max_bytes()


def cache_entries(folder: Path | None = None) -> list:
    """The packages in the cache, most recently used first (`netc.backends.torch.cache.Entry`)."""
    from netc.backends.torch.cache import entries

    return entries(folder or cache_location())


def clear_cache(folder: Path | None = None) -> list:
    """Remove every package, its record and stale temp files; returns the removed entries."""
    from netc.backends.torch.cache import clear

    return clear(folder or cache_location())
