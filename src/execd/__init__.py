"""execd: a multi-tenant action and job execution service."""

__version__ = "0.1.0"
