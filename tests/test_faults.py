"""Faults while a job renders, on a real local Ray with real Chromium and FFmpeg: a segment actor
killed, Chromium hanging, FFmpeg killed (once, and on every try), the temp disk full.

Each job either completes with the very video a clean run gives (frame by frame, and byte for
byte: see ``assert_same_video``) or fails with a clear code; afterwards no FFmpeg runs, no Chromium
beyond the warm actors' is left, no temp file is left, and the pool renders the next job.

The actors' temp directory (ECG_TMP_DIR) is a small tmpfs mounted by the module when this machine
allows it (root), so that the disk-full test fills a real filesystem; otherwise a plain directory,
and that one test is skipped.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import psutil
import pytest
import ray

from ecg_ray import RenderError, RenderOptions
from ecg_ray.config import load_settings
from ecg_ray.media.testclip import make_numbered_video
from ecg_ray.rendering.renderer import Renderer

from .conftest import leftover_processes
from .frames import caption_mask, frame_numbers
from .test_render import CUES, expected_caption_frames

FRAMES = 750
# A new caption on every frame: every frame is a capture, and 30 s of them keep a segment running
# for seconds, so a fault injected at the first progress report lands mid-segment (150 frames
# took 1.7 s on 2 cores, the first report already past half of them).
BUSY = {"version": "1.3", "cues": [{"start": i / 25, "end": (i + 1) / 25, "text": f"자막 {i}"}
                                   for i in range(FRAMES)]}
TMPFS_BYTES = 64 * 1024 * 1024


# -- the module's Ray, renderer and temp filesystem ------------------------------------------------

@pytest.fixture(scope="module")
def env():
    base = Path(tempfile.mkdtemp(prefix="faults-"))
    tmp = base / "tmp"
    tmp.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_BYTES},mode=1777", "tmpfs", str(tmp)],
                             capture_output=True).returncode == 0
    r = None
    try:
        if ray.is_initialized():
            ray.shutdown()
        # address="local": a Ray of our own even if another cluster on this machine is announced
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"ECG_TMP_DIR": str(tmp)}})
        # One capture lane: the faults are injected at a progress report and must land while
        # the browser still captures; with lanes a segment's runs ahead are captured together
        # early, and the browser may be done before the encoder reaches half the frames. (The
        # lanes' page calls go through the same timeouts and retries: overlay.lane_events.)
        settings = load_settings().model_copy(update=dict(tmp_dir=str(tmp), capture_lanes=1))
        r = Renderer(max_actors=2, settings=settings)
        r.ensure_actors(2)
        yield {"renderer": r, "tmp": tmp, "base": base, "tmpfs": mounted}
    finally:
        if r is not None:
            r.close()
        ray.shutdown()
        if mounted:
            subprocess.run(["umount", "-l", str(tmp)], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def busy(media_dir) -> Path:
    p = media_dir / "faults_busy.mp4"
    make_numbered_video(str(p), FRAMES, Fraction(25), (320, 240), audio=False)
    return p


@pytest.fixture(scope="module")
def reference(env, busy) -> Path:
    """The busy job rendered with no fault: what every recovered job must give."""
    out = env["base"] / "reference.mp4"
    env["renderer"].render(str(busy), BUSY, str(out), RenderOptions(segments=2))
    assert frame_numbers(out) == list(range(FRAMES))
    return out


# -- helpers -----------------------------------------------------------------------------------------

def yuv_frames(path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as c:
        return [f.to_ndarray(format="yuv420p") for f in c.decode(c.streams.video[0])]


def assert_same_video(got: Path, want: Path) -> None:
    """Every decoded frame (Y, Cb and Cr) identical, then the file identical byte for byte.

    Bytes can be compared, not only pixels: libx264 gives the same stream for the same frames,
    settings and thread count (it is only non-deterministic when asked to be), the MP4 muxer
    writes no wall-clock time, and the join is a stream copy. The captions are the same PNGs
    from any Chromium (tests/test_still.py: a still is the same image in another process). So a
    differing byte means a differing frame, GOP or timestamp: a segment that was not re-rendered
    from its start. Frames are compared first only for a clearer message."""
    a, b = yuv_frames(got), yuv_frames(want)
    assert len(a) == len(b), (len(a), len(b))
    differ = [i for i, (x, y) in enumerate(zip(a, b)) if not np.array_equal(x, y)]
    assert differ == [], f"frames differ from the clean run: {differ[:20]}"
    assert got.read_bytes() == want.read_bytes(), "same frames but different bytes"


def actor_pid(r: Renderer, actor) -> int | None:
    info = r.actor_info.get(id(actor))  # None while the actor is still starting
    return info["pid"] if info else None


def browser_pids(r: Renderer) -> list[int]:
    return [p for a in r.actors for p in ray.get(a.browser_pids.remote())]


def ffmpegs(under: int | None = None, contains: str = "") -> list[psutil.Process]:
    """FFmpeg processes under this test process (or under pid ``under``) whose command line has ``contains``."""
    root = psutil.Process(under) if under else psutil.Process()
    found = []
    for p in root.children(recursive=True):
        try:
            if "ffmpeg" in p.name() and contains in " ".join(p.cmdline()):
                found.append(p)
        except psutil.Error:
            continue
    return found


def gone(pids, timeout: float = 10.0) -> list[int]:
    """Of ``pids``, those still running (zombies count as gone) after up to ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        left = []
        for pid in pids:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    left.append(pid)
            except psutil.NoSuchProcess:
                pass
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


def temp_leftovers(env) -> list[str]:
    """Everything under the actors' temp dir but the live actors' own (empty) work directories."""
    tmp = env["tmp"]
    live = {str(actor_pid(env["renderer"], a)) for a in env["renderer"].actors}
    left = []
    for name in os.listdir(tmp):
        path = tmp / name
        owner = name.split("-")[1] if name.startswith("ecg-") else ""
        if name.startswith("ecg-") and "-actor-" in name and owner in live and path.is_dir():
            left += [str(path / f) for f in os.listdir(path)]
        else:
            left.append(str(path))
    return left


def wait_clean(env, timeout: float = 15.0) -> None:
    """No FFmpeg, no Chromium beyond the two warm actors', no temp file (allowing a moment for
    cancelled segments to wind down)."""
    deadline = time.monotonic() + timeout
    while True:
        procs, files = leftover_processes(allowed_browsers=2), temp_leftovers(env)
        if (not procs and not files) or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    assert procs == [], procs
    assert files == [], files
    assert len(browser_pids(env["renderer"])) == 2


# -- 1. a segment actor killed mid-segment -------------------------------------------------------------

def test_segment_actors_killed_mid_segment_are_replaced_and_the_video_is_identical(env, busy, reference):
    """One actor is ``ray.kill``ed and the other SIGKILLed while both render: the pipeline renders
    both segments again on new actors, and the video is the clean run's."""
    r = env["renderer"]
    before = list(r.actors)
    victims: dict[str, dict] = {}

    def on_progress(p):
        if victims or p.stage != "rendering" or not 0 < p.frames_done < FRAMES // 2:
            return
        pids = [actor_pid(r, a) for a in before]
        if not all(ffmpegs(under=pid) for pid in pids):
            return  # one has not started its segment yet: the next report
        for how, actor, pid in zip(("ray.kill", "SIGKILL"), before, pids):
            victims[how] = {"pid": pid, "children": [c.pid for c in psutil.Process(pid).children(recursive=True)]}
            if how == "ray.kill":
                ray.kill(actor)
            else:
                os.kill(pid, signal.SIGKILL)

    out = env["base"] / "actor_killed.mp4"
    res = r.render(str(busy), BUSY, str(out), RenderOptions(segments=2), on_progress=on_progress)
    assert victims, "the actors were never killed (render too fast for the test)"
    # Both were replaced by new actors (new processes) during this job.
    assert not set(map(id, r.actors)) & set(map(id, before))
    now = {actor_pid(r, a) for a in r.actors}
    assert not now & {v["pid"] for v in victims.values()}
    assert res.frames == FRAMES and frame_numbers(out) == list(range(FRAMES))
    assert_same_video(out, reference)
    # The dead actors' Chromium and FFmpeg went with them; their temp dirs were swept by the new ones.
    for how, v in victims.items():
        assert gone([v["pid"], *v["children"]]) == [], how
    wait_clean(env)


# -- 2. Chromium hanging mid-segment -------------------------------------------------------------------

def test_hung_chromium_is_killed_and_the_segment_rendered_again(env, busy, reference):
    """SIGSTOP one actor's Chromium while it captures: the page call times out, the actor kills
    the stopped browser itself (nothing here resumes or kills it), starts a new one and renders
    the segment again; the video is the clean run's."""
    from ecg_ray.capture.browser import PAGE_CALL_TIMEOUT_S

    r = env["renderer"]
    actors = list(r.actors)
    stopped: list[int] = []

    def on_progress(p):
        if not stopped and p.stage == "rendering" and 0 < p.frames_done < FRAMES // 2:
            pid = ray.get(actors[0].browser_pids.remote())[0]
            os.kill(pid, signal.SIGSTOP)
            stopped.append(pid)

    out = env["base"] / "hung.mp4"
    t0 = time.monotonic()
    res = r.render(str(busy), BUSY, str(out), RenderOptions(segments=2), on_progress=on_progress)
    took = time.monotonic() - t0
    assert stopped, "the browser was never stopped (render too fast for the test)"
    assert res.stats["browser_restarts"] >= 1
    assert took >= PAGE_CALL_TIMEOUT_S, took   # it was the hang that was noticed, not a crash
    assert [id(a) for a in r.actors] == [id(a) for a in actors]  # the same actors: retried inside
    assert gone(stopped, timeout=1) == [], "the stopped Chromium is still there"
    assert stopped[0] not in browser_pids(r)
    assert_same_video(out, reference)
    wait_clean(env)


def test_cancel_while_the_browser_hangs_ends_the_job_at_once(env, busy):
    """SIGSTOP a browser mid-segment, then cancel the job: the actor kills the stuck browser
    after CANCEL_GRACE_S instead of waiting for the page-call timeout, the job ends as
    cancelled within seconds, and the next job renders on a new browser."""
    from ecg_ray.capture.browser import PAGE_CALL_TIMEOUT_S

    r = env["renderer"]
    actors = list(r.actors)
    stopped: list[int] = []
    cancel = threading.Event()
    cancelled_at: list[float] = []

    def on_progress(p):
        if not stopped and p.stage == "rendering" and 0 < p.frames_done < FRAMES // 2:
            pid = ray.get(actors[0].browser_pids.remote())[0]
            os.kill(pid, signal.SIGSTOP)
            stopped.append(pid)
            time.sleep(0.5)  # the segment is now stuck in a page call
            cancelled_at.append(time.monotonic())
            cancel.set()

    with pytest.raises(RenderError) as ei:
        r.render(str(busy), BUSY, str(env["base"] / "hung_cancel.mp4"), RenderOptions(segments=2),
                 on_progress=on_progress, cancel=cancel)
    took = time.monotonic() - cancelled_at[0]
    assert ei.value.code == "cancelled", ei.value
    assert took < PAGE_CALL_TIMEOUT_S / 2, f"the cancel took {took:.1f}s"
    assert gone(stopped, timeout=5) == [], "the stopped Chromium is still there"
    res = r.render(str(busy), BUSY, str(env["base"] / "after_cancel.mp4"), RenderOptions(segments=2))
    assert res.frames == FRAMES and frame_numbers(env["base"] / "after_cancel.mp4") == list(range(FRAMES))
    assert not (env["base"] / "hung_cancel.mp4").exists()
    wait_clean(env)


def test_join_actor_killed_is_replaced_and_the_video_is_identical(env, busy, reference):
    """SIGKILL the join actor (Finalizer) as soon as its process shows up: a new one joins the
    segment files, which are still in the object store; the video is the clean run's."""
    killed: list[int] = []

    def on_progress(p):
        if p.stage != "joining" or killed:
            return

        def hunt() -> None:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not killed:
                for q in psutil.process_iter(["cmdline"]):
                    if "ray::Finalizer" in " ".join(q.info["cmdline"] or []):
                        q.kill()
                        killed.append(q.pid)
                        return
                time.sleep(0.005)

        threading.Thread(target=hunt, daemon=True).start()

    out = env["base"] / "join_killed.mp4"
    res = env["renderer"].render(str(busy), BUSY, str(out), RenderOptions(segments=2), on_progress=on_progress)
    assert killed, "the join actor was never seen"
    assert res.stats.get("join_retries") == 1, res.stats
    assert_same_video(out, reference)
    assert gone(killed, timeout=5) == []
    wait_clean(env)


# -- 3. FFmpeg killed mid-segment ------------------------------------------------------------------------

def test_ffmpeg_killed_once_is_retried_in_the_actor(env, busy, reference):
    """SIGKILL the encoder of segment 0 and the decoder of segment 1 while they work: each actor
    renders its segment once more (same actor, same browser) and the video is the clean run's."""
    r = env["renderer"]
    actors = list(r.actors)
    pids = {actor_pid(r, a) for a in actors}
    killed: dict[str, list] = {}

    def on_progress(p):
        if killed or p.stage != "rendering" or not 0 < p.frames_done < FRAMES // 2:
            return
        enc = ffmpegs(contains=f"{p.job_id}-0000.mp4")
        dec = [q for q in ffmpegs(contains="pipe:1") if enc and q.ppid() in pids and q.ppid() != enc[0].ppid()]
        if len(enc) != 1 or len(dec) != 1:
            return  # a segment not started yet: the next report
        for what, proc in (("encoder", enc[0]), ("decoder", dec[0])):
            killed[what] = [proc.pid, proc.cmdline()]
            proc.send_signal(signal.SIGKILL)

    out = env["base"] / "ffmpeg_once.mp4"
    res = r.render(str(busy), BUSY, str(out), RenderOptions(segments=2), on_progress=on_progress)
    assert set(killed) == {"encoder", "decoder"}, "FFmpeg was never killed (render too fast for the test)"
    assert [id(a) for a in r.actors] == [id(a) for a in actors]
    assert {actor_pid(r, a) for a in r.actors} == pids
    assert res.frames == FRAMES and res.stats["browser_restarts"] == 0
    assert_same_video(out, reference)
    wait_clean(env)


def test_ffmpeg_crashing_again_fails_the_job_cleanly_and_spares_the_other_job(env, busy, numbered):
    """Every encoder of one job is killed (the retry crashes too): that job fails with
    encoder_failed; a job rendering at the same time on the same actors completes correctly."""
    r = env["renderer"]
    pids = {actor_pid(r, a) for a in r.actors}
    victim, other = "crashy-job", "bystander-job"
    kills: list[int] = []
    stop = threading.Event()

    def killer():
        while not stop.is_set():
            for p in ffmpegs(contains=f"{victim}-"):  # its encoders write {job_id}-{segment}.mp4
                try:
                    if time.time() - p.create_time() > 0.3:  # mid-work, not at its start
                        p.send_signal(signal.SIGKILL)
                        kills.append(p.pid)
                except psutil.Error:
                    pass
            time.sleep(0.05)

    results: dict[str, object] = {}

    def run(job_id, src, scenario):
        try:
            results[job_id] = r.render(str(src), scenario, str(env["base"] / f"{job_id}.mp4"),
                                       RenderOptions(segments=2), job_id=job_id)
        except BaseException as exc:  # noqa: BLE001
            results[job_id] = exc

    k = threading.Thread(target=killer, daemon=True)
    k.start()
    jobs = [threading.Thread(target=run, args=(victim, busy, BUSY)),
            threading.Thread(target=run, args=(other, numbered, CUES))]
    try:
        for t in jobs:
            t.start()
            time.sleep(0.5)
        for t in jobs:
            t.join(240)
    finally:
        stop.set()
        k.join(5)
    err = results[victim]
    assert isinstance(err, RenderError), err
    assert err.code == "encoder_failed" and "crashed again" in err.message and "SIGKILL" in err.message, err
    assert len(kills) >= 2
    assert not (env["base"] / f"{victim}.mp4").exists()
    ok = results[other]
    assert not isinstance(ok, BaseException), ok
    out = env["base"] / f"{other}.mp4"
    assert frame_numbers(out) == list(range(100))
    assert {i for i, m in enumerate(caption_mask(out, numbered)) if m} == expected_caption_frames()
    assert {actor_pid(r, a) for a in r.actors} == pids  # the pool was not harmed
    wait_clean(env)


# -- 4. the disk full ----------------------------------------------------------------------------------

@pytest.mark.parametrize("where", ["segments", "join"])
def test_full_temp_disk_fails_clearly_and_the_pool_still_works(env, numbered, where):
    """The actors' temp filesystem fills up: with 16 KiB left the segment encoders hit it; with
    room for the segments (1.5 times the video) but not for them and the joined file, the join
    does. Either way: storage_failed saying "No space left on device", no temp file left behind,
    and once there is space again the same actors render the next job."""
    if not env["tmpfs"]:
        pytest.skip("cannot mount a tmpfs here (needs root): no real filesystem to fill")
    r = env["renderer"]
    tmp = env["tmp"]
    pids = {actor_pid(r, a) for a in r.actors}
    clean = env["base"] / f"before_full_{where}.mp4"
    r.render(str(numbered), CUES, str(clean), RenderOptions(segments=2))
    leave = 16 * 1024 if where == "segments" else clean.stat().st_size * 3 // 2
    filler = tmp / "filler"
    st = os.statvfs(tmp)
    with open(filler, "wb") as fh:
        os.posix_fallocate(fh.fileno(), 0, st.f_bavail * st.f_frsize - leave)
    try:
        out = env["base"] / f"full_{where}.mp4"
        with pytest.raises(RenderError) as ei:
            r.render(str(numbered), CUES, str(out), RenderOptions(segments=2))
        assert ei.value.code == "storage_failed", ei.value
        assert "No space left on device" in ei.value.message, ei.value
        assert ("encoder" if where == "segments" else "join") in ei.value.message, ei.value
        assert not out.exists()
        os.remove(filler)
        wait_clean(env)
    finally:
        if filler.exists():
            os.remove(filler)
    # Space again: the same actors render the next job.
    after = env["base"] / f"after_full_{where}.mp4"
    r.render(str(numbered), CUES, str(after), RenderOptions(segments=2))
    assert frame_numbers(after) == list(range(100))
    assert after.read_bytes() == clean.read_bytes()
    assert {actor_pid(r, a) for a in r.actors} == pids
    wait_clean(env)
