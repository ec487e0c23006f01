"""Persistence: one schema on SQLite or PostgreSQL, queries named in domain terms."""
