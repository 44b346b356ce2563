"""Connectors joining the bridge to 1C, RetailCRM and Bitrix, found through entry points."""
