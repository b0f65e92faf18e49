"""The render service end to end: the real app under Ray Serve on loopback, a real callback
receiver, videos fetched over real HTTP (and from a real S3-compatible server), outputs checked
frame by frame."""

from __future__ import annotations

import os
import threading
import time
from fractions import Fraction
from pathlib import Path

import httpx
import pytest

from ecg_ray.media.testclip import make_numbered_video
from ecg_ray.service.callbacks import verify

from . import serveutil
from .conftest import leftover_processes
from .frames import beep_onsets, frame_numbers
from .receiver import Receiver
from .s3util import MotoS3
from .serveutil import running_service, serving_directory

SECRET = "test-secret-가나다"
CUES = {"version": "1.3", "cues": [
    {"start": 0.8, "end": 1.6, "text": "첫 번째 자막 first"},
    {"start": 2.0, "end": 3.2, "text": "두 번째 second"},
]}
# A caption on every frame, over 60 s: long enough that a running job is still running when the
# tests cancel it, seconds after its first frames are reported (30 s of it took 3.7 s on 2 cores,
# the encoder's count reaching 10 frames after 2 s).
BUSY_FRAMES = 1500
BUSY = {"version": "1.3", "cues": [{"start": i / 25, "end": (i + 1) / 25, "text": f"프레임 {i}"}
                                   for i in range(BUSY_FRAMES)]}


class Svc:
    def __init__(self, url: str, env: dict, base: Path, media: str, rx: Receiver) -> None:
        self.url, self.env, self.base, self.media, self.rx = url, env, base, media, rx
        self.http = httpx.Client(base_url=url, timeout=60)

    def submit(self, **body) -> httpx.Response:
        body.setdefault("callback_url", self.rx.url_for("/cb"))
        return self.http.post("/api/render/process", json=body)

    def status(self, job_id: str) -> dict:
        r = self.http.get(f"/api/render/{job_id}/status")
        assert r.status_code == 200, r.text
        return r.json()

    def wait(self, job_id: str, timeout: float = 180, until=("completed", "failed", "cancelled")) -> list[dict]:
        seen, deadline = [], time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = self.status(job_id)
            seen.append(st)
            if st["state"] in until:
                return seen
            time.sleep(0.2)
        raise AssertionError(f"job {job_id} did not reach {until}: {seen[-1]}")

    def restart(self, **extra_env: str) -> None:
        """Stop the job service the hard way (as a crashed or redeployed head would) and start a
        new one on the same state directory."""
        import ray

        from ecg_ray.service.jobs import NAMESPACE, SERVICE_NAME, get_service

        ray.kill(ray.get_actor(SERVICE_NAME, namespace=NAMESPACE), no_restart=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                ray.get_actor(SERVICE_NAME, namespace=NAMESPACE)
                time.sleep(0.2)
            except ValueError:
                break
        self.env.update(extra_env)
        ray.get(get_service(self.env).queue_status.remote())
        wait_healthy(self)


def wait_healthy(svc: Svc, timeout: float = 180) -> dict:
    return serveutil.wait_healthy(svc.http, timeout)


@pytest.fixture(scope="module")
def media_url(media_dir, numbered):
    make_numbered_video(str(media_dir / "busy.mp4"), BUSY_FRAMES, Fraction(25), (320, 240), audio=False)
    with serving_directory(media_dir) as url:
        yield url


@pytest.fixture(scope="module")
def svc(tmp_path_factory, media_url):
    rx = Receiver().start()
    with running_service(tmp_path_factory.mktemp("service"), ECG_CALLBACK_SECRET=SECRET, MAX_CONCURRENT_JOBS="1",
                         ECG_MAX_QUEUED_JOBS="2", ECG_CALLBACK_RETRY_S="60") as (url, env):
        s = Svc(url, env, Path(env["ECG_STATE_DIR"]).parent, media_url, rx)
        wait_healthy(s)
        yield s
        s.http.close()
    rx.stop()


def _callbacks(rx: Receiver, job_id: str, timeout: float = 30) -> list:
    assert rx.wait_for(lambda reqs: any(r.job_id == job_id and r.json["status"] != "processing" for r in reqs),
                       timeout), f"no final callback for {job_id}: {[r.json for r in rx.events(job_id)]}"
    time.sleep(0.5)  # anything wrongly sent after the final would show up now
    return rx.events(job_id)


def _check_callbacks(events: list, final_status: str) -> dict:
    assert events, "no callbacks"
    for e in events:
        assert verify(SECRET, e.header("X-ECG-Signature"), e.body), "bad signature"
        assert e.header("Content-Type").startswith("application/json")
    finals = [e for e in events if e.json["status"] != "processing"]
    assert len(finals) == 1 and events[-1] is finals[0], [e.json["status"] for e in events]
    assert finals[0].json["status"] == final_status
    progress = [e.json["progress"] for e in events if e.json["status"] == "processing"]
    assert progress == sorted(progress)
    times = [e.at for e in events if e.json["status"] == "processing"]
    # At most one progress callback a second. They are sent at least a second apart; arrivals
    # move by each delivery's latency on a loaded machine (0.81 s between two was seen), which
    # does not add up: k callbacks later, at least k - 0.5 s later.
    assert all(times[j] - times[i] >= (j - i) - 0.5
               for i in range(len(times)) for j in range(i + 1, len(times))), times
    return finals[0].json


def _signer(svc: Svc):
    """The service's own link signer (its secret, made at its first start, is in its state dir)."""
    from ecg_ray.service.links import LinkSigner

    return LinkSigner((svc.base / "state" / "links.secret").read_bytes().strip(), 7 * 86400)


def _temp_files(svc: Svc, job_id: str) -> list[str]:
    found = []
    for root, dirs, files in os.walk(svc.base / "tmp"):
        found += [os.path.join(root, n) for n in dirs + files if job_id in n]
    return found


def test_health_reports_ray_encoder_and_browsers(svc):
    h = svc.http.get("/health").json()
    assert h["ok"] is True and h["problems"] == []
    assert h["encoder"] == "libx264"                     # no NVENC on this machine: the test encode says so
    assert h["browsers"]["ready"] == h["browsers"]["actors"] == 2
    assert h["ray"]["nodes"] == 1 and h["gpus"] == []
    assert h["storage"] == "local"
    assert svc.http.get("/docs").status_code == 200
    paths = svc.http.get("/openapi.json").json()["paths"]
    assert {"/api/render/process", "/render", "/api/render/{job_id}/status", "/api/render/{job_id}/cancel",
            "/api/render/queue/status", "/api/render/{job_id}/download", "/health"} <= set(paths)


def test_submit_follow_callbacks_and_download(svc, numbered, tmp_path):
    r = svc.submit(job_id="snake-1", video_url=f"{svc.media}/numbered.mp4", scenario=CUES,
                   options={"quality": 80})
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "queued" and r.json()["job_id"] == "snake-1"
    seen = svc.wait("snake-1")
    st = seen[-1]
    assert st["state"] == "completed", st
    assert [s["progress"] for s in seen] == sorted(s["progress"] for s in seen)
    assert st["progress"] == 100 and st["frames_done"] == st["frames_total"] == 100
    res = st["result"]
    assert res["frames"] == 100 and res["encoder"] == "libx264" and abs(res["duration"] - 4.0) < 1e-6
    assert res["download_url"].startswith(f"{svc.url}/api/render/snake-1/download?expires=")

    final = _check_callbacks(_callbacks(svc.rx, "snake-1"), "completed")
    assert final["download_url"] == res["download_url"] and final["file_size"] == res["file_size"]
    assert final["progress"] == 100 and final["duration"] == pytest.approx(4.0)

    got = tmp_path / "dl.mp4"
    got.write_bytes(svc.http.get(res["download_url"]).content)
    assert got.stat().st_size == res["file_size"]
    assert frame_numbers(got) == list(range(100))
    assert [round(t * 25) for t in beep_onsets(got)] == [10, 50, 90]
    part = svc.http.get(res["download_url"], headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == got.read_bytes()[100:200]
    assert _temp_files(svc, "snake-1") == []
    # The link opens the file, the job id alone does not (nor a link altered, expired, or of
    # another job), and a 403 says nothing of which ids exist.
    from urllib.parse import parse_qs, urlsplit

    q = {k: v[0] for k, v in parse_qs(urlsplit(res["download_url"]).query).items()}
    signer = _signer(svc)
    expired = signer.sign(f"{svc.url}/api/render/snake-1/download", "snake-1", "snake-1.mp4", now=time.time() - 8 * 86400)
    for bad in ("/api/render/snake-1/download", "/api/render/no-such-job/download",
                # (its last digit changed: one that ends in 0 would stay the same with a 0)
                f"/api/render/snake-1/download?expires={q['expires']}&sig={q['sig'][:-1]}{'1' if q['sig'][-1] == '0' else '0'}",
                f"/api/render/snake-1/download?expires={int(q['expires']) + 1}&sig={q['sig']}",
                f"/api/render/no-such-job/download?expires={q['expires']}&sig={q['sig']}", expired):
        r = svc.http.get(bad)
        assert r.status_code == 403 and r.json()["error_code"] == "forbidden", (bad, r.text)
        assert "snake" not in r.text
    assert "expired" in svc.http.get(expired).json()["detail"]


def test_camel_case_alias_and_http_client(svc, tmp_path):
    from ecg_ray import Client

    body = {"jobId": "camel-1", "videoUrl": f"{svc.media}/numbered.mp4", "scenario": CUES,
            "options": {"width": 480, "height": 360}, "callbackUrl": svc.rx.url_for("/seed"),
            "userId": "ignored-extra-field"}
    r = svc.http.post("/render", json=body)
    assert r.status_code == 200, r.text
    progress: list[float] = []
    with Client(svc.url) as c:
        out = c.wait("camel-1", timeout=180, poll=0.3, on_progress=lambda s: progress.append(s.progress))
        assert out.width == 480 and out.height == 360 and out.frames == 100
        dest = c.download("camel-1", str(tmp_path / "c.mp4"))
    assert progress == sorted(progress) and progress[-1] == 100
    assert frame_numbers(dest, src_width=320) == list(range(100))
    events = _callbacks(svc.rx, "camel-1")
    assert all(e.path == "/seed" for e in events)
    _check_callbacks(events, "completed")


def test_same_job_again_is_the_same_job_and_a_different_body_conflicts(svc):
    body = {"job_id": "idem-1", "video_url": f"{svc.media}/numbered.mp4", "scenario": CUES}
    first = svc.submit(**body)
    assert first.status_code == 200 and first.json()["created"] is True
    again = svc.submit(**body)
    assert again.status_code == 200 and again.json()["job_id"] == "idem-1" and again.json()["created"] is False
    other = svc.submit(**{**body, "options": {"quality": 10}})
    assert other.status_code == 409 and other.json()["error_code"] == "conflict"
    assert svc.wait("idem-1")[-1]["state"] == "completed"
    # Done jobs answer the same way (the platform retried its submission after a timeout).
    assert svc.submit(**body).status_code == 200
    no_id = svc.submit(video_url=f"{svc.media}/numbered.mp4", scenario=CUES)
    assert no_id.status_code == 200 and len(no_id.json()["job_id"]) == 32
    svc.wait(no_id.json()["job_id"])


def test_the_jobs_list_and_page_in_the_open_mode(svc):
    """Without keys: every job listed (the open tenant's, ""), the page served; tenants by ?tenant=
    (tests/test_jobs_page.py has the page and the list with keys)."""
    r = svc.submit(job_id="open-list-1", video_url=f"{svc.media}/open-list-missing.mp4", scenario=CUES)
    assert r.status_code == 200, r.text
    assert svc.wait("open-list-1")[-1]["state"] == "failed"
    listed = svc.http.get("/api/render/jobs", params={"limit": 500})
    assert listed.status_code == 200, listed.text
    mine = [j for j in listed.json()["jobs"] if j["job_id"] == "open-list-1"]
    assert len(mine) == 1 and mine[0]["tenant"] == "" and mine[0]["error"]["code"] == "fetch_failed"
    assert listed.json()["jobs"][0]["job_id"] == "open-list-1"   # the newest submitted comes first
    assert svc.http.get("/api/render/jobs", params={"tenant": "acme"}).json() == {"jobs": [], "more": False}
    page = svc.http.get("/jobs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")


def test_invalid_requests_get_clear_errors(svc):
    video = f"{svc.media}/numbered.mp4"
    cases = [
        ({"scenario": CUES}, "invalid_request", "video_url"),
        ({"video_url": video}, "invalid_request", "scenario"),
        ({"video_url": video, "scenario": {"version": "1.3", "cues": [{"start": 2, "end": 1, "text": "x"}]}},
         "invalid_scenario", "cues[0]"),
        ({"video_url": video, "scenario": CUES, "job_id": "../../etc/passwd"}, "invalid_request", "job_id"),
        ({"video_url": video, "scenario": CUES, "job_id": "queue"}, "invalid_request", "reserved"),
        ({"video_url": video, "scenario": CUES, "options": {"quality": 101}}, "invalid_request", "quality"),
        ({"video_url": "file:///etc/passwd", "scenario": CUES}, "forbidden_url", "file"),
        ({"video_url": "/etc/passwd", "scenario": CUES}, "forbidden_url", "local paths"),
        ({"video_url": "http://169.254.169.254/latest/meta-data/", "scenario": CUES}, "forbidden_url", "169.254"),
        ({"video_url": video, "scenario": CUES, "callback_url": "http://[fe80::1]/cb"}, "forbidden_url", "fe80"),
        ({"video_url": video, "scenario": CUES, "callback_url": "gopher://x/"}, "forbidden_url", "gopher"),
    ]
    before = svc.http.get("/api/render/queue/status").json()
    for body, code, needle in cases:
        r = svc.http.post("/api/render/process", json=body)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["error_code"] == code, (body, r.json())
        assert needle in str(r.json()["detail"]), (body, r.json())
    assert svc.http.post("/api/render/process", content=b"{not json",
                         headers={"Content-Type": "application/json"}).status_code == 422
    big = svc.http.post("/api/render/process", content=b"x" * (17 * 1024 * 1024),
                        headers={"Content-Type": "application/json"})
    assert big.status_code == 413
    assert svc.http.get("/api/render/nope/status").status_code == 404
    assert svc.http.post("/api/render/nope/cancel").status_code == 404
    after = svc.http.get("/api/render/queue/status").json()
    assert after["queued"] == before["queued"] == []


def test_queue_limit_and_cancel_of_queued_and_running_jobs(svc):
    busy = {"video_url": f"{svc.media}/busy.mp4", "scenario": BUSY}
    assert svc.submit(job_id="run-1", **busy).status_code == 200
    svc.wait("run-1", until=("processing",), timeout=60)
    assert svc.submit(job_id="wait-1", **busy).status_code == 200
    assert svc.submit(job_id="wait-2", video_url=f"{svc.media}/numbered.mp4", scenario=CUES).status_code == 200
    full = svc.submit(job_id="wait-3", **busy)
    assert full.status_code == 429 and int(full.headers["Retry-After"]) >= 1
    assert full.json()["error_code"] == "queue_full"
    assert svc.http.get("/api/render/wait-3/status").status_code == 404   # refused means not kept

    q = svc.http.get("/api/render/queue/status").json()
    assert q["running"] == ["run-1"] and q["queued"] == ["wait-1", "wait-2"]
    assert q["max_concurrent_jobs"] == 1 and q["cluster"]["CPU"] == 2
    assert svc.status("wait-2")["queue_position"] == 2

    c = svc.http.post("/api/render/wait-1/cancel")
    assert c.status_code == 200 and c.json()["state"] == "cancelled"
    assert svc.status("wait-2")["queue_position"] == 1

    # Running: cancelled within seconds, its FFmpeg processes and temp files gone.
    svc.wait("run-1", until=("processing",))
    while svc.status("run-1")["frames_done"] < 10:
        time.sleep(0.2)
    t0 = time.monotonic()
    c = svc.http.post("/api/render/run-1/cancel")
    assert c.json()["state"] == "cancelled", c.json()
    assert time.monotonic() - t0 < 15
    assert svc.status("run-1")["state"] == "cancelled"
    _check_callbacks(_callbacks(svc.rx, "run-1"), "cancelled")
    assert _callbacks(svc.rx, "wait-1")[-1].json["status"] == "cancelled"
    assert svc.wait("wait-2")[-1]["state"] == "completed"
    assert _temp_files(svc, "run-1") == [] and _temp_files(svc, "wait-1") == []
    assert leftover_processes(allowed_browsers=2) == []
    # Cancelling a finished job changes nothing.
    assert svc.http.post("/api/render/wait-2/cancel").json()["state"] == "completed"


def test_python_submit_and_ray_get(svc):
    import ray

    import ecg_ray
    from ecg_ray import RenderError

    ref = ecg_ray.submit({"job_id": "py-1", "video_url": f"{svc.media}/numbered.mp4", "scenario": CUES})
    out = ray.get(ref, timeout=180)
    assert out.job_id == "py-1" and out.frames == 100 and out.encoder == "libx264"
    assert os.path.isfile(out.location) and frame_numbers(out.location) == list(range(100))
    assert svc.status("py-1")["state"] == "completed"
    bad = ecg_ray.submit({"job_id": "py-2", "video_url": f"{svc.media}/missing.mp4", "scenario": CUES})
    with pytest.raises(RenderError) as ei:
        ray.get(bad, timeout=120)
    assert ei.value.code == "fetch_failed" and "404" in ei.value.message
    with pytest.raises(RenderError) as ei:
        ecg_ray.submit({"video_url": f"{svc.media}/numbered.mp4", "scenario": {"version": "9"}})
    assert ei.value.code == "invalid_scenario"


def test_status_polls_come_from_a_fresh_mirror_and_never_go_back(svc):
    """Status is answered from the replica's mirror of the job service (mirror.StatusMirror): a job is
    known as soon as it was accepted, answers never go backwards, and none is older than
    ECG_STATUS_CACHE_S (0.1 s): every poll sent that long after the final callback left (the
    job was completed before it was sent) says completed."""
    import ray

    from ecg_ray.service.jobs import NAMESPACE, SERVICE_NAME

    actor = ray.get_actor(SERVICE_NAME, namespace=NAMESPACE)
    before = ray.get(actor.changes.remote(0, ""))
    assert before["full"] and before["version"] > 0
    assert svc.submit(job_id="mirror-1", video_url=f"{svc.media}/busy.mp4", scenario=BUSY).status_code == 200
    assert svc.http.get("/api/render/mirror-1/status").status_code == 200  # known at once
    rank = {"queued": 0, "processing": 1, "completed": 2, "failed": 2, "cancelled": 2}
    polls: list[list[tuple[float, dict]]] = [[] for _ in range(4)]
    done = threading.Event()

    def poll(out: list) -> None:
        with httpx.Client(base_url=svc.url, timeout=60) as c:
            while not done.is_set():
                t = time.monotonic()
                r = c.get("/api/render/mirror-1/status")
                assert r.status_code == 200, r.text
                out.append((t, r.json()))
                if out[-1][1]["state"] == "completed" and len(out) > 1 and out[-2][1]["state"] == "completed":
                    time.sleep(0.05)

    threads = [threading.Thread(target=poll, args=(p,), daemon=True) for p in polls]
    for t in threads:
        t.start()
    final = _callbacks(svc.rx, "mirror-1", timeout=180)[-1]
    time.sleep(1.0)
    done.set()
    for t in threads:
        t.join(30)
    assert final.json["status"] == "completed"
    for p in polls:
        keys = [(rank[s["state"]], s["progress"], s["frames_done"]) for _, s in p]
        assert keys == sorted(keys), "a status answer went backwards"
        late = [s["state"] for t, s in p if t >= final.at + 0.1]
        assert late and set(late) == {"completed"}, late
    assert {s["state"] for p in polls for _, s in p} >= {"processing", "completed"}
    # The feed behind it: only what changed since a version (plus queued jobs), a full resync
    # for a replica that knew another incarnation of the service.
    since = ray.get(actor.changes.remote(before["version"], before["incarnation"]))
    assert not since["full"] and [j["job_id"] for j in since["jobs"]] == ["mirror-1"]
    assert ray.get(actor.changes.remote(since["version"], since["incarnation"]))["jobs"] == []
    assert ray.get(actor.changes.remote(since["version"], "another"))["full"]


def test_restart_with_jobs_in_flight(svc):
    busy = {"video_url": f"{svc.media}/busy.mp4", "scenario": BUSY}
    assert svc.submit(job_id="rs-run", **busy).status_code == 200
    assert svc.submit(job_id="rs-queued", video_url=f"{svc.media}/numbered.mp4", scenario=CUES).status_code == 200
    svc.wait("rs-run", until=("processing",), timeout=60)
    while svc.status("rs-run")["frames_done"] < 5:
        time.sleep(0.2)
    svc.restart()
    # The old jobs are still known; the running one goes on (first), the queued one runs after it.
    st = svc.status("rs-run")
    assert st["state"] == "processing" and st["interruptions"] == 1, st
    done = svc.wait("rs-run")[-1]
    assert done["state"] == "completed", done
    assert frame_numbers(done["result"]["location"]) == list(range(BUSY_FRAMES))
    assert svc.wait("rs-queued")[-1]["state"] == "completed"
    assert svc.status("rs-queued")["started_at"] >= done["finished_at"]  # the resumed job went first
    assert svc.status("snake-1")["state"] == "completed"
    final = _check_callbacks(_callbacks(svc.rx, "rs-run"), "completed")
    assert "/api/render/rs-run/download?expires=" in final["download_url"]
    assert _temp_files(svc, "rs-run") == []


def test_s3_input_and_output(svc, s3_server: MotoS3, numbered, tmp_path):
    bucket = s3_server.create_bucket()
    s3_server.client().upload_file(str(numbered), bucket, "in/numbered.mp4")
    svc.restart(S3_BUCKET=bucket, ECG_S3_ENDPOINT_URL=s3_server.endpoint_url, ECG_S3_PREFIX="renders",
                AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_EC2_METADATA_DISABLED="true")
    assert svc.http.get("/health").json()["storage"] == "s3"
    r = svc.submit(job_id="s3-1", video_url=f"s3://{bucket}/in/numbered.mp4", scenario=CUES)
    assert r.status_code == 200, r.text
    st = svc.wait("s3-1")[-1]
    assert st["state"] == "completed", st
    res = st["result"]
    assert res["location"] == f"s3://{bucket}/renders/s3-1.mp4"
    assert res["download_url"].startswith(s3_server.endpoint_url) and "Signature" in res["download_url"]
    got = tmp_path / "s3.mp4"
    got.write_bytes(httpx.get(res["download_url"]).content)
    assert frame_numbers(got) == list(range(100))
    head = s3_server.client().head_object(Bucket=bucket, Key="renders/s3-1.mp4")
    assert head["ContentLength"] == res["file_size"] and head["ContentType"] == "video/mp4"
    assert _callbacks(svc.rx, "s3-1")[-1].json["download_url"] == res["download_url"]
    # The download route sends S3-stored results to a freshly presigned URL.
    assert svc.http.get("/api/render/s3-1/download").status_code == 403  # not without a link
    red = svc.http.get(_signer(svc).sign("/api/render/s3-1/download", "s3-1", "s3-1.mp4"))
    assert red.status_code == 307 and red.headers["Location"].startswith(f"{s3_server.endpoint_url}/{bucket}/renders/s3-1.mp4?")
    assert httpx.get(red.headers["Location"]).content == got.read_bytes()
    assert _temp_files(svc, "s3-1") == []


def test_pool_scaled_to_zero_is_healthy_and_grows_back(svc, numbered, tmp_path):
    """With ECG_MIN_WARM_ACTORS=0 idle segment actors all go (their nodes may scale down): the
    service stays healthy (a 503 would get it restarted by its health check) and the next job
    starts actors again. Local inputs are taken from ECG_LOCAL_INPUT_DIRS only: the same video
    elsewhere is refused."""
    svc.restart(ECG_MIN_WARM_ACTORS="0", ECG_ACTOR_IDLE_S="2", ECG_LOCAL_INPUT_DIRS=str(numbered.parent))
    deadline = time.monotonic() + 60
    while True:
        h = svc.http.get("/health")
        if h.json()["browsers"]["actors"] == 0:
            break
        assert time.monotonic() < deadline, h.json()
        time.sleep(0.5)
    assert h.status_code == 200 and h.json()["ok"] is True, h.json()
    outside = tmp_path / "elsewhere.mp4"
    outside.write_bytes(numbered.read_bytes())
    assert svc.submit(job_id="zero-out", video_url=str(outside), scenario=CUES).status_code == 200
    st = svc.wait("zero-out")[-1]
    assert st["state"] == "failed" and st["error"]["code"] == "forbidden_url", st
    assert svc.submit(job_id="zero-1", video_url=str(numbered), scenario=CUES).status_code == 200
    st = svc.wait("zero-1")[-1]
    assert st["state"] == "completed", st
    got = tmp_path / "zero.mp4"
    got.write_bytes(httpx.get(st["result"]["download_url"], follow_redirects=True).content)
    assert frame_numbers(got) == list(range(100))
