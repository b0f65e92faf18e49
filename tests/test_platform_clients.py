"""The platform's own clients, as they are: its backend (both versions) and its editor's scenarios.

What each client sends and expects is read from their public source (README "The platform's
contract"): the older backend posts the snake_case body to /api/render/process with
``User-Agent: ECG-Backend/1.0``, the newer one the camelCase body to /render; ``options`` always
carries five keys (1920x1080, 30 fps, quality 90, format mp4); only HTTP 200 counts as accepted;
callbacks go to ``{backend}/api/render/callback``, whose receiver is a pydantic model with
``job_id`` and ``status`` required and typed optional fields, ``status`` stored in 20 characters
and ``error_code`` in 50, and every callback written as it comes (so nothing may follow the final
one). The editor's scenarios are MotionText v1.3 with one free track ``editor``.

The service runs for real (Ray Serve on loopback), callbacks reach a real HTTP receiver and are
judged as that model judges them, and the videos are checked frame by frame.
"""

from __future__ import annotations

import copy
import json
import time
import uuid
from fractions import Fraction
from pathlib import Path
from typing import Optional

import av
import httpx
import numpy as np
import pytest
from pydantic import BaseModel, StrictFloat, StrictInt, StrictStr

from ecg_ray.media.testclip import decode_frames, make_numbered_video
from ecg_ray.service.eta import Eta

from .frames import beep_onsets, frame_numbers, frames_for
from .receiver import Receiver
from .serveutil import running_service, serving_directory, wait_healthy

BACKEND_HEADERS = {"Content-Type": "application/json", "User-Agent": "ECG-Backend/1.0"}
FIVE_OPTIONS = {"width": 1920, "height": 1080, "fps": 30, "quality": 90, "format": "mp4"}
CALLBACK_PATH = "/api/render/callback"
FINALS = ("completed", "failed", "cancelled")

SRC_W, SRC_H, SRC_FPS, SRC_FRAMES = 480, 270, Fraction(30), 90   # a 3 s 16:9 clip at 30 fps
BEEPS = (15, 45, 75)
VERTICAL = (270, 480)   # the same clip as a phone holds it


# -- the clients' side, written from their contract --------------------------------------------

class BackendCallback(BaseModel):
    """The backend's callback model, field for field, with strict types: an integer progress
    must be an integer (the backend's pydantic would take 50.0, but not 50.5)."""

    job_id: StrictStr
    status: StrictStr
    progress: Optional[StrictInt] = None
    estimated_time_remaining: Optional[StrictInt] = None
    download_url: Optional[StrictStr] = None
    file_size: Optional[StrictInt] = None
    duration: Optional[StrictFloat | StrictInt] = None
    error_message: Optional[StrictStr] = None
    error_code: Optional[StrictStr] = None


def judge_callbacks(rx: Receiver, job_id: str, final: str, timeout: float = 240) -> list[BackendCallback]:
    """The job's callbacks as the backend takes them: each valid for its model and its columns,
    progress never going back, exactly one final, and nothing after it."""
    assert rx.wait_for(lambda reqs: any(r.job_id == job_id and r.json.get("status") in FINALS for r in reqs),
                       timeout), f"no final callback for {job_id}: {[r.json for r in rx.events(job_id)]}"
    time.sleep(1.5)  # anything wrongly sent after the final (a late progress, a second final) shows up now
    events = rx.events(job_id)
    got = []
    for e in events:
        assert e.path == CALLBACK_PATH and e.method == "POST"
        cb = BackendCallback.model_validate(e.json)
        assert len(cb.status) <= 20 and (cb.error_code is None or len(cb.error_code) <= 50), e.json
        got.append(cb)
    statuses = [c.status for c in got]
    finals = [i for i, s in enumerate(statuses) if s in FINALS]
    assert finals == [len(got) - 1], statuses               # one final, and it is the last
    assert got[-1].status == final, got[-1]
    assert set(statuses[:-1]) <= {"processing"}, statuses
    progress = [c.progress for c in got if c.progress is not None]
    assert progress == sorted(progress), progress
    return got


def editor_scenario(cues: list[tuple[float, float, str]], *, elastic: bool, italic: bool = False,
                    underline: bool = False) -> dict:
    """A scenario as the platform's editor builds it (v1.3, one free track ``editor``, a group
    per cue placed at the editor's subtitle spot, the text in it); older editor versions put
    the elastic plugin on every text, newer ones an empty pluginChain."""
    stage_h, margin, box_h = 360, 32, 64  # the editor lays cues out on a 640x360 stage
    cy = (stage_h - margin - box_h / 2) / stage_h
    out = []
    for i, (start, end, text) in enumerate(cues):
        chain = [{"name": "elastic@1.0.0", "params": {}, "relStartPct": 0, "relEndPct": 0.5}] if elastic else []
        out.append({
            "id": f"cue-{i}", "track": "editor", "hintTime": {"start": start, "end": end},
            "root": {
                "e_type": "group",
                "layout": {"position": {"x": 0.5, "y": cy}, "anchor": "cc",
                           "size": {"width": 0.88, "height": box_h / stage_h}},
                "children": [{
                    "e_type": "text", "text": text, "absStart": start, "absEnd": end,
                    "layout": {"position": {"x": 0.5, "y": 0.5}, "anchor": "cc",
                               "size": {"width": "auto", "height": "auto"}, "overflow": "visible"},
                    "style": {"fontSizeRel": 0.06, "fontFamily": "Arial, sans-serif", "color": "#ffffff",
                              "align": "center", "whiteSpace": "nowrap", "fontWeight": "bold",
                              "fontStyle": "italic" if italic else "normal",
                              "textDecoration": "underline" if underline else "none"},
                    "pluginChain": chain,
                }],
            },
        })
    return {"version": "1.3", "timebase": {"unit": "seconds"}, "stage": {"baseAspect": "16:9"},
            "tracks": [{"id": "editor", "type": "free", "layer": 1}], "cues": out}


CUES = [(0.5, 1.3, "안녕하세요 여러분"), (1.6, 2.6, "자막 테스트 caption")]
EDITOR_CY = (360 - 32 - 32) / 360   # where the editor puts a subtitle group's centre


# -- the frames ------------------------------------------------------------------------------

def caption_pixels(y: np.ndarray) -> np.ndarray:
    """Caption text pixels of a luma plane: the test clip's picture stays at or below 128 (and
    its frame-number blocks sit in the top rows), the captions are white."""
    mask = y > 200
    mask[: y.shape[0] // 6] = False  # the blocks: 32 px of the source's 270 rows, and their margin
    return mask


def caption_frames(path: Path) -> tuple[list[bool], list[tuple[float, float]]]:
    """Per frame: is a caption drawn; and the centre of the drawn text (fractions of the frame)."""
    shown, centres = [], []
    for y in decode_frames(str(path)):
        m = caption_pixels(y)
        on = int(m.sum()) >= 200
        shown.append(on)
        if on:
            ys, xs = np.nonzero(m)
            centres.append(((xs.min() + xs.max()) / 2 / y.shape[1], (ys.min() + ys.max()) / 2 / y.shape[0]))
    return shown, centres


@pytest.fixture(scope="module")
def clip(media_dir) -> Path:
    p = media_dir / "phone169.mp4"
    make_numbered_video(str(p), SRC_FRAMES, SRC_FPS, (SRC_W, SRC_H), audio=True, beep_frames=BEEPS)
    return p


@pytest.fixture(scope="module")
def media(clip, media_dir):
    make_numbered_video(str(media_dir / "phone916.mp4"), SRC_FRAMES, SRC_FPS, VERTICAL, audio=True, beep_frames=BEEPS)
    long = media_dir / "long169.mp4"
    make_numbered_video(str(long), 2400, Fraction(30), (SRC_W, SRC_H), audio=False)
    with serving_directory(media_dir) as url:
        yield url


class Platform:
    """The service as the platform's backend reaches it."""

    def __init__(self, url: str, media: str, rx: Receiver) -> None:
        self.url, self.media, self.rx = url, media, rx
        # The backend's own limit: it waits up to 1800 s; a submission must answer long before.
        self.http = httpx.Client(base_url=url, timeout=60)

    @property
    def callback_url(self) -> str:
        return self.rx.url_for(CALLBACK_PATH)

    def old_backend(self, job_id: str, scenario: dict, options: dict | None = None, video: str = "phone169.mp4"):
        body = {"job_id": job_id, "video_url": f"{self.media}/{video}", "scenario": scenario,
                "options": FIVE_OPTIONS if options is None else options, "callback_url": self.callback_url}
        return self.http.post("/api/render/process", json=body, headers=BACKEND_HEADERS)

    def new_backend(self, job_id: str, scenario: dict, options: dict | None = None, video: str = "phone169.mp4"):
        body = {"jobId": job_id, "videoUrl": f"{self.media}/{video}", "scenario": scenario,
                "options": FIVE_OPTIONS if options is None else options, "callbackUrl": self.callback_url}
        return self.http.post("/render", json=body, headers=BACKEND_HEADERS)

    def status(self, job_id: str) -> dict:
        r = self.http.get(f"/api/render/{job_id}/status")
        assert r.status_code == 200, r.text
        return r.json()

    def download(self, url: str, dest: Path) -> Path:
        r = self.http.get(url)
        assert r.status_code == 200, r.text[:300]
        dest.write_bytes(r.content)
        return dest


@pytest.fixture(scope="module")
def platform(tmp_path_factory, media):
    rx = Receiver().start()
    with running_service(tmp_path_factory.mktemp("platform"), MAX_CONCURRENT_JOBS="1") as (url, env):
        p = Platform(url, media, rx)
        wait_healthy(p.http)
        yield p
        p.http.close()
    rx.stop()


def _accepted(r: httpx.Response, job_id: str, created: bool = True) -> dict:
    assert r.status_code == 200, r.text                 # the only answer the backend counts as accepted
    body = r.json()
    assert body["job_id"] == job_id and body["created"] is created
    assert body["status"] == body["state"] and body["state"] in ("queued", "processing", "completed")
    return body


def _check_video(path: Path, size: tuple[int, int], cues: list[tuple[float, float, str]],
                 settle: float = 0.0) -> None:
    """Every source frame once, in order, at ``size``; captions on exactly their cues' frames
    (from ``settle`` of each cue on, where an entrance animation may still hide them), at the
    editor's place; the audio's beeps where the source has them."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        assert (v.codec_context.width, v.codec_context.height) == size
    assert frame_numbers(path, src_width=SRC_W) == list(range(SRC_FRAMES))
    shown, centres = caption_frames(path)
    on, must = set(), set()
    for start, end, _ in cues:
        # as decimals, the way a person wrote them (the float 1.6 is a hair above 48/30)
        start, end = Fraction(str(start)), Fraction(str(end))
        on |= frames_for(start, end, SRC_FPS, SRC_FRAMES)
        must |= frames_for(start + Fraction(settle) * (end - start), end, SRC_FPS, SRC_FRAMES)
    drawn = {n for n, s in enumerate(shown) if s}
    assert drawn <= on, sorted(drawn - on)             # never outside a cue's time
    assert must <= drawn, sorted(must - drawn)         # always within it (once an entrance is over)
    cx = np.median([c[0] for c in centres])
    cy = np.median([c[1] for c in centres])
    assert abs(cx - 0.5) < 0.03 and abs(cy - EDITOR_CY) < 0.04, (cx, cy)
    assert [round(t * 30) for t in beep_onsets(path)] == list(BEEPS)


# -- the tests -------------------------------------------------------------------------------

def test_health_answers_the_backend_within_its_10_seconds(platform):
    r = platform.http.get("/health", headers=BACKEND_HEADERS, timeout=10)
    assert r.status_code == 200 and r.json()["ok"] is True


def test_older_backend_snake_case_with_the_elastic_editor(platform, tmp_path):
    """The older backend and an older editor: elastic on every caption, italic and underline set."""
    job_id = str(uuid.uuid4())                         # the backend's own ids are UUIDs
    scenario = editor_scenario(CUES, elastic=True, italic=True, underline=True)
    _accepted(platform.old_backend(job_id, scenario), job_id)
    cbs = judge_callbacks(platform.rx, job_id, "completed")
    final = cbs[-1]
    assert final.progress == 100 and final.estimated_time_remaining == 0
    assert final.duration == pytest.approx(3.0) and final.file_size and final.download_url
    st = platform.status(job_id)
    assert st["status"] == st["state"] == "completed" and st["estimated_time_remaining"] == 0
    assert st["result"]["download_url"] == final.download_url
    assert not [w for w in st["result"]["warnings"] if "fontStyle" in w or "textDecoration" in w]
    video = platform.download(final.download_url, tmp_path / "old.mp4")
    assert video.stat().st_size == final.file_size
    # elastic springs each caption in over the first half of its time (relEndPct 0.5)
    _check_video(video, (1920, 1080), CUES, settle=0.5)
    # The same submission again (the backend retries after a timeout): the same job, 200, and no
    # second final callback (the backend would count the render twice).
    _accepted(platform.old_backend(job_id, scenario), job_id, created=False)
    time.sleep(1.5)
    assert len([e for e in platform.rx.events(job_id) if e.json["status"] in FINALS]) == 1


def test_newer_backend_camel_case_with_the_current_editor(platform, tmp_path):
    job_id = str(uuid.uuid4())
    scenario = editor_scenario(CUES, elastic=False)
    _accepted(platform.new_backend(job_id, scenario), job_id)
    final = judge_callbacks(platform.rx, job_id, "completed")[-1]
    video = platform.download(final.download_url, tmp_path / "new.mp4")
    _check_video(video, (1920, 1080), CUES)


def test_a_vertical_phone_video_keeps_its_shape(platform, tmp_path):
    """The backend asks 1920x1080 of every video. A portrait phone clip is not squeezed into
    landscape: it comes out 1080x1920, every frame there, captions on their frames, a warning
    saying what was done."""
    job_id = str(uuid.uuid4())
    _accepted(platform.old_backend(job_id, editor_scenario(CUES, elastic=False), video="phone916.mp4"), job_id)
    final = judge_callbacks(platform.rx, job_id, "completed")[-1]
    video = platform.download(final.download_url, tmp_path / "vertical.mp4")
    with av.open(str(video)) as c:
        assert (c.streams.video[0].codec_context.width, c.streams.video[0].codec_context.height) == (1080, 1920)
    assert frame_numbers(video, src_width=VERTICAL[0]) == list(range(SRC_FRAMES))
    shown, _ = caption_frames(video)
    on = set()
    for start, end, _ in CUES:
        on |= frames_for(Fraction(str(start)), Fraction(str(end)), SRC_FPS, SRC_FRAMES)
    assert {n for n, x in enumerate(shown) if x} == on
    warnings = platform.status(job_id)["result"]["warnings"]
    assert any("1920x1080" in w and "rendered at 1080x1920" in w for w in warnings), warnings


@pytest.mark.parametrize("fmt,vcodec,acodecs", [("mov", "h264", {"aac"}), ("webm", "vp9", {"opus"})])
def test_format_mov_and_webm(platform, tmp_path, fmt, vcodec, acodecs):
    job_id = f"fmt-{fmt}-{uuid.uuid4().hex[:8]}"
    options = {**FIVE_OPTIONS, "width": 640, "height": 360, "format": fmt}
    _accepted(platform.new_backend(job_id, editor_scenario(CUES, elastic=False), options), job_id)
    final = judge_callbacks(platform.rx, job_id, "completed")[-1]
    assert f"/api/render/{job_id}/download?expires=" in final.download_url
    r = platform.http.get(final.download_url)
    assert r.headers["content-type"] == {"mov": "video/quicktime", "webm": "video/webm"}[fmt]
    assert f'{job_id}.{fmt}' in r.headers["content-disposition"]
    video = tmp_path / f"out.{fmt}"
    video.write_bytes(r.content)
    with av.open(str(video)) as c:
        assert c.format.name.split(",")[0] == {"mov": "mov", "webm": "matroska"}[fmt]
        assert c.streams.video[0].codec_context.name == vcodec
        assert {s.codec_context.name for s in c.streams.audio} == acodecs
    if fmt == "mov":
        assert r.content[4:12] == b"ftypqt  "            # a QuickTime file, not an MP4 renamed
    _check_video(video, (640, 360), CUES)


def test_a_failed_job_submitted_again_is_a_new_attempt(platform, media_dir, clip, tmp_path):
    """The backend submits the same job again after it failed (its video was not there yet): a
    new attempt runs, the status says which, its callbacks start again (each attempt one final,
    in order), and the video is right. A changed body is still a conflict."""
    job_id = str(uuid.uuid4())
    late = media_dir / f"late-{job_id[:8]}.mp4"
    scenario = editor_scenario(CUES, elastic=False)
    options = {**FIVE_OPTIONS, "width": 640, "height": 360}
    first = _accepted(platform.new_backend(job_id, scenario, options, video=late.name), job_id)
    assert first["attempt"] == 1
    judge_callbacks(platform.rx, job_id, "failed")
    assert platform.status(job_id)["error"]["code"] == "fetch_failed"

    late.write_bytes(clip.read_bytes())  # the upload finished after all
    again = _accepted(platform.new_backend(job_id, scenario, options, video=late.name), job_id, created=True)
    assert again["attempt"] == 2 and again["state"] in ("queued", "processing")
    assert platform.rx.wait_for(lambda reqs: any(r.job_id == job_id and r.json.get("status") == "completed"
                                                 for r in reqs), 240)
    time.sleep(1.5)
    events = [e.json for e in platform.rx.events(job_id)]
    finals = [(e["status"], e.get("attempt", 1)) for e in events if e["status"] in FINALS]
    assert finals == [("failed", 1), ("completed", 2)], finals
    second = events[next(i for i, e in enumerate(events) if e["status"] == "failed") + 1:]
    assert second[-1]["status"] == "completed" and all(e.get("attempt") == 2 for e in second), second
    for e in events:
        BackendCallback.model_validate(e)
    st = platform.status(job_id)
    assert st["state"] == "completed" and st["attempt"] == 2
    video = platform.download(st["result"]["download_url"], tmp_path / "retried.mp4")
    _check_video(video, (640, 360), CUES)
    conflict = platform.new_backend(job_id, scenario, {**options, "quality": 50}, video=late.name)
    assert conflict.status_code == 409 and conflict.json()["error_code"] == "conflict"


def test_unknown_options_run_and_are_named(platform):
    job_id = f"unknown-{uuid.uuid4().hex[:8]}"
    options = {**FIVE_OPTIONS, "width": 640, "height": 360, "watermark": True, "preset": "ultra"}
    _accepted(platform.old_backend(job_id, editor_scenario(CUES[:1], elastic=False), options), job_id)
    judge_callbacks(platform.rx, job_id, "completed")
    warnings = platform.status(job_id)["result"]["warnings"]
    assert any("options.preset" in w for w in warnings) and any("options.watermark" in w for w in warnings)


@pytest.mark.parametrize("key,value", [
    ("width", 320), ("width", 4096), ("height", 240), ("height", 2400), ("fps", 0), ("fps", 61),
    ("quality", 5), ("quality", 101), ("format", "avi"),
])
def test_options_out_of_the_backends_range_are_a_clear_422(platform, key, value):
    job_id = f"range-{key}-{value}"
    r = platform.new_backend(job_id, editor_scenario(CUES, elastic=False), {**FIVE_OPTIONS, key: value})
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["error_code"] == "invalid_request"
    assert any(d["loc"][-2:] == ["options", key] for d in body["detail"]), body
    assert platform.http.get(f"/api/render/{job_id}/status").status_code == 404


def test_video_url_null_names_the_field(platform):
    body = {"jobId": "null-video", "videoUrl": None, "scenario": editor_scenario(CUES, elastic=False),
            "options": FIVE_OPTIONS, "callbackUrl": platform.callback_url}
    r = platform.http.post("/render", json=body, headers=BACKEND_HEADERS)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert any(d["loc"][-1] == "videoUrl" and "null" in d["msg"] for d in detail), detail


def test_progress_carries_time_left_and_cancel_answers_200_with_one_cancelled_callback(platform):
    """An 80 s job: its progress (callbacks and status) tells the seconds left once its rate is
    known; the backend's cancel (no body) stops it with 200 and exactly one ``cancelled``."""
    job_id = str(uuid.uuid4())
    cues = [(i * 1.0, i * 1.0 + 0.8, f"자막 {i}") for i in range(80)]
    _accepted(platform.old_backend(job_id, editor_scenario(cues, elastic=False), {}, video="long169.mp4"), job_id)
    with_eta = None
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and with_eta is None:
        st = platform.status(job_id)
        assert st["state"] in ("queued", "processing"), st
        if st.get("estimated_time_remaining") is not None:
            with_eta = st
        time.sleep(0.2)
    assert with_eta is not None, "no estimate of the time left while the job ran"
    assert isinstance(with_eta["estimated_time_remaining"], int) and with_eta["estimated_time_remaining"] >= 0
    assert platform.rx.wait_for(lambda reqs: any(r.job_id == job_id and "estimated_time_remaining" in r.json
                                                 for r in reqs), 30)
    r = platform.http.post(f"/api/render/{job_id}/cancel", headers={"User-Agent": "ECG-Backend/1.0"}, timeout=30)
    assert r.status_code == 200, r.text
    cbs = judge_callbacks(platform.rx, job_id, "cancelled")
    assert any(c.estimated_time_remaining is not None for c in cbs[:-1])
    assert platform.status(job_id)["status"] == "cancelled"
    # Cancelling again is harmless, and still 200 (the backend only looks at the code).
    assert platform.http.post(f"/api/render/{job_id}/cancel").status_code == 200
    time.sleep(1.0)
    assert len([e for e in platform.rx.events(job_id) if e.json["status"] in FINALS]) == 1


# -- italic and underline as the editor shows them ------------------------------------------------

def _text_mask(rgba: np.ndarray) -> np.ndarray:
    return (rgba[..., 3] > 200) & (rgba[..., :3].min(axis=2) > 200)


def test_italic_and_underline_are_drawn():
    """The editor's fontStyle and textDecoration: italic leans the letters (the top half of the
    line sits further right than the bottom half), underline adds a line under the text as wide
    as the text. Both as a still, with the page a segment uses."""
    from ecg_ray.rendering.still import render_still

    def still(italic: bool, underline: bool) -> np.ndarray:
        sc = editor_scenario([(0.0, 2.0, "기울임 밑줄 Italic underline")], elastic=False, italic=italic,
                             underline=underline)
        img, warnings = render_still(sc, 1.0, width=1280, height=720)
        assert not [w for w in warnings if "fontStyle" in w or "textDecoration" in w], warnings
        return _text_mask(np.asarray(img))

    def lean(mask: np.ndarray) -> float:
        ys, xs = np.nonzero(mask)
        mid = (ys.min() + ys.max()) / 2
        return float(xs[ys < mid].mean() - xs[ys >= mid].mean())

    def longest_row_run(mask: np.ndarray) -> int:  # the longest horizontal run of text pixels
        best = 0
        for row in mask:
            padded = np.concatenate([[0], row.astype(np.int8), [0]])
            d = np.diff(padded)
            starts, ends = np.nonzero(d == 1)[0], np.nonzero(d == -1)[0]
            if len(starts):
                best = max(best, int((ends - starts).max()))
        return best

    plain, italic, underline = still(False, False), still(True, False), still(False, True)
    width = int(np.ptp(np.nonzero(plain.any(axis=0))[0]))
    assert lean(italic) - lean(plain) > 3, (lean(italic), lean(plain))
    assert longest_row_run(plain) < 0.3 * width
    assert longest_row_run(underline) > 0.9 * width, (longest_row_run(underline), width)
    # the line runs under the letters: in the bottom quarter of the text's rows
    rows = np.nonzero(underline.any(axis=1))[0]
    line_row = max(range(len(underline)), key=lambda r: int(underline[r].sum()))
    assert line_row > rows.min() + 0.75 * (rows.max() - rows.min()), (line_row, rows.min(), rows.max())


# -- pieces without the service ----------------------------------------------------------------

def test_time_left_comes_from_the_measured_rate():
    eta = Eta(min_s=1.0)
    assert eta.update(10.0, 0, 300) is None              # nothing rendered yet
    assert eta.update(11.0, 30, 300) is None             # the clock starts at the first frames
    assert eta.update(11.5, 60, 300) is None             # half a second says too little
    assert eta.update(13.0, 130, 300) == 4               # 100 frames in 2 s: 170 left -> 3.4 -> 4
    assert eta.update(20.0, 300, 300) == 0


def test_request_options_follow_the_backends_ranges():
    from pydantic import ValidationError

    from ecg_ray.service.models import RenderRequest

    base = {"video_url": "https://cdn.example/v.mp4", "scenario": editor_scenario(CUES, elastic=False)}
    req = RenderRequest.model_validate({**base, "options": {**FIVE_OPTIONS, "watermark": 1}})
    assert req.options.unknown() == ["watermark"]
    opts = req.options.render_options()
    assert (opts.width, opts.height, opts.fps, opts.quality, opts.format) == (1920, 1080, 30, 90, "mp4")
    assert RenderRequest.model_validate({**base, "options": None}).options.format == "mp4"
    for bad in ({"width": 479}, {"height": 2161}, {"fps": 60.5}, {"quality": 9}, {"format": "mkv"}):
        with pytest.raises(ValidationError):
            RenderRequest.model_validate({**base, "options": copy.deepcopy(bad)})


def test_a_job_stored_under_older_option_ranges_is_read_back_as_asked(tmp_path):
    """A job accepted before the options took the platform's ranges (a 160 px width) is still
    read back from the job table: failing on it would stop the service from starting."""
    from ecg_ray.service.models import JobStatus, RenderRequest
    from ecg_ray.service.state import JobStore

    db = JobStore(str(tmp_path))
    req = RenderRequest.model_validate({"job_id": "old-1", "video_url": "https://cdn.example/v.mp4",
                                        "scenario": {"version": "1.3", "cues": []}})
    raw = json.loads(req.model_dump_json())
    raw["options"] = {"width": 160, "height": 120, "encoder": "auto", "segments": None}
    db._db.execute("INSERT INTO jobs (job_id, seq, fingerprint, request, status) VALUES (?, ?, ?, ?, ?)",
                   ("old-1", 0, "fp", json.dumps(raw), JobStatus(job_id="old-1", state="queued",
                                                                 created_at=1.0).model_dump_json()))
    (seq, back, fp, st, outbox), = db.load()
    assert outbox is None
    opts = back.options.render_options()
    assert (back.job_id, opts.width, opts.height, opts.format, st.state) == ("old-1", 160, 120, "mp4", "queued")
    db.close()


def test_webm_without_its_encoders_is_a_clear_refusal(monkeypatch):
    """Where the FFmpeg build has no libvpx or libopus, ``format: webm`` is refused naming
    ``options.format`` and what is supported. The FFmpeg installed here has both, so their
    absence is what the test encode reports, not a real build without them."""
    from ecg_ray.errors import RenderError
    from ecg_ray.media import containers

    containers._encoders_missing.cache_clear()
    monkeypatch.setattr(containers, "encoder_opens", lambda codec: codec != "libvpx-vp9")
    try:
        with pytest.raises(RenderError) as ei:
            containers.check_supported("webm")
        assert ei.value.code == "invalid_options"
        assert "options.format 'webm'" in ei.value.message and "libvpx-vp9" in ei.value.message
        assert "supported here: mp4, mov" in ei.value.message
        assert containers.check_supported("mov").mime == "video/quicktime"
    finally:
        containers._encoders_missing.cache_clear()


@pytest.mark.parametrize("src,box,fit,out", [
    ((1080, 1920), (1920, 1080), "contain", (1080, 1920)),   # portrait phone video, the backend's box
    ((720, 1280), (1920, 1080), "contain", (1080, 1920)),    # a smaller one is scaled up to the size asked
    ((1440, 1080), (1920, 1080), "contain", (1440, 1080)),   # 4:3 keeps its shape inside the box
    ((1080, 1080), (1920, 1080), "contain", (1080, 1080)),
    ((3840, 2160), (1920, 1080), "contain", (1920, 1080)),
    ((1080, 1920), (1920, 1080), "exact", (1920, 1080)),     # asked for: stretched
])
def test_both_sizes_are_a_box_the_source_keeps_its_shape_in(src, box, fit, out):
    from ecg_ray.config import Settings
    from ecg_ray.media.models import ProbeResult
    from ecg_ray.rendering.models import RenderOptions
    from ecg_ray.rendering.plan import output_format

    probe = ProbeResult(path="x", container="mp4", codec="h264", width=src[0], height=src[1], fps_num=30, fps_den=1,
                        duration=1.0, frame_count=30, start=0.0, frame_times=[i / 30 for i in range(30)])
    got = output_format(probe, RenderOptions(width=box[0], height=box[1], fit=fit), Settings())
    assert (got.width, got.height) == out

