"""The live preview (issue 28): while a job renders, its finished prefix plays as HLS.

Real service, real FFmpeg, real Chromium: hls.js (the vendored npm build the jobs page serves)
plays the job's ``preview_url`` in Chromium while the job is still processing (its
``currentTime`` moves on, frames are decoded); once the job is done FFmpeg decodes the ended
playlist over HTTP and its frames equal the final MP4's, with its audio's beeps where the
final's are; the playlist is an EVENT one and ends with ENDLIST; progress callbacks carry the
link; the preview is removed ECG_PREVIEW_TTL_S after the job; a job with the preview off has no
``preview_url`` and the same MP4, byte for byte."""

from __future__ import annotations

import time
from fractions import Fraction
from pathlib import Path

import httpx
import numpy as np
import pytest

from ecg_ray.config import Settings
from ecg_ray.media.testclip import decode_frames, make_numbered_video

from .frames import beep_onsets
from .receiver import Receiver
from .serveutil import running_service, serving_directory, wait_healthy

FRAMES = 3000   # 2 minutes at 25 fps, a caption on every frame: about 15 s of rendering on 2 cores
SEGMENTS = 12
BEEPS = (100, 1010, 2400)
BUSY = {"version": "1.3", "cues": [{"start": i / 25, "end": (i + 1) / 25, "text": f"자막 {i}"}
                                   for i in range(FRAMES)]}
SHORT_FRAMES = 300
SHORT = {"version": "1.3", "cues": [{"start": 0.5, "end": 9.0, "text": "미리보기 preview"}]}
TTL_S = 40
HLS_JS = Path(__file__).resolve().parents[1] / "ecg_ray" / "service" / "page" / "vendor" / "hls.min.js"


@pytest.fixture(scope="module")
def svc(tmp_path_factory):
    media = tmp_path_factory.mktemp("preview-media")
    make_numbered_video(str(media / "long.mp4"), FRAMES, Fraction(25), (320, 240), beep_frames=BEEPS)
    make_numbered_video(str(media / "short.mp4"), SHORT_FRAMES, Fraction(25), (320, 240), audio=False)
    rx = Receiver().start()
    base = tmp_path_factory.mktemp("preview-service")
    with serving_directory(media) as media_url, running_service(
            base, MAX_CONCURRENT_JOBS="1", ECG_PREVIEW_TTL_S=str(TTL_S)) as (url, env):
        http = httpx.Client(base_url=url, timeout=60)
        wait_healthy(http)
        yield type("Svc", (), {"url": url, "env": env, "http": http, "media": media_url, "rx": rx,
                               "out": Path(env["ECG_OUTPUT_DIR"])})
        http.close()
    rx.stop()


def _submit(svc, job_id: str, video: str, scenario: dict, **options) -> None:
    r = svc.http.post("/api/render/process", json={
        "job_id": job_id, "video_url": f"{svc.media}/{video}", "scenario": scenario,
        "callback_url": svc.rx.url_for("/cb"), "options": options})
    assert r.status_code == 200, r.text


def _status(svc, job_id: str) -> dict:
    r = svc.http.get(f"/api/render/{job_id}/status")
    assert r.status_code == 200, r.text
    return r.json()


def _wait(svc, job_id: str, pred, timeout: float = 600) -> dict:
    deadline = time.monotonic() + timeout
    st = _status(svc, job_id)
    while time.monotonic() < deadline:
        st = _status(svc, job_id)
        if pred(st):
            return st
        time.sleep(0.1)
    raise AssertionError(f"{job_id}: {st}")


def _first_frame_time(path: str) -> float:
    import av

    with av.open(path) as c:
        frame = next(c.decode(video=0))
        return float(frame.pts * frame.time_base)


def _onsets_by_pts(path: str, threshold: float = 0.2) -> list[float]:
    """Beep onsets placed by each decoded audio frame's own timestamp (as a player places them),
    not by counting samples from the first: FFmpeg's HLS demuxer starts each fragment's AAC
    afresh, which drops one frame's worth of decoded samples per fragment."""
    import av

    loud: list[np.ndarray] = []
    with av.open(path) as c:
        for frame in c.decode(audio=0):
            arr = np.abs(frame.to_ndarray().astype(np.float32)).max(axis=0)
            times = float(frame.pts * frame.time_base) + np.arange(len(arr)) / frame.sample_rate
            loud.append(times[arr > threshold])
    t = np.concatenate(loud)
    onsets = [float(x) for i, x in enumerate(t) if i == 0 or x - t[i - 1] > 0.2]  # after 200 ms of quiet
    return onsets


def _ended(st: dict) -> bool:
    return st["state"] in ("completed", "failed", "cancelled")


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    from ecg_ray.capture.browser import chromium_args, chromium_executable

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium_executable(Settings()),
                               args=[*chromium_args(), "--autoplay-policy=no-user-gesture-required"], headless=True)
        yield b
        b.close()


PLAY = """url => new Promise((resolve) => {
  const v = document.createElement('video'); v.muted = true; document.body.appendChild(v);
  window.__errors = [];
  const h = new Hls({enableWorker: false});
  h.on(Hls.Events.ERROR, (e, d) => window.__errors.push(d.details + (d.fatal ? ' fatal' : '')));
  h.loadSource(url); h.attachMedia(v); v.play().catch(() => {}); window.__video = v; resolve(true);
})"""
WATCH = """() => { const v = window.__video; const q = v.getVideoPlaybackQuality();
  return {time: v.currentTime, frames: q.totalVideoFrames, errors: window.__errors,
          audio: v.webkitAudioDecodedByteCount || 0}; }"""


def test_the_preview_plays_while_the_job_renders_and_equals_the_final_video(svc, browser, tmp_path):
    assert HLS_JS.is_file(), "hls.js is not vendored: run scripts/setup.sh"
    _submit(svc, "live", "long.mp4", BUSY, segments=SEGMENTS)
    st = _wait(svc, "live", lambda s: s.get("preview_url") or _ended(s))
    assert st["state"] == "processing", st  # the preview is there before the job ends
    link = st["preview_url"]
    assert "/api/render/live/preview/master.m3u8?" in link and "sig=" in link, link

    # A plain player: no key, only the link (same origin as the page, so no CORS in the way).
    page = browser.new_page()
    page.goto(f"{svc.url}/health")
    page.add_script_tag(content=HLS_JS.read_text())
    page.evaluate(PLAY, link)
    seen = []
    while True:
        watch = page.evaluate(WATCH)
        state = _status(svc, "live")["state"]
        seen.append((state, watch))
        if state != "processing" or watch["time"] > 2.0:
            break
        time.sleep(0.2)
    assert state == "processing", seen[-5:]  # played seconds of it while the job still ran
    assert watch["frames"] > 0 and not [e for e in watch["errors"] if "fatal" in e], seen[-3:]
    page.close()

    st = _wait(svc, "live", _ended)
    assert st["state"] == "completed", st
    final = svc.out / "live.mp4"
    text = httpx.get(link, timeout=30).text
    assert "index.m3u8?" in text, text
    media = httpx.get(httpx.URL(link).join(text.strip().splitlines()[-1]), timeout=30).text
    assert "#EXT-X-PLAYLIST-TYPE:EVENT" in media and media.rstrip().endswith("#EXT-X-ENDLIST"), media
    assert media.count("#EXTINF") == SEGMENTS, media

    # FFmpeg (PyAV's) reads the ended playlist over HTTP: the final video's frames, one for one.
    got = decode_frames(link)
    want = decode_frames(str(final))
    assert len(got) == len(want) == FRAMES, (len(got), len(want))
    differing = [i for i, (a, b) in enumerate(zip(got, want)) if not np.array_equal(a, b)]
    assert not differing, differing[:10]
    # Its audio: the beeps where the final video has them, against each one's first frame
    # (within 30 ms: an AAC frame is 21 ms, and each fragment's audio starts on one).
    heard = [t - _first_frame_time(link) for t in _onsets_by_pts(link)]
    final_beeps = [t - _first_frame_time(str(final)) for t in beep_onsets(str(final))]
    assert len(heard) == len(final_beeps) == len(BEEPS), (heard, final_beeps)
    assert all(abs(a - b) < 0.03 for a, b in zip(heard, final_beeps)), (heard, final_beeps)

    # Progress callbacks named it once it was there.
    named = [e.json.get("preview_url") for e in svc.rx.events("live") if e.json.get("status") == "processing"]
    assert link in named, named


def test_without_the_preview_the_video_is_the_same_bytes(svc):
    _submit(svc, "short-on", "short.mp4", SHORT, segments=3)
    on = _wait(svc, "short-on", _ended)
    _submit(svc, "short-off", "short.mp4", SHORT, segments=3, preview=False)
    off = _wait(svc, "short-off", _ended)
    assert on["state"] == off["state"] == "completed", (on, off)
    assert on["preview_url"] and off["preview_url"] is None, (on, off)
    assert not (svc.out / "short-off.preview").exists()
    # A job without audio: a video-only preview, frames equal to the final's.
    assert [np.asarray(f).tobytes() for f in decode_frames(on["preview_url"])] == \
        [np.asarray(f).tobytes() for f in decode_frames(str(svc.out / "short-on.mp4"))]
    assert (svc.out / "short-on.mp4").read_bytes() == (svc.out / "short-off.mp4").read_bytes()


def test_a_link_without_its_signature_opens_nothing(svc):
    st = _wait(svc, "short-on", _ended)
    unsigned = st["preview_url"].split("?")[0]
    assert httpx.get(unsigned, timeout=30).status_code == 403
    forged = st["preview_url"].replace("sig=", "sig=0")
    assert httpx.get(forged, timeout=30).status_code == 403


def test_the_preview_is_removed_after_its_ttl(svc):
    st = _wait(svc, "short-on", _ended)
    folder = svc.out / "short-on.preview"
    assert folder.is_dir() or time.time() - st["finished_at"] > TTL_S
    deadline = time.monotonic() + TTL_S + 30
    while folder.exists() and time.monotonic() < deadline:
        time.sleep(1)
    assert not folder.exists(), sorted(p.name for p in folder.iterdir())
    assert time.time() - st["finished_at"] >= TTL_S - 2  # not before its time (the folder's last write ~ the end)
    assert httpx.get(st["preview_url"], timeout=30).status_code == 404


def test_the_preview_on_s3_plays_from_the_bucket_and_is_swept(tmp_path, s3_server, monkeypatch):
    """With S3 the preview's files are keys beside the result's: the signed route answers the
    playlists and sends the player to presigned URLs for the fragments; FFmpeg, following them,
    decodes the final video's frames. The sweep removes the keys."""
    from ecg_ray.service.preview import sweep_previews
    from ecg_ray.service.storage import S3Store

    from .s3util import aws_env

    aws_env(monkeypatch)
    bucket = s3_server.create_bucket()
    media = tmp_path / "media"
    media.mkdir()
    make_numbered_video(str(media / "short.mp4"), SHORT_FRAMES, Fraction(25), (320, 240), audio=False)
    s3 = dict(S3_BUCKET=bucket, ECG_S3_ENDPOINT_URL=s3_server.endpoint_url, ECG_S3_PREFIX="renders",
              AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_EC2_METADATA_DISABLED="true")
    (tmp_path / "svc").mkdir()
    with serving_directory(media) as media_url, running_service(tmp_path / "svc", **s3) as (url, _):
        http = httpx.Client(base_url=url, timeout=60)
        wait_healthy(http)
        r = http.post("/api/render/process", json={"job_id": "on-s3", "video_url": f"{media_url}/short.mp4",
                                                   "scenario": SHORT, "options": {"segments": 3}})
        assert r.status_code == 200, r.text
        deadline = time.monotonic() + 300
        while (st := http.get("/api/render/on-s3/status").json())["state"] not in ("completed", "failed"):
            assert time.monotonic() < deadline, st
            time.sleep(0.2)
        assert st["state"] == "completed", st
        link = st["preview_url"]
        assert link and link.startswith(url), st
        keys = {o["Key"] for o in s3_server.client().list_objects_v2(Bucket=bucket)["Contents"]}
        assert {"renders/on-s3.preview/master.m3u8", "renders/on-s3.preview/index.m3u8",
                "renders/on-s3.preview/init.mp4", "renders/on-s3.preview/seg-00002.m4s"} <= keys, keys
        final = tmp_path / "final.mp4"
        final.write_bytes(httpx.get(st["result"]["download_url"], timeout=60).content)
        got, want = decode_frames(link), decode_frames(str(final))
        assert len(got) == len(want) == SHORT_FRAMES
        assert all(np.array_equal(a, b) for a, b in zip(got, want))
        http.close()
    settings = Settings(storage="s3", s3_bucket=bucket, s3_endpoint_url=s3_server.endpoint_url, s3_prefix="renders")
    assert sweep_previews(S3Store(settings), 0, lambda ref: False, now=time.time() + 1) == ["on-s3"]
    keys = {o["Key"] for o in s3_server.client().list_objects_v2(Bucket=bucket).get("Contents", [])}
    assert not [k for k in keys if ".preview/" in k], keys
