"""A provider simulator: the five send APIs with their real auth and shapes, calling ingest back."""
