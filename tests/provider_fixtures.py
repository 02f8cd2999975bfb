"""Where the shared third-party provider payloads live: beside the checkout, never inside it."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_PROVIDER_FIXTURES = (
    Path(__file__).resolve().parents[1] / ".." / "shared" / "fixtures" / "providers"
).resolve()


def shared_fixture_dir(provider: str) -> Path:
    """The folder of real `provider` payloads; skips the test when it is not checked out."""
    folder = SHARED_PROVIDER_FIXTURES / provider
    if not folder.is_dir():
        pytest.skip(f"shared {provider} fixtures not found at {folder}")
    return folder


def shared_fixture_names(provider: str) -> list[str]:
    """The fixture file names, for parametrizing; empty when the folder is absent."""
    folder = SHARED_PROVIDER_FIXTURES / provider
    return sorted(path.name for path in folder.glob("*.json")) if folder.is_dir() else []
