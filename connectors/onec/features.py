"""What a declared 1C service enables, for ``bridge check``: one line per bridge feature."""

from __future__ import annotations

from connectors.onec.declared.model import Declaration


def _state(declaration: Declaration, capability: str) -> str:
    if declaration.calls(capability) is not None:
        return "called"
    done = declaration.done_by_1c(capability)
    return f"done by 1C ({done})" if done else "missing"


def features(declaration: Declaration) -> list[str]:
    """Each feature on or off, and why (what is declared or missing)."""
    has = declaration.calls
    lines: list[str] = []
    if has("balance") is None:
        lines.append("look-ups: off (balance not declared)")
    elif has("find_customer") is not None:
        lines.append("look-ups: on (customers found by find_customer)")
    else:
        lines.append(f"look-ups: on (keyed by {declaration.customer or 'phone'}, no find_customer)")
    if has("reserve") is None:
        lines.append("reservations: off (reserve not declared: the API answers 501 not_supported)")
    else:
        commit, release = _state(declaration, "commit"), _state(declaration, "release")
        lines.append(f"reservations: on (commit {commit}; release {release})")
    for feature, capabilities in (
        ("accruals", ("accrue",)),
        ("returns", ("reverse",)),
        ("orders into 1C", ("save_order",)),
        ("customers into 1C", ("save_customer",)),
        ("changes from 1C", ("get_changes", "get_order", "get_customer")),
        ("backfill", ("list_orders", "list_customers")),
        ("customers' cards", ("find_cards", "get_card", "attach_card", "set_card_status",
                              "set_main_card", "move_points")),
        ("questionnaire", ("get_profile", "save_profile")),
        ("registration", ("register_customer",)),
    ):  # fmt: skip
        declared = [c for c in capabilities if has(c) is not None]
        if declared:
            lines.append(f"{feature}: on ({', '.join(declared)})")
        else:
            lines.append(f"{feature}: off ({' / '.join(capabilities)} not declared)")
    return lines
