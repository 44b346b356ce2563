"""Mirroring: changes in (webhooks, pollers, backfills), deliveries out to the targets."""
