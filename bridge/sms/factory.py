"""The configured gateway."""

from __future__ import annotations

from bridge.settings_sms import SandboxGatewaySettings, SmsSettings
from bridge.sms.gateway import SmsGateway
from bridge.sms.sandbox import SandboxGateway
from bridge.store.reservations import ReservationStore


def build_gateway(settings: SmsSettings, store: ReservationStore) -> SmsGateway:
    """The gateway ``bonus.sms.gateway`` names."""
    if isinstance(settings.gateway, SandboxGatewaySettings):
        return SandboxGateway(store)
    from bridge.sms.providers import build_http_gateway

    return build_http_gateway(settings.gateway, settings.timeout_seconds)
