"""Credentials that name their tenant: API keys and webhook source tokens.

A credential is `<prefix>_<tenant uuid hex>_<random>`. Carrying the tenant lets every lookup
stay inside one tenant's keys (tenant_id leads every unique key); only a hash of the whole
credential is stored, so a database reader cannot use it.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass

API_KEY_PREFIX = "skd"
SOURCE_TOKEN_PREFIX = "src"
_RANDOM_BYTES = 24


@dataclass(frozen=True, slots=True)
class ParsedCredential:
    tenant_id: uuid.UUID
    digest: bytes


def new_credential(prefix: str, tenant_id: uuid.UUID) -> str:
    return f"{prefix}_{tenant_id.hex}_{secrets.token_urlsafe(_RANDOM_BYTES)}"


def digest(credential: str) -> bytes:
    return hashlib.sha256(credential.encode()).digest()


def parse_credential(credential: str, prefix: str) -> ParsedCredential | None:
    """The tenant and digest of a well-formed credential, else None (the caller answers 401)."""
    if len(credential) > 200:
        return None
    parts = credential.split("_", 2)
    if len(parts) != 3 or parts[0] != prefix or len(parts[1]) != 32:
        return None
    try:
        tenant_id = uuid.UUID(hex=parts[1])
    except ValueError:
        return None
    return ParsedCredential(tenant_id, digest(credential))
