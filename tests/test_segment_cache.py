"""Re-render only what an edit changed (issue 28, part 2): a job whose video and settings equal an
earlier job's takes from the segment cache every segment no edited caption reaches, and the
result is byte for byte the full render of the edited scenario (x264 is deterministic). Edits
inside one segment, across a join, in a pre-roll window and to a plugin's timing; a damaged
entry rendered again; eviction by size and age on a local directory and on S3 (the loopback
server); the counts in the service's status, result and progress callbacks."""

from __future__ import annotations

import copy
import os
import time
from fractions import Fraction
from pathlib import Path

import httpx
import pytest

from ecg_ray.config import Settings
from ecg_ray.media.testclip import make_numbered_video
from ecg_ray.rendering.models import RenderOptions
from ecg_ray.service.segcache import LocalSegmentCache, S3SegmentCache, segment_cache
from ecg_ray.service.storage import S3Store

from .frames import caption_mask, frame_numbers, frames_for
from .receiver import Receiver
from .s3util import aws_env
from .serveutil import running_service, serving_directory, wait_healthy

FRAMES = 200  # 8 s at 25 fps; four segments of 2 s: [0, 2) [2, 4) [4, 6) [6, 8)
OPTS = RenderOptions(segments=4, quality=60)


def _cue(i: int, start: float, end: float, text: str, chain: list | None = None) -> dict:
    return {"id": f"c{i}", "track": "captions", "root": {"id": f"g{i}", "eType": "group", "children": [
        {"id": f"t{i}", "eType": "text", "text": text, "displayTime": [start, end],
         "layout": {"position": {"x": 0.5, "y": 0.88}, "anchor": "bc"}, "pluginChain": chain or []}]}}


BASE = {
    "version": "2.0", "timebase": {"unit": "seconds"}, "stage": {"baseAspect": "16:9"},
    "tracks": [{"id": "captions", "type": "subtitle", "layer": 1, "defaultStyle": {
        "fontFamily": "'Noto Sans CJK KR', sans-serif", "fontWeight": 700, "fontSizeRel": 0.09,
        "color": "#ffffff", "textShadow": "0 0 3px rgba(0,0,0,0.9)", "whiteSpace": "nowrap"}}],
    "cues": [
        _cue(0, 0.3, 1.5, "첫 자막 one", [{"name": "fadein", "timeOffset": ["0%", "-40%"]}]),  # segment 0
        _cue(1, 2.4, 3.4, "둘째 two"),                                                       # segment 1
        _cue(2, 3.5, 4.7, "across 조인"),                                                     # segments 1, 2
        # segments 2, 3: segment 3 starts inside it, so its page pre-rolls from 5.2
        _cue(3, 5.2, 6.9, "typewriter 타자기", [{"name": "typewriter", "timeOffset": ["0%", "-30%"]}]),
        _cue(4, 7.1, 7.8, "끝 end"),                                                          # segment 3
    ],
}


def _edit(fn) -> dict:
    sc = copy.deepcopy(BASE)
    fn(sc["cues"])
    return sc


def _text(cues: list, i: int, text: str) -> None:
    cues[i]["root"]["children"][0]["text"] = text


def _chain(cues: list, i: int, offset: list) -> None:
    cues[i]["root"]["children"][0]["pluginChain"][0]["timeOffset"] = offset


# (edit, segments reused out of 4)
EDITS = {
    "inside one segment": (lambda c: _text(c, 1, "고친 자막 fixed"), 3),
    "across a join": (lambda c: _text(c, 2, "across 고침"), 2),
    # the typewriter's pace changes what segment 3's pre-roll (5.2 -> 6.0) leaves on screen
    "in a pre-roll window": (lambda c: _chain(c, 3, ["0%", "-60%"]), 2),
    # fadein's window now outlasts the cue by its length (to 2.7 s): into segment 1
    "a plugin's timing": (lambda c: _chain(c, 0, ["0%", "100%"]), 2),
}


@pytest.fixture(scope="module")
def clip(media_dir) -> Path:
    p = media_dir / "cache-8s.mp4"
    make_numbered_video(str(p), FRAMES, Fraction(25), (320, 240), audio=True, beep_frames=(20, 120))
    return p


def _render(renderer, clip, scenario, out: Path, cache=None):
    return renderer.render(str(clip), scenario, str(out), OPTS, cache=cache)


def test_an_edit_re_renders_only_the_segments_it_reaches(renderer, clip, tmp_path):
    cache = LocalSegmentCache(str(tmp_path / "cache"), 1 << 30, 3600)
    first = _render(renderer, clip, BASE, tmp_path / "first.mp4", cache)
    assert first.segments == 4 and first.stats["reused_segments"] == 0
    assert frame_numbers(tmp_path / "first.mp4") == list(range(FRAMES))
    assert len([n for n in os.listdir(tmp_path / "cache") if n.endswith(".mp4")]) == 4

    again = _render(renderer, clip, BASE, tmp_path / "again.mp4", cache)
    assert again.stats["reused_segments"] == 4
    assert (tmp_path / "again.mp4").read_bytes() == (tmp_path / "first.mp4").read_bytes()

    for name, (edit, reused) in EDITS.items():
        scenario = _edit(edit)
        tag = name.replace(" ", "-").replace("'", "")
        inc = _render(renderer, clip, scenario, tmp_path / f"{tag}-inc.mp4", cache)
        full = _render(renderer, clip, scenario, tmp_path / f"{tag}-full.mp4")  # no cache: every segment
        assert inc.stats["reused_segments"] == reused, (name, inc.stats)
        assert full.stats["reused_segments"] == 0
        assert (tmp_path / f"{tag}-inc.mp4").read_bytes() == (tmp_path / f"{tag}-full.mp4").read_bytes(), name
        # and the edit shows: the output is not the first render's
        assert (tmp_path / f"{tag}-inc.mp4").read_bytes() != (tmp_path / "first.mp4").read_bytes(), name

    # The edited text is where its cue's time says, every source frame once, in order.
    out = tmp_path / "inside-one-segment-inc.mp4"
    assert frame_numbers(out) == list(range(FRAMES))
    mask = caption_mask(out, clip)
    want = set()
    for cue in BASE["cues"]:
        s, e = cue["root"]["children"][0]["displayTime"]
        want |= frames_for(s - 1e-9, e, Fraction(25), FRAMES)  # 5.2 as a float is a hair past frame 130
    shown = {n for n, m in enumerate(mask) if m}
    assert shown <= want and len(want - shown) <= 12, sorted(want - shown)  # fades and typing start blank


def test_a_damaged_entry_is_rendered_again(renderer, clip, tmp_path):
    root = tmp_path / "cache"
    cache = LocalSegmentCache(str(root), 1 << 30, 3600)
    _render(renderer, clip, BASE, tmp_path / "first.mp4", cache)
    victim = max(root.glob("*.mp4"), key=lambda p: p.stat().st_size)
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the middle of a picture
    victim.write_bytes(bytes(data))
    (sorted(root.glob("*.mp4"))[0] if sorted(root.glob("*.mp4"))[0] != victim
     else sorted(root.glob("*.mp4"))[1]).unlink()  # and one file gone with its record left
    again = _render(renderer, clip, BASE, tmp_path / "again.mp4", cache)
    assert again.stats["reused_segments"] == 2
    assert (tmp_path / "again.mp4").read_bytes() == (tmp_path / "first.mp4").read_bytes()
    # both entries were written again whole
    third = _render(renderer, clip, BASE, tmp_path / "third.mp4", cache)
    assert third.stats["reused_segments"] == 4


def _fill(cache, keys: list[str], size: int = 1000) -> None:
    for k in keys:
        cache.put(k, k.encode()[:8] * (size // 8))


def _key(n: int) -> str:
    return f"{n:064x}"


def test_local_cache_evicts_the_least_recently_used_beyond_its_size_and_the_old(tmp_path):
    cache = LocalSegmentCache(str(tmp_path / "c"), 3000, 3600)
    _fill(cache, [_key(1), _key(2), _key(3)])
    for age, k in enumerate([_key(3), _key(2), _key(1)]):  # written (and used) in this order, a second apart
        os.utime(tmp_path / "c" / f"{k}.json", (time.time() - 10 + age, time.time() - 10 + age))
    assert cache.get(_key(3)) is not None  # used now: the newest
    _fill(cache, [_key(4)])
    cache.evict()  # 4000 bytes in a 3000-byte cache: the least recently used (2) goes
    assert cache.get(_key(2)) is None
    assert all(cache.get(k) is not None for k in (_key(1), _key(3), _key(4)))
    with pytest.raises(ValueError):
        cache.get("../../etc/passwd")

    short = LocalSegmentCache(str(tmp_path / "s"), 1 << 20, 0.5)
    _fill(short, [_key(5)])
    assert short.get(_key(5)) is not None
    time.sleep(0.7)
    _fill(short, [_key(6)])
    assert short.get(_key(5)) is None  # past its lifetime: not used
    short.evict()
    assert sorted(os.listdir(tmp_path / "s")) == [f"{_key(6)}.json", f"{_key(6)}.mp4"]


def test_s3_cache_checks_its_entries_and_evicts(s3_server, monkeypatch):
    aws_env(monkeypatch)
    bucket = s3_server.create_bucket()
    settings = Settings(storage="s3", s3_bucket=bucket, s3_endpoint_url=s3_server.endpoint_url,
                        segment_cache_mb=1)
    cache = segment_cache(S3Store(settings), settings)
    assert isinstance(cache, S3SegmentCache) and cache.prefix == "renders/.segment-cache/"
    cache.max_bytes = 3000
    client = s3_server.client()
    for k in (_key(1), _key(2), _key(3)):
        _fill(cache, [k])
        time.sleep(1.1)  # LastModified counts whole seconds
    assert cache.get(_key(1)) == _key(1).encode()[:8] * 125  # and used now: the newest
    _fill(cache, [_key(4)])
    cache.evict()
    names = sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"])
    assert names == [f"renders/.segment-cache/{_key(n)}.mp4" for n in (1, 3, 4)]
    # an object whose bytes do not match its digest is a miss, and removed
    client.put_object(Bucket=bucket, Key=f"renders/.segment-cache/{_key(3)}.mp4", Body=b"x" * 1000,
                      Metadata={"sha256": "0" * 64, "written": f"{time.time():.3f}"})
    assert cache.get(_key(3)) is None
    assert f"renders/.segment-cache/{_key(3)}.mp4" not in {
        o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]}
    assert segment_cache(S3Store(settings), settings.model_copy(update={"segment_cache_mb": 0})) is None


def test_the_service_says_how_many_segments_were_reused(tmp_path, media_dir, clip):
    rx = Receiver().start()
    try:
        with serving_directory(media_dir) as media, running_service(
                tmp_path, ECG_SEGMENT_CACHE_MB="64", ECG_CALLBACK_INTERVAL_S="0.2") as (url, _):
            http = httpx.Client(base_url=url, timeout=60)
            wait_healthy(http)

            def run(job_id: str, scenario: dict) -> dict:
                r = http.post("/api/render/process", json={
                    "job_id": job_id, "video_url": f"{media}/{clip.name}", "scenario": scenario,
                    "options": {"segments": 4, "quality": 60}, "callback_url": rx.url_for("/cb")})
                assert r.status_code == 200, r.text
                deadline = time.monotonic() + 240
                while time.monotonic() < deadline:
                    st = http.get(f"/api/render/{job_id}/status").json()
                    if st["state"] in ("completed", "failed", "cancelled"):
                        assert st["state"] == "completed", st
                        return st
                    time.sleep(0.2)
                raise AssertionError(f"{job_id} did not end")

            first = run("cache-first", BASE)
            assert first["segments"] == 4 and first["reused_segments"] == 0
            assert first["result"]["reused_segments"] == 0
            stages = first["result"]["stages"]
            assert set(stages) == {"prepare", "plan", "segments", "join", "side_files", "store"}, stages
            assert all(v >= 0 for v in stages.values()) and stages["segments"] > 0
            assert sum(stages.values()) <= first["finished_at"] - first["created_at"] + 0.05
            edited = run("cache-edited", _edit(EDITS["inside one segment"][0]))
            assert edited["segments"] == 4 and edited["reused_segments"] == 3
            assert edited["result"]["reused_segments"] == 3
            got = http.get(edited["result"]["download_url"])
            assert got.status_code == 200
            (tmp_path / "edited.mp4").write_bytes(got.content)
            assert frame_numbers(tmp_path / "edited.mp4") == list(range(FRAMES))
            assert rx.wait_for(lambda rs: any(r.json.get("status") == "completed" for r in rs
                                              if r.job_id == "cache-edited"), 60)
            # Progress callbacks carry the counts once the job is planned (the edited job is over
            # in well under a second, before a throttled progress callback: the first job's).
            progress = [e.json for e in rx.events("cache-first")
                        if e.json.get("status") == "processing" and "reused_segments" in e.json]
            assert progress and all(p["reused_segments"] == 0 and p["segments"] == 4 for p in progress)
            events = rx.events("cache-edited")
            final = [e.json for e in events if e.json.get("status") == "completed"][0]
            assert final["result"]["reused_segments"] == 3, final
            http.close()
    finally:
        rx.stop()
