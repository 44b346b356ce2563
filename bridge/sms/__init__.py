"""SMS gateways for confirmation codes (PRODUCT 3.2)."""
