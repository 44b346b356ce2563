"""1C as a webhook source: the generic JSON format, limited to the entities 1C reports.

The 1C side is written by integrators against our contract (onec.md §0.4 recommends a small
custom JSON HTTP service over SOAP or CommerceML), so 1C pushes use the generic format of
``bridge.webhook_format`` instead of a 1C-specific one. Writing into 1C lands in issue 3.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from bridge.connector import WebhookRejected, WebhookRequest
from bridge.settings import SystemSettings
from bridge.store.records import InboundEvent
from bridge.webhook_format import parse_generic_webhook

# onec.md §4.5 "Concept mapping": the documents and catalogs 1C has for what we mirror.
ENTITIES: dict[str, str] = {
    "order": "ЗаказКлиента (Управление торговлей 11), ЗаказПокупателя (older configurations)",
    "receipt": "ЧекККМ, a retail sale at the till (never carried by CommerceML, onec.md §3.11)",
    "sale": "РеализацияТоваровУслуг, a shipment / sale to a customer",
    "customer": "Партнеры / Контрагенты, with their loyalty cards (КартыЛояльности)",
}


class OnecOptions(BaseModel):
    """Options of a 1C system; none yet (the SOAP/HTTP client lands in issue 3)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class OnecConnector:
    """Parses the changes one 1C infobase pushes; cannot write yet."""

    def __init__(self, name: str) -> None:
        self.name = name

    def parse_webhook(self, request: WebhookRequest) -> list[InboundEvent]:
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


class OnecType:
    """Entry-point object for ``type: onec``."""

    options_model: type[BaseModel] = OnecOptions

    def create(self, name: str, system: SystemSettings, options: OnecOptions) -> OnecConnector:
        """A 1C connector for system ``name``."""
        return OnecConnector(name)


ONEC = OnecType()
