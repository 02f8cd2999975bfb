"""Encryption at rest for signing secrets and dead-letter bodies (AES-256-GCM)."""

from __future__ import annotations

import base64
import os
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from skeldir.base.config import Settings

KEY_FILE = "secret.key"
_NONCE_BYTES = 12


class SecretBox:
    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("the secret key must be 32 bytes (base64 in SKELDIR_SECRET_KEY)")
        self._aead = AESGCM(key)

    def encrypt(self, plaintext: bytes, *, context: bytes = b"") -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, context)

    def decrypt(self, ciphertext: bytes, *, context: bytes = b"") -> bytes:
        return self._aead.decrypt(ciphertext[:_NONCE_BYTES], ciphertext[_NONCE_BYTES:], context)


def secret_box(settings: Settings, *, create: bool = False) -> SecretBox:
    """The deployment's box: SKELDIR_SECRET_KEY, else the data dir's key file."""
    if settings.secret_key:
        return SecretBox(base64.b64decode(settings.secret_key))
    path = Path(settings.data_dir) / KEY_FILE
    if not path.exists():
        if not create:
            raise RuntimeError(f"no SKELDIR_SECRET_KEY and no key file at {path}")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(base64.b64encode(os.urandom(32)))
    return SecretBox(base64.b64decode(path.read_bytes().strip()))


def new_secret_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()
