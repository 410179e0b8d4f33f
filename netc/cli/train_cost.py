"""`netc table SPEC --train`: the report of the predicted training cost (`netc.analysis.train`)."""
from __future__ import annotations

import json

from netc.errors import error


def train_report(network, fmt: str, batch: int, optimizer: str, amp: bool, device: str, isa: str | None,
                 budget: str | None) -> str:
    """Text or JSON of one training step's predicted cost at `batch`, or at the largest batch
    that fits `budget` (a size like 24GiB) when given."""
    from netc.analysis.train import as_dict, describe, parse_bytes

    if fmt not in ("text", "json"):
        raise error("usage", f"--train prints text or json, not {fmt}", None, "use --format text or --format json")
    limit = None
    if budget is not None:
        try:
            limit = parse_bytes(budget)
        except ValueError as e:
            raise error("usage", f"--budget: {e}", None, "e.g. --budget 24GiB") from None
        cost = network.max_batch(limit, optimizer, amp, device, isa)
        if cost is None:
            one = network.train_cost(1, optimizer, amp, device, isa)
            raise error("limit", f"{network.name} does not fit in {budget} even at batch 1 "
                        f"(predicted peak {one.peak / 2**20:,.1f} MiB)", None,
                        "use --amp, a smaller width or input (--set, --input), or a larger budget")
    else:
        cost = network.train_cost(batch, optimizer, amp, device, isa)
    if fmt == "json":
        return json.dumps({**as_dict(cost), "budget": limit}, indent=2) + "\n"
    return describe(cost, limit)
