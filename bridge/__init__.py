"""The bridge: one bonus program and one order history across 1C, RetailCRM and Bitrix."""

__version__ = "0.1.0"
