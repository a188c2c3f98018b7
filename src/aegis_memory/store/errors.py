"""Errors the store raises that a person, not a program, has to act on."""

from __future__ import annotations


class DatabaseUnavailable(RuntimeError):
    """The configured database cannot serve Aegis: unreachable, refusing the login, or missing
    what Aegis needs (the pgvector extension, a recent enough version of it)."""
