"""schemathesis over /openapi.json against a running system: for every operation, generated
requests (valid and invalid) with an admin key get no 5xx, a documented status code, and a body
and content type that conform to the schema.

Run longer with SKELDIR_SCHEMA_EXAMPLES (examples per operation and mode, default 50).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import schemathesis
from e2e_system import RunningSystem, start_system
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

pytestmark = pytest.mark.e2e

EXAMPLES = int(os.environ.get("SKELDIR_SCHEMA_EXAMPLES", "50"))
# The webhook routes take a provider's signature, not an API key: generated requests would
# only ever test the 401 path. tests/adapters/api/test_hostile_input.py covers them instead.
UNSIGNED_ROUTES = r"^/(hooks|api/webhooks)/"


@pytest.fixture(scope="module")
def system() -> Iterator[RunningSystem]:
    # The API limit is off here: one tenant sends hundreds of requests in a few seconds.
    yield from start_system({"SKELDIR_RATE_LIMIT_API_PER_SECOND": "0"})


@pytest.fixture(scope="module")
def admin_key(system: RunningSystem) -> str:
    return system.cli("tenant", "create", "schema check", "--json")["api_key"]


@pytest.fixture(scope="module")
def api_schema(system: RunningSystem):
    loaded = schemathesis.openapi.from_url(f"{system.api_url}/openapi.json")
    return loaded.exclude(path_regex=UNSIGNED_ROUTES)


def test_every_operation_conforms_to_the_schema(api_schema, admin_key):
    # One test over every operation rather than schemathesis' lazy parametrize, which does not
    # work with this pytest: the failures name their operations instead.
    failures = []
    for result in api_schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _check(operation, mode, admin_key)
            except Unsatisfiable:
                pass  # nothing of the operation can be made invalid (no parameters, say)
            except (Exception, BaseExceptionGroup) as failure:  # noqa: BLE001 - reported at once
                failures.append(f"{operation.label} ({mode.value}): {failure}")
    assert not failures, "\n\n".join(failures)


def _check(operation, mode: GenerationMode, admin_key: str) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    def calls_conform(case):
        case.call_and_validate(
            headers={"Authorization": f"Bearer {admin_key}"},
            # Every default check but one: rules across fields ('to' on or after 'from', at
            # most 366 days, a known model) are documented 400s the schema cannot express.
            excluded_checks=[positive_data_acceptance],
            timeout=30,
        )

    calls_conform()
