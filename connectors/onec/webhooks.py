"""Changes 1C pushes to ``POST /hooks/{system}``: the bridge's generic webhook format
(``bridge.mirror.generic_webhook``), each change of an entity 1C reports."""

from __future__ import annotations

from bridge.connector import WebhookRejected, WebhookRequest
from bridge.mirror.generic_webhook import parse_generic_webhook
from bridge.store.records import InboundEvent
from connectors.onec.models import ENTITIES


def parse_onec_webhook(request: WebhookRequest) -> list[InboundEvent]:
    """Parse a generic-format push and check that every entity is one 1C reports."""
    events = parse_generic_webhook(request)
    for index, event in enumerate(events):
        if event.entity not in ENTITIES:
            where = f"events[{index}]." if len(events) > 1 else ""
            allowed = ", ".join(sorted(ENTITIES))
            raise WebhookRejected(
                f"{where}entity: {event.entity!r} is not one of the 1C entities ({allowed})"
            )
    return events
