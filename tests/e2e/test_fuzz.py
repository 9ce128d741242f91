"""A schemathesis fuzz run of the edge's whole OpenAPI surface, with the admin's token and with no auth.

The schema is the one the running edge serves (`/openapi.json`); every request goes to the real
edge and workers. Bounded: per operation, `MAX_EXAMPLES` positive and as many negative cases
(schemathesis' fuzzing phase), no shrinking, no deadline, no example database.

Schemathesis 4.x's Python API is used directly (`schemathesis.openapi.from_url`, then
`APIOperation.as_strategy` under Hypothesis' `@given`, `case.call`, `case.validate_response`):
its pytest loader for a schema that comes from a fixture (`schemathesis.pytest.from_fixture`,
needed here because the edge's port is only known once the `cluster` fixture runs) does not work
with pytest 9.2 (it writes `Node._nodeid`, which pytest 9.2 no longer has).

Every operation and generation mode is a subtest. Checks, on every response but a 429 (the rate
limiter's answer, allowed):
- `not_a_server_error`: no 5xx, whatever the input.
- `response_schema_conformance`: a response whose status the operation documents matches the
  documented schema. The routes return `JSONResponse`, so FastAPI documents their success bodies
  as `{}` (any JSON: nothing to break there); what has a schema is the refusals: every 4xx and 5xx
  is documented as problem+json (api_edge/errors.py `PROBLEM_RESPONSES`) and checked against it.
- `content_type_conformance`: the media type answered is the one documented.
- As the admin: no 202. The edge answers 202 when the worker did not reply in time (5 s here);
  under this light sequential load that means the worker failed on the input (see its log).
- Without auth: every route but the public ones answers 401 `unauthenticated` with a Bearer
  challenge, whatever the fuzzed `Authorization` / `X-API-Key` headers and body hold.
"""

from __future__ import annotations

import http.client
import json
import re
import select
import socket
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import hypothesis
import hypothesis.errors
import pytest
import schemathesis
from schemathesis import GenerationMode
from schemathesis.checks import content_type_conformance, not_a_server_error, response_schema_conformance

from bus.settings import load
from tests.e2e.conftest import Cluster

pytestmark = pytest.mark.e2e

MAX_EXAMPLES = 10  # per operation and generation mode: ~35 operations × 2 modes × 2 runs ≈ 1,200 requests
PUBLIC_PATHS = {
    "/health/live", "/health/ready", "/metrics", "/asyncapi",
    "/v1/auth/token", "/v1/auth/refresh", "/v1/auth/logout",
}  # fmt: skip
CREDENTIAL_HEADERS = {"authorization", "x-api-key"}
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]
SETTINGS = hypothesis.settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    database=None,
    derandomize=True,  # the same cases every run: a failure found once is found again
    phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],  # no shrinking: bounded time
    suppress_health_check=list(hypothesis.HealthCheck),
    print_blob=False,
)


@pytest.fixture(scope="module")
def edge_schema(cluster: Cluster) -> Any:
    config = schemathesis.Config.from_dict({"request-timeout": 15})
    return schemathesis.openapi.from_url(f"{cluster.base_url}/openapi.json", config=config, timeout=10)


def _operations(schema: Any) -> list[Any]:
    operations = [result.ok() for result in schema.get_all_operations()]  # .ok() raises on a broken definition
    assert len(operations) > 20, [op.label for op in operations]
    return operations


def _headers(case: Any, credentials: dict[str, str]) -> dict[str, str]:
    """The credentials given and, on a POST, a fresh Idempotency-Key: it replaces the fuzzed one, whose
    few values ("0", "") would repeat, answered 409 `idempotency_key_reused` instead of reaching a worker."""
    headers = dict(credentials)
    if case.method.upper() == "POST":
        headers["Idempotency-Key"] = uuid.uuid4().hex
    return headers


def _fuzz(schema: Any, subtests: Any, exchange: Callable[[Any], int]) -> Counter[int]:
    """Runs `exchange` on the cases of every operation, each operation a subtest; the statuses seen."""
    statuses: Counter[int] = Counter()

    def counted(case: Any) -> None:
        statuses[exchange(case)] += 1

    for operation in _operations(schema):
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            with subtests.test(msg=f"{operation.label} ({mode.value})"):

                @SETTINGS
                @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
                def run(case: Any) -> None:
                    counted(case)

                try:
                    run()
                except hypothesis.errors.Unsatisfiable:
                    # Nothing of this operation can be made invalid (no parameters, only strings in headers).
                    assert mode is GenerationMode.NEGATIVE, operation.label
    return statuses


def test_fuzz_as_admin(cluster: Cluster, edge_schema: Any, subtests: Any) -> None:
    authorization = {"Authorization": f"Bearer {cluster.token()}"}

    def exchange(case: Any) -> int:
        for name in [k for k in case.headers or {} if k.lower() in CREDENTIAL_HEADERS]:
            del case.headers[name]  # the credential headers are fuzzed too; this run sends only the admin's
        response = case.call(headers=_headers(case, authorization))
        if response.status_code != 429:
            case.validate_response(response, checks=CHECKS)
        # 202: no reply within the edge's wait (5 s here). Under this light, sequential load that means
        # the worker failed on the input (as it did on U+0000 in text): see the worker's log.
        assert response.status_code != 202, (case.method, case.formatted_path, response.text[:300])
        return response.status_code

    started = time.monotonic()
    statuses = _fuzz(edge_schema, subtests, exchange)
    print(f"fuzz as admin: {statuses.total()} requests in {time.monotonic() - started:.1f} s: {dict(statuses)}")


def test_fuzz_without_auth(edge_schema: Any, subtests: Any) -> None:
    def exchange(case: Any) -> int:
        # Whatever the fuzzed `Authorization` / `X-API-Key` header holds, it is not a credential.
        response = case.call(headers=_headers(case, {}))
        if response.status_code == 429:
            return 429
        case.validate_response(response, checks=CHECKS)
        if case.path not in PUBLIC_PATHS:
            assert response.status_code == 401, (case.method, case.path, response.status_code, response.text[:300])
            assert response.json()["code"] == "unauthenticated"
            assert response.headers["www-authenticate"][0].startswith("Bearer")  # schemathesis: lists of values
        return response.status_code

    started = time.monotonic()
    statuses = _fuzz(edge_schema, subtests, exchange)
    print(f"fuzz without auth: {statuses.total()} requests in {time.monotonic() - started:.1f} s: {dict(statuses)}")


def test_what_the_fuzz_found_stays_fixed(cluster: Cluster) -> None:
    """The fuzz's findings, pinned: U+0000 in text (PostgreSQL text cannot hold it) made the worker fail
    at every delivery, the edge answered 202 or 503 and nobody ever got a reply; a body that does not
    parse was refused 400 before the caller was authenticated."""
    with cluster.client() as admin:
        search = admin.get("/v1/customers", params={"query": "Meera\x00"})
        assert search.status_code == 400 and search.json()["code"] == "invalid_message", search.text
        operation = admin.get("/v1/operations/ledger.key%00")
        assert operation.status_code == 404 and operation.json()["code"] == "operation_unknown", operation.text
        assert admin.get("/v1/customers", params={"query": "Meera"}).status_code == 200
    login = httpx.post(f"{cluster.base_url}/v1/auth/token", timeout=10,
                       data={"grant_type": "password", "username": "admin\x00", "password": "x" * 12})  # fmt: skip
    assert login.status_code == 400 and login.json()["code"] == "invalid_message", login.text

    for body in (b"{not json", b"\xff\xfe\x00"):
        refused = httpx.post(f"{cluster.base_url}/v1/customers", content=body, timeout=10,
                             headers={"Content-Type": "application/json", "Idempotency-Key": uuid.uuid4().hex})  # fmt: skip
        assert refused.status_code == 401 and refused.json()["code"] == "unauthenticated", (body, refused.text)
        with cluster.client() as admin:  # authenticated: the 400 it is
            bad = admin.post("/v1/customers", content=body, headers={"Content-Type": "application/json",
                                                                     "Idempotency-Key": uuid.uuid4().hex})  # fmt: skip
        assert bad.status_code == 400 and bad.json()["code"] == "invalid_message", (body, bad.text)


# --- path parameters of every length, on every route that has them ---------------------------
# Schemathesis draws path parameters from their schema (a UUID, mostly): it seldom sends the very
# long, the empty or the oddly encoded. These are sent to every route template explicitly, as the
# request target itself (http.client sends it as written; httpx would normalize `..` away).


def _templates() -> list[tuple[str, str]]:
    from api_edge.app import app

    paths = app.openapi()["paths"]
    return sorted((method.upper(), path) for path, item in paths.items() if "{" in path for method in item)


TEMPLATES = _templates()
# name → the text of one path segment, percent-encoded into the request target.
PATH_VALUES = {
    "empty": "", "space": " ", "len1": "a", "uuid-unknown": "5f0c3d1e-7a52-4b8e-9c41-0d2f6e8a9b37",
    "len36": "x" * 36, "len200": "k" * 200, "len201": "k" * 201, "len300": "k" * 300,
    "len5000": "k" * 5_000, "len10000": "k" * 10_000,
    "nul": "\x00", "nul-inside": "ab\x00cd", "controls": "\x01\x1f\x7f", "crlf": "a\r\nb",
    "unicode": "ünïcödé-😀-中文", "bidi-zero-width": "\u202e\u200b\ufeff", "dotdot": "..",
    "dotdot-slash": "../../health/live", "slash": "a/b", "percent": "%", "punctuation": "'\"<>`{}|\\^;,=&?#",
    # Operation ids are `<worker>.<key>`: the issue's `customer.` + 300 characters, and its neighbours.
    "op-len200": "customer." + "k" * 200, "op-len201": "ledger." + "k" * 201, "op-len300": "customer." + "k" * 300,
    "op-len5000": "payment." + "k" * 5_000, "op-nul": "ledger.key\x00", "op-unicode": "payment.ключ-😀",
}  # fmt: skip
SEGMENTS = {name: quote(value, safe="") for name, value in PATH_VALUES.items()}
SEGMENTS.update({  # as written, not encoded again
    "raw-%2F": "%2F", "raw-%2f..": "%2f..%2f..%2fhealth%2flive", "raw-dotdot": "../../health/live",
    "raw-%2e%2e": "%2e%2e", "raw-%FF": "%FF", "raw-overlong-slash": "%C0%AF", "raw-surrogate": "%ED%A0%80",
    "raw-%252F": "%252F", "raw-bad-escape": "%zz%", "raw-%00": "%00",
})  # fmt: skip


def _target(template: str, segment: str) -> str:
    return re.sub(r"\{[^}/]+\}", lambda _: segment, template)


def _exchange(base_url: str, method: str, target: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    url = urlsplit(base_url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=15)
    try:
        body = b"{}" if method in ("POST", "PATCH") else None
        if body is not None:
            headers = {**headers, "Content-Type": "application/json", "Idempotency-Key": uuid.uuid4().hex}
        conn.request(method, target, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def _assert_problem(status: int, headers: dict[str, str], body: bytes, where: Any) -> dict[str, Any]:
    assert status < 500, where
    assert headers.get("content-type") == "application/problem+json", where
    problem = json.loads(body)
    assert problem["status"] == status and problem["code"] and problem["type"].endswith(problem["code"]), where
    return problem  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def admin_authorization(cluster: Cluster) -> dict[str, str]:
    with cluster.client() as admin:  # the first admin: authorization passes, the route's own checks answer
        return {"Authorization": admin.headers["authorization"]}


def test_every_route_with_path_parameters_is_covered(cluster: Cluster) -> None:
    served = httpx.get(f"{cluster.base_url}/openapi.json", timeout=10).json()["paths"]
    assert {(m.upper(), p) for p, item in served.items() if "{" in p for m in item} == set(TEMPLATES)
    assert len(TEMPLATES) > 25, TEMPLATES


@pytest.mark.parametrize("value", list(SEGMENTS))
@pytest.mark.parametrize(("method", "template"), TEMPLATES, ids=[f"{m} {t}" for m, t in TEMPLATES])
def test_path_parameters_as_admin(cluster: Cluster, admin_authorization: dict[str, str], method: str, template: str,
                                  value: str) -> None:  # fmt: skip
    """Whatever the path holds: a 4xx problem (404 unknown, 400 malformed), never a 5xx or a 202;
    only a well-formed id nobody has may reach the worker and be answered (an empty list, say)."""
    target = _target(template, SEGMENTS[value])
    status, headers, body = _exchange(cluster.base_url, method, target, admin_authorization)
    where = (method, target[:150], status, body[:300])
    assert status != 202, where  # the worker failed on it (see its log)
    if value == "uuid-unknown" and status < 300:
        return
    assert 400 <= status < 500, where
    problem = _assert_problem(status, headers, body, where)
    assert status != 401 and problem["code"] != "unauthenticated", where  # the admin's token was taken


@pytest.mark.parametrize("value", list(SEGMENTS))
@pytest.mark.parametrize(("method", "template"), TEMPLATES, ids=[f"{m} {t}" for m, t in TEMPLATES])
def test_path_parameters_without_auth(cluster: Cluster, method: str, template: str, value: str) -> None:
    """401 before anything about the path is said, or 404/405 when no route has this path at all."""
    target = _target(template, SEGMENTS[value])
    status, headers, body = _exchange(cluster.base_url, method, target, {})
    where = (method, target[:150], status, body[:300])
    assert status in (401, 404, 405), where
    problem = _assert_problem(status, headers, body, where)
    if status == 401:
        assert problem["code"] == "unauthenticated" and headers["www-authenticate"].startswith("Bearer"), where


def test_operation_ids_of_every_length(cluster: Cluster) -> None:
    """The issue: `customer.` + 300 characters was a 500 (the contract's 200-character bound raised in
    the route). A key the edge could have taken is looked up (404 when unknown); a longer one is a 400."""
    with cluster.client() as admin:
        for key_length, status, code in ((1, 404, "operation_unknown"), (200, 404, "operation_unknown"),
                                         (201, 400, "invalid_message"), (300, 400, "invalid_message")):  # fmt: skip
            for worker in ("customer", "ledger", "payment"):
                response = admin.get(f"/v1/operations/{worker}.{'k' * key_length}")
                assert response.status_code == status, (worker, key_length, response.text)
                assert response.json()["code"] == code, (worker, key_length, response.text)


# --- the body bound (CBS_MAX_BODY_BYTES), declared or chunked ---------------------------------

BODY_LIMIT = load().max_body_bytes


def _ten_megabytes() -> Iterator[bytes]:
    """10 MB, chunked (a generator: httpx sends no Content-Length)."""
    for _ in range(10 * 1024 * 1024 // 65536):
        yield b"x" * 65536


def test_a_chunked_body_over_the_limit_is_413(cluster: Cluster) -> None:
    """The issue: 10 MB sent chunked was read whole and answered 400."""
    assert BODY_LIMIT < 10 * 1024 * 1024
    for client in (cluster.client(timeout=30), httpx.Client(base_url=cluster.base_url, timeout=30)):
        with client:
            started = time.monotonic()
            response = client.post("/v1/customers", content=_ten_megabytes(),
                                   headers={"Content-Type": "application/json", "Idempotency-Key": uuid.uuid4().hex})  # fmt: skip
            elapsed_s = time.monotonic() - started
        assert "content-length" not in response.request.headers  # chunked indeed
        assert response.status_code == 413, response.text[:300]
        assert response.json()["code"] == "payload_too_large" and response.headers["connection"] == "close"
        assert elapsed_s < 10, elapsed_s


def _raw_post(cluster: Cluster, head: dict[str, str], frames: Iterator[bytes]) -> tuple[int, bytes, int]:
    """A POST over a raw socket: the head, then frames for as long as the server has not answered.
    The status, the whole answer, and how many body bytes went out before the answer came."""
    url = urlsplit(cluster.base_url)
    with cluster.client() as admin:
        authorization = admin.headers["authorization"]
    lines = [f"POST /v1/customers HTTP/1.1", f"Host: {url.netloc}", f"Authorization: {authorization}",
             "Content-Type: application/json", f"Idempotency-Key: {uuid.uuid4().hex}", *(f"{k}: {v}" for k, v in head.items())]  # fmt: skip
    sock = socket.create_connection((url.hostname, url.port), timeout=30)
    try:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        sock.setblocking(False)
        answer, sent, pending = b"", 0, b""
        deadline = time.monotonic() + 30
        while b"\r\n\r\n" not in answer and time.monotonic() < deadline:
            if not pending:
                pending = next(frames, b"")
            readable, writable, _ = select.select([sock], [sock] if pending else [], [], 1)
            if readable:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                answer += chunk
            elif writable:
                try:
                    written = sock.send(pending)
                except (BrokenPipeError, ConnectionResetError):
                    pending = b""
                    continue  # the server closed its side: its answer is there to read
                sent, pending = sent + written, pending[written:]
        sock.setblocking(True)
        sock.settimeout(10)
        try:
            while chunk := sock.recv(65536):  # the rest of the answer: the edge closes after it
                answer += chunk
        except ConnectionResetError:
            pass  # closed with our unread body in its buffers: a reset, once its answer has gone out
        status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0
        return status, answer, sent
    finally:
        sock.close()


def test_a_chunked_body_is_answered_413_while_it_is_still_being_sent(cluster: Cluster) -> None:
    """The edge stops reading at the limit: a body that would go on to 1 GiB is answered long before."""
    chunk = b"x" * 65536
    frame = b"%x\r\n" % len(chunk) + chunk + b"\r\n"
    frames = (frame for _ in range(1024 * 1024 * 1024 // len(chunk)))
    started = time.monotonic()
    status, answer, sent = _raw_post(cluster, {"Transfer-Encoding": "chunked"}, frames)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert status == 413 and json.loads(body)["code"] == "payload_too_large", answer  # the whole answer came
    assert b"\r\nconnection: close" in head.lower(), head
    assert sent < 8 * BODY_LIMIT, sent  # the client was still sending when it was answered
    assert time.monotonic() - started < 20


def test_a_declared_length_over_the_limit_is_413_before_a_byte_is_sent(cluster: Cluster) -> None:
    status, answer, sent = _raw_post(cluster, {"Content-Length": str(10 * 1024 * 1024)}, iter(()))
    head, _, body = answer.partition(b"\r\n\r\n")
    assert status == 413 and json.loads(body)["code"] == "payload_too_large", answer
    assert b"\r\ncontent-type: application/problem+json" in head.lower(), head
    assert sent == 0
    with cluster.client() as admin:  # at the limit, a body is read and judged on what it says
        response = admin.post("/v1/customers", content=b" " * (BODY_LIMIT - 2) + b"{}",
                              headers={"Content-Type": "application/json", "Idempotency-Key": uuid.uuid4().hex})  # fmt: skip
    assert response.status_code == 400 and response.json()["code"] == "invalid_message", response.text[:300]
