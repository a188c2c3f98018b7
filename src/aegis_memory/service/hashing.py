"""Content hashing for dedup and API-key hashing: small, pure, shared by every path."""

from __future__ import annotations

import hashlib
import hmac
import secrets

KEY_PREFIX = "aegis_"


def normalise(content: str) -> str:
    """Whitespace-collapsed, case-folded text: what two "same" memories have in common."""
    return " ".join(content.split()).casefold()


def content_hash(content: str) -> str:
    return hashlib.sha256(normalise(content).encode("utf-8")).hexdigest()


def dedup_key(namespace: str, agent_id: str | None, user_id: str | None, chash: str) -> str:
    """SPEC §3: duplicates are judged within (project, namespace, agent, user).

    The project is a separate column of the unique index; the rest is folded into one hash so
    that NULL owners still collide (SQL unique indexes treat NULLs as distinct).
    """
    raw = "\x1f".join((namespace, agent_id or "", user_id or "", chash))
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def same_secret(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))
