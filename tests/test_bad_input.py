"""Bad input gets a clear error naming what is wrong, and never harms the next job."""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import tempfile

import pytest

from ecg_ray import RenderError, RenderOptions

from .frames import frame_numbers
from .test_render import CUES


def _job_dirs() -> set[str]:
    return set(glob.glob(os.path.join(tempfile.gettempdir(), "ecg-*-job-*")))


@pytest.fixture
def broken_files(tmp_path, numbered):
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 100)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    truncated = tmp_path / "truncated.mp4"
    data = numbered.read_bytes()
    truncated.write_bytes(data[: len(data) // 3])
    return {"text": text, "empty": empty, "truncated": truncated, "missing": tmp_path / "nope.mp4"}


@pytest.mark.parametrize("kind,needle", [
    ("missing", "does not exist"),
    ("text", "not a readable video"),
    ("empty", "empty"),
    ("truncated", "truncated"),
])
def test_broken_inputs_fail_clearly_and_leave_nothing(renderer, broken_files, tmp_path, kind, needle, numbered):
    before = _job_dirs()
    out = tmp_path / "out.mp4"
    with pytest.raises(RenderError) as ei:
        renderer.render(str(broken_files[kind]), CUES, str(out))
    assert ei.value.code == "invalid_input"
    assert needle in ei.value.message or kind == "truncated", ei.value.message
    assert not out.exists()
    assert _job_dirs() - before == set()
    # The pool is unharmed: the next job renders correctly.
    good = tmp_path / "good.mp4"
    renderer.render(str(numbered), CUES, str(good), RenderOptions(segments=2))
    assert frame_numbers(good) == list(range(100))


@pytest.mark.parametrize("scenario,where", [
    ({"version": "2.0", "tracks": [], "cues": [{"id": "c", "track": "nope", "root": {"eType": "text", "text": "x"}}]},
     "cues[0].track"),
    ({"version": "1.3", "cues": [{"start": 2, "end": 1, "text": "backwards"}]}, "cues[0]"),
    ({"version": "1.3", "cues": [{"start": 0, "end": float("nan"), "text": "nan"}]}, "cues[0].end"),
    ({"version": "1.3", "cues": [{"start": 0, "text": "no end"}]}, "missing field 'end'"),
    ({"version": "9.9", "tracks": [], "cues": []}, "version"),
    ("{not json", "not valid JSON"),
    ([1, 2, 3], "JSON object"),
])
def test_invalid_scenarios_name_the_problem(renderer, numbered, tmp_path, scenario, where):
    with pytest.raises(RenderError) as ei:
        renderer.render(str(numbered), scenario, str(tmp_path / "o.mp4"))
    assert ei.value.code == "invalid_scenario"
    assert where in ei.value.message, ei.value.message


def _cli(*args: str, timeout: float = 300, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ecg_ray", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **env} if env else None)


def test_cli_bad_input_exit_code_and_one_line(tmp_path, broken_files):
    sc = tmp_path / "sc.json"
    sc.write_text('{"version": "1.3", "cues": [{"start": 0, "end": 1, "text": "hi"}]}')
    r = _cli("render", str(broken_files["missing"]), str(sc), "-o", str(tmp_path / "o.mp4"))
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [f"error: invalid_input: input {str(broken_files['missing'])!r} does not exist"]

    bad = tmp_path / "bad.json"
    bad.write_text("{oops")
    r = _cli("render", str(broken_files["text"]), str(bad), "-o", str(tmp_path / "o.mp4"))
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: invalid_scenario: bad.json is not valid JSON")

    r = _cli("render", str(broken_files["text"]), str(sc), "-o", str(tmp_path / "o.mp4"))
    assert r.returncode == 2 and "error: invalid_input" in r.stderr and "not a readable video" in r.stderr

    r = _cli("render", str(broken_files["text"]), str(sc), "-o", str(tmp_path / "o.mp4"), "--quality", "101")
    assert r.returncode == 2 and r.stderr.startswith("error: invalid_options: --quality")

    # A bad setting in the environment: one line naming the variable, before anything starts.
    r = _cli("render", str(broken_files["text"]), str(sc), "-o", str(tmp_path / "o.mp4"), env={"ECG_HWDEC": "nvdec"})
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "error: invalid_options: environment variable ECG_HWDEC='nvdec' is not one of none, cuda, auto"]


def test_cli_renders_with_progress_lines(tmp_path, numbered):
    sc = tmp_path / "sc.json"
    sc.write_text('{"version": "1.3", "cues": [{"start": 0.4, "end": 1.2, "text": "명령줄 CLI"}]}')
    out = tmp_path / "cli.mp4"
    r = _cli("render", str(numbered), str(sc), "-o", str(out), "--segments", "2", "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "rendering frame" in r.stderr  # plain progress lines when not on a terminal
    assert '"frames": 100' in r.stdout
    assert frame_numbers(out) == list(range(100))


def test_cli_re_renders_an_edit_from_its_segment_cache(tmp_path, numbered):
    """--segment-cache DIR: the second render, one caption edited in the second half, takes the
    first half from DIR and is the same bytes as a render without the cache."""
    first, edited = tmp_path / "first.json", tmp_path / "edited.json"
    first.write_text('{"version": "1.3", "cues": [{"start": 0.4, "end": 1.2, "text": "앞 first"},'
                     ' {"start": 2.6, "end": 3.4, "text": "뒤 second"}]}')
    edited.write_text(first.read_text().replace("뒤 second", "고친 edited"))
    cache = tmp_path / "cache"
    r = _cli("render", str(numbered), str(first), "-o", str(tmp_path / "a.mp4"), "--segments", "2",
             "--segment-cache", str(cache), "-q")
    assert r.returncode == 0, r.stderr[-2000:]
    r = _cli("render", str(numbered), str(edited), "-o", str(tmp_path / "b.mp4"), "--segments", "2",
             "--segment-cache", str(cache), "-q")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "2 segments, 1 reused)" in r.stdout, r.stdout
    r = _cli("render", str(numbered), str(edited), "-o", str(tmp_path / "c.mp4"), "--segments", "2", "-q")
    assert r.returncode == 0 and "reused" not in r.stdout, r.stdout
    assert (tmp_path / "b.mp4").read_bytes() == (tmp_path / "c.mp4").read_bytes()
    r = _cli("render", str(numbered), str(edited), "-o", str(tmp_path / "d.mp4"), "--server", "http://127.0.0.1:9",
             "--segment-cache", str(cache))
    assert r.returncode == 2 and "--segment-cache" in r.stderr


def test_cli_demo_renders_the_built_in_sample(tmp_path):
    """`ecg-render demo` (the README's first command ends with it) on a fresh local Ray."""
    from ecg_ray import probe

    out = tmp_path / "demo.mp4"
    r = _cli("demo", "-o", str(out), "-q")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "warning:" not in r.stderr  # every plugin the demo uses is installed
    info = probe(str(out))
    assert (info.width, info.height, info.frame_count) == (1280, 720, 132)
    assert info.audio and info.audio[0].channels == 6
