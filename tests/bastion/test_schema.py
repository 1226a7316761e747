"""Schemathesis against the published OpenAPI schema of the running API: whatever a client sends
that the schema describes, the answer is never a 5xx — with an administrator's key, with an ordinary
user's key, or without a key, which is a 401 on every protected route.

Driven through schemathesis' Hypothesis strategies rather than its pytest plugin, whose fixture
mode does not run on pytest 9."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.bastion.conftest import Api

pytestmark = pytest.mark.llm
EXAMPLES = 25  # per operation; chat completions that pass validation reach the real model


def test_no_request_in_the_schema_gets_a_server_error(api: Api) -> None:
    schema = schemathesis.openapi.from_url(f"{api.url}/openapi.json")
    admin = {"Authorization": f"Bearer {api.keys['root']}"}
    user = {"Authorization": f"Bearer {api.keys['alice']}"}
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.label for op in operations} >= {
        "POST /v1/chat/completions",
        "POST /v1/documents",
        "POST /v1/search",
    }
    public = {"/healthz", "/readyz", "/metrics"}
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None
        )
        def as_admin(case: schemathesis.Case) -> None:
            # As an administrator, so generated requests reach every route's own validation.
            case.headers = {**(case.headers or {}), **admin}
            response = case.call(timeout=300)
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.path}: {response.status_code} {response.text[:200]}")

        @given(case=operation.as_strategy())
        @settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def as_a_user(case: schemathesis.Case) -> None:
            # An ordinary key: admin-only routes must refuse it (403), never fail on it.
            case.headers = {**(case.headers or {}), **user}
            response = case.call(timeout=300)
            if response.status_code >= 500:
                failures.append(
                    f"user: {case.method} {case.path}: {response.status_code} {response.text[:200]}"
                )

        @given(case=operation.as_strategy())
        @settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def without_a_key(case: schemathesis.Case) -> None:
            case.headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
            response = case.call(timeout=300)
            expected = response.status_code < 500 if case.path in public else response.status_code == 401
            if not expected:
                failures.append(
                    f"no key: {case.method} {case.path}: {response.status_code} {response.text[:200]}"
                )

        as_admin()
        as_a_user()
        without_a_key()
    assert failures == []
