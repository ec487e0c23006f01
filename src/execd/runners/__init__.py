"""How actions run: one runner per kind of entry point."""
