"""End-to-end renders on real Ray, Chromium and FFmpeg, checked frame by frame."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from ecg_ray import RenderOptions, probe
from ecg_ray.media.testclip import decode_frames, make_numbered_video

from .conftest import REAL_CLIP, leftover_processes
from .frames import audio_duration, beep_onsets, caption_mask, frame_numbers, frames_for, psnr

# Cue boundaries sit on frame times (25 fps) and straddle / touch the 3-segment joins at
# frames 33 and 66: the first cue spans the join at 33, the second ends exactly at 66 and
# the third starts there.
CUES = {
    "version": "1.3",
    "cues": [
        {"start": 0.8, "end": 1.6, "text": "첫 번째 자막 first"},
        {"start": 1.6, "end": 2.64, "text": "두 번째 second"},
        {"start": 2.64, "end": 3.2, "text": "세 번째 third"},
    ],
}


def expected_caption_frames(total=100, fps=Fraction(25)) -> set[int]:
    out: set[int] = set()
    for c in CUES["cues"]:
        out |= frames_for(Fraction(str(c["start"])), Fraction(str(c["end"])), fps, total)
    return out


@pytest.mark.parametrize("segments", [1, 3])
def test_every_frame_once_in_order_and_captions_exact(renderer, numbered, out_dir, segments):
    out = out_dir / f"out{segments}.mp4"
    res = renderer.render(str(numbered), CUES, str(out), RenderOptions(segments=segments))
    assert res.frames == 100 and res.segments == segments
    assert frame_numbers(out) == list(range(100))
    mask = caption_mask(out, numbered)
    shown = {i for i, m in enumerate(mask) if m}
    assert shown == expected_caption_frames()
    assert leftover_processes(allowed_browsers=len(renderer.actors)) == []


def test_audio_kept_same_length_and_in_sync(renderer, numbered, out_dir):
    out = out_dir / "audio.mp4"
    renderer.render(str(numbered), CUES, str(out), RenderOptions(segments=3))
    info = probe(str(out))
    assert len(info.audio) == 1 and info.audio[0].codec == "aac"
    assert abs(audio_duration(out) - 4.0) < 0.05
    onsets = beep_onsets(out)
    expected = [10 / 25, 50 / 25, 90 / 25]
    assert len(onsets) == 3, onsets
    for got, want in zip(onsets, expected):
        assert abs(got - want) < 0.012, (onsets, expected)


def test_no_audio_in_no_audio_out(renderer, media_dir, out_dir):
    src = media_dir / "silent.mp4"
    make_numbered_video(str(src), 30, Fraction(25), (320, 240), audio=False)
    out = out_dir / "silent_out.mp4"
    renderer.render(str(src), {"version": "1.3", "cues": [{"start": 0.2, "end": 0.6, "text": "무음"}]}, str(out))
    assert probe(str(out)).audio == []
    assert frame_numbers(out) == list(range(30))


def test_odd_size_is_padded_not_cropped(renderer, media_dir, out_dir):
    src = media_dir / "odd.mp4"
    make_numbered_video(str(src), 40, Fraction(25), (321, 241), audio=True, beep_frames=(5,))
    out = out_dir / "odd_out.mp4"
    res = renderer.render(str(src), CUES, str(out), RenderOptions(segments=2))
    assert (res.width, res.height) == (322, 242)
    assert frame_numbers(out) == list(range(40))


def test_fractional_fps_kept_exact(renderer, media_dir, out_dir):
    src = media_dir / "ntsc.mp4"
    make_numbered_video(str(src), 90, Fraction(30000, 1001), (320, 240), audio=True, beep_frames=(30,))
    out = out_dir / "ntsc_out.mp4"
    res = renderer.render(str(src), CUES, str(out), RenderOptions(segments=3))
    info = probe(str(out))
    assert (info.fps_num, info.fps_den) == (30000, 1001)
    assert res.frames == 90
    assert frame_numbers(out) == list(range(90))
    onsets = beep_onsets(out)
    assert len(onsets) == 1 and abs(onsets[0] - 30 * 1001 / 30000) < 0.012


def test_variable_frame_rate_becomes_constant(renderer, media_dir, out_dir):
    src = media_dir / "vfr.mp4"
    make_numbered_video(str(src), 100, Fraction(25), (320, 240), audio=False, vfr=True)
    info = probe(str(src))
    assert info.vfr
    out = out_dir / "vfr_out.mp4"
    res = renderer.render(str(src), CUES, str(out), RenderOptions(segments=2))
    nums = frame_numbers(out)
    out_info = probe(str(out))
    assert not out_info.vfr and out_info.frame_count == res.frames
    # Constant at the average rate (80 frames over 3.96 s), each output frame showing the
    # source frame on screen at its time (sample and hold).
    fps = Fraction(out_info.fps_num, out_info.fps_den)
    assert abs(float(fps) - 80 / 3.96) < 0.01
    kept = [n for n in range(100) if n % 5 != 4]
    # (a source frame stamped within a quarter frame after n/fps counts as on screen: plan.py)
    expected = [max(k for k in kept if Fraction(k, 25) <= (i + Fraction(1, 4)) / fps) for i in range(len(nums))]
    assert nums == expected


def test_real_clip_and_one_vs_many_segments(renderer, out_dir):
    one, many = out_dir / "bbb1.mp4", out_dir / "bbb4.mp4"
    scenario = {"version": "1.3", "cues": [{"start": 0.5, "end": 2.0, "text": "빅 벅 버니 Big Buck Bunny"},
                                           {"start": 2.0, "end": 4.5, "text": "토끼 🐰"}]}
    r1 = renderer.render(str(REAL_CLIP), scenario, str(one), RenderOptions(segments=1))
    r4 = renderer.render(str(REAL_CLIP), scenario, str(many), RenderOptions(segments=4))
    assert r1.frames == r4.frames == 132
    a, b = decode_frames(str(one)), decode_frames(str(many))
    src = decode_frames(str(REAL_CLIP))
    assert len(a) == len(b) == len(src) == 132
    assert np.mean([psnr(x, y) for x, y in zip(a, b)]) > 40
    for i in range(132):
        # Same frames within encoder tolerance, and the top of the picture is the source's.
        # (a segment's first frame is an IDR where the single pass has a P frame)
        assert psnr(a[i], b[i]) > 33, i
        assert psnr(a[i][:360], src[i][:360]) > 30, i
    info = probe(str(many))
    assert info.audio and info.audio[0].codec == "aac" and info.audio[0].channels == 6
    assert caption_mask(many, REAL_CLIP, thresh=80, min_pixels=200)[30]


def test_scaled_output(renderer, numbered, out_dir):
    out = out_dir / "scaled.mp4"
    res = renderer.render(str(numbered), CUES, str(out), RenderOptions(width=640, segments=2))
    assert (res.width, res.height) == (640, 480)
    info = probe(str(out))
    assert (info.width, info.height) == (640, 480)
    assert frame_numbers(out, src_width=320) == list(range(100))


def test_output_is_faststart_h264_yuv420p(renderer, numbered, out_dir):
    import av

    out = out_dir / "fmt.mp4"
    renderer.render(str(numbered), CUES, str(out), RenderOptions(segments=2, quality=90))
    head = out.read_bytes()[:4096]
    assert head.find(b"moov") != -1 and (head.find(b"mdat") == -1 or head.find(b"moov") < head.find(b"mdat"))
    with av.open(str(out)) as c:
        v = c.streams.video[0]
        assert v.codec_context.name == "h264"
        assert v.codec_context.pix_fmt == "yuv420p"
    frames = decode_frames(str(out))
    assert np.isfinite(frames[0]).all()


def test_rotated_input_is_rendered_upright(renderer, media_dir, out_dir):
    from ecg_ray.media import ffmpeg

    src = media_dir / "rot_src.mp4"
    make_numbered_video(str(src), 25, Fraction(25), (320, 176), audio=False)
    rot = media_dir / "rot.mp4"
    ffmpeg.run(["-display_rotation", "90", "-i", str(src), "-c", "copy", "-y", str(rot)])
    out = out_dir / "rot_out.mp4"
    res = renderer.render(str(rot), CUES, str(out), RenderOptions(segments=2))
    assert (res.width, res.height) == (176, 320)
    info = probe(str(out))
    assert (info.width, info.height, info.rotation) == (176, 320, 0)
    # Turn the output back and the frame numbers read again, in order.
    back = out_dir / "back.mp4"
    ffmpeg.run(["-i", str(out), "-vf", "transpose=1", "-c:v", "libx264", "-crf", "10", "-y", str(back)])
    nums = frame_numbers(back)
    assert nums == list(range(25)) or frame_numbers_flipped(back) == list(range(25))


def frame_numbers_flipped(path) -> list[int]:
    from ecg_ray.media.testclip import read_frame_number

    return [read_frame_number(y[::-1, ::-1].copy()) for y in decode_frames(str(path))]


def test_input_from_http_url(renderer, numbered, out_dir):
    """An http(s) input is downloaded (size and time limited) and rendered like a local file."""
    import functools
    import http.server
    import threading

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(numbered.parent))
    handler.log_message = lambda *a: None
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{srv.server_address[1]}/{numbered.name}"
        out = out_dir / "from_url.mp4"
        res = renderer.render(url, CUES, str(out), RenderOptions(segments=2))
        assert res.frames == 100
        assert frame_numbers(out) == list(range(100))
        from ecg_ray import RenderError

        with pytest.raises(RenderError) as ei:
            renderer.render(url + ".missing", CUES, str(out_dir / "x.mp4"))
        assert ei.value.code == "fetch_failed" and "404" in ei.value.message
    finally:
        srv.shutdown()


def test_a_dead_browser_is_restarted(renderer, numbered, out_dir):
    """Chromium killed between jobs (crash, OOM killer): the actor starts a new one."""
    import os
    import signal

    import ray

    renderer.ensure_actors(2)
    pids = [p for a in renderer.actors for p in ray.get(a.browser_pids.remote())]
    assert pids
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    out = out_dir / "after_crash.mp4"
    renderer.render(str(numbered), CUES, str(out), RenderOptions(segments=2))
    assert frame_numbers(out) == list(range(100))
    new = [p for a in renderer.actors for p in ray.get(a.browser_pids.remote())]
    assert new and not set(new) & set(pids)


def test_browser_killed_mid_segment_is_retried(renderer, media_dir, out_dir):
    """Chromium dies while a segment is being captured: the actor starts a new browser and
    renders the segment again; the output is still every frame once, with its captions."""
    import os
    import signal

    import ray

    n = 750
    src = media_dir / "long.mp4"
    make_numbered_video(str(src), n, Fraction(25), (320, 240), audio=False)
    # A new caption on every frame: every frame is a browser round trip and a capture, so each
    # segment takes seconds and the kill (at the first progress report) lands mid-segment.
    scenario = {"version": "1.3", "cues": [{"start": i / 25, "end": (i + 1) / 25, "text": f"자막 {i}"}
                                           for i in range(n)]}
    renderer.ensure_actors(2)
    killed: list[int] = []

    def on_progress(p):
        if not killed and p.stage == "rendering" and 0 < p.frames_done < n // 2:
            for a in renderer.actors:
                for pid in ray.get(a.browser_pids.remote()):
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)

    out = out_dir / "killed_mid.mp4"
    # One capture lane: with lanes a segment's runs ahead are captured together early, and the
    # browser may be done before the first progress report (tests/test_lanes.py kills a
    # browser mid-lanes).
    settings = renderer.settings
    renderer.settings = settings.model_copy(update=dict(capture_lanes=1))
    try:
        res = renderer.render(str(src), scenario, str(out), RenderOptions(segments=2), on_progress=on_progress)
    finally:
        renderer.settings = settings
    assert killed, "the browsers were never killed (render too fast for the test)"
    assert res.stats["browser_restarts"] >= 1
    # New browsers were started during this job (no other job ran since the kill).
    now = [pid for a in renderer.actors for pid in ray.get(a.browser_pids.remote())]
    assert now and not set(now) & set(killed)
    assert res.frames == n
    assert frame_numbers(out) == list(range(n))
