"""The bonus service: one master, proxied look-ups, SMS-confirmed reservations."""
