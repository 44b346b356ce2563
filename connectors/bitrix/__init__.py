"""The Bitrix connector: intake of Bitrix24 outbound (online) events."""
