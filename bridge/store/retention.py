"""What every store's pruning shares: which events may go, and the checks of a prune.

Only finished events are pruned. ``done`` ones go by retention (``store.retention``) and by
hand (``bridge purge``); ``dead`` and ``rejected`` ones wait for support and go only by
hand. An event with a delivery still waiting or leased is never pruned, whatever is asked.
"""

from __future__ import annotations

from bridge.store.records import Status

PRUNABLE = (Status.DONE, Status.DEAD, Status.REJECTED)


def check_prune(status: Status, limit: int) -> None:
    """ValueError unless ``status`` may be pruned and ``limit`` is at least 1."""
    if status not in PRUNABLE:
        allowed = ", ".join(PRUNABLE)
        raise ValueError(f"only finished events are pruned ({allowed}), not {status}")
    if limit < 1:
        raise ValueError(f"a prune takes at least one event, not {limit}")
