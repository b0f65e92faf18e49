"""The captions alone with transparency (options.alpha_video), on a real Renderer: every output
frame once, on the video's own timestamps, fully transparent where no caption shows, and,
composited over the source, equal to the captioned video's frame. The video itself is the same
file, byte for byte, as a job's without the option."""

from __future__ import annotations

import subprocess
from fractions import Fraction

import numpy as np
import pytest

from ecg_ray import RenderOptions
from ecg_ray.errors import RenderError
from ecg_ray.media.ffmpeg import ffmpeg_exe

from .frames import frames_for

FPS = Fraction(25)
TOTAL = 100
# With 3 segments (joins at frames 33 and 66): the first cue spans the first join, the second
# ends on the second join, and the gaps (40-49, 66-69) follow captions inside a segment.
CUES = {"version": "1.3", "cues": [
    {"start": 0.8, "end": 1.6, "text": "첫 번째 자막 first"},
    {"start": 2.0, "end": 2.64, "text": "두 번째 second"},
    {"start": 2.8, "end": 3.2, "text": "세 번째 third"},
]}


def captioned() -> set[int]:
    out: set[int] = set()
    for c in CUES["cues"]:
        out |= frames_for(Fraction(str(c["start"])), Fraction(str(c["end"])), FPS, TOTAL)
    return out


def planes(path, w: int, h: int, fmt: str) -> np.ndarray:
    """Every frame of ``path`` as 8-bit 4:4:4 planes, (frames, planes, h, w): decoded by FFmpeg,
    with libvpx for VP9 (FFmpeg's own VP9 decoder drops the alpha)."""
    dec = ["-c:v", "libvpx-vp9"] if str(path).endswith(".webm") else []
    out = subprocess.run([ffmpeg_exe(), "-v", "error", *dec, "-i", str(path), "-map", "0:v:0", "-f", "rawvideo",
                          "-pix_fmt", fmt, "-"], capture_output=True, timeout=120)
    assert out.returncode == 0, out.stderr.decode()
    n = 4 if fmt == "yuva444p" else 3
    return np.frombuffer(out.stdout, np.uint8).reshape(-1, n, h, w)


def times(path) -> list[float]:
    """The video stream's frame times (s), in presentation order, as demuxed."""
    import av

    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return sorted(float(p.pts * p.time_base) for p in c.demux(s) if p.pts is not None)


@pytest.mark.parametrize("fmt", ["webm", "mov"])
def test_alpha_video_composites_to_the_captioned_frames(renderer, numbered, out_dir, fmt):
    plain, with_alpha = out_dir / "plain.mp4", out_dir / "with.mp4"
    renderer.render(str(numbered), CUES, str(plain), RenderOptions(segments=3))
    res = renderer.render(str(numbered), CUES, str(with_alpha), RenderOptions(segments=3, alpha_video=fmt))
    # The video is the same file: the option adds a pass, it changes nothing of the video's.
    assert with_alpha.read_bytes() == plain.read_bytes()
    alpha = out_dir / f"with.captions.{fmt}"
    assert res.alpha_output == str(alpha) and alpha.exists()

    # Every frame once, at the video's times (WebM counts in milliseconds).
    main_t, alpha_t = times(with_alpha), times(alpha)
    assert len(alpha_t) == len(main_t) == TOTAL
    assert max(abs(a - b) for a, b in zip(alpha_t, main_t)) <= (0.0005 if fmt == "webm" else 1e-9)

    w, h = 320, 240
    cap = planes(alpha, w, h, "yuva444p")
    out = planes(with_alpha, w, h, "yuv444p").astype(np.float64)
    src = planes(numbered, w, h, "yuv444p").astype(np.float64)
    assert len(cap) == len(out) == len(src) == TOTAL
    shown = captioned()
    for n in range(TOTAL):
        a = cap[n, 3]
        if n not in shown:
            assert a.max() == 0, (n, int(a.max()))  # fully transparent: nothing shows
            continue
        assert int((a > 128).sum()) > 300, n  # the caption is there
        k = a.astype(np.float64)[None] / 255.0
        composite = src[n] * (1 - k) + cap[n, :3].astype(np.float64) * k
        err = np.abs(composite - out[n])
        burnt = np.abs(src[n] - out[n])  # what burning the captions in changed
        some, strong = a > 0, a >= 128
        # Equal within the video's own encode (x264 at the default quality: 0.7 levels of luma
        # off the source where no caption is, 3-6 on the glyphs' sharp edges; measured at most
        # 0.81 over the frame, 3.5 under the caption, 6.3 where it is opaque), while burning the
        # caption in moved its opaque pixels by ~48 levels. (This clip is grey and the captions
        # white and black: chroma stays neutral, and must.)
        assert err[0].mean() < 1.5 and err[0][some].mean() < 4.5 and err[0][strong].mean() < 8.0, \
            (n, err[0].mean(), err[0][some].mean(), err[0][strong].mean())
        assert err[1:].mean() < 1.0, (n, err[1:].mean())
        assert burnt[0][strong].mean() > 4 * err[0][strong].mean(), n


def test_alpha_video_of_one_segment(renderer, numbered, out_dir):
    out = out_dir / "one.mp4"
    res = renderer.render(str(numbered), CUES, str(out), RenderOptions(segments=1, alpha_video="webm"))
    cap = planes(res.alpha_output, 320, 240, "yuva444p")
    assert len(cap) == TOTAL
    assert [n for n in range(TOTAL) if cap[n, 3].max() > 0] == sorted(captioned())


def test_alpha_video_of_an_hdr_output_is_refused(renderer, tmp_path):
    from .hdrclips import make_reference, make_source

    ref, hlg = tmp_path / "ref.mp4", tmp_path / "hlg.mp4"
    make_reference(ref)
    make_source(ref, "hlg", hlg)
    with pytest.raises(RenderError) as err:
        renderer.render(str(hlg), CUES, str(tmp_path / "o.mp4"),
                        RenderOptions(dynamic_range="hdr", alpha_video="mov"))
    assert err.value.code == "invalid_options" and "alpha_video" in err.value.message
    assert not list(tmp_path.glob("o*"))
