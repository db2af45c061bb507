"""Helpers shared by the test suite: a real clamd, hostile trees, loop devices."""
