"""The RetailCRM connector: intake of trigger calls that say an order or customer changed."""
