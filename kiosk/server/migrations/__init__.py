"""Alembic migrations of the server's database (run by `kiosk server migrate` or at start)."""
