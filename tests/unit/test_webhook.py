"""POST /stripe/webhook with real Stripe-style signatures, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import logging
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from norex.db import Customer, Database
from norex.errors import UsageError
from norex.settings import Settings
from norex.web import create_app
from tests.unit.control_support import (
    BACKENDS,
    SECRET,
    body,
    counts,
    customer_event,
    database,
    event,
    sign,
    sub_event,
    v1,
)

with warnings.catch_warnings():
    # Starlette 1.10 prefers its httpx2 fork for the test client; httpx, our declared dependency, still works.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient` is deprecated")
    from starlette.testclient import TestClient

CUS = "cus_WebhookTest01"
EMAIL = "webhook.person@example.org"
URL = "/stripe/webhook"


class Recorder:
    """Stands in for the queue: the opaque ids the app asked to enqueue."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    def __call__(self, customer_id: str) -> None:
        self.ids.append(customer_id)


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    with database(request.param, tmp_path) as db:
        yield db


@pytest.fixture
def queue() -> Recorder:
    return Recorder()


def make_client(db: Database, queue: Any, secrets: str = SECRET) -> TestClient:
    app = create_app(Settings(database_url=db.url, stripe_webhook_secret=secrets), queue, db)
    return TestClient(app, raise_server_exceptions=True)


@pytest.fixture
def client(db: Database, queue: Recorder) -> Iterator[TestClient]:
    with make_client(db, queue) as client:
        yield client


def post(client: TestClient, evt: dict | bytes, *, header: str | None = "sign", **kw: Any):
    payload = evt if isinstance(evt, bytes) else body(evt)
    headers = {"content-type": "application/json"}
    if header == "sign":
        header = sign(payload, **kw)
    if header is not None:
        headers["stripe-signature"] = header
    return client.post(URL, content=payload, headers=headers)


def now() -> int:
    return int(time.time())


def stored(db: Database) -> Customer | None:
    with db.read() as session:
        return session.scalars(select(Customer).where(Customer.stripe_customer_id == CUS)).one_or_none()


def test_valid_event_is_recorded_and_enqueued(client: TestClient, db: Database, queue: Recorder) -> None:
    r = post(client, sub_event("created", "sub_1", CUS, "active", now()))
    assert r.status_code == 200 and r.json() == {"received": True, "result": "applied"}
    row = stored(db)
    assert row is not None and row.desired == "present"
    assert queue.ids == [row.id]


def test_forged_signature_is_rejected(client: TestClient, db: Database) -> None:
    r = post(client, sub_event("created", "sub_1", CUS, "active", now()), secret="whsec_not_ours")
    assert (r.status_code, r.text) == (400, "no valid signature")
    evt = sub_event("created", "sub_1", CUS, "active", now())
    tampered = body(evt).replace(b'"active"', b'"trialing"')
    r = post(client, tampered, header=sign(body(evt)))
    assert (r.status_code, r.text) == (400, "no valid signature")
    assert stored(db) is None


def test_stale_timestamp_is_rejected(client: TestClient, db: Database) -> None:
    r = post(client, sub_event("created", "sub_1", CUS, "active", now()), timestamp=now() - 301)
    assert (r.status_code, r.text) == (400, "timestamp outside the 300 s tolerance")
    assert post(client, sub_event("created", "sub_1", CUS, "active", now()), timestamp=now() - 200).status_code == 200


@pytest.mark.parametrize("header", [None, "", "garbage", "t=abc,v1=00", "v1=abcd", "t=1", "t=1,v0=abc"])
def test_missing_or_malformed_signature_header_is_rejected(client: TestClient, db: Database, header: Any) -> None:
    r = post(client, sub_event("created", "sub_1", CUS, "active", now()), header=header)
    assert r.status_code == 400
    assert counts(db)["processed_events"] == 0


def test_malformed_json_with_a_valid_signature_is_rejected(client: TestClient) -> None:
    for payload, reason in (
        (b'{"id": "evt_1", "type": ', "malformed JSON"),
        (b"[" * 100_000, "malformed JSON"),
        (b"\xff\xfe", "body is not UTF-8"),
        (b'["not", "an", "event"]', "not a Stripe event"),
        (b'{"id": "evt_1", "type": "customer.created", "created": true}', "not a Stripe event"),
    ):
        r = post(client, payload)
        assert (r.status_code, r.text) == (400, reason)


def test_rotation_several_v1_signatures_and_several_secrets(db: Database, queue: Recorder) -> None:
    evt = customer_event("created", CUS, EMAIL, now())
    payload, t = body(evt), now()
    with make_client(db, queue, secrets="whsec_old_one, " + SECRET) as client:
        # Stripe signs with the old and the new secret during its rotation: one header, two v1 values.
        header = f"t={t},v1={v1(payload, 'whsec_unknown', t)},v1={v1(payload, SECRET, t)}"
        assert post(client, payload, header=header).status_code == 200
        # Our side: either of our configured secrets verifies.
        evt2 = customer_event("updated", CUS, "x" + EMAIL, now())
        assert post(client, evt2, secret="whsec_old_one").status_code == 200
        assert post(client, customer_event("updated", CUS, EMAIL, now()), secret="whsec_other").status_code == 400


def test_body_over_one_mib_is_refused(client: TestClient, db: Database) -> None:
    big = b'{"id": "evt_big", "pad": "' + b"x" * (1 << 20) + b'"}'
    r = post(client, big)
    assert r.status_code == 413
    # Without Content-Length (chunked), counted as it streams in.
    r = client.post(URL, content=iter([big[i : i + 65536] for i in range(0, len(big), 65536)]), headers={})
    assert r.status_code == 413
    # Exactly 1 MiB is fine size-wise (then judged on its signature).
    assert post(client, b" " * (1 << 20), header="t=1,v1=00").status_code == 400
    assert counts(db)["processed_events"] == 0


def test_declared_length_over_the_limit_is_refused_without_reading_the_body(db: Database, queue: Recorder) -> None:
    app = create_app(Settings(database_url=db.url, stripe_webhook_secret=SECRET), queue, db)
    reads: list[int] = []
    sent: list[dict] = []

    async def receive() -> dict:
        reads.append(1)
        return {"type": "http.request", "body": b"x" * 65536, "more_body": True}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": URL,
        "raw_path": URL.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-length", str(2 << 20).encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    anyio.run(app, scope, receive, send)
    assert sent[0]["status"] == 413 and reads == []


def test_one_event_delivered_ten_times_is_applied_once(client: TestClient, db: Database, queue: Recorder) -> None:
    evt = sub_event("created", "sub_1", CUS, "active", now())
    results = [post(client, evt).json()["result"] for _ in range(10)]
    assert results == ["applied"] + ["duplicate"] * 9
    assert len(queue.ids) == 1 and counts(db)["customers"] == 1


def test_deleted_before_created_wants_no_server(client: TestClient, db: Database) -> None:
    t = now()
    assert post(client, sub_event("deleted", "sub_1", CUS, "canceled", t)).json()["result"] == "applied"
    assert post(client, sub_event("created", "sub_1", CUS, "incomplete", t - 5)).json()["result"] == "ignored"
    assert post(client, sub_event("updated", "sub_1", CUS, "active", t - 4)).json()["result"] == "ignored"
    row = stored(db)
    assert row is not None and row.desired == "absent"


def test_unknown_event_type_is_acknowledged_and_ignored(client: TestClient, db: Database, queue: Recorder) -> None:
    r = post(client, event("charge.refunded", {"customer": CUS}, now()))
    assert r.status_code == 200 and r.json()["result"] == "ignored"
    assert queue.ids == [] and counts(db)["customers"] == 0


def test_rejected_requests_write_nothing(client: TestClient, db: Database) -> None:
    before = counts(db)
    evt = sub_event("created", "sub_1", CUS, "active", now())
    post(client, evt, secret="whsec_wrong")
    post(client, evt, timestamp=now() - 1000)
    post(client, evt, header=None)
    post(client, b"{not json")
    post(client, b"x" * ((1 << 20) + 1))
    assert counts(db) == before


def test_only_post_webhook_and_get_healthz_exist(client: TestClient) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.get(URL).status_code == 405
    assert client.post("/healthz").status_code == 405
    assert client.get("/").status_code == 404
    assert client.post("/stripe/webhook/extra").status_code == 404


def test_no_log_record_carries_personal_data(
    client: TestClient, caplog: pytest.LogCaptureFixture, queue: Recorder
) -> None:
    caplog.set_level(logging.DEBUG)
    t = now()
    secrets = [EMAIL, CUS, "sub_logcheck"]
    post(client, customer_event("created", CUS, EMAIL, t))
    post(client, sub_event("created", "sub_logcheck", CUS, "active", t))
    post(client, sub_event("created", "sub_logcheck", CUS, "active", t))  # duplicate
    post(client, customer_event("updated", CUS, EMAIL, t), secret="whsec_wrong")
    post(client, customer_event("deleted", CUS, EMAIL, t + 1))
    assert len(queue.ids) == 2
    for record in caplog.records:
        text = record.getMessage() + repr(record.args) + (record.exc_text or "")
        for secret in [*secrets, *queue.ids]:
            assert secret not in text, (record.name, text)


def test_a_failing_queue_does_not_lose_the_event(db: Database, caplog: pytest.LogCaptureFixture) -> None:
    def broken(customer_id: str) -> None:
        raise ConnectionError(f"queue down while sending {customer_id}")

    with make_client(db, broken) as client:
        assert post(client, sub_event("created", "sub_1", CUS, "active", now())).status_code == 200
    row = stored(db)
    assert row is not None and row.desired == "present"
    assert [r.getMessage() for r in caplog.records] == [
        "norex: webhook: enqueue failed (ConnectionError); the reconcile sweep will pick the work up"
    ]


def test_a_database_failure_answers_503_and_logs_no_details(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, queue: Recorder
) -> None:
    broken = Database(f"sqlite:///{tmp_path / 'empty.db'}")  # never migrated: no tables
    try:
        with make_client(broken, queue) as client:
            assert post(client, customer_event("created", CUS, EMAIL, now())).status_code == 503
    finally:
        broken.dispose()
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["norex: webhook: event not recorded (OperationalError); Stripe will retry"]


def test_app_needs_a_secret(db: Database, queue: Recorder) -> None:
    with pytest.raises(UsageError, match="NOREX_STRIPE_WEBHOOK_SECRET"):
        create_app(Settings(database_url=db.url, stripe_webhook_secret=" , "), queue, db)


header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=200)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=20,
)


@st.composite
def junk_requests(draw: st.DrawFn) -> tuple[bytes, str | None]:
    """Bodies from random bytes to almost-events, signed correctly or not at all or with junk headers."""
    kind = draw(st.sampled_from(["bytes", "json", "event"]))
    if kind == "bytes":
        payload = draw(st.binary(max_size=2000))
    elif kind == "json":
        payload = json.dumps(draw(json_values)).encode()
    else:
        evt = {
            "id": draw(st.sampled_from(["evt_1", "evt_2"]) | json_values),
            "type": draw(st.sampled_from(["customer.created", "customer.subscription.updated", "invoice.paid"])),
            "created": draw(st.integers(-(2**40), 2**40) | json_values),
            "data": draw(st.fixed_dictionaries({"object": json_values}) | json_values),
        }
        payload = json.dumps(evt).encode()
    header = draw(st.sampled_from(["valid", "none"]) | header_text | header_text.map(lambda h: f"t={now()},v1={h}"))
    if header == "valid":
        return payload, sign(payload)
    return payload, None if header == "none" else header


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(request=junk_requests())
def test_junk_never_gets_a_5xx(client: TestClient, request: tuple[bytes, str | None]) -> None:
    payload, header = request
    r = post(client, payload, header=header)
    assert r.status_code in (200, 400, 413), (r.status_code, r.text)
