"""Hostile videos through the engine: each is rendered correctly (checked frame by frame) or
refused with a clear RenderError of the right code, and leaves no temp files or FFmpeg
processes behind. (Missing, empty, text and moov-less truncated files are in test_bad_input.)"""

from __future__ import annotations

import glob
import json
import math
import os
import random
import re
import struct
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from ecg_ray import RenderError, RenderOptions
from ecg_ray.media import ffmpeg
from ecg_ray.media.probe import probe
from ecg_ray.media.testclip import decode_frames, make_numbered_video, read_frame_number

from .conftest import leftover_processes
from .frames import beep_onsets, caption_mask, frame_numbers, frames_for

FPS = Fraction(25)
FRAMES = 50
# One cue over frames 10-29; with two segments the join at frame 25 falls inside it.
CUE = {"version": "1.3", "cues": [{"start": 0.4, "end": 1.2, "text": "자막 caption"}]}
CUE_FRAMES = frames_for(Fraction(2, 5), Fraction(6, 5), FPS, FRAMES)
BEEPS = (10, 40)
X264 = ("-c:v", "libx264", "-preset", "ultrafast", "-crf", "12", "-g", "30")
# name: (container file, video codec args, audio codec or None)
CODECS = {
    "mpeg4_part2_bframes": ("mpeg4.avi", ("-c:v", "mpeg4", "-q:v", "2", "-bf", "2"), "libmp3lame"),
    "vp9_webm": ("vp9.webm", ("-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-crf", "20",
                              "-b:v", "0"), "libopus"),
    "mjpeg_full_range": ("mjpeg.mkv", ("-c:v", "mjpeg", "-q:v", "2"), None),
    "hevc": ("hevc.mp4", ("-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error:crf=12",
                          "-tag:v", "hvc1"), "aac"),
    "mpeg2_interlaced_ts": ("mpeg2i.ts", ("-c:v", "mpeg2video", "-q:v", "2", "-flags", "+ildct+ilme"), "mp2"),
    "h264_field_coded": ("x264i.mp4", (*X264, "-flags", "+ildct+ilme", "-x264-params", "interlaced=1:tff=1"), None),
}


def _run(*args: str) -> None:
    ffmpeg.run(list(args), timeout=120)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("hostile")
    f: dict[str, Path] = {}
    for name, (fname, vargs, acodec) in CODECS.items():
        f[name] = d / fname
        make_numbered_video(str(f[name]), FRAMES, FPS, (320, 240), audio=acodec is not None, beep_frames=BEEPS,
                            codec_args=vargs, audio_codec=acodec or "aac")
    f["png"] = d / "frame.png"
    _run("-f", "lavfi", "-i", "color=red:s=64x48", "-frames:v", "1", "-y", str(f["png"]))
    f["random"] = d / "random.mp4"
    f["random"].write_bytes(random.Random(1234).randbytes(200_000))
    f["audio_only"] = d / "audio.mp4"
    _run("-f", "lavfi", "-i", "sine=f=440:d=2", "-c:a", "aac", "-y", str(f["audio_only"]))
    # A decompression bomb: 2 black 8192x8192 frames in ~200 kB, 100 MB a frame decoded.
    f["bomb"] = d / "bomb.mp4"
    _run("-f", "lavfi", "-i", "color=black:s=8192x8192:r=25:d=0.08", "-c:v", "libx264", "-preset", "ultrafast",
         "-pix_fmt", "yuv420p", "-y", str(f["bomb"]))
    # Two frames ten hours apart: a 2-frame file whose timestamps say 10 h.
    f["ten_hours"] = d / "ten_hours.mp4"
    _run("-f", "lavfi", "-i", "color=gray:s=64x48:r=25:d=0.08", "-vf", "setpts=N*36000/TB", "-fps_mode",
         "passthrough", "-c:v", "libx264", "-y", str(f["ten_hours"]))
    # Two numbered frames 3000 s apart (under the 4 h limit): a rate far below 1 fps.
    two = d / "two.mp4"
    make_numbered_video(str(two), 2, FPS, (320, 240), audio=False, codec_args=X264)
    f["two"] = two
    for name, gap in (("sparse", 3000), ("sparse10", 10)):
        f[name] = d / f"{name}.mp4"
        _run("-i", str(two), "-vf", f"setpts=N*{gap}/TB", "-fps_mode", "passthrough", "-c:v", "libx264",
             "-preset", "ultrafast", "-crf", "12", "-y", str(f[name]))
    # 1x1 pixel, mid grey.
    f["one_pixel"] = d / "one.mp4"
    _run("-f", "lavfi", "-i", "color=0x808080:s=1x1:r=25:d=1", "-c:v", "libx264", "-pix_fmt", "yuv444p", "-y",
         str(f["one_pixel"]))
    # Truncated in the middle of the media data: a faststart MP4 (index first, half the data gone)
    # and an MPEG-TS cut mid-packet.
    fs = d / "faststart.mp4"
    _run("-i", str(f["h264_field_coded"]), "-c", "copy", "-movflags", "+faststart", "-y", str(fs))
    f["faststart_half"] = d / "faststart_half.mp4"
    f["faststart_half"].write_bytes(fs.read_bytes()[: fs.stat().st_size // 2])
    f["ts_half"] = d / "ts_half.ts"
    data = f["mpeg2_interlaced_ts"].read_bytes()
    f["ts_half"].write_bytes(data[: len(data) // 2 + 77])
    # A Matroska file whose header declares 10 hours; its 50 frames last 2 s.
    f["liar_mkv"] = d / "liar.mkv"
    f["liar_mkv"].write_bytes(_declare_duration(f["vp9_webm"].read_bytes(), 36000.0))
    return f


def _declare_duration(mkv: bytes, seconds: float) -> bytes:
    """Patch the Segment Info Duration element (ID 0x4489, an 8-byte float in ms)."""
    b = bytearray(mkv)
    i = b.find(b"\x44\x89\x88")
    assert i > 0, "no 8-byte Duration element"
    b[i + 3:i + 11] = struct.pack(">d", seconds * 1000.0)
    return bytes(b)


def _our_temp_entries() -> set[str]:
    """ecg-* entries in the temp dir that belong to this test process or its children (Ray's
    workers included): directories of jobs and finalizers, and files inside the actors' own
    directories (which live as long as the actor)."""
    import psutil

    me = psutil.Process()
    pids = {me.pid} | {c.pid for c in me.children(recursive=True)}
    found = set()
    for path in glob.glob(os.path.join(tempfile.gettempdir(), "ecg-*")):
        m = re.match(r"ecg-(\d+)-", os.path.basename(path))
        if not m or int(m.group(1)) not in pids:
            continue
        if "-actor-" in os.path.basename(path) and os.path.isdir(path):
            found |= {os.path.join(path, n) for n in os.listdir(path)}
        else:
            found.add(path)
    return found


@pytest.fixture
def clean(renderer):
    """After the test: no new temp entries of this run and no FFmpeg process left."""
    before = _our_temp_entries()
    yield
    deadline = time.monotonic() + 10  # a finished job's release() calls are fire-and-forget
    while True:
        left = _our_temp_entries() - before
        procs = leftover_processes(allowed_browsers=2)
        if (not left and not procs) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert left == set()
    assert procs == []


@pytest.mark.parametrize("kind,code,needle", [
    ("png", "invalid_input", "is a still image (png_pipe), not a video"),
    ("random", "invalid_input", "is not a readable video"),
    ("audio_only", "invalid_input", "has no video stream"),
    ("bomb", "input_too_large", "is 8192x8192 (67108864 pixels); the limit is 8294400 pixels (ECG_MAX_PIXELS)"),
    ("ten_hours", "input_too_large", "longer than the limit of 14400s (ECG_MAX_DURATION_S)"),
])
def test_refused_clearly_and_at_once(renderer, hostile, clean, tmp_path, kind, code, needle):
    out = tmp_path / "out.mp4"
    t0 = time.monotonic()
    with pytest.raises(RenderError) as ei:
        renderer.render(str(hostile[kind]), CUE, str(out))
    assert time.monotonic() - t0 < 30
    assert ei.value.code == code, ei.value
    assert needle in ei.value.message, ei.value.message
    assert not out.exists()


_RSS_PROBE = """
import json, sys
from ecg_ray.errors import RenderError
from ecg_ray.media.probe import probe

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024  # kB -> MB

probe(sys.argv[2])  # warm up: first-open costs are not the file's
with open("/proc/self/clear_refs", "w") as fh:
    fh.write("5")  # reset the peak (VmHWM) to the current resident size
before = status("VmRSS")
try:
    info = probe(sys.argv[1]); answer = [info.width, info.height]
except RenderError as exc:
    answer = [exc.code, exc.message]
print(json.dumps({"answer": answer, "grew_mb": status("VmHWM") - before, "before_mb": before}))
"""


def _probe_rss(path: Path, small: Path, **env: str) -> dict:
    r = subprocess.run([sys.executable, "-c", _RSS_PROBE, str(path), str(small)], capture_output=True, text=True,
                       timeout=120, env={**os.environ, **env})
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_pictures_that_grow_after_the_probe_are_refused_by_the_decoder(renderer, tmp_path, clean):
    """A stream that starts small (all the probe looks at) and switches to 8192x8192 pictures
    later: the segment decoder refuses them (FFmpeg's -max_pixels) instead of making 100 MB
    pictures, and the job fails with input_too_large naming the limit."""
    small, big, grown = tmp_path / "a.ts", tmp_path / "b.ts", tmp_path / "grown.ts"
    _run("-f", "lavfi", "-i", "testsrc=s=320x240:r=25:d=1.2", *X264, "-f", "mpegts", "-y", str(small))
    _run("-f", "lavfi", "-i", "color=black:s=8192x8192:r=25:d=0.4", *X264, "-pix_fmt", "yuv420p",
         "-output_ts_offset", "1.2", "-f", "mpegts", "-y", str(big))
    grown.write_bytes(small.read_bytes() + big.read_bytes())  # MPEG-TS joins by concatenation
    assert (probe(str(grown)).width, probe(str(grown)).height) == (320, 240)
    out = tmp_path / "out.mp4"
    with pytest.raises(RenderError) as ei:
        renderer.render(str(grown), CUE, str(out))
    assert ei.value.code == "input_too_large", ei.value
    assert "8192x8192" in ei.value.message and "ECG_MAX_PIXELS" in ei.value.message, ei.value.message
    assert not out.exists()


def test_bomb_is_refused_from_its_header_without_decoding(hostile):
    """FFmpeg decodes frames while opening an H.264 file (to learn its parameters): the bomb
    must be refused from its declared size before any of its 100 MB pictures is made. The
    control run (limit raised) shows that decoding it would show up in the peak memory."""
    refused = _probe_rss(hostile["bomb"], hostile["two"])
    assert refused["answer"][0] == "input_too_large" and "ECG_MAX_PIXELS" in refused["answer"][1]
    decoded = _probe_rss(hostile["bomb"], hostile["two"], ECG_MAX_PIXELS=str(10**9))
    assert decoded["answer"] == [8192, 8192]
    assert decoded["grew_mb"] > 100, decoded            # one decoded picture is 100 MB
    assert refused["grew_mb"] < 50, refused


@pytest.mark.parametrize("name", list(CODECS))
def test_odd_codecs_render_every_frame(renderer, hostile, clean, tmp_path, name):
    src = hostile[name]
    out = tmp_path / "out.mp4"
    res = renderer.render(str(src), CUE, str(out), RenderOptions(segments=2))
    assert res.frames == FRAMES and (res.width, res.height) == (320, 240) and res.fps == 25
    assert frame_numbers(out) == list(range(FRAMES))
    mask = caption_mask(out, src)
    assert {n for n, m in enumerate(mask) if m} == CUE_FRAMES
    if CODECS[name][2] is not None:
        # Audio keeps the source's sync with the picture (MP3 in AVI starts 23 ms late, and the
        # AVI's first picture is at 0.04 s: both carry over), within 12 ms.
        want = [t - _first_picture(src) for t in beep_onsets(src)]
        got = [t - _first_picture(out) for t in beep_onsets(out)]
        assert len(got) == len(want) == len(BEEPS), (got, want)
        assert all(abs(g - w) < 0.012 for g, w in zip(got, want)), (got, want)
        assert [round(w * 25) for w in want] == list(BEEPS)


def _first_picture(path: Path) -> float:
    import av

    with av.open(str(path)) as c:
        return float(next(c.decode(video=0)).time)


def test_one_pixel_video(renderer, hostile, clean, tmp_path):
    out = tmp_path / "one.mp4"
    res = renderer.render(str(hostile["one_pixel"]), CUE, str(out))
    assert (res.width, res.height, res.frames) == (2, 2, 25)   # padded to the even size yuv420p needs
    frames = decode_frames(str(out))
    assert len(frames) == 25 and all(f.shape == (2, 2) for f in frames)
    src_luma = float(decode_frames(str(hostile["one_pixel"]))[0].mean())
    # Without a caption each output frame is the source's grey (one pixel padded to 2x2 with black).
    for n in set(range(25)) - CUE_FRAMES:
        assert abs(float(frames[n].max()) - src_luma) < 12, (n, frames[n], src_luma)


def test_two_frame_video_in_two_segments(renderer, hostile, clean, tmp_path):
    out = tmp_path / "two.mp4"
    cue = {"version": "1.3", "cues": [{"start": 0.04, "end": 0.08, "text": "둘째 second"}]}
    res = renderer.render(str(hostile["two"]), cue, str(out), RenderOptions(segments=2))
    assert res.frames == 2 and res.segments == 2
    assert frame_numbers(out) == [0, 1]
    assert caption_mask(out, hostile["two"]) == [False, True]


@pytest.mark.parametrize("kind", ["faststart_half", "ts_half"])
def test_truncated_mid_stream(renderer, hostile, clean, tmp_path, kind):
    """Half the media data is gone: the frames that are there, in order (each exactly once), or
    invalid_input. Never a frame from nowhere, never another error."""
    out = tmp_path / "cut.mp4"
    try:
        res = renderer.render(str(hostile[kind]), CUE, str(out))
    except RenderError as exc:
        assert exc.code == "invalid_input", exc
        assert not out.exists()
        return
    got = frame_numbers(out)
    assert 0 < res.frames == len(got) < FRAMES
    assert got == list(range(len(got))), got


def test_container_duration_is_not_trusted(renderer, hostile, clean, tmp_path):
    """The header says 10 hours, the frames last 2 s: the frames are what is rendered."""
    import av

    with av.open(str(hostile["liar_mkv"])) as c:
        assert c.duration / 1e6 == pytest.approx(36000)
    out = tmp_path / "liar.mp4"
    res = renderer.render(str(hostile["liar_mkv"]), CUE, str(out))
    assert res.frames == FRAMES and res.duration == pytest.approx(2.0)
    assert frame_numbers(out) == list(range(FRAMES))


def test_frames_far_apart(renderer, hostile, clean, tmp_path):
    """Two frames 3000 s apart: the average rate (2 frames in 4500 s) used to round to 0 fps (a
    ZeroDivisionError in probe, an internal_error for the job). Below 1 fps the output is made
    at 1 fps, each source frame held until the next: rendered here for frames 10 s apart (at
    their average rate of 2/15 fps, a caption from 1 s to 2 s would fall between two frames)."""
    info = probe(str(hostile["sparse"]))
    assert info.frame_times == [0.0, 3000.0] and info.fps == 1 and info.frame_count == 2
    info = probe(str(hostile["sparse10"]))
    assert info.frame_times == [0.0, 10.0] and info.fps == 1
    out = tmp_path / "sparse.mp4"
    cue = {"version": "1.3", "cues": [{"start": 1.0, "end": 2.0, "text": "한 번 once"}]}
    res = renderer.render(str(hostile["sparse10"]), cue, str(out))
    assert res.fps == 1 and res.frames == math.ceil(info.duration) and res.frames > 10
    frames = decode_frames(str(out))
    assert [read_frame_number(y) for y in frames] == [0] * 10 + [1] * (res.frames - 10)
    # The caption is on frame 1 (t = 1 s) only: frames 0 and 2 show the same held picture.
    band = slice(int(0.55 * 240), 240)

    def differs(a: int, b: int) -> int:
        return int((np.abs(frames[a][band].astype(int) - frames[b][band].astype(int)) > 60).sum())

    assert differs(1, 0) >= 40 and differs(2, 0) < 40 and differs(3, 0) < 40
