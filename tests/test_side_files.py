"""Files made beside the video on request: a poster (a frame of the joined video, captions
included), the captions as WebVTT and the captions alone with transparency (its pixels are
checked in test_alpha_video.py), stored next to the video, named in the result and the
completion callback, opened by signed links of their own. The WebVTT is read back by FFmpeg's
own WebVTT demuxer; the poster is checked by the frame number drawn into the source and
against the video's own frame."""

from __future__ import annotations

import io
import json
import subprocess
import time
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import numpy as np
import pytest
from PIL import Image

from ecg_ray.media.ffmpeg import ffmpeg_exe
from ecg_ray.media.poster import poster_frame
from ecg_ray.media.testclip import decode_frames, read_frame_number
from ecg_ray.scenario.normalize import normalize
from ecg_ray.scenario.webvtt import to_webvtt

from .receiver import Receiver
from .serveutil import running_service, serving_directory, wait_healthy

CUES = {"version": "1.3", "cues": [
    {"start": 2.0, "end": 3.2, "text": "두 번째 second"},
    {"start": 0.8, "end": 1.6, "text": "첫 번째 자막 first"},
]}


def _srt_of(vtt: str, tmp: Path) -> str:
    """The WebVTT as FFmpeg's own demuxer reads it, written back as SRT."""
    src = tmp / "in.vtt"
    src.write_text(vtt, encoding="utf-8")
    out = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(src), "-f", "srt", "-"],
                         capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr.decode()
    return out.stdout.decode("utf-8")


def _srt_cues(srt: str) -> list[tuple[str, str, list[str]]]:
    cues = []
    for block in srt.strip().split("\n\n"):
        lines = block.splitlines()
        start, end = lines[1].split(" --> ")
        cues.append((start, end, lines[2:]))
    return cues


def test_webvtt_has_every_cue_in_reading_order_with_its_times(tmp_path):
    scenario = {"version": "1.3", "cues": [
        {"start": 61.25, "end": 63.5, "text": "나중 later"},
        {"start": 0.5, "end": 1.0, "text": "<script>alert(1)</script> & --> done"},
        {"start": 0.5, "end": 1.0, "text": "same time, second cue"},
        {"start": 2, "end": 4, "text": "첫 줄\n\n둘째 줄"},
    ]}
    vtt = to_webvtt(normalize(scenario))
    assert vtt.startswith("WEBVTT\n\n")
    assert "<script>" not in vtt and "--> done" not in vtt  # text stays text, never a tag or a cue end
    cues = _srt_cues(_srt_of(vtt, tmp_path))
    assert [(s, e) for s, e, _ in cues] == [("00:00:00,500", "00:00:01,000"), ("00:00:00,500", "00:00:01,000"),
                                            ("00:00:02,000", "00:00:04,000"), ("00:01:01,250", "00:01:03,500")]
    # FFmpeg's SRT writer turns the escapes back into the characters a reader sees.
    texts = [" ".join(t) for _, _, t in cues]
    assert texts[0].replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&") == \
        "<script>alert(1)</script> & --> done"
    assert texts[1] == "same time, second cue" and texts[3] == "나중 later"
    assert cues[2][2] == ["첫 줄", "둘째 줄"]  # blank lines dropped: they would end the cue

    # A MotionText v2.0 scenario: a group's text nodes at one time are one cue, top line first.
    v2 = {"version": "2.0", "timebase": {"unit": "seconds"}, "stage": {"baseAspect": "16:9"},
          "tracks": [{"id": "t", "type": "subtitle", "layer": 1}],
          "cues": [{"id": "c", "track": "t", "displayTime": [1, 2], "root": {"id": "g", "eType": "group", "children": [
              {"id": "b", "eType": "text", "text": "아래 bottom", "layout": {"position": {"x": 0.5, "y": 0.9}}},
              {"id": "a", "eType": "text", "text": "위 top", "layout": {"position": {"x": 0.5, "y": 0.8}}},
              {"id": "w", "eType": "text", "text": "later word", "displayTime": [1.5, 2],
               "layout": {"position": {"x": 0.5, "y": 0.7}}}]}}]}
    cues = _srt_cues(_srt_of(to_webvtt(normalize(v2)), tmp_path))
    assert cues == [("00:00:01,000", "00:00:02,000", ["위 top", "아래 bottom"]),
                    ("00:00:01,500", "00:00:02,000", ["later word"])]


def test_poster_frame_is_the_frame_on_screen():
    assert [poster_frame(t, 25, 100) for t in (0, 0.039, 0.04, 1.0, 3.999, 4.0, 1e6)] == [0, 0, 1, 25, 99, 99, 99]
    assert poster_frame(1.001, 30000 / 1001, 300) == 30


@pytest.fixture(scope="module")
def svc(tmp_path_factory, media_dir, numbered):
    rx = Receiver().start()
    with serving_directory(media_dir) as media, running_service(tmp_path_factory.mktemp("side"),
                                                               MAX_CONCURRENT_JOBS="2") as (url, env):
        http = httpx.Client(base_url=url, timeout=60)
        wait_healthy(http)
        yield type("Svc", (), {"url": url, "http": http, "media": media, "rx": rx, "numbered": numbered})
        http.close()
    rx.stop()


def _run(svc, job_id: str, options: dict) -> dict:
    r = svc.http.post("/api/render/process", json={"job_id": job_id, "video_url": f"{svc.media}/{svc.numbered.name}",
                                                   "scenario": CUES, "options": options,
                                                   "callback_url": svc.rx.url_for("/cb")})
    assert r.status_code == 200, r.text
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        st = svc.http.get(f"/api/render/{job_id}/status").json()
        if st["state"] in ("completed", "failed", "cancelled"):
            assert st["state"] == "completed", st
            return st
        time.sleep(0.2)
    raise AssertionError(f"{job_id} did not end")


def _caption_pixels(luma: np.ndarray, plain: np.ndarray) -> int:
    h = luma.shape[0]
    return int((np.abs(luma[h // 2:].astype(int) - plain[h // 2:].astype(int)) > 60).sum())


def test_poster_and_webvtt_beside_the_video(svc, tmp_path):
    st = _run(svc, "side-001", {"poster": {"at": 1.0, "format": "png"}, "webvtt": True})
    res = st["result"]
    assert set(res["files"]) == {"poster", "webvtt"}
    poster, vtt = res["files"]["poster"], res["files"]["webvtt"]
    assert poster["content_type"] == "image/png" and vtt["content_type"] == "text/vtt"
    assert Path(poster["location"]).name == "side-001.poster.png" and Path(vtt["location"]).name == "side-001.vtt"
    video = tmp_path / "video.mp4"
    video.write_bytes(httpx.get(res["download_url"], timeout=60).content)
    frames = decode_frames(str(video))
    # The poster: frame 25 (t = 1.0 s at 25 fps), with its caption (0.8-1.6 s), equal to the video's frame.
    r = httpx.get(poster["download_url"], timeout=60)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png" and len(r.content) == poster["file_size"]
    img = np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB")).astype(np.float64)
    # BT.709 luma, full range: what PyAV's gray conversion of the video's frames gives
    luma = (0.2126 * img[..., 0] + 0.7152 * img[..., 1] + 0.0722 * img[..., 2]).round().astype(np.uint8)
    assert read_frame_number(luma) == 25
    diffs = [np.abs(luma.astype(int) - f.astype(int)).mean() for f in frames]
    assert diffs[25] < 1.5 and int(np.argmin(diffs)) == 25, diffs[20:30]
    assert _caption_pixels(luma, frames[10]) > 200  # the caption is there; frame 10 has none
    # The WebVTT: the scenario's cues, in time order.
    r = httpx.get(vtt["download_url"], timeout=60)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/vtt")
    assert r.text == to_webvtt(normalize(CUES))
    assert [c[:2] for c in _srt_cues(_srt_of(r.text, tmp_path))] == [("00:00:00,800", "00:00:01,600"),
                                                                    ("00:00:02,000", "00:00:03,200")]
    # The completion callback names them too.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not any(e.json["status"] == "completed" for e in svc.rx.events("side-001")):
        time.sleep(0.2)
    final = next(e.json for e in svc.rx.events("side-001") if e.json["status"] == "completed")
    assert final["result"]["files"] == res["files"]
    # Each link opens its own file only: the signature covers the file's name.
    parts = urlsplit(poster["download_url"])
    q = {k: v[0] for k, v in parse_qs(parts.query).items()}
    for other in ("vtt", "poster.jpg"):
        bad = httpx.get(f"{svc.url}{parts.path}?{urlencode({**q, 'file': other})}", timeout=60)
        assert bad.status_code == 403 and bad.json()["error_code"] == "forbidden", bad.text
    no_file = {k: v for k, v in q.items() if k != "file"}
    assert httpx.get(f"{svc.url}{parts.path}?{urlencode(no_file)}", timeout=60).status_code == 403
    assert httpx.get(f"{svc.url}{parts.path}?{urlencode({**q, 'file': '../x'})}", timeout=60).status_code == 403


def test_a_jpeg_poster_past_the_end_is_the_last_frame(svc, tmp_path):
    st = _run(svc, "side-002", {"poster": {"at": 60, "format": "jpeg"}})
    res = st["result"]
    assert set(res["files"]) == {"poster"}
    r = httpx.get(res["files"]["poster"]["download_url"], timeout=60)
    assert r.status_code == 200 and r.content[:2] == b"\xff\xd8" and r.headers["content-type"] == "image/jpeg"
    rgb = np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB")).astype(np.float64)
    luma = (0.2126 * rgb[..., 0] + 0.7152 * rgb[..., 1] + 0.0722 * rgb[..., 2]).round().astype(np.uint8)
    assert read_frame_number(luma) == 99


def test_side_files_that_cannot_be_made_are_refused_at_submission(svc):
    body = {"video_url": f"{svc.media}/{svc.numbered.name}", "scenario": CUES}
    for options, where in (({"poster": {"at": 1, "format": "gif"}}, "format"), ({"poster": {"at": -1}}, "at"),
                           ({"poster": {"at": 1, "size": 3}}, "size"), ({"webvtt": "maybe"}, "webvtt"),
                           ({"poster": {"at": 1}, "dynamic_range": "hdr"}, "options.poster"),
                           ({"alpha_video": {"format": "avi"}}, "format"), ({"alpha_video": "webm"}, "alpha_video"),
                           ({"alpha_video": {"format": "mov"}, "dynamic_range": "hdr"}, "options.alpha_video")):
        r = svc.http.post("/api/render/process", json={**body, "options": options})
        assert r.status_code == 422, (options, r.text)
        assert where in json.dumps(r.json()), (options, r.json())


def test_captions_alone_with_transparency_beside_the_video(svc, tmp_path):
    st = _run(svc, "side-004", {"alpha_video": {"format": "webm"}, "segments": 2})
    res = st["result"]
    assert set(res["files"]) == {"captions_alpha"}
    alpha = res["files"]["captions_alpha"]
    assert alpha["content_type"] == "video/webm" and Path(alpha["location"]).name == "side-004.captions.webm"
    r = httpx.get(alpha["download_url"], timeout=60)
    assert r.status_code == 200 and r.headers["content-type"] == "video/webm" and len(r.content) == alpha["file_size"]
    path = tmp_path / "alpha.webm"
    path.write_bytes(r.content)
    # Decoded by libvpx (FFmpeg's own VP9 decoder drops the alpha): every frame, transparent but
    # where a caption shows (0.8-1.6 s and 2.0-3.2 s: frames 20-39 and 50-79), the caption there.
    out = subprocess.run([ffmpeg_exe(), "-v", "error", "-c:v", "libvpx-vp9", "-i", str(path), "-f", "rawvideo",
                          "-pix_fmt", "yuva420p", "-"], capture_output=True, timeout=120)
    assert out.returncode == 0, out.stderr.decode()
    w, h = 320, 240
    frames = np.frombuffer(out.stdout, np.uint8).reshape(-1, w * h * 5 // 2)
    assert len(frames) == 100
    shown = [n for n, f in enumerate(frames) if f[w * h * 3 // 2:].max() > 0]
    assert shown == [*range(20, 40), *range(50, 80)], shown
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not any(e.json["status"] == "completed" for e in svc.rx.events("side-004")):
        time.sleep(0.2)
    final = next(e.json for e in svc.rx.events("side-004") if e.json["status"] == "completed")
    assert final["result"]["files"] == res["files"]
    # The link opens that file only.
    parts = urlsplit(alpha["download_url"])
    q = {k: v[0] for k, v in parse_qs(parts.query).items()}
    bad = httpx.get(f"{svc.url}{parts.path}?{urlencode({**q, 'file': 'captions.mov'})}", timeout=60)
    assert bad.status_code == 403, bad.text


def test_the_client_downloads_the_side_files(svc, tmp_path):
    from ecg_ray.errors import RenderError
    from ecg_ray.service.client import Client

    _run(svc, "side-003", {"webvtt": True})
    with Client(svc.url) as c:
        c.download("side-003", str(tmp_path / "c.vtt"), file="webvtt")
        with pytest.raises(RenderError, match="made no poster"):
            c.download("side-003", str(tmp_path / "p.jpg"), file="poster")
    assert (tmp_path / "c.vtt").read_text(encoding="utf-8") == to_webvtt(normalize(CUES))
