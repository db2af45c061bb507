"""Delivery: the kiosk's shipper drains the outbox to the central server (`kiosk ship`)."""
