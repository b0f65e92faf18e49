"""Shared fixtures: a real local Ray, a warm Renderer, and generated media with known content."""

from __future__ import annotations

import os
import shutil
import tempfile
from fractions import Fraction
from pathlib import Path

import pytest

from ecg_ray.media.testclip import make_numbered_video

REAL_CLIP = Path(__file__).resolve().parents[1] / "ecg_ray" / "demo" / "bbb_720p25_5s.mp4"


@pytest.fixture(scope="session")
def media_dir():
    d = tempfile.mkdtemp(prefix="ecg-test-media-")
    yield Path(d)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def numbered(media_dir) -> Path:
    """100 frames, 320x240 @ 25 fps, AAC audio with beeps at frames 10, 50 and 90."""
    p = media_dir / "numbered.mp4"
    make_numbered_video(str(p), 100, Fraction(25), (320, 240), audio=True, beep_frames=(10, 50, 90))
    return p


@pytest.fixture(scope="module")
def renderer():
    """A Renderer on a local Ray with two segment actors (this machine has 2 cores)."""
    import ray

    from ecg_ray.rendering.renderer import Renderer

    if ray.is_initialized() and len(ray.nodes()) > 1:
        ray.shutdown()
    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    r = Renderer(max_actors=2)
    yield r
    r.close()


@pytest.fixture
def out_dir(tmp_path) -> Path:
    return tmp_path


def leftover_processes(allowed_browsers: int = 0) -> list[str]:
    """FFmpeg processes, and Chromium browsers beyond ``allowed_browsers`` (the warm actors'),
    anywhere under this test process (Ray's raylet and workers included)."""
    import psutil

    me = psutil.Process(os.getpid())
    ffmpegs, browsers = [], []
    for child in me.children(recursive=True):
        try:
            name = child.name()
            parent = child.parent()
            pname = parent.name() if parent else ""
        except psutil.Error:
            continue
        where = f"{child.pid}:{name} under {parent.pid if parent else '?'}:{pname}"
        if "ffmpeg" in name:
            ffmpegs.append(where)
        elif "chrom" in name and "chrom" not in pname:
            browsers.append(where)
    return ffmpegs + (browsers if len(browsers) > allowed_browsers else [])


@pytest.fixture(scope="session")
def s3_server():
    """moto's server on loopback (an S3 reached over real HTTP) for the whole session; nothing global
    is set: tests pass ``s3_server.endpoint_url`` to Settings and set dummy keys with monkeypatch."""
    from moto.server import ThreadedMotoServer

    from .s3util import MotoS3

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield MotoS3(endpoint_url=f"http://{host}:{port}")
    server.stop()
