"""The jobs list (GET /api/render/jobs) and the jobs page (GET /jobs), against the real service
with API keys configured and a real Chromium (Playwright's sync API, the project's browser).

The list route: a tenant's key sees its own jobs, admin keys every tenant's or one's, newest
first, limited, filtered by state, 401 without a key. The page: its shell loads without a key
and asks for one; a wrong key and a key without the read right say so; a job is seen queued,
then processing with its progress bar moving and its time left, then completed with a download
link that downloads the stored file's bytes, and its live preview playing while it renders; a failed job shows its error code; hostile error
text and warnings are shown as text (no element made of them, no script run); a tenant's key
shows only its jobs. What is checked is what the page shows: DOM text and the progress
element's value."""

from __future__ import annotations

import hashlib
import json
import re
import time
from fractions import Fraction
from pathlib import Path

import httpx
import pytest

from ecg_ray.config import Settings
from ecg_ray.media.testclip import make_numbered_video
from ecg_ray.service.auth import hash_key, new_key

from .frames import frame_numbers
from .serveutil import running_service, serving_directory, wait_healthy

SHORT_FRAMES = 50      # 2 s at 25 fps
# 2 min with a caption on every frame: long enough to watch it render (500 frames took 3 s
# here, too short to see the bar move between two of the page's polls).
LONG_FRAMES = 3000
CUES = {"version": "1.3", "cues": [{"start": 0.2, "end": 1.0, "text": "지켜보기 watch"}]}
LONG_CUES = {"version": "1.3", "cues": [{"start": i / 25, "end": (i + 1) / 25, "text": f"프레임 {i}"}
                                        for i in range(LONG_FRAMES)]}
# Markup in what a job's error quotes (its video URL) and in an option's name (its warning). A
# URL may not hold spaces, so the markup has none.
HOSTILE_QUERY = "<img/src/onerror=window.__pwned=1><script>window.__pwned=2</script>"
HOSTILE_OPTION = "<img/src/onerror=window.__pwned=3>"
TIMEOUT_MS = 240_000   # a render on this 2-core machine, shared with other tests


def _entry(key: str, tenant: str, *rights: str) -> dict:
    return {"name": f"{tenant}-{'-'.join(rights)}", "tenant": tenant, "rights": list(rights), "sha256": hash_key(key)}


@pytest.fixture(scope="module")
def svc(tmp_path_factory, media_dir):
    base = tmp_path_factory.mktemp("jobs-page")
    make_numbered_video(str(media_dir / "page-short.mp4"), SHORT_FRAMES, Fraction(25), (320, 240), audio=False)
    make_numbered_video(str(media_dir / "page-long.mp4"), LONG_FRAMES, Fraction(25), (320, 240), audio=False)
    keys = {name: new_key() for name in ("acme", "bravo", "admin", "acme_submit", "one", "two")}
    (base / "keys.json").write_text(json.dumps({"keys": [
        _entry(keys["acme"], "acme", "submit", "read", "cancel"), _entry(keys["bravo"], "bravo", "submit", "read"),
        _entry(keys["admin"], "ops", "admin"), _entry(keys["acme_submit"], "acme", "submit"),
        # the list route's own tenants: what they list depends on no other test
        _entry(keys["one"], "one", "submit", "read", "cancel"), _entry(keys["two"], "two", "submit", "read")]}))
    # One job at a time: a second job waits in the queue while the first renders.
    with serving_directory(media_dir) as media, running_service(
            base, ECG_API_KEYS_FILE=str(base / "keys.json"), MAX_CONCURRENT_JOBS="1") as (url, env):
        http = httpx.Client(base_url=url, timeout=60)
        wait_healthy(http)
        yield type("Svc", (), {"url": url, "env": env, "http": http, "keys": keys, "media": media})
        http.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    from ecg_ray.capture.browser import chromium_args, chromium_executable

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium_executable(Settings()), args=chromium_args(), headless=True)
        yield b
        b.close()


def _h(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def _submit(svc, key: str, job_id: str, clip: str = "page-short.mp4", cues: dict = CUES, **extra) -> dict:
    body = {"job_id": job_id, "video_url": f"{svc.media}/{clip}", "scenario": cues, **extra}
    r = svc.http.post("/api/render/process", json=body, headers=_h(key))
    assert r.status_code == 200, r.text
    return r.json()


def _wait(svc, key: str, job_id: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = svc.http.get(f"/api/render/{job_id}/status", headers=_h(key)).json()
        if st["state"] in ("completed", "failed", "cancelled"):
            return st
        time.sleep(0.3)
    raise AssertionError(f"{job_id} did not end: {st}")


def _listed(svc, key: str | None, query: str = "") -> httpx.Response:
    return svc.http.get(f"/api/render/jobs{query}", headers=_h(key) if key else {})


def _ids(r: httpx.Response) -> list[str]:
    assert r.status_code == 200, r.text
    return [j["job_id"] for j in r.json()["jobs"]]


# -- the list route -------------------------------------------------------------------------------

def test_the_jobs_list_by_tenant_newest_first_limited_and_by_state(svc):
    k = svc.keys
    _submit(svc, k["one"], "list-ok")
    _submit(svc, k["one"], "list-fail", clip="list-missing.mp4")
    _submit(svc, k["two"], "list-ok")   # the same id under another tenant: another job
    _submit(svc, k["one"], "list-cancel", clip="page-long.mp4", cues=LONG_CUES)
    svc.http.post("/api/render/list-cancel/cancel", headers=_h(k["one"]))
    ends = {j: _wait(svc, k["one"], j)["state"] for j in ("list-ok", "list-fail", "list-cancel")}
    assert ends == {"list-ok": "completed", "list-fail": "failed", "list-cancel": "cancelled"}
    assert _wait(svc, k["two"], "list-ok")["state"] == "completed"

    # Without a key, or with one that is not the service's: 401, nothing listed.
    for headers in ({}, _h(new_key())):
        r = svc.http.get("/api/render/jobs", headers=headers)
        assert r.status_code == 401 and r.json()["error_code"] == "unauthorized" and "list-" not in r.text
    # A key without the read right: 403.
    r = _listed(svc, k["acme_submit"])
    assert r.status_code == 403 and r.json()["error_code"] == "forbidden" and "list-" not in r.text
    # A tenant sees its own jobs, newest first, each a full status; never another tenant's.
    mine = _listed(svc, k["one"])
    assert _ids(mine) == ["list-cancel", "list-fail", "list-ok"] and mine.json()["more"] is False
    assert {j["tenant"] for j in mine.json()["jobs"]} == {"one"}
    failed = mine.json()["jobs"][1]
    assert failed["state"] == "failed" and failed["error"]["code"] == "fetch_failed"
    assert "list-missing.mp4" in failed["error"]["message"]
    assert mine.json()["jobs"][2]["result"]["download_url"]
    assert _ids(_listed(svc, k["two"])) == ["list-ok"]
    assert _listed(svc, k["two"]).json()["jobs"][0]["tenant"] == "two"
    r = _listed(svc, k["two"], "?tenant=one")
    assert r.status_code == 403 and "list-fail" not in r.text
    assert _ids(_listed(svc, k["one"], "?tenant=one")) == ["list-cancel", "list-fail", "list-ok"]
    # Admin keys: every tenant's jobs (each naming its tenant), or one tenant's with ?tenant=.
    everyone = [j for j in _listed(svc, k["admin"]).json()["jobs"] if j["tenant"] in ("one", "two")]
    assert [(j["tenant"], j["job_id"]) for j in everyone] == [
        ("one", "list-cancel"), ("two", "list-ok"), ("one", "list-fail"), ("one", "list-ok")]
    assert _ids(_listed(svc, k["admin"], "?tenant=two")) == ["list-ok"]
    assert _ids(_listed(svc, k["admin"], "?tenant=")) == []       # the open tenant has none here
    # limit, and whether more match.
    one = _listed(svc, k["one"], "?limit=1")
    assert _ids(one) == ["list-cancel"] and one.json()["more"] is True
    assert _listed(svc, k["one"], "?limit=3").json()["more"] is False
    for bad in ("?limit=0", "?limit=501", "?limit=x", "?state=done", "?tenant=Not%20a%20tenant"):
        r = _listed(svc, k["one"], bad)
        assert r.status_code == 422 and r.json()["error_code"] == "invalid_request", (bad, r.text)
    # By state: one, or several.
    assert _ids(_listed(svc, k["one"], "?state=failed")) == ["list-fail"]
    assert _ids(_listed(svc, k["one"], "?state=completed&state=cancelled")) == ["list-cancel", "list-ok"]
    assert _ids(_listed(svc, k["one"], "?state=queued")) == []
    done = _listed(svc, k["admin"], "?state=completed").json()["jobs"]
    assert [(j["tenant"], j["job_id"]) for j in done if j["tenant"] in ("one", "two")] == [
        ("two", "list-ok"), ("one", "list-ok")]
    # In the OpenAPI document like the other routes: the bearer scheme, the JobList answer.
    spec = svc.http.get("/openapi.json", headers=_h(k["one"])).json()
    op = spec["paths"]["/api/render/jobs"]["get"]
    assert op["security"] == [{"ApiKey": []}]
    assert op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/JobList")
    assert {p["name"] for p in op["parameters"]} == {"tenant", "limit", "state"}
    assert not any(p.startswith("/jobs") for p in spec["paths"])   # the page is not part of the API


def test_only_the_page_shell_loads_without_a_key(svc):
    for path, kind in (("/jobs", "text/html"), ("/jobs/page.js", "text/javascript"), ("/jobs/page.css", "text/css"),
                       ("/jobs/hls.min.js", "text/javascript")):
        r = svc.http.get(path)
        assert r.status_code == 200 and r.headers["content-type"].startswith(kind), (path, r.status_code)
        assert "script-src 'self'" in r.headers["content-security-policy"]
        assert "list-ok" not in r.text and "list-fail" not in r.text   # no job data in it
    # Nothing else under /jobs, nor another method, goes without a key.
    for method, path in (("GET", "/jobs/other.js"), ("GET", "/jobs/"), ("POST", "/jobs"), ("GET", "/jobsx"),
                         ("GET", "/jobs/page.js/x")):
        r = svc.http.request(method, path)
        assert r.status_code == 401 and r.json()["error_code"] == "unauthorized", (method, path, r.status_code)
    assert svc.http.get("/jobs/other.js", headers=_h(svc.keys["acme"])).status_code == 404


# -- the page ---------------------------------------------------------------------------------------

class Viewer:
    """One browser tab on the jobs page, recording every request it makes."""

    def __init__(self, browser, svc) -> None:
        self.svc = svc
        self.ctx = browser.new_context(accept_downloads=True)
        self.page = self.ctx.new_page()
        self.requests: list[tuple[str, str | None]] = []
        self.errors: list[str] = []
        self.page.on("request", lambda req: self.requests.append((req.url, req.headers.get("authorization"))))
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on("dialog", lambda d: (self.errors.append(f"dialog: {d.message}"), d.dismiss()))
        r = self.page.goto(f"{svc.url}/jobs")
        assert r is not None and r.status == 200

    def give_key(self, key: str) -> None:
        from playwright.sync_api import expect

        expect(self.page.locator("#key-panel")).to_be_visible()
        self.page.fill("#key-input", key)
        self.page.click("#key-submit")

    def row(self, ref: str):
        return self.page.locator(f'#job-rows tr[data-ref="{ref}"]')

    def refs(self) -> list[str]:
        return self.page.eval_on_selector_all("#job-rows tr", "rows => rows.map(r => r.dataset.ref)")

    def close(self) -> None:
        self.ctx.close()


@pytest.fixture
def viewer(browser, svc):
    opened: list[Viewer] = []

    def open_() -> Viewer:
        opened.append(Viewer(browser, svc))
        return opened[-1]

    yield open_
    for v in opened:
        # Nothing the page did went elsewhere, and no script error or dialog came up.
        assert all(url.startswith(v.svc.url + "/") for url, _ in v.requests), v.requests
        assert v.errors == []
        v.close()


def test_the_page_asks_for_a_key_and_says_when_it_is_wrong(svc, viewer):
    from playwright.sync_api import expect

    v = viewer()
    p = v.page
    expect(p.locator("#auth-message")).to_have_text("This service needs an API key to show its jobs.")
    expect(p.locator("#main")).to_be_hidden()
    v.give_key(new_key())   # not one of the service's keys
    expect(p.locator("#auth-message")).to_contain_text("The API key was refused (401 unauthorized)")
    expect(p.locator("#main")).to_be_hidden()
    assert p.evaluate("sessionStorage.length") == 0   # a refused key is not kept
    v.give_key(svc.keys["acme_submit"])   # the service's, but without the read right
    expect(p.locator("#auth-message")).to_contain_text("This API key may not see these jobs (403 forbidden)")
    before = len(v.requests)
    v.give_key(svc.keys["acme"])
    expect(p.locator("#main")).to_be_visible()
    expect(p.locator("#key-panel")).to_be_hidden()
    # The key is kept for this tab only, and sent as a bearer token, never in a URL.
    assert p.evaluate("sessionStorage.getItem('ecg_ray.api_key')") == svc.keys["acme"]
    assert p.evaluate("localStorage.length") == 0
    api_calls = [(u, a) for u, a in v.requests[before:] if "/api/render/" in u]
    assert {u.split("?")[0].removeprefix(svc.url) for u, _ in api_calls} == {"/api/render/jobs",
                                                                            "/api/render/queue/status"}
    assert {a for _, a in api_calls} == {f"Bearer {svc.keys['acme']}"}
    assert all(svc.keys["acme"] not in u for u, _ in v.requests)
    # Forgetting it asks again.
    p.click("#forget-key")
    expect(p.locator("#key-panel")).to_be_visible()
    assert p.evaluate("sessionStorage.length") == 0


def test_a_job_seen_queued_then_rendering_then_downloaded(svc, viewer, tmp_path):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import expect

    k = svc.keys["acme"]
    v = viewer()
    v.give_key(k)
    p = v.page
    expect(p.locator("#main")).to_be_visible()
    # The cluster's capacity, from the queue route.
    expect(p.locator('#resource-rows tr[data-resource="CPU"] td').nth(2)).to_have_text("2")
    expect(p.locator("#count-running")).to_contain_text("of 1 at once")
    _submit(svc, k, "page-long", clip="page-long.mp4", cues=LONG_CUES)
    _submit(svc, k, "page-next", options={"webvtt": True})   # with a file beside the video
    long_row, next_row = v.row("acme.page-long"), v.row("acme.page-next")
    # The second waits in the queue while the first renders (one job at a time).
    expect(next_row.locator(".col-state")).to_have_text("queued", timeout=30_000)
    expect(next_row.locator(".col-eta")).to_have_text("#1 in the queue")
    expect(p.locator("#queue-list li")).to_have_text(["page-next"])
    assert v.refs()[:2] == ["acme.page-next", "acme.page-long"]   # newest first
    # The first renders: its bar moves (two readings between 0 and 100, the second higher), with
    # its time left shown.
    sel = '#job-rows tr[data-ref="acme.page-long"]'
    moving = """([sel, above]) => { const tr = document.querySelector(sel); if (!tr) return null;
        const v = tr.querySelector('progress').value;
        const left = tr.querySelector('.col-eta').textContent;
        return tr.dataset.state === 'processing' && v > above && v < 100 && left ? [v, left] : null; }"""
    try:
        first, left = p.wait_for_function(moving, arg=[sel, 0], timeout=TIMEOUT_MS, polling=100).json_value()
        second, _ = p.wait_for_function(moving, arg=[sel, first], timeout=TIMEOUT_MS, polling=100).json_value()
    except PlaywrightTimeout:
        raise AssertionError(f"not seen rendering: {_wait(svc, k, 'page-long')}") from None
    assert 0 < first < second < 100
    assert re.fullmatch(r"\d+ (s|min \d\d s|h \d\d min)", left), left
    expect(p.locator("#running-list li")).to_contain_text(["page-long"])
    # Its details while it runs: no output yet, and its live preview playing (hls.js, served by
    # the service) while the job is still processing.
    long_row.click()
    expect(p.locator("#detail-id")).to_have_text("page-long (tenant acme)")
    expect(p.locator("#detail-no-output")).to_be_visible()
    played = """([sel]) => { const v = document.getElementById('preview-video');
        const tr = document.querySelector(sel);
        return !v.hidden && v.currentTime > 1 && v.getVideoPlaybackQuality().totalVideoFrames > 0
            ? [v.currentTime, tr.dataset.state] : null; }"""
    try:
        at, state = p.wait_for_function(played, arg=[sel], timeout=TIMEOUT_MS, polling=100).json_value()
    except PlaywrightTimeout:
        raise AssertionError(f"preview not seen playing: {_wait(svc, k, 'page-long')}") from None
    assert state == "processing", (at, state)
    assert any("/api/render/page-long/preview/" in u and a is None for u, a in v.requests)  # signed, no key
    # Completed: 100 %, the download link, and what rendered it.
    expect(long_row.locator(".col-state")).to_have_text("completed", timeout=TIMEOUT_MS)
    assert long_row.locator("progress").evaluate("b => b.value") == 100
    st = _wait(svc, k, "page-long")
    expect(long_row.locator(".col-rendered_by")).to_have_text(st["result"]["rendered_by"])
    expect(long_row.locator(".col-resumed_segments")).to_have_text("0")
    expect(long_row.locator(".col-reused_segments")).to_have_text(f"0 of {st['segments']}")
    expect(long_row.locator(".error-code")).to_have_text("")
    link = p.locator("#detail-download")
    expect(link).to_be_visible()
    expect(link).to_have_attribute("href", st["result"]["download_url"])
    expect(p.locator("#detail-timings")).to_contain_text("Ran")
    expect(p.locator("#detail-output")).to_contain_text(f"{LONG_FRAMES}")
    with p.expect_download() as got:
        link.click()
    saved = tmp_path / "downloaded.mp4"
    got.value.save_as(saved)
    stored = Path(st["result"]["location"])
    assert saved.stat().st_size == st["result"]["file_size"] == stored.stat().st_size
    assert hashlib.sha256(saved.read_bytes()).digest() == hashlib.sha256(stored.read_bytes()).digest()
    assert frame_numbers(str(saved)) == list(range(LONG_FRAMES))
    # The queued one ran next; its WebVTT file has a link of its own beside the video's.
    expect(next_row.locator(".col-state")).to_have_text("completed", timeout=TIMEOUT_MS)
    expect(p.locator("#queue-empty")).to_be_visible()
    vtt = _wait(svc, k, "page-next")["result"]["files"]["webvtt"]
    next_row.click()
    expect(p.locator("#detail-id")).to_have_text("page-next (tenant acme)")
    vtt_link = p.locator('#detail-files li[data-kind="webvtt"] a')
    expect(vtt_link).to_have_attribute("href", vtt["download_url"])
    with p.expect_download() as got:
        vtt_link.click()
    got.value.save_as(tmp_path / "captions.vtt")
    text = (tmp_path / "captions.vtt").read_bytes()
    assert text == Path(vtt["location"]).read_bytes() and text.startswith(b"WEBVTT")
    assert "지켜보기 watch" in text.decode()


def test_failed_jobs_and_hostile_text_are_shown_as_text(svc, viewer):
    from playwright.sync_api import expect

    k = svc.keys["acme"]
    hostile_url = f"{svc.media}/page-missing.mp4?{HOSTILE_QUERY}"
    _submit(svc, k, "page-hostile-fail", clip=f"page-missing.mp4?{HOSTILE_QUERY}")
    _submit(svc, k, "page-hostile-warn", options={HOSTILE_OPTION: 1})
    assert _wait(svc, k, "page-hostile-fail")["state"] == "failed"
    assert _wait(svc, k, "page-hostile-warn")["state"] == "completed"
    v = viewer()
    v.give_key(k)
    p = v.page
    failed = v.row("acme.page-hostile-fail")
    expect(failed.locator(".col-state")).to_have_text("failed")
    expect(failed.locator(".error-code")).to_have_text("fetch_failed")
    expect(failed.locator(".error-message")).to_contain_text(f"cannot download input '{hostile_url}': HTTP 404")
    failed.click()
    expect(p.locator("#detail-error")).to_be_visible()
    expect(p.locator("#detail-error-code")).to_have_text("fetch_failed")
    expect(p.locator("#detail-error-message")).to_contain_text(hostile_url)
    expect(p.locator("#detail-download")).to_be_hidden()
    v.row("acme.page-hostile-warn").click()
    expect(p.locator("#detail-warnings li")).to_have_text(
        [f"options.{HOSTILE_OPTION} is not an option of this service; ignored"])
    # The markup stayed text: no element was made of it, and nothing of it ran (the page's CSP
    # would stop an inline handler too: the elements' absence is what shows the escaping).
    assert p.locator("main img, main script").count() == 0
    assert p.evaluate("typeof window.__pwned") == "undefined"


def test_a_tenants_key_shows_only_its_jobs_and_an_admins_every_tenants(svc, viewer):
    from playwright.sync_api import expect

    k = svc.keys
    _submit(svc, k["bravo"], "page-bravo")
    _submit(svc, k["acme"], "page-acme", clip="page-missing.mp4")
    assert _wait(svc, k["bravo"], "page-bravo")["state"] == "completed"
    assert _wait(svc, k["acme"], "page-acme")["state"] == "failed"
    v = viewer()
    v.give_key(k["bravo"])
    p = v.page
    expect(v.row("bravo.page-bravo")).to_be_visible()
    refs = v.refs()
    assert all(r.startswith("bravo.") for r in refs), refs
    expect(p.locator("#job-rows .col-tenant")).to_have_text(["bravo"] * len(refs))
    assert "page-acme" not in p.locator("#job-rows").inner_text()
    # The admin key: every tenant's jobs, each with its tenant.
    p.click("#forget-key")
    v.give_key(k["admin"])
    expect(v.row("acme.page-acme")).to_be_visible()
    expect(v.row("bravo.page-bravo")).to_be_visible()
    assert {"acme", "bravo"} <= set(p.locator("#job-rows .col-tenant").all_inner_texts())
    # By state, with the page's own filter: only failed jobs, the acme one among them.
    p.select_option("#state-filter", "failed")
    expect(v.row("bravo.page-bravo")).to_have_count(0)
    expect(v.row("acme.page-acme")).to_be_visible()
    states = set(p.locator("#job-rows .col-state").all_inner_texts())
    assert states == {"failed"}, states
