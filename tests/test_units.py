"""Fast checks of probing, scenario normalization and planning (no Ray, no browser)."""

from __future__ import annotations

from fractions import Fraction

import pytest

from ecg_ray import RenderError, RenderOptions, normalize, probe
from ecg_ray.config import Settings, load_settings
from ecg_ray.media import ffmpeg
from ecg_ray.media.encode import quality_to_crf
from ecg_ray.media.testclip import make_numbered_video
from ecg_ray.rendering.plan import output_format, plan_segments, segment_count, source_frame_map
from ecg_ray.scenario.model import END_EPSILON
from ecg_ray.scenario.normalize import wrap_lines


def test_probe_keeps_fractional_rate_exact(media_dir):
    p = media_dir / "u_ntsc.mp4"
    make_numbered_video(str(p), 30, Fraction(30000, 1001), (160, 120), audio=False)
    info = probe(str(p))
    assert (info.fps_num, info.fps_den) == (30000, 1001)
    assert info.frame_count == 30 and not info.vfr
    assert abs(info.duration - 30 * 1001 / 30000) < 1e-3


def test_probe_rotation_swaps_display_size(media_dir, tmp_path):
    src = media_dir / "u_rot_src.mp4"
    make_numbered_video(str(src), 10, Fraction(25), (160, 96), audio=False)
    rot = tmp_path / "rot.mp4"
    ffmpeg.run(["-display_rotation", "90", "-i", str(src), "-c", "copy", "-y", str(rot)])
    info = probe(str(rot))
    assert info.rotation in (90, 270)
    assert (info.width, info.height) == (96, 160)


def test_probe_audio_streams(numbered):
    info = probe(str(numbered))
    assert [a.codec for a in info.audio] == ["aac"]
    assert info.audio[0].sample_rate == 48000


def test_probe_no_video_stream(tmp_path):
    wav = tmp_path / "tone.m4a"
    ffmpeg.run(["-f", "lavfi", "-i", "sine=d=0.5", "-c:a", "aac", "-y", str(wav)])
    with pytest.raises(RenderError, match="has no video stream"):
        probe(str(wav))


def test_simple_shape_becomes_v2_with_default_style():
    sc = normalize({"version": "1.3", "cues": [{"start": 0, "end": 5, "text": "Hello 안녕"}]})
    s = sc.scenario
    assert s["version"] == "2.0"
    node = s["cues"][0]["root"]["children"][0]
    assert node["text"] == "Hello 안녕"
    assert node["displayTime"] == [0.0, 5.0 - END_EPSILON]  # half-open
    assert node["layout"]["anchor"] == "bc" and node["layout"]["position"]["y"] <= 0.9
    assert "Noto Sans CJK KR" in s["tracks"][0]["defaultStyle"]["fontFamily"]
    assert sc.cue_ranges == [(0.0, 5.0)]


def test_long_lines_wrap_inside_the_frame():
    text = "아주 긴 자막 " * 20
    lines = wrap_lines(text.strip(), 20)
    assert len(lines) > 1 and all(len(line) <= 25 for line in lines)
    assert " ".join(lines).split() == text.split()
    sc = normalize({"version": "1.3", "cues": [{"start": 0, "end": 1, "text": text}]})
    children = sc.scenario["cues"][0]["root"]["children"]
    ys = [c["layout"]["position"]["y"] for c in children]
    assert ys == sorted(ys) and len(ys) == len(children) > 1


def _one_node(chain: list) -> dict:
    return {
        "version": "2.0", "timebase": {"unit": "seconds"}, "stage": {"baseAspect": "16:9"},
        "tracks": [{"id": "t", "type": "subtitle", "layer": 1}],
        "cues": [{"id": "c", "track": "t", "root": {"id": "g", "eType": "group", "children": [
            {"id": "x", "eType": "text", "text": "a", "displayTime": [1, 2], "pluginChain": chain}]}}],
    }


def test_plugin_aliases_and_unknown_plugins():
    sc = normalize(_one_node([{"name": "fadeIn"}, {"name": "fadein@1.0.0"}, {"name": "pop"}]))
    chain = sc.scenario["cues"][0]["root"]["children"][0]["pluginChain"]
    assert [p["name"] for p in chain] == ["fadein", "fadein", "scalepop"]
    with pytest.raises(RenderError) as ei:
        normalize(_one_node([{"name": "fadeIn"}, {"name": "no-such-plugin"}]))
    assert ei.value.code == "invalid_scenario"
    assert ei.value.message.startswith("cues[0].root.children[0].pluginChain[1].name: ")
    assert "'no-such-plugin' is not installed" in ei.value.message


def test_active_start_for_preroll():
    sc = normalize({"version": "1.3", "cues": [{"start": 1, "end": 3, "text": "a"}, {"start": 2, "end": 4, "text": "b"}]})
    assert sc.active_start(2.5) == 1.0
    assert sc.active_start(3.5) == 2.0
    assert sc.active_start(4.0) is None


def test_segments_cover_every_frame_once():
    for frames, count in [(100, 3), (7, 7), (10, 1), (1000, 64)]:
        segs = plan_segments("j", frames, count)
        assert segs[0].start_frame == 0 and segs[-1].end_frame == frames
        assert all(a.end_frame == b.start_frame for a, b in zip(segs, segs[1:]))
        assert all(s.frames > 0 for s in segs)


def test_segment_count_is_a_function_of_the_video_and_the_settings():
    """The same video is cut at the same frames whatever the cluster holds or does (the
    segment cache needs it): the count depends on the length and the settings only."""
    s = Settings(min_segment_seconds=2.0, segments_per_job=16, max_segment_seconds=20.0, max_segments=64)
    assert segment_count(150, 30.0, s, None) == 2        # 5 s: none shorter than 2 s
    assert segment_count(450, 30.0, s, None) == 7        # 15 s
    assert segment_count(900, 30.0, s, None) == 8        # 30 s: 15 rounded down to whole rounds of 8
    assert segment_count(1800, 30.0, s, None) == 16      # 60 s
    assert segment_count(18000, 30.0, s, None) == 32     # 10 min: 16 would be 37.5 s each, over 20
    assert segment_count(432000, 30.0, s, None) == 64    # 4 h: ECG_MAX_SEGMENTS
    assert segment_count(30, 30.0, s, None) == 1
    assert segment_count(1800, 30.0, s, 12) == 12        # a count the caller asked for wins
    assert segment_count(5, 30.0, s, 12) == 5            # never more than the frames
    long = Settings(min_segment_seconds=2.0, segments_per_job=16, max_segment_seconds=0)
    assert segment_count(18000, 30.0, long, None) == 16  # no longest segment


def test_settings_with_a_few_choices_refuse_anything_else(monkeypatch):
    """ECG_HWDEC and ECG_ENCODER take one of a few words: a typo is refused when the settings are
    read, naming the variable and the choices, instead of quietly meaning the default."""
    monkeypatch.setenv("ECG_HWDEC", "auto")
    monkeypatch.setenv("ECG_ENCODER", "libx264")
    assert (load_settings().hwdec, load_settings().encoder) == ("auto", "libx264")
    monkeypatch.setenv("ECG_HWDEC", "nvdec")
    with pytest.raises(ValueError, match=r"ECG_HWDEC='nvdec' is not one of none, cuda, auto"):
        load_settings()
    monkeypatch.setenv("ECG_HWDEC", "none")
    monkeypatch.setenv("ECG_ENCODER", "x264")
    with pytest.raises(ValueError, match=r"ECG_ENCODER='x264' is not one of auto, libx264, h264_nvenc"):
        load_settings()


def test_frame_map_identity_and_rate_change(numbered):
    src = probe(str(numbered))
    s = load_settings()
    same = output_format(src, RenderOptions(), s)
    assert source_frame_map(src, same) == list(range(100))
    double = output_format(src, RenderOptions(fps=50), s)
    assert double.frame_count == 200
    assert source_frame_map(src, double) == [n // 2 for n in range(200)]
    assert source_frame_map(src, double, 37, 61) == [n // 2 for n in range(37, 61)]  # one segment's range
    ntsc = output_format(src, RenderOptions(fps=29.97), s)
    assert (ntsc.fps_num, ntsc.fps_den) == (30000, 1001)


def test_output_sizes_are_even_and_bounded(numbered):
    src = probe(str(numbered))
    s = load_settings()
    assert (output_format(src, RenderOptions(width=333), s).width) % 2 == 0
    out = output_format(src, RenderOptions(width=333), s)
    assert out.height == 250  # 333 * 240 / 320 = 249.75 -> even
    with pytest.raises(RenderError, match="exceeds the limit"):
        output_format(src, RenderOptions(width=7680, height=4320), s)


def test_quality_maps_monotonically_to_crf():
    crfs = [quality_to_crf(q) for q in range(0, 101, 10)]
    assert crfs == sorted(crfs, reverse=True)
    assert quality_to_crf(100) < quality_to_crf(70) < quality_to_crf(0)


def _placed(*layouts, define=None) -> dict:
    """A v2.0 scenario with one cue per layout (None: a cue placed nowhere)."""
    cues = []
    for i, layout in enumerate(layouts):
        node = {"id": f"t{i}", "eType": "text", "text": "x", "displayTime": [i, i + 1]}
        if layout is not None:
            node["layout"] = layout
        cues.append({"id": f"c{i}", "track": "t", "root": {"id": f"g{i}", "eType": "group", "children": [node]}})
    sc = {"version": "2.0", "timebase": {"unit": "seconds"}, "stage": {"baseAspect": "16:9"},
          "tracks": [{"id": "t", "type": "subtitle", "layer": 1}], "cues": cues}
    if define:
        sc["define"] = define
    return sc


def test_lower_half_only_decides_the_overlay_band():
    """The overlay band is used only where every cue is placed in the frame's lower half."""
    assert normalize({"version": "1.3", "cues": [{"start": 0, "end": 1, "text": "안녕"}]}).lower_half_only()
    low = {"position": {"x": 0.5, "y": 0.9}, "anchor": "bc"}
    assert normalize(_placed(low, {"position": [0.5, 0.8]})).lower_half_only()
    assert not normalize(_placed(low, {"position": {"x": 0.5, "y": 0.2}})).lower_half_only()  # a title up top
    assert not normalize(_placed(low, None)).lower_half_only()  # placed nowhere: cannot tell
    assert normalize(_placed({"position": "define.pos"}, define={"pos": {"x": 0.5, "y": 0.85}})).lower_half_only()
    assert not normalize(_placed({"position": "define.pos"}, define={"pos": [0.5, 0.1]})).lower_half_only()


def test_decoder_threads_are_capped_by_the_setting_and_the_cores_this_process_may_use(monkeypatch):
    import os

    from ecg_ray.media import decode

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)))
    assert decode.decoder_threads(4) == ["-threads", "4"]   # 16 cores: the setting, not FFmpeg's 17
    assert decode.decoder_threads(0) == []                  # FFmpeg's own choice
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    assert decode.decoder_threads(4) == ["-threads", "3"]   # 2 cores: no more than FFmpeg would start
    assert load_settings().decoder_threads == 4
    monkeypatch.setenv("ECG_DECODER_THREADS", "0")
    assert load_settings().decoder_threads == 0


def test_overlay_timeline_only_where_ffmpeg_counts_the_video_frames():
    """burn.py keeps its enable expression only on FFmpeg 9.0+ (5.1's counted the caption
    pictures: tests/test_image.py found it); the version comes from the binary in use."""
    from ecg_ray.media import burn

    assert not burn.timeline_usable((5, 1)) and not burn.timeline_usable((8, 9))
    assert burn.timeline_usable((9, 0)) and burn.timeline_usable((10, 0))
    assert burn.timeline_usable(())  # a git snapshot says no version: taken to be recent
    first = ffmpeg.run(["-version"]).stdout.decode().split()[2]
    assert ".".join(map(str, ffmpeg.version())) == ".".join(first.lstrip("n").split(".")[:2])
