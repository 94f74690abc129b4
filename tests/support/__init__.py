"""Helpers for tests that run real worker processes against a real redis-server."""
