"""The HTTP API fuzzed from its own OpenAPI schema (schemathesis), against the real app under Ray
Serve on loopback, plus hand-made hostile requests: no 5xx anywhere, every answer in time, every
error body JSON with an ``error_code``; afterwards the service is healthy and no job is stuck.

Nothing leaves the machine: every URL the fuzzer writes into a body is pointed at 127.0.0.1:9
(nothing listens there), so a job it manages to queue fails at once with fetch_failed; S3 goes
to the same port. Runs are reproducible (``derandomize=True``, no example database);
``ECG_FUZZ_EXAMPLES`` scales the example counts for a longer local hunt.
"""

from __future__ import annotations

import http.client
import json
import os
import time
import urllib.parse
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable

from .serveutil import running_service, wait_healthy

SCALE = float(os.environ.get("ECG_FUZZ_EXAMPLES", "1"))
ANSWER_WITHIN_S = 30.0
DEAD_PORT = 9  # discard: nothing listens on loopback there, so connections are refused at once
VIDEO = f"http://127.0.0.1:{DEAD_PORT}/in.mp4"
CUES = {"version": "1.3", "cues": [{"start": 0, "end": 1, "text": "퍼즈 fuzz"}]}


class Api:
    def __init__(self, url: str, port: int) -> None:
        self.url, self.port = url, port
        self.http = httpx.Client(base_url=url, timeout=ANSWER_WITHIN_S)
        self.accepted: set[str] = set()   # jobs the fuzzer got queued (200)

    def raw(self, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        """A request sent exactly as given (no client-side path normalization or encoding)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=ANSWER_WITHIN_S)
        try:
            conn.putrequest(method, path, skip_accept_encoding=True)
            hdrs = {"Content-Type": "application/json", **(headers or {})}
            if body is not None:
                hdrs["Content-Length"] = str(len(body))
            for k, v in hdrs.items():
                conn.putheader(k, v)
            conn.endheaders(body)
            r = conn.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            conn.close()


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    dead = f"http://127.0.0.1:{DEAD_PORT}"
    with running_service(
        tmp_path_factory.mktemp("fuzz_api"), MAX_CONCURRENT_JOBS="1", ECG_MAX_QUEUED_JOBS="3",
        # Whatever the fuzzer queues fails fast and never leaves loopback.
        ECG_FETCH_TIMEOUT_S="5", ECG_CALLBACK_RETRY_S="2", ECG_CALLBACK_TIMEOUT_S="2",
        ECG_S3_ENDPOINT_URL=dead, AWS_ACCESS_KEY_ID="fuzz", AWS_SECRET_ACCESS_KEY="fuzz",
        AWS_EC2_METADATA_DISABLED="true", AWS_MAX_ATTEMPTS="1", AWS_RETRY_MODE="standard",
    ) as (url, env):
        a = Api(url, int(url.rsplit(":", 1)[1]))
        wait_healthy(a.http)
        yield a
        a.http.close()


def check_answer(status: int, headers: dict[str, str], body: bytes, what: str) -> Any:
    """The properties every answer has: not a 5xx, and an error body is JSON with an error_code."""
    assert status < 500, f"{what}: {status} {body[:500]!r}"
    if status >= 400:
        assert headers.get("content-type", "").startswith("application/json"), (what, status, headers)
        doc = json.loads(body)
        assert isinstance(doc, dict) and isinstance(doc.get("error_code"), str) and doc["error_code"], (what, doc)
        return doc
    return json.loads(body) if headers.get("content-type", "").startswith("application/json") else body


# -- schema-driven fuzzing ----------------------------------------------------------------------

def _loopback(value: Any) -> Any:
    """A URL the fuzzer wrote, pointed at the dead loopback port (path and query kept)."""
    if not isinstance(value, str):
        return value
    try:
        parts = urllib.parse.urlsplit(value)
        scheme = parts.scheme.lower()
    except ValueError:
        return f"http://127.0.0.1:{DEAD_PORT}/x"
    if scheme in ("http", "https") or parts.netloc or value.lower().lstrip().startswith(("http", "//")):
        return urllib.parse.urlunsplit(("http", f"127.0.0.1:{DEAD_PORT}", parts.path, parts.query, ""))
    return value


def _contain(case: Any) -> None:
    body = case.body
    if isinstance(body, dict):
        for key in ("video_url", "videoUrl", "callback_url", "callbackUrl"):
            if key in body:
                body[key] = _loopback(body[key])


def test_every_operation_fuzzed_from_the_schema(api):
    import schemathesis
    from schemathesis import GenerationMode

    raw = api.http.get("/openapi.json").json()
    schema = schemathesis.openapi.from_dict(raw)
    ops = [r.ok() for r in schema.get_all_operations()]
    assert {f"{o.method.upper()} {o.path}" for o in ops} >= {
        "POST /api/render/process", "POST /render", "GET /api/render/{job_id}/status",
        "POST /api/render/{job_id}/cancel", "GET /api/render/{job_id}/download", "GET /api/render/queue/status",
        "GET /api/render/jobs", "GET /health"}
    seen: dict[str, set[int]] = {}
    slowest = [0.0]
    unsatisfiable: list[str] = []

    def fuzzer(op: Any, mode: Any, n: int):
        label = f"{op.method.upper()} {op.path}"

        @settings(max_examples=n, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=op.as_strategy(generation_mode=mode))
        def fuzz(case):
            _contain(case)
            t0 = time.monotonic()
            r = case.call(base_url=api.url, timeout=ANSWER_WITHIN_S)
            slowest[0] = max(slowest[0], time.monotonic() - t0)
            headers = {k.lower(): (v[0] if isinstance(v, list) else v) for k, v in r.headers.items()}
            doc = check_answer(r.status_code, headers, r.content,
                               f"{label} {case.body!r:.300} {case.path_parameters}")
            seen.setdefault(label, set()).add(r.status_code)
            if r.status_code == 200 and op.path in ("/api/render/process", "/render"):
                api.accepted.add(doc["job_id"])

        return fuzz

    for op in ops:
        has_input = bool(len(op.path_parameters) or len(op.query) or op.path in ("/api/render/process", "/render"))
        modes = [GenerationMode.POSITIVE] + ([GenerationMode.NEGATIVE] if has_input else [])
        for mode in modes:
            n = 40 if op.path in ("/api/render/process", "/render") else 25
            try:
                fuzzer(op, mode, max(1, int(n * SCALE)) if has_input else 3)()
            except Unsatisfiable:
                # No request can break this operation's schema (e.g. any string is a job_id
                # in a path): nothing to send in this mode.
                assert mode == GenerationMode.NEGATIVE, (op.path, mode)
                unsatisfiable.append(f"{op.method.upper()} {op.path}")
    assert "POST /api/render/process" not in unsatisfiable, unsatisfiable
    assert slowest[0] < ANSWER_WITHIN_S
    # The fuzzer reached the API's answers, not only its front door.
    assert 422 in seen["POST /api/render/process"] and 404 in seen["GET /api/render/{job_id}/status"], seen
    # (the queue's only input is ?tenant=: a 422 when it is not a tenant's name)
    assert seen["GET /health"] == {200} and 200 in seen["GET /api/render/queue/status"], seen
    assert seen["GET /api/render/queue/status"] <= {200, 422}, seen


# -- options the schema accepts always plan ------------------------------------------------------

def _options_schema() -> dict:
    from ecg_ray.rendering.models import RenderOptions

    return RenderOptions.model_json_schema()["properties"]


def _number(prop: dict, integer: bool) -> st.SearchStrategy:
    spec = next((a for a in prop.get("anyOf", [prop]) if a.get("type") in ("integer", "number")), prop)
    lo = spec.get("minimum", spec.get("exclusiveMinimum"))
    hi = spec.get("maximum", spec.get("exclusiveMaximum"))
    if integer:
        return st.none() | st.integers(lo, hi)
    return st.none() | st.floats(lo, hi, exclude_min="exclusiveMinimum" in spec, exclude_max="exclusiveMaximum" in spec)


def _sources() -> list:
    from ecg_ray.media.models import ProbeResult

    def src(w: int, h: int, num: int, den: int, frames: int) -> ProbeResult:
        return ProbeResult(path="x", container="mp4", codec="h264", width=w, height=h, fps_num=num, fps_den=den,
                           duration=frames * den / num, frame_count=frames, start=0.0,
                           frame_times=[i * den / num for i in range(frames)])

    return [src(320, 240, 25, 1, 100), src(1, 1, 25, 1, 25), src(1921, 1081, 30000, 1001, 30), src(3840, 2160, 1, 1, 3)]


_OPTS = _options_schema()


@settings(max_examples=max(1, int(300 * SCALE)), deadline=None, derandomize=True, database=None)
@given(width=_number(_OPTS["width"], True), height=_number(_OPTS["height"], True),
       fps=_number(_OPTS["fps"], False), segments=_number(_OPTS["segments"], True),
       which=st.integers(0, 3))
def test_options_the_schema_accepts_always_plan(width, height, fps, segments, which):
    """Whatever RenderOptions lets through (the API's own bounds), planning gives a usable grid or
    a clear error: never a zero rate (fps=1e-9 used to plan at 0 fps, a ZeroDivisionError)."""
    from ecg_ray.config import Settings
    from ecg_ray.errors import RenderError
    from ecg_ray.rendering.models import RenderOptions
    from ecg_ray.rendering.plan import output_format, plan_segments, segment_count, source_frame_map

    opts = RenderOptions(width=width, height=height, fps=fps, segments=segments)
    src = _sources()[which]
    try:
        out = output_format(src, opts, Settings())
    except RenderError as exc:
        assert exc.code in ("input_too_large", "invalid_options"), exc
        return
    assert out.fps_num > 0 and out.fps_den > 0 and out.width % 2 == 0 and out.height % 2 == 0
    assert out.width >= 2 and out.height >= 2 and out.width * out.height <= Settings().max_pixels
    assert 1 <= out.frame_count <= 240 * 4 + 1
    last = out.frame_count - 1
    assert 0 <= out.frame_time(last) <= src.duration + 1 and out.seek_time(last) > out.frame_time(last)
    frames = source_frame_map(src, out)
    assert frames == sorted(frames) and 0 <= frames[0] and frames[-1] < src.frame_count
    segs = plan_segments("j", out.frame_count, segment_count(out.frame_count, float(out.fps), Settings(), opts.segments))
    assert segs[0].start_frame == 0 and segs[-1].end_frame == out.frame_count
    assert all(a.end_frame == b.start_frame and a.frames > 0 for a, b in zip(segs, segs[1:]))


# -- hand-made hostile requests -----------------------------------------------------------------

def _error(api: Api, method: str, path: str, body: bytes | None = None, within: float = 15.0,
           headers: dict[str, str] | None = None) -> tuple[int, dict]:
    t0 = time.monotonic()
    status, hdrs, data = api.raw(method, path, body, headers)
    assert time.monotonic() - t0 < within, f"{method} {path[:80]} took {time.monotonic() - t0:.1f}s"
    doc = check_answer(status, hdrs, data, f"{method} {path[:80]}")
    assert status >= 400, (status, doc)
    return status, doc


def _body(**fields: Any) -> bytes:
    return json.dumps({"video_url": VIDEO, "scenario": CUES, **fields}, ensure_ascii=False).encode()


def test_deeply_nested_json(api):
    # 10,000 levels: past the JSON parser's recursion limit.
    deep = b'{"video_url": "%s", "scenario": %s1%s}' % (VIDEO.encode(), b'{"a":' * 10_000, b"}" * 10_000)
    status, doc = _error(api, "POST", "/api/render/process", deep)
    assert status in (400, 422) and doc["error_code"] == "invalid_request", doc
    # 300 levels parse, but used to break the ingress's own serialization (a 500).
    mid = b'{"video_url": "%s", "scenario": {"version": "1.3", "cues": [], "x": %s1%s}}' % (
        VIDEO.encode(), b"[" * 300, b"]" * 300)
    status, doc = _error(api, "POST", "/api/render/process", mid)
    assert status == 422 and doc["error_code"] == "invalid_scenario" and "deeper than" in str(doc["detail"]), doc


def test_hundred_thousand_cues(api):
    cues = [{"start": i * 0.1, "end": i * 0.1 + 0.1, "text": "x"} for i in range(100_000)]
    body = json.dumps({"video_url": VIDEO, "scenario": {"version": "1.3", "cues": cues}}).encode()
    assert len(body) < 16 * 1024 * 1024  # under the body limit: refused by the scenario check
    status, doc = _error(api, "POST", "/api/render/process", body, within=20)
    assert status == 422 and doc["error_code"] == "invalid_scenario", doc
    assert "cues: has 100000 cues; at most 20000" in doc["detail"], doc


def test_huge_strings(api):
    for fields, code, needle in [
        ({"video_url": "http://127.0.0.1:9/" + "v" * 100_000}, "invalid_request", "video_url"),
        ({"job_id": "j" * 1_000_000}, "invalid_request", "job_id"),
        ({"callback_url": "http://127.0.0.1:9/" + "c" * 100_000}, "invalid_request", "callback_url"),
        ({"scenario": {"version": "1.3", "cues": [{"start": 0, "end": 1, "text": "가" * 3_000_000}]}},
         "invalid_scenario", "cues[0].text"),
        ({"scenario": {"version": "x" * 5_000_000, "cues": None}}, "invalid_scenario", "version"),
    ]:
        status, doc = _error(api, "POST", "/api/render/process", _body(**fields), within=20)
        assert status == 422 and doc["error_code"] == code and needle in str(doc["detail"]), (fields.keys(), doc)
        assert len(json.dumps(doc)) < 5000, "the error echoes the huge input back"
    # (test_service checks the 413 itself; here: its body is an error body like the others)
    status, doc = _error(api, "POST", "/api/render/process", _body(scenario={"pad": "x" * (17 << 20)}), within=30)
    assert status == 413 and doc["error_code"] == "input_too_large" and "ECG_MAX_REQUEST_BYTES" in doc["detail"]


def test_invalid_utf8_and_lone_surrogates(api):
    bad = b'{"video_url": "http://127.0.0.1:9/\xff\xfe.mp4", "scenario": {"version": "1.3", "cues": []}}'
    status, doc = _error(api, "POST", "/api/render/process", bad)
    assert status in (400, 422) and doc["error_code"] == "invalid_request", doc
    cesu = _body().replace("퍼".encode(), b"\xed\xa0\x80")  # an encoded surrogate: not UTF-8 either
    assert cesu != _body()
    status, doc = _error(api, "POST", "/render", cesu)
    # (Python's JSON parser lets the surrogate through: the scenario check refuses it.)
    assert status == 422 and doc["error_code"] == "invalid_scenario" and "surrogate" in str(doc["detail"]), doc
    # Valid JSON escapes of lone surrogates: no Unicode text; the fingerprint could not encode it.
    for body, code in [
        (b'{"video_url": "%s", "scenario": {"version": "1.3", "cues": [{"start": 0, "end": 1, '
         b'"text": "a\\ud800b"}]}}' % VIDEO.encode(), "invalid_scenario"),
        (b'{"video_url": "http://127.0.0.1:9/\\udc80.mp4", "scenario": {}}', "invalid_request"),
        (b'{"video_url": "%s", "scenario": {"\\ud800": 1}}' % VIDEO.encode(), "invalid_scenario"),
    ]:
        status, doc = _error(api, "POST", "/api/render/process", body)
        assert status == 422 and doc["error_code"] == code, doc
    # NaN and Infinity are not JSON, but Python's parser takes them: refused, not a 500.
    status, doc = _error(api, "POST", "/api/render/process",
                         b'{"video_url": "%s", "scenario": {}, "options": {"fps": NaN, "quality": Infinity}}'
                         % VIDEO.encode())
    assert status == 422, doc


@pytest.mark.parametrize("job_id", [
    "a/b", "..", "../..", "a%2Fb", "%2e%2e", "%2e%2e%2fetc%2fpasswd", "작업", "%EC%9E%91%EC%97%85", "j" * 65,
    "%00", "a%0d%0aSet-Cookie:x", "%ff%fe", "nul\\", "~", " ",
])
def test_hostile_job_ids_in_paths(api, job_id):
    quoted = job_id if "%" in job_id or "/" in job_id or job_id.startswith(".") else urllib.parse.quote(job_id)
    for method, route in (("GET", "status"), ("POST", "cancel"), ("GET", "download")):
        status, doc = _error(api, method, f"/api/render/{quoted}/{route}")
        if route == "download" and status == 403:  # no signed link: refused before any lookup
            assert doc["error_code"] == "forbidden", doc
            continue
        assert status in (404, 405), (method, route, status, doc)
        assert doc["error_code"] in ("not_found", "invalid_request"), doc


def test_hostile_job_ids_in_bodies(api):
    for job_id in ("a/b", "..", "작업", "j" * 65, "", "a b", "a\x00b"):
        status, doc = _error(api, "POST", "/api/render/process", _body(job_id=job_id))
        assert status == 422 and doc["error_code"] == "invalid_request" and "job_id" in str(doc["detail"]), doc


def test_unknown_routes_and_methods(api):
    status, doc = _error(api, "GET", "/no/such/route")
    assert status == 404 and doc["error_code"] == "not_found"
    status, doc = _error(api, "DELETE", "/api/render/process")
    assert status == 405 and doc["error_code"] == "invalid_request"
    status, doc = _error(api, "POST", "/api/render/process", b"[]")
    assert status == 422
    status, doc = _error(api, "POST", "/api/render/process", b"", headers={"Content-Type": "text/plain"})
    assert status == 422


def test_the_service_is_healthy_and_no_job_is_stuck(api):
    """Last: after everything above, /health answers 200 and the queue drains."""
    # One job the fuzzer could not have made is queued too: it must fail quickly and cleanly.
    r = api.http.post("/api/render/process", json={"job_id": "fuzz-canary", "video_url": VIDEO, "scenario": CUES})
    assert r.status_code in (200, 429), r.text
    if r.status_code != 429:
        api.accepted.add("fuzz-canary")
    deadline = time.monotonic() + 120
    while True:
        q = api.http.get("/api/render/queue/status").json()
        if not q["queued"] and not q["running"]:
            break
        assert time.monotonic() < deadline, f"queue did not drain: {q}"
        time.sleep(0.5)
    for job_id in sorted(api.accepted):
        st = api.http.get(f"/api/render/{urllib.parse.quote(job_id, safe='')}/status").json()
        assert st["state"] in ("failed", "cancelled", "completed"), st
        if st["state"] == "failed":
            assert st["error"]["code"] in ("fetch_failed", "forbidden_url", "invalid_input", "invalid_scenario",
                                           "input_too_large"), st
    if "fuzz-canary" in api.accepted:
        st = api.http.get("/api/render/fuzz-canary/status").json()
        assert st["state"] == "failed" and st["error"]["code"] == "fetch_failed", st
    assert wait_healthy(api.http, timeout=60)["ok"] is True
