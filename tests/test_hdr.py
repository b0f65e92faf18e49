"""Phone video as it comes: HDR (HLG, PQ), wide-gamut and 10-bit sources made from the real
footage come out as a correct BT.709 SDR picture, captions drawn after tone mapping; checked
pixel by pixel against the SDR clip they were made from (real FFmpeg, Chromium, Ray)."""

from __future__ import annotations

import struct

import av
import numpy as np
import pytest

from ecg_ray import RenderOptions, probe
from ecg_ray.media import ffmpeg
from ecg_ray.media.colors import color_filter, converts
from ecg_ray.media.hdrmeta import dolby_vision_record
from ecg_ray.service.models import JobOutput

from .conftest import leftover_processes
from .frames import frame_numbers
from .hdrclips import KINDS, frame_numbers_rgb, make_reference, make_source, rgb_frames

# One caption over the second half (white text, dark outline): its pixels are compared with the
# same caption rendered on the SDR clip.
CAPTION = {"version": "1.3", "cues": [{"start": 1.0, "end": 2.0, "text": "자막 Caption WHITE"}]}
FRAMES = 50

# Mid-tones: reference pixels whose R'G'B' mean is in [40, 200], mean absolute error of 255
# against the SDR clip they came from. Measured (R, G, B), each through its source's encode and
# the render's x264 at quality 95: the SDR clip itself 2.3 1.8 2.9; 10-bit H.264 and 4:2:2 the
# same; BT.2020 SDR 3.0 2.2 5.0; HLG 3.4 2.8 5.3; PQ 3.8 3.1 5.2 (blue: its chroma is
# subsampled twice, in two matrices, on saturated footage); bias under 0.6 on every channel.
# Untreated HDR (the output before tone mapping): 14.7 for HLG and 23.9 for PQ.
MID_MAE = 4.5            # mean over the three channels
MID_MAE_CHANNEL = 6.5    # any one channel
MID_BIAS = 1.5
BLACK_MAE = 3.0      # reference pixels darker than 20
CAPTION_MAE = 8.0    # the caption's own pixels against the caption on the SDR clip


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("hdr")
    ref = d / "ref.mp4"
    make_reference(ref)
    paths = {"ref": ref}
    for kind in KINDS:
        paths[kind] = d / f"{kind}.mp4"
        make_source(ref, kind, paths[kind])
    return paths


@pytest.fixture(scope="module")
def sdr_captioned(clips, renderer, tmp_path_factory):
    """The caption drawn on the SDR clip itself: what every other source should look like."""
    out = tmp_path_factory.mktemp("hdr-ref") / "ref_captioned.mp4"
    renderer.render(str(clips["ref"]), CAPTION, str(out), RenderOptions(segments=1, quality=95))
    return rgb_frames(out)


def test_probe_reports_transfer_primaries_depth_and_side_data(clips, tmp_path):
    hlg, pq, ref = probe(str(clips["hlg"])), probe(str(clips["pq"])), probe(str(clips["ref"]))
    assert (hlg.dynamic_range, hlg.color_trc, hlg.color_primaries, hlg.colorspace, hlg.bit_depth) == \
        ("hlg", "arib-std-b67", "bt2020", "bt2020nc", 10)
    assert (pq.dynamic_range, pq.color_trc, pq.bit_depth, pq.pix_fmt) == ("pq", "smpte2084", 10, "yuv420p10le")
    assert (ref.dynamic_range, ref.color_trc, ref.color_primaries, ref.bit_depth, ref.hdr) == \
        ("sdr", "bt709", "bt709", 8, None)
    # HDR10 side data, as Galaxy phones write it (x265's SEI).
    md = tmp_path / "hdr10.mp4"
    make_source(clips["ref"], "pq", md, ("-t", "0.2", "-x265-params",
                                         "log-level=error:hdr10=1:repeat-headers=1:max-cll=1000,400:master-display="
                                         "G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1)"))
    info = probe(str(md))
    assert info.hdr is not None and info.hdr.content_light is not None and info.hdr.mastering_display is not None
    assert (info.hdr.content_light.max_cll, info.hdr.content_light.max_fall) == (1000, 400)
    m = info.hdr.mastering_display
    assert (m.red, m.green, m.blue, m.white_point) == ((0.68, 0.32), (0.265, 0.69), (0.15, 0.06), (0.3127, 0.329))
    assert (m.min_luminance, m.max_luminance) == (0.0001, 1000.0)
    assert info.color_info().hdr == info.hdr


def test_dolby_vision_record_is_read():
    # Profile 8, level 4 ... compatibility id 4: an iPhone's HLG-compatible stream (8.4).
    rec = bytes([1, 0, (8 << 1) | 0, (4 << 3) | 0b101, 4 << 4]) + bytes(19)
    dv = dolby_vision_record(rec)
    assert dv is not None
    assert (dv.profile, dv.level, dv.rpu, dv.enhancement_layer, dv.base_layer, dv.bl_compatibility_id) == \
        (8, 4, True, False, True, 4)


def _with_dolby_vision(src, dst, profile: int, compat: int) -> None:
    """A copy of an MP4 whose moov (its last box: FFmpeg writes it after mdat) ends with a
    Dolby Vision configuration box, as iPhones write one in the sample entry. Players and FFmpeg
    skip a box they do not expect there, so the file still plays."""
    data = bytearray(open(src, "rb").read())
    pos = 0
    while True:
        size, kind = struct.unpack_from(">I4s", data, pos)
        if kind == b"moov":
            break
        pos += size
    assert pos + size == len(data), "moov is not the last box"
    bits = (profile << 9) | (4 << 3) | 0b101  # level 4, RPU and base layer present
    record = bytes([1, 0]) + struct.pack(">H", bits) + bytes([compat << 4]) + bytes(19)
    box = struct.pack(">I4s", 8 + len(record), b"dvcC") + record
    struct.pack_into(">I", data, pos, size + len(box))
    open(dst, "wb").write(bytes(data + box))


def test_dolby_vision_in_a_file(clips, tmp_path):
    """Profile 8.4 (iPhone): reported, and its HLG base layer is what is rendered. Profile 5 (no
    base layer other players can show, tagged as nothing standard): refused, naming why."""
    from ecg_ray.errors import RenderError

    p84 = tmp_path / "dv84.mp4"
    _with_dolby_vision(clips["hlg"], p84, 8, 4)
    info = probe(str(p84))
    assert info.hdr is not None and info.hdr.dolby_vision is not None
    assert (info.hdr.dolby_vision.profile, info.hdr.dolby_vision.bl_compatibility_id) == (8, 4)
    assert info.dynamic_range == "hlg" and converts(info)
    p5 = tmp_path / "dv5.mp4"
    _with_dolby_vision(clips["ref"], p5, 5, 0)
    with pytest.raises(RenderError) as e:
        probe(str(p5))
    assert e.value.code == "invalid_input" and "Dolby Vision profile 5" in e.value.message
    assert probe(str(clips["ref"])).hdr is None


def test_dolby_vision_84_renders_as_its_hlg_base_layer(renderer, clips, sdr_captioned, tmp_path):
    src, out = tmp_path / "dv84.mp4", tmp_path / "dv84_out.mp4"
    _with_dolby_vision(clips["hlg"], src, 8, 4)
    res = renderer.render(str(src), CAPTION, str(out), RenderOptions(segments=1, quality=95))
    assert res.source_color is not None and res.source_color.hdr is not None
    assert res.source_color.hdr.dolby_vision is not None and res.source_color.hdr.dolby_vision.profile == 8
    _check_against_reference(rgb_frames(out), rgb_frames(clips["ref"]), sdr_captioned)
    _assert_sdr_tags(out)


def _check_against_reference(out_rgb: np.ndarray, ref_rgb: np.ndarray, captioned: np.ndarray) -> dict:
    assert len(out_rgb) == len(ref_rgb) == FRAMES
    assert frame_numbers_rgb(out_rgb) == list(range(FRAMES))
    lum = ref_rgb.mean(axis=3)
    # The caption's pixels: where the caption changed the SDR render strongly.
    cap = np.abs(captioned - ref_rgb).max(axis=3) > 60
    assert cap[25:].sum() > 2000 and cap[:25].sum() < 50  # a caption over the second second only
    diff = out_rgb - ref_rgb
    mid = (lum > 40) & (lum < 200) & ~cap
    black = (lum < 20) & ~cap
    got = {"mid_mae": np.abs(diff[mid]).mean(axis=0), "mid_bias": diff[mid].mean(axis=0),
           "black_mae": float(np.abs(diff[black]).mean()),
           "caption_mae": float(np.abs(out_rgb[cap] - captioned[cap]).mean())}
    assert got["mid_mae"].mean() < MID_MAE and (got["mid_mae"] < MID_MAE_CHANNEL).all(), got
    assert (np.abs(got["mid_bias"]) < MID_BIAS).all(), got
    assert got["black_mae"] < BLACK_MAE, got
    assert got["caption_mae"] < CAPTION_MAE, got
    return got


def _assert_sdr_tags(path) -> None:
    info = probe(str(path))
    assert (info.colorspace, info.color_primaries, info.color_trc, info.color_range) == \
        ("bt709", "bt709", "bt709", "tv")
    assert (info.bit_depth, info.pix_fmt, info.dynamic_range) == (8, "yuv420p", "sdr")
    with av.open(str(path)) as c:
        assert c.streams.video[0].codec_context.name == "h264"


@pytest.mark.parametrize("kind", list(KINDS))
def test_sources_come_out_as_the_sdr_clip(renderer, clips, sdr_captioned, tmp_path, kind):
    """Two segments (a join), the one-FFmpeg path: mid-tones, blacks and caption pixels close to
    the SDR clip's, BT.709 tags, every frame once in order, and the job reports both sides."""
    out = tmp_path / f"{kind}.mp4"
    res = renderer.render(str(clips[kind]), CAPTION, str(out), RenderOptions(segments=2, quality=95))
    assert res.frames == FRAMES
    _check_against_reference(rgb_frames(out), rgb_frames(clips["ref"]), sdr_captioned)
    _assert_sdr_tags(out)
    src = probe(str(clips[kind]))
    assert res.source_color == src.color_info() and res.output_color is not None
    assert res.output_color.dynamic_range == "sdr" and res.output_color.color_trc == "bt709"
    assert res.source_color.dynamic_range == {"hlg": "hlg", "pq": "pq"}.get(kind, "sdr")
    job = JobOutput.of(res, download_url="u", location=str(out), file_size=res.file_size)  # the service's result
    assert (job.source_color, job.output_color) == (res.source_color, res.output_color)
    assert leftover_processes(allowed_browsers=len(renderer.actors)) == []


def test_untreated_hdr_would_fail_these_checks(clips, sdr_captioned):
    """The checks can fail: the PQ source shown as SDR without tone mapping (what the pipeline
    wrote before) is far outside them."""
    with pytest.raises(AssertionError):
        _check_against_reference(rgb_frames(clips["pq"]), rgb_frames(clips["ref"]), sdr_captioned)


@pytest.mark.parametrize("kind", ["hlg", "pq"])
def test_relay_path_tone_maps_too(clips, sdr_captioned, tmp_path, kind):
    """A changed frame rate goes through decode.py's relay (Python composites the captions):
    the same tone mapping, captions after it."""
    from .test_burn import _segment

    out = tmp_path / f"relay-{kind}.mp4"
    res = _segment(clips[kind], (0, FRAMES), out, burn_in=False, scenario=CAPTION)
    assert res.frames == FRAMES and res.overlay_rows == 0
    _check_against_reference(rgb_frames(out), rgb_frames(clips["ref"]), sdr_captioned)
    _assert_sdr_tags(out)


def test_sdr_8bit_sources_are_not_converted(clips):
    info = probe(str(clips["ref"]))
    assert not converts(info)
    from ecg_ray.config import load_settings
    from ecg_ray.rendering.plan import output_format

    assert color_filter(info, output_format(info, RenderOptions(), load_settings())) is None


# -- HDR kept (options.dynamic_range "hdr") ---------------------------------------------------------

# Caption white at the format's reference white (BT.2408), 10-bit limited range: PQ of 203 cd/m2
# is 0.5807 (64 + 876 x 0.5807 = 573); HLG 75% is 64 + 876 x 0.75 = 721. The format's peak
# (a "blinding" white) would be 940.
REFERENCE_WHITE_CODE = {"pq": 573, "hlg": 721}
HDR10_PARAMS = ("-x265-params", "log-level=error:crf=10:hdr10=1:repeat-headers=1:max-cll=1000,400:master-display="
                                "G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,50)")


def _luma10(path) -> np.ndarray:
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray()[:270] for f in c.decode(video=0)]).astype(np.int32)


@pytest.fixture(scope="module")
def hdr10(clips, tmp_path_factory):
    """The PQ source with HDR10 side data, as Galaxy phones write it."""
    p = tmp_path_factory.mktemp("hdr10") / "hdr10.mp4"
    make_source(clips["ref"], "pq", p, HDR10_PARAMS)
    return p


def _check_hdr_kept(src_path, out_path, drange: str) -> None:
    src, out = probe(str(src_path)), probe(str(out_path))
    assert (out.codec, out.dynamic_range, out.color_primaries, out.colorspace, out.bit_depth, out.pix_fmt) == \
        ("hevc", drange, "bt2020", "bt2020nc", 10, "yuv420p10le")
    assert out.color_trc == src.color_trc
    if src.hdr is not None and src.hdr.mastering_display is not None:
        assert out.hdr is not None and out.hdr.mastering_display == src.hdr.mastering_display
        assert out.hdr.content_light == src.hdr.content_light
    # Decodes in FFmpeg (every frame, no error) and PyAV; every frame once, in order.
    ffmpeg.run(["-xerror", "-i", str(out_path), "-f", "null", "-"])
    s, o = _luma10(src_path), _luma10(out_path)
    assert len(o) == len(s) == FRAMES
    assert frame_numbers(out_path) == list(range(FRAMES))
    # The picture is the source's (no conversion): 10-bit luma within encoder noise, caption aside.
    assert float(np.abs(o[:25] - s[:25]).mean()) < 6.0
    # The caption's pixels: the brightest sit at the reference white, none near the peak.
    cap = np.abs(o[25:] - s[25:]) > 60
    assert cap.sum() > 5000 and (np.abs(o[:25] - s[:25]) > 60).sum() < 200
    white = REFERENCE_WHITE_CODE[drange]
    top = float(np.percentile(o[25:][cap], 99))
    assert abs(top - white) <= 12, (top, white)
    assert o[25:][cap].max() <= white + 40


@pytest.mark.parametrize("kind", ["hlg", "hdr10"])
def test_hdr_kept_with_side_data_and_captions_at_reference_white(renderer, clips, hdr10, tmp_path, kind):
    src = hdr10 if kind == "hdr10" else clips[kind]
    out = tmp_path / f"kept-{kind}.mp4"
    res = renderer.render(str(src), CAPTION, str(out), RenderOptions(segments=2, quality=95, dynamic_range="hdr"))
    assert res.encoder == "libx265" and res.output_color is not None
    drange = "pq" if kind == "hdr10" else "hlg"
    assert (res.output_color.dynamic_range, res.output_color.bit_depth) == (drange, 10)
    _check_hdr_kept(src, out, drange)
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.codec_tag == "hvc1"
    assert leftover_processes(allowed_browsers=len(renderer.actors)) == []


def test_hdr_kept_through_the_relay(clips, hdr10, tmp_path):
    from ecg_ray.media.models import EncoderSettings

    from .test_burn import _segment

    out = tmp_path / "relay-kept.mp4"
    res = _segment(hdr10, (0, FRAMES), out, burn_in=False, scenario=CAPTION,
                   options=RenderOptions(dynamic_range="hdr"),
                   enc=EncoderSettings(codec="libx265", quality=95, preset="ultrafast"))
    assert res.frames == FRAMES and res.overlay_rows == 0
    _check_hdr_kept(hdr10, out, "pq")


def test_hdr_asked_of_an_sdr_source_stays_sdr(renderer, clips, tmp_path):
    out = tmp_path / "sdr.mp4"
    res = renderer.render(str(clips["h264-10bit"]), CAPTION, str(out), RenderOptions(dynamic_range="hdr"))
    assert res.encoder == "libx264" and any("the output is SDR" in w for w in res.warnings)
    _assert_sdr_tags(out)


def test_hdr_kept_refuses_webm_and_a_named_encoder(renderer, clips, tmp_path):
    from ecg_ray.errors import RenderError

    for opts, says in ((RenderOptions(dynamic_range="hdr", format="webm"), "use mp4 or mov"),
                       (RenderOptions(dynamic_range="hdr", encoder="libx264"), "encoded by libx265")):
        with pytest.raises(RenderError) as e:
            renderer.render(str(clips["hlg"]), CAPTION, str(tmp_path / "x.mp4"), opts)
        assert e.value.code == "invalid_options" and says in e.value.message


def test_the_service_option():
    from pydantic import ValidationError

    from ecg_ray.service.models import JobOptions

    assert JobOptions().render_options().dynamic_range == "sdr"
    assert JobOptions(dynamic_range="hdr").render_options().dynamic_range == "hdr"
    assert JobOptions.model_validate({"dynamic_range": "hdr"}).unknown() == []
    with pytest.raises(ValidationError):
        JobOptions(dynamic_range="hlg")
