"""The one-FFmpeg segment path (burn.py) against the decode -> Python -> encode relay, and the
colours both write (real FFmpeg, real Chromium)."""

from __future__ import annotations

import asyncio
import threading

import av
import numpy as np
import pytest

from ecg_ray import probe
from ecg_ray.capture.browser import CaptionPage
from ecg_ray.config import load_settings
from ecg_ray.errors import RenderError
from ecg_ray.media import burn, ffmpeg
from ecg_ray.media.composite import OverlayCanvas, to_yuva
from ecg_ray.media.models import EncoderSettings
from ecg_ray.media.testclip import decode_frames
from ecg_ray.rendering.models import RenderOptions, SegmentSpec
from ecg_ray.rendering.plan import output_format
from ecg_ray.rendering.segment import JobSpec, render_segment
from ecg_ray.scenario.normalize import normalize
from tests.conftest import leftover_processes
from tests.frames import caption_mask, frame_numbers, frames_for, psnr

ENC = EncoderSettings(codec="libx264", quality=90, preset="ultrafast")


def test_one_for_one_and_enable_ranges():
    assert burn.is_one_for_one([5, 6, 7, 8])
    assert burn.is_one_for_one([3])
    assert not burn.is_one_for_one([5, 6, 6, 7])   # a repeated source frame
    assert not burn.is_one_for_one([5, 7, 8])      # a dropped one
    assert burn.enable_expr([False, True, True, False, True]) == "between(n,1,2)+between(n,4,4)"
    assert burn.enable_expr([False] * 5) == "0"
    many = [i % 2 == 0 for i in range(2 * burn.MAX_ENABLE_RANGES + 2)]
    assert burn.enable_expr(many) is None


def test_canvas_clears_only_the_last_box():
    import io

    from PIL import Image

    def png(w, h, rgba):
        b = io.BytesIO()
        Image.new("RGBA", (w, h), rgba).save(b, "PNG")
        return b.getvalue()

    c = OverlayCanvas(64, 32)
    assert c.empty
    c.paint(to_yuva(png(10, 6, (255, 255, 255, 255)), 4, 8, "bt709"))
    assert int(c.A.sum()) == 10 * 6 * 255 and int(c.Y[8, 4]) == 235
    c.paint(to_yuva(png(4, 4, (0, 0, 0, 128)), 40, 20, "bt709"))
    assert int(c.A[8:14, 4:14].sum()) == 0 and int(c.A[20:24, 40:44].min()) == 128
    c.paint(to_yuva(png(4, 4, (0, 0, 0, 0)), 0, 0, "bt709"))  # nothing visible
    assert c.empty and int(c.A.sum()) == 0


SCENARIO = {"version": "1.3", "cues": [
    {"start": 0.4, "end": 1.6, "text": "안녕하세요 burn"},
    {"start": 2.2, "end": 3.4, "text": "<b>second</b> line"},
]}


def _segment(src_path, seg_range, out_path, burn_in: bool, scenario=SCENARIO, on_frames=lambda n: None,
             band: bool | None = None, hwdec: str = "none", options: RenderOptions | None = None,
             enc: EncoderSettings = ENC):
    info = probe(str(src_path))
    out = output_format(info, options or RenderOptions(), load_settings())

    async def run():
        page = CaptionPage()
        await page.start()
        try:
            job = JobSpec(job_id="burn", probe=info, out=out, encoder=enc, burn_in_ffmpeg=burn_in,
                          scenario=normalize(scenario, out.width / out.height), hwdec=hwdec)
            a, b = seg_range
            return await render_segment(page, job, SegmentSpec(job_id="burn", index=0, start_frame=a, end_frame=b),
                                        str(src_path), str(out_path), threading.Event(), on_frames, band)
        finally:
            await page.close()

    return asyncio.run(run())


def test_burn_and_relay_give_the_same_frames(numbered, tmp_path):
    """A middle segment (a seek, a cue cut at its start) both ways: the same source frames, the
    captions on the same frames, the same pictures within encoder noise."""
    seen: list[int] = []
    r_burn = _segment(numbered, (30, 90), tmp_path / "burn.mp4", True, on_frames=seen.append)
    r_relay = _segment(numbered, (30, 90), tmp_path / "relay.mp4", False)
    assert r_burn.frames == r_relay.frames == 60
    assert r_burn.captured == r_relay.captured > 0
    assert seen and seen[-1] == 60  # progress comes from FFmpeg's own count
    assert frame_numbers(tmp_path / "burn.mp4") == list(range(30, 90))
    assert frame_numbers(tmp_path / "relay.mp4") == list(range(30, 90))
    a, b = decode_frames(str(tmp_path / "burn.mp4")), decode_frames(str(tmp_path / "relay.mp4"))
    assert min(psnr(x, y) for x, y in zip(a, b)) > 38
    # The captions: frames 30..89 of a 25 fps source; cue 1 ends at 1.6 s, cue 2 runs 2.2-3.4 s.
    ref = tmp_path / "src_part.mp4"
    ffmpeg.run(["-ss", "1.18", "-i", str(numbered), "-frames:v", "60", "-an", "-c:v", "libx264", "-crf", "10",
                "-preset", "ultrafast", "-y", str(ref)])
    mask = caption_mask(tmp_path / "burn.mp4", ref)
    want = frames_for(0.4, 1.6, 25, 100) | frames_for(2.2, 3.4, 25, 100)
    assert [n + 30 for n, m in enumerate(mask) if m] == sorted(f for f in want if 30 <= f < 90)


def _bars(path, size, tags: list[str]):
    """Colour bars (saturated: a matrix mix-up moves them a lot), 10 frames, nearly lossless."""
    w, h = size
    ffmpeg.run(["-f", "lavfi", "-i", f"smptehdbars=s={w}x{h}:r=25:d=0.4", "-c:v", "libx264", "-preset", "ultrafast",
                "-qp", "0", "-pix_fmt", "yuv420p", *tags, "-y", str(path)])


def _yuv(path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [np.frombuffer(f.to_ndarray(format="yuv420p").tobytes(), np.uint8).astype(np.int16)
                for f in c.decode(video=0)]


@pytest.mark.parametrize("burn_in", [True, False], ids=["burn", "relay"])
@pytest.mark.parametrize("case", ["hd-bt709-tagged", "hd-bt601-tagged", "hd-untagged", "sd-bt601-tagged"])
def test_colours_are_not_converted_twice(tmp_path, case, burn_in):
    """A BT.709 or BT.601 source comes out with the same Y'CbCr values and its own matrix tag
    (FFmpeg used to take our untagged frames for BT.601 and convert HD ones to BT.709)."""
    size, tags = {
        "hd-bt709-tagged": ((1280, 720), ["-colorspace", "bt709", "-color_primaries", "bt709",
                                          "-color_trc", "bt709", "-color_range", "tv"]),
        "hd-bt601-tagged": ((1280, 720), ["-colorspace", "bt470bg", "-color_range", "tv"]),
        # As the real clip: no colour description at all (taken for BT.709, being HD).
        "hd-untagged": ((1280, 720), ["-bsf:v", "h264_metadata=matrix_coefficients=2:colour_primaries=2:transfer_characteristics=2"]),
        "sd-bt601-tagged": ((640, 480), ["-colorspace", "smpte170m", "-color_primaries", "smpte170m",
                                         "-color_trc", "smpte170m", "-color_range", "tv"]),
    }[case]
    src = tmp_path / "bars.mp4"
    _bars(src, size, tags)
    out = tmp_path / "out.mp4"
    _segment(src, (0, 10), out, burn_in, scenario={"version": "1.3", "cues": []})
    s, o = _yuv(src), _yuv(out)
    assert len(o) == 10
    worst = max(float(np.abs(a - b).mean()) for a, b in zip(s, o))
    assert worst < 1.5, worst
    with av.open(str(out)) as c:
        cs = c.streams.video[0].codec_context.colorspace
    if case == "hd-untagged":
        assert probe(str(src)).colorspace == ""
    assert cs == {"hd-bt709-tagged": 1, "hd-bt601-tagged": 5, "hd-untagged": 1, "sd-bt601-tagged": 6}[case]


def test_a_short_source_is_an_error_not_a_short_segment(numbered, tmp_path):
    info = probe(str(numbered))
    out = output_format(info, RenderOptions(), load_settings())
    p = burn.BurnProcess(str(numbered), info, out, ENC, 90, 20, str(tmp_path / "s.mp4"))
    p.begin(out.height)
    p.write(0, OverlayCanvas(out.width, out.height).buf)
    with pytest.raises(RenderError) as e:
        p.finish()
    assert e.value.code == "invalid_input" and "got 10 of 20 frames" in e.value.message


def test_abort_leaves_no_process(numbered, tmp_path):
    import os

    info = probe(str(numbered))
    out = output_format(info, RenderOptions(), load_settings())
    p = burn.BurnProcess(str(numbered), info, out, ENC, 0, 100, str(tmp_path / "a.mp4"))
    pid = p.proc.pid
    p.abort()
    assert p.proc.poll() is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


@pytest.mark.parametrize("burn_in", [True, False], ids=["burn", "relay"])
def test_hwdec_auto_uses_nvdec_where_it_decodes_and_the_cpu_elsewhere(numbered, tmp_path, burn_in):
    """ECG_HWDEC=auto: the segment's node decides by a real test decode. Where NVDEC works (the
    GPU machines) the segment is decoded there, else on the CPU; either way the same frames (H.264
    decoding is exact, and the encoder sees the same pictures). ECG_HWDEC=cuda where NVDEC does not
    work is an error naming it, and leaves no process behind."""
    from ecg_ray.media.decode import nvdec_check

    has_nvdec = nvdec_check() == ""
    ref = _segment(numbered, (30, 70), tmp_path / "cpu.mp4", burn_in)
    auto = _segment(numbered, (30, 70), tmp_path / "auto.mp4", burn_in, hwdec="auto")
    assert ref.hwdec == "none"
    assert auto.hwdec == ("cuda" if has_nvdec else "none")
    assert frame_numbers(tmp_path / "auto.mp4") == list(range(30, 70))
    a, b = decode_frames(str(tmp_path / "cpu.mp4")), decode_frames(str(tmp_path / "auto.mp4"))
    assert len(a) == len(b) == 40 and all(np.array_equal(x, y) for x, y in zip(a, b))
    if has_nvdec:
        assert _segment(numbered, (30, 70), tmp_path / "cuda.mp4", burn_in, hwdec="cuda").hwdec == "cuda"
    else:
        with pytest.raises(RenderError) as e:
            _segment(numbered, (30, 70), tmp_path / "cuda.mp4", burn_in, hwdec="cuda")
        assert e.value.code == "encoder_failed" and "ECG_HWDEC=cuda, but NVDEC does not decode" in e.value.message
    assert leftover_processes() == []


def _two_heights() -> dict:
    """SCENARIO's cues as v2.0, the second one in the middle of the frame (above the band that
    the first one, at the bottom, sets; the frame-number blocks at the top stay clear)."""
    sc = normalize(SCENARIO, 4 / 3).scenario
    sc["cues"][1]["root"]["children"][0]["layout"] = {"position": {"x": 0.5, "y": 0.5}, "anchor": "cc"}
    return sc


def test_overlay_band_is_a_bottom_band(numbered, tmp_path):
    """Bottom captions: the pictures handed to FFmpeg cover only a band of the frame's bottom,
    and the captions show on exactly their frames (test_burn_and_relay_give_the_same_frames
    checks the pictures against the relay's whole-frame composite)."""
    r = _segment(numbered, (0, 100), tmp_path / "band.mp4", True)
    assert r.band_misses == 0
    assert 0 < r.overlay_rows < 240 // 2  # a band, not the frame (320x240 source)
    mask = caption_mask(tmp_path / "band.mp4", numbered)
    want = frames_for(0.4, 1.6, 25, 100) | frames_for(2.2, 3.4, 25, 100)
    assert [n for n, m in enumerate(mask) if m] == sorted(want)
    assert frame_numbers(tmp_path / "band.mp4") == list(range(100))


def test_caption_above_the_band_renders_the_segment_again_whole_frame(numbered, tmp_path):
    """The first caption sets a bottom band; the second, mid-frame, is above it: the segment is
    rendered again with whole-frame pictures, and both captions show on exactly their frames,
    as the relay draws them."""
    sc = _two_heights()
    r = _segment(numbered, (0, 100), tmp_path / "miss.mp4", True, scenario=sc)
    assert r.band_misses == 1 and r.overlay_rows == 240
    assert frame_numbers(tmp_path / "miss.mp4") == list(range(100))
    low = caption_mask(tmp_path / "miss.mp4", numbered, band=(0.75, 1.0))
    mid = caption_mask(tmp_path / "miss.mp4", numbered, band=(0.35, 0.65))
    assert [n for n, m in enumerate(low) if m] == sorted(frames_for(0.4, 1.6, 25, 100))
    assert [n for n, m in enumerate(mid) if m] == sorted(frames_for(2.2, 3.4, 25, 100))
    _segment(numbered, (0, 100), tmp_path / "relay.mp4", False, scenario=sc)
    a, b = decode_frames(str(tmp_path / "miss.mp4")), decode_frames(str(tmp_path / "relay.mp4"))
    assert min(psnr(x, y) for x, y in zip(a, b)) > 38
    # Without the band at all (ECG_OVERLAY_BAND=0): no miss, the same frames.
    r0 = _segment(numbered, (0, 100), tmp_path / "whole.mp4", True, scenario=sc, band=False)
    assert r0.band_misses == 0 and r0.overlay_rows == 240
    c = decode_frames(str(tmp_path / "whole.mp4"))
    assert min(psnr(x, y) for x, y in zip(a, c)) > 45
