"""Persistence: one schema on SQLite or PostgreSQL, queries named in domain terms; the
store carries out what the domain decides, in one transaction."""
