"""Who may do what, against the real service with API keys configured: every route tried
without a key, with a wrong key, with another tenant's key and with too few rights (401/403,
nothing leaked, no job touched); two tenants with the same job id get two jobs; signed download
links tampered, expired and valid; keys rotated while a job runs; a network let in without a
key; and schemathesis over every operation with a key (no 5xx) and without (no route skips the
check). The key ring itself is tested first, without a service."""

from __future__ import annotations

import json
import os
import time
from fractions import Fraction
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from ecg_ray.config import Settings
from ecg_ray.media.testclip import make_numbered_video
from ecg_ray.service.auth import AuthError, KeyRing, Right, hash_key, new_key
from ecg_ray.service.links import LinkSigner

from .frames import frame_numbers
from .receiver import Receiver
from .serveutil import running_service, serving_directory, wait_healthy

LINK_SECRET = "link-secret-for-tests"
CUES = {"version": "1.3", "cues": [{"start": 0.2, "end": 1.0, "text": "테넌트 tenant"}]}
FRAMES = 50           # the short clip: 2 s at 25 fps
LONG_FRAMES = 750     # 30 s with a caption on every frame: still running while keys rotate
LONG_CUES = {"version": "1.3", "cues": [{"start": i / 25, "end": (i + 1) / 25, "text": f"프레임 {i}"}
                                        for i in range(LONG_FRAMES)]}


def _entry(key: str, tenant: str, *rights: str, name: str = "") -> dict:
    return {"name": name or f"{tenant}-{'-'.join(rights)}", "tenant": tenant, "rights": list(rights),
            "sha256": hash_key(key)}


def _write_keys(path: Path, entries: list[dict]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"keys": entries}))
    os.replace(tmp, path)  # as an operator's tooling (or a mounted Secret) swaps the file


# -- the key ring -----------------------------------------------------------------------------------

def test_key_ring_identifies_rotates_and_keeps_its_keys_through_a_bad_file(tmp_path):
    a, b, adm = new_key(), new_key(), new_key()
    assert a.startswith("ecg_") and len(a) > 40 and a != b
    f = tmp_path / "keys.json"
    _write_keys(f, [_entry(a, "acme", "submit", "read"), _entry(adm, "ops", "admin")])
    ring = KeyRing(Settings(api_keys_file=str(f), open_networks="10.0.0.0/8, fd00::/8"))
    assert ring.enabled
    c = ring.identify(f"Bearer {a}", "127.0.0.1")
    assert (c.tenant, c.may(Right.SUBMIT), c.may(Right.CANCEL), c.may(Right.ADMIN)) == ("acme", True, False, False)
    assert c.acts_for(None) == "acme" and c.acts_for("acme") == "acme" and c.acts_for("bravo") is None
    admin = ring.identify(f"bearer {adm}", None)
    assert admin.may(Right.CANCEL) and admin.acts_for("bravo") == "bravo"
    for header in (None, "", f"Basic {a}", "Bearer ", f"Bearer {a}x", f"Bearer {b}", a):
        with pytest.raises(AuthError):
            ring.identify(header, "127.0.0.1")
    # Networks let in without a key: the open tenant with everything but admin; a key still counts.
    n = ring.identify(None, "10.1.2.3")
    assert (n.tenant, n.via, n.may(Right.CANCEL), n.may(Right.ADMIN)) == ("", "network", True, False)
    assert ring.identify(None, "fd00::5").via == "network"
    with pytest.raises(AuthError):
        ring.identify(f"Bearer {b}", "10.1.2.3")
    # Rotation: the file changes, the ring follows within its reload interval, without a restart.
    _write_keys(f, [_entry(b, "acme", "read")])
    time.sleep(1.1)
    assert ring.identify(f"Bearer {b}", None).tenant == "acme"
    with pytest.raises(AuthError):
        ring.identify(f"Bearer {a}", None)
    # A file that no longer parses keeps the keys read before (nobody locked out, nobody let in).
    f.write_text('{"keys": [{"tenant": "acme"')
    time.sleep(1.1)
    assert ring.identify(f"Bearer {b}", None).tenant == "acme"
    with pytest.raises(AuthError):
        ring.identify(None, "127.0.0.1")


def test_key_ring_refuses_bad_configuration(tmp_path):
    f = tmp_path / "keys.json"
    for bad in ('{"keys": [{"tenant": "Acme!", "rights": ["read"], "sha256": "' + "0" * 64 + '"}]}',
                '{"keys": [{"tenant": "acme", "rights": [], "sha256": "' + "0" * 64 + '"}]}',
                '{"keys": [{"tenant": "acme", "rights": ["fly"], "sha256": "' + "0" * 64 + '"}]}',
                '{"keys": [{"tenant": "acme", "rights": ["read"], "sha256": "plain-key"}]}', "not json"):
        f.write_text(bad)
        with pytest.raises(ValueError, match="keys.json"):
            KeyRing(Settings(api_keys_file=str(f)))
    with pytest.raises(ValueError, match="ECG_OPEN_NETWORKS"):
        KeyRing(Settings(open_networks="10.0.0.0/33"))
    # No keys at all: the open mode, every caller the open tenant with every right.
    open_ring = KeyRing(Settings())
    assert not open_ring.enabled and open_ring.identify(None, None).may(Right.ADMIN)
    # Keys in the variable work as in the file.
    k = new_key()
    ring = KeyRing(Settings(api_keys=json.dumps({"keys": [_entry(k, "acme", "read")]})))
    assert ring.identify(f"Bearer {k}", None).tenant == "acme"


# -- the service with keys ----------------------------------------------------------------------------

class Keys:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.acme, self.acme_read, self.bravo, self.admin = new_key(), new_key(), new_key(), new_key()
        self.acme_next = new_key()
        self.entries = [_entry(self.acme, "acme", "submit", "read", "cancel"),
                        _entry(self.acme_read, "acme", "read"),
                        _entry(self.bravo, "bravo", "submit", "read", "cancel"),
                        _entry(self.admin, "ops", "admin")]
        _write_keys(path, self.entries)


def _h(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def svc(tmp_path_factory, media_dir):
    base = tmp_path_factory.mktemp("auth")
    make_numbered_video(str(media_dir / "auth-short.mp4"), FRAMES, Fraction(25), (320, 240), audio=False)
    make_numbered_video(str(media_dir / "auth-long.mp4"), LONG_FRAMES, Fraction(25), (320, 240), audio=False)
    keys = Keys(base / "keys.json")
    rx = Receiver().start()
    with serving_directory(media_dir) as media, running_service(
            base, ECG_API_KEYS_FILE=str(keys.path), ECG_LINK_SECRET=LINK_SECRET,
            # 127.0.0.2 stands for the backend's VPC; the tests' own requests come from 127.0.0.1.
            ECG_OPEN_NETWORKS="127.0.0.2/32", MAX_CONCURRENT_JOBS="2") as (url, env):
        http = httpx.Client(base_url=url, timeout=60)
        wait_healthy(http)
        yield type("Svc", (), {"url": url, "env": env, "http": http, "keys": keys, "media": media, "rx": rx,
                               "base": base})
        http.close()
    rx.stop()


def _body(svc, job_id: str, clip: str = "auth-short.mp4", cues: dict = CUES) -> dict:
    return {"job_id": job_id, "video_url": f"{svc.media}/{clip}", "scenario": cues,
            "callback_url": svc.rx.url_for("/cb")}


def _wait(svc, job_id: str, key: str, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = svc.http.get(f"/api/render/{job_id}/status", headers=_h(key))
        assert r.status_code == 200, r.text
        if r.json()["state"] in ("completed", "failed", "cancelled"):
            return r.json()
        time.sleep(0.2)
    raise AssertionError(f"{job_id} did not end: {r.json()}")


def _refused(r: httpx.Response, status: int, *secrets: str) -> dict:
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert body["error_code"] == {401: "unauthorized", 403: "forbidden"}[status], body
    for s in secrets:  # nothing of the job or the keys in the answer
        assert s not in r.text, (s, r.text)
    if status == 401:
        assert r.headers["www-authenticate"].startswith("Bearer")
    return body


def test_every_route_needs_a_key_and_the_right(svc):
    k = svc.keys
    job = "auth-route-1"
    r = svc.http.post("/api/render/process", json=_body(svc, job), headers=_h(k.acme))
    assert r.status_code == 200 and r.json()["tenant"] == "acme", r.text
    _wait(svc, job, k.acme)
    routes = [("POST", "/api/render/process", _body(svc, "auth-route-2")), ("POST", "/render", _body(svc, "auth-route-2")),
              ("GET", f"/api/render/{job}/status", None), ("POST", f"/api/render/{job}/cancel", None),
              ("GET", f"/api/render/{job}/download", None), ("GET", "/api/render/queue/status", None),
              ("GET", "/openapi.json", None), ("GET", "/docs", None), ("GET", "/no/such/route", None)]
    wrong = new_key()
    for method, path, body in routes:
        for headers in ({}, _h(wrong), {"Authorization": f"Basic {k.acme}"}, {"Authorization": "Bearer"}):
            _refused(svc.http.request(method, path, json=body, headers=headers), 401, job, k.acme, wrong)
    # /health stays open (load balancers and the platform's health check carry no key).
    assert svc.http.get("/health").status_code == 200
    # Too few rights: a read-only key neither submits nor cancels, and nothing happens.
    _refused(svc.http.post("/api/render/process", json=_body(svc, "auth-route-3"), headers=_h(k.acme_read)), 403)
    _refused(svc.http.post("/render", json=_body(svc, "auth-route-3"), headers=_h(k.acme_read)), 403)
    assert svc.http.get("/api/render/auth-route-3/status", headers=_h(k.acme)).status_code == 404
    _refused(svc.http.post(f"/api/render/{job}/cancel", headers=_h(k.acme_read)), 403)
    assert svc.http.get(f"/api/render/{job}/status", headers=_h(k.acme_read)).json()["state"] == "completed"
    # Another tenant's key: the job is not there for it (404, no hint that it exists), and
    # naming the tenant is refused.
    for method, path in (("GET", f"/api/render/{job}/status"), ("POST", f"/api/render/{job}/cancel")):
        r = svc.http.request(method, path, headers=_h(k.bravo))
        assert r.status_code == 404 and "acme" not in r.text, r.text
        _refused(svc.http.request(method, path + "?tenant=acme", headers=_h(k.bravo)), 403, job)
    r = svc.http.get(f"/api/render/{job}/download", headers=_h(k.bravo), follow_redirects=False)
    assert r.status_code == 404, r.text
    # The queue shows a tenant its own jobs, by id; the admin every tenant's, by ref.
    q = svc.http.get("/api/render/queue/status", headers=_h(k.bravo)).json()
    assert not any("auth-route" in j for j in q["queued"] + q["running"] + list(q["leases"])) and q["instance"] == {}
    assert svc.http.get("/api/render/queue/status?tenant=acme", headers=_h(k.bravo)).status_code == 403
    # The admin reads and cancels any tenant's job by naming it.
    st = svc.http.get(f"/api/render/{job}/status?tenant=acme", headers=_h(k.admin))
    assert st.status_code == 200 and st.json()["tenant"] == "acme"
    assert svc.http.get(f"/api/render/{job}/status", headers=_h(k.admin)).status_code == 404  # its own tenant: none
    assert "instance" in svc.http.get("/api/render/queue/status", headers=_h(k.admin)).json()


def test_two_tenants_with_the_same_job_id_get_two_jobs(svc):
    k = svc.keys
    job = "same-id-001"
    a = svc.http.post("/api/render/process", json=_body(svc, job), headers=_h(k.acme))
    other = {**_body(svc, job), "scenario": {"version": "1.3", "cues": [{"start": 1.0, "end": 1.8, "text": "B"}]}}
    b = svc.http.post("/api/render/process", json=other, headers=_h(k.bravo))
    assert a.status_code == 200 and b.status_code == 200, (a.text, b.text)
    assert a.json()["created"] and b.json()["created"]  # a different body under another tenant: no 409
    sa, sb = _wait(svc, job, k.acme), _wait(svc, job, k.bravo)
    assert sa["state"] == sb["state"] == "completed", (sa, sb)
    assert (sa["job_id"], sa["tenant"], sb["job_id"], sb["tenant"]) == (job, "acme", job, "bravo")
    assert sa["result"]["job_id"] == job and sa["result"]["location"] != sb["result"]["location"]
    assert os.path.dirname(sa["result"]["location"]).endswith("/acme")
    # Each download is its own render: every frame once, in order, and the captions differ.
    files = {}
    for st in (sa, sb):
        r = httpx.get(st["result"]["download_url"], timeout=60)
        assert r.status_code == 200, r.text
        p = svc.base / f"{st['tenant']}.mp4"
        p.write_bytes(r.content)
        assert frame_numbers(str(p)) == list(range(FRAMES))
        files[st["tenant"]] = r.content
    assert files["acme"] != files["bravo"]
    # The callbacks carry the client's own job id, once per tenant's job.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len([e for e in svc.rx.events(job) if e.json["status"] == "completed"]) < 2:
        time.sleep(0.2)
    finals = [e.json for e in svc.rx.events(job) if e.json["status"] == "completed"]
    assert len(finals) == 2 and {f["job_id"] for f in finals} == {job}, finals
    assert {f["download_url"] for f in finals} == {sa["result"]["download_url"], sb["result"]["download_url"]}


def test_download_links_tampered_expired_and_renewed(svc):
    k = svc.keys
    job = "link-001"
    svc.http.post("/api/render/process", json=_body(svc, job), headers=_h(k.acme)).raise_for_status()
    st = _wait(svc, job, k.acme)
    link = st["result"]["download_url"]
    parts = urlsplit(link)
    q = {k_: v[0] for k_, v in parse_qs(parts.query).items()}
    assert q["tenant"] == "acme" and q["expires"] and q["sig"]
    good = httpx.get(link, timeout=60)  # a valid link needs no key (it is the credential)
    assert good.status_code == 200 and good.content == Path(st["result"]["location"]).read_bytes()
    path = parts.path

    def get(**query) -> httpx.Response:
        return httpx.get(f"{svc.url}{path}?{urlencode(query)}", timeout=60)

    _refused(get(**{**q, "tenant": "bravo"}), 403, job)               # moved to another tenant
    _refused(get(**{**q, "sig": q["sig"][:-1] + ("0" if q["sig"][-1] != "0" else "1")}), 403)
    _refused(get(**{**q, "expires": str(int(q["expires"]) + 60)}), 403)  # a longer life: not signed
    _refused(get(expires=q["expires"], sig=q["sig"]), 403)             # without its tenant
    assert httpx.get(f"{svc.url}{path}", timeout=60).status_code == 401  # no signature, no key
    signer = LinkSigner(LINK_SECRET.encode(), 60)
    expired = signer.sign(f"{svc.url}{path}?tenant=acme", "acme." + job, f"acme/{job}.mp4", now=time.time() - 120)
    body = _refused(httpx.get(expired, timeout=60), 403)
    assert "expired" in body["detail"]
    # A key that may read the job renews the link: a redirect to a fresh one that opens the file.
    r = svc.http.get(path, headers=_h(k.acme_read), follow_redirects=False)
    assert r.status_code == 307, r.text
    fresh = r.headers["location"]
    # (signed now: it expires a link's lifetime from now, the same link within the same second)
    assert int(parse_qs(urlsplit(fresh).query)["expires"][0]) >= int(q["expires"])
    assert httpx.get(fresh, timeout=60).content == good.content
    # The admin renews any tenant's link by naming it.
    r = svc.http.get(path + "?tenant=acme", headers=_h(k.admin), follow_redirects=False)
    assert r.status_code == 307


def test_keys_rotate_while_a_job_runs(svc):
    k = svc.keys
    job = "rotate-001"
    r = svc.http.post("/api/render/process", json=_body(svc, job, "auth-long.mp4", LONG_CUES), headers=_h(k.acme))
    assert r.status_code == 200, r.text
    deadline = time.monotonic() + 120
    while svc.http.get(f"/api/render/{job}/status", headers=_h(k.acme)).json()["frames_done"] < 10:
        assert time.monotonic() < deadline, "the job did not start"
        time.sleep(0.2)
    # The new key is added beside the old one, the clients move, the old key goes.
    entries = [e for e in k.entries if e["sha256"] != hash_key(k.acme)]
    _write_keys(k.path, [*entries, _entry(k.acme_next, "acme", "submit", "read", "cancel", name="acme-2")])
    deadline = time.monotonic() + 10
    while svc.http.get(f"/api/render/{job}/status", headers=_h(k.acme)).status_code != 401:
        assert time.monotonic() < deadline, "the removed key still works"
        time.sleep(0.2)
    st = svc.http.get(f"/api/render/{job}/status", headers=_h(k.acme_next))
    assert st.status_code == 200 and st.json()["state"] == "processing", st.text  # rotated mid-job
    done = _wait(svc, job, k.acme_next)
    assert done["state"] == "completed" and done["frames_done"] == LONG_FRAMES
    _write_keys(k.path, k.entries)  # the other tests' keys back
    time.sleep(1.2)


def test_an_open_network_needs_no_key(svc):
    # Requests from 127.0.0.2 (ECG_OPEN_NETWORKS) are the open tenant's, as the platform's
    # backend inside the VPC sends them: no Authorization header.
    # The service listens on 127.0.0.1; these requests leave from 127.0.0.2.
    vpc = httpx.Client(timeout=60, transport=httpx.HTTPTransport(local_address="127.0.0.2"))
    url = svc.url
    try:
        job = "vpc-001"
        r = vpc.post(f"{url}/api/render/process", json=_body(svc, job))
        if r.status_code == 401:
            pytest.fail(f"Serve did not pass the client address on: {r.text}")
        assert r.status_code == 200 and r.json()["tenant"] == "", r.text
        deadline = time.monotonic() + 120
        while vpc.get(f"{url}/api/render/{job}/status").json()["state"] != "completed":
            assert time.monotonic() < deadline
            time.sleep(0.2)
        # Not admin: the queue is the open tenant's own, and other tenants stay out of reach.
        assert vpc.get(f"{url}/api/render/same-id-001/status?tenant=acme").status_code == 403
        # The same request from outside the network needs a key; the admin reaches the job.
        assert svc.http.get(f"/api/render/{job}/status").status_code == 401
        assert svc.http.get(f"/api/render/{job}/status?tenant=", headers=_h(svc.keys.admin)).json()["tenant"] == ""
    finally:
        vpc.close()


def test_schemathesis_with_keys(svc):
    """Every operation of the OpenAPI document fuzzed with a key (no 5xx, error bodies with an
    error_code), and once without a key (401 everywhere but /health): no route skips the check."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis import GenerationMode

    from .test_fuzz_api import _contain, check_answer

    raw = svc.http.get("/openapi.json", headers=_h(svc.keys.admin)).json()
    assert raw["components"]["securitySchemes"]["ApiKey"]["scheme"] == "bearer"
    schema = schemathesis.openapi.from_dict(raw)
    ops = [r.ok() for r in schema.get_all_operations()]
    secured = {f"{o.method.upper()} {o.path}" for o in ops if raw["paths"][o.path][o.method].get("security")}
    assert secured >= {"POST /api/render/process", "POST /render", "GET /api/render/{job_id}/status",
                       "POST /api/render/{job_id}/cancel", "GET /api/render/{job_id}/download",
                       "GET /api/render/queue/status", "GET /api/render/jobs"}, secured
    seen: dict[str, set[int]] = {}

    def fuzzer(op, key: str | None):
        label = f"{op.method.upper()} {op.path}"

        @settings(max_examples=12, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=op.as_strategy(generation_mode=GenerationMode.POSITIVE))
        def fuzz(case):
            _contain(case)
            r = case.call(base_url=svc.url, timeout=30, headers=_h(key) if key else {})
            hdrs = {k_.lower(): (v[0] if isinstance(v, list) else v) for k_, v in r.headers.items()}
            check_answer(r.status_code, hdrs, r.content, f"{label} {case.path_parameters} {case.query}")
            if key is None and op.path != "/health":
                # A signed link's route (a download, a file of the live preview) judges a request
                # that carries a signature by it: a made-up one is 403, never a file.
                # (one that also sends a made-up Authorization header is refused for the header)
                signed = (op.path.endswith("/download") or "/preview/" in op.path) and "sig" in (case.query or {}) \
                    and "authorization" not in {h.lower() for h in (case.headers or {})}
                assert r.status_code == (403 if signed else 401), (label, r.status_code, r.text)
            seen.setdefault(label, set()).add(r.status_code)

        return fuzz

    for op in ops:
        for key in (svc.keys.acme, svc.keys.admin, None):
            fuzzer(op, key)()
    assert seen["GET /health"] == {200}
    assert 200 in seen["GET /api/render/queue/status"] and 401 in seen["GET /api/render/queue/status"]


def test_the_client_and_the_cli_take_a_key(svc, tmp_path):
    import subprocess
    import sys

    from ecg_ray.errors import RenderError
    from ecg_ray.service.client import Client

    k = svc.keys
    # Python: the key from the argument, or from ECG_API_KEY.
    with Client(svc.url, api_key=k.bravo) as c:
        st = c.submit(f"{svc.media}/auth-short.mp4", CUES, job_id="client-001")
        assert st.tenant == "bravo"
        out = c.wait("client-001", timeout=180, poll=0.3)
        c.download("client-001", str(tmp_path / "client.mp4"))
    assert frame_numbers(str(tmp_path / "client.mp4")) == list(range(FRAMES)) and out.job_id == "client-001"
    with Client(svc.url, api_key="") as c, pytest.raises(RenderError) as err:
        c.status("client-001")
    assert err.value.code == "unauthorized"
    with Client(svc.url, api_key=k.admin, tenant="bravo") as c:  # an admin acting for a tenant
        assert c.status("client-001").state == "completed"
    # The command line's remote mode: the job runs on the service, the video comes back here.
    scen = tmp_path / "cues.json"
    scen.write_text(json.dumps(CUES))
    env = {**os.environ, "ECG_API_KEY": k.acme}
    cmd = [sys.executable, "-m", "ecg_ray", "render", f"{svc.media}/auth-short.mp4", str(scen),
           "-o", str(tmp_path / "cli.mp4"), "--server", svc.url, "--job-id", "cli-001", "-q"]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "job cli-001" in run.stdout and frame_numbers(str(tmp_path / "cli.mp4")) == list(range(FRAMES))
    assert svc.http.get("/api/render/cli-001/status", headers=_h(k.acme)).json()["tenant"] == "acme"
    bad = subprocess.run([*cmd[:-3], "--job-id", "cli-002", "--api-key", new_key()], env=env,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "unauthorized" in bad.stderr and k.acme not in bad.stderr, bad.stderr
    local = subprocess.run([*cmd[:4], str(tmp_path / "cli.mp4"), *cmd[5:]], env=env, capture_output=True,
                           text=True, timeout=120)
    assert local.returncode == 2 and "must be a URL" in local.stderr, local.stderr


def test_credentials_in_urls_never_reach_answers_callbacks_or_logs(svc):
    # A video URL with user info and a presigned-style query, that fails (nothing listens there).
    secret_user, secret_sig = "hunter2-user-secret", "AbCdEfSignatureSecret0123"
    job = "redact-001"
    body = {**_body(svc, job), "video_url": f"http://{secret_user}:pw-secret@127.0.0.1:9/v.mp4"
                                            f"?X-Amz-Signature={secret_sig}&token={secret_sig}"}
    r = svc.http.post("/api/render/process", json=body, headers=_h(svc.keys.acme))
    assert r.status_code in (200, 422), r.text
    texts = [r.text]
    if r.status_code == 200:
        st = _wait(svc, job, svc.keys.acme)
        assert st["state"] == "failed" and st["error"]["code"] == "fetch_failed", st
        texts.append(json.dumps(st))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(e.json["status"] == "failed" for e in svc.rx.events(job)):
            time.sleep(0.2)
        texts += [e.body.decode() for e in svc.rx.events(job)]
        assert any(e.json["status"] == "failed" for e in svc.rx.events(job))
    # Everything this Ray session logged (the job service, the replicas, the segment actors).
    import ray

    logs = Path(ray._private.worker.global_worker.node.get_logs_dir_path())
    for f in logs.rglob("*"):
        if f.is_file() and f.suffix in (".err", ".out", ".log"):
            texts.append(f.read_text(errors="replace"))
    for t in texts:
        for s in (secret_user, "pw-secret", secret_sig, svc.keys.acme):
            assert s not in t, (s, t[max(0, t.find(s) - 300):t.find(s) + 100])
