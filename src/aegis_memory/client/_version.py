"""The installed package version, read once.

It lives here (not in ``aegis_memory/__init__``) so that the client can put it in its User-Agent
without importing the package root, which imports the client.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def _installed_version() -> str:
    try:
        return version("aegis-memory")
    except PackageNotFoundError:  # running from a source checkout that was never installed
        return "0.0.0"


VERSION = _installed_version()
