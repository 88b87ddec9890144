"""Schemathesis over the whole admin API, from its published OpenAPI document, against a
live server with an administrator's bearer token.

For every operation the registry declares (idp.admin.api.registry.OPERATIONS), Hypothesis
generates requests that fit the document and requests that do not, with random path
values and with the values of real things (a portal, a client, a person, ...), so the
handlers run, not only the 404s. Every response must be no server error, a documented
status, the documented media type and a body that matches its schema.

Bounded for `make test`: a few examples per operation and mode, derandomized (the same
requests every run), no example database, no shrinking.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from idp.admin.api.registry import OPERATIONS
from idp.db import db
from idp.invitations import send_invitation
from idp.models import Contact, User
from idp.notify.outbox import queue_email
from idp.portals import find_portal
from tests.admin_fixtures import api_client
from tests.security.conftest import LiveIdP, furnish, start_idp

API = "/admin/api/v1"
EXAMPLES_PER_MODE = 8
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, response_headers_conformance]


class Target:
    """The live IdP, its loaded OpenAPI document, a token and the values of real things."""

    def __init__(self, idp: LiveIdP, schema: Any, token: str, real: dict[str, Any]) -> None:
        self.idp, self.schema, self.real = idp, schema, real
        self.headers = {"Authorization": f"Bearer {token}"}
        self.session = requests.Session()


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory, template_database: Any) -> Iterator[Target]:
    with start_idp(tmp_path_factory, template_database) as live:
        furnish(live)
        with live.context():
            portal = find_portal(live.portal_slug)
            assert portal is not None
            person = db.session.scalars(db.select(User).filter_by(
                email=live.person.email)).one()
            db.session.add(Contact(portal_id=portal.id, external_id="C-1",
                                   email=person.email, user_id=person.id))
            message = queue_email(person.email, "mfa_reset", name=person.name)
            db.session.commit()
            invitation = send_invitation(portal, "invitee@example.org", actor="test")
            real = {"slug": portal.slug, "client_id": live.rp.client_id, "sub": person.sub,
                    "contact_id": "C-1", "message_id": message.id,
                    "invitation_id": invitation.id}
            client_id, secret = api_client()
            db.session.remove()
        token = requests.post(f"{live.url}/token", auth=(client_id, secret), timeout=10,
                              data={"grant_type": "client_credentials", "scope": "idp:admin"})
        assert token.status_code == 200, token.text
        schema = schemathesis.openapi.from_url(f"{live.url}{API}/openapi.json")
        # The token goes on every request; no budget is spent on made-up credentials
        # (tests/test_admin_access.py covers missing and wrong tokens).
        schema.config.generation.update(with_security_parameters=False)
        yield Target(live, schema, token.json()["access_token"], real)


def strategy_for(target: Target, method: str, path: str) -> st.SearchStrategy[Any]:
    """Requests for one operation: fitting and not, at random and at real things."""
    operation = target.schema[path][method]
    names = [p.name for p in operation.path_parameters]
    real = {name: target.real[name] for name in names if name in target.real}
    strategies = []
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        strategies.append(operation.as_strategy(mode))
        if real:
            strategies.append(operation.as_strategy(mode, path_parameters=real))
    return st.one_of(strategies)


@pytest.mark.parametrize("label", [f"{op.method} {op.path}" for op in OPERATIONS])
def test_no_operation_answers_with_a_server_error_or_off_its_document(target, label):
    method, path = label.split(" ", 1)
    strategy = strategy_for(target, method, path)
    modes = 4 if any("{" in part for part in path.split("/")) else 2

    @settings(max_examples=EXAMPLES_PER_MODE * modes, derandomize=True, database=None,
              deadline=None, phases=[Phase.explicit, Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def fuzz(case: Any) -> None:
        response = case.call(base_url=target.idp.url + API, session=target.session,
                             headers=target.headers, timeout=15)
        case.validate_response(response, checks=CHECKS, headers=target.headers)

    fuzz()


def test_every_operation_is_in_the_published_document(target):
    documented = {f"{operation.method.upper()} {operation.path}"
                  for operation in (result.ok() for result in
                                    target.schema.get_all_operations())}
    assert documented == {f"{op.method} {op.path}" for op in OPERATIONS}
