"""Metrics: a real render on a local Ray with a metrics export port, scraped as Prometheus would."""

from __future__ import annotations

import json
import re
import socket
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from ecg_ray import RenderOptions, metrics

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "grafana" / "ecg_ray_dashboard.json"

CUES = {
    "version": "1.3",
    "cues": [
        {"start": 0.4, "end": 1.2, "text": "첫 번째 자막 first"},
        {"start": 2.0, "end": 3.0, "text": "두 번째 second"},
    ],
}

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse(text: str) -> list[tuple[str, dict[str, str], float]]:
    """Samples of a Prometheus text exposition: (name, labels, value)."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if m:
            out.append((m.group(1), dict(_LABEL.findall(m.group(2) or "")), float(m.group(3))))
    return out


def total(samples, name: str, **labels: str) -> float | None:
    """Sum over every process's series of ``name`` with ``labels``; None if there is none."""
    hits = [v for n, lab, v in samples if n == name and all(lab.get(k) == w for k, w in labels.items())]
    return sum(hits) if hits else None


@pytest.fixture(scope="module")
def metrics_ray():
    """A fresh local Ray whose metrics agent serves on a known port and exports every second."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    port = _free_port()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, _metrics_export_port=port,
             _system_config={"metrics_report_interval_ms": 1000})
    yield port
    ray.shutdown()  # later modules start their own Ray (see conftest.renderer)


def test_render_and_service_metrics_are_exported(metrics_ray, numbered, tmp_path):
    from ecg_ray.rendering.renderer import Renderer

    port = metrics_ray
    renderer = Renderer(max_actors=1)
    try:
        res = renderer.render(str(numbered), CUES, str(tmp_path / "out.mp4"), RenderOptions(segments=2))
    finally:
        renderer.close()
    assert res.frames == 100 and res.segments == 2

    # The service side, from the driver, with tag values no other code uses.
    event, store = f"test-{uuid.uuid4().hex[:8]}", f"store-{uuid.uuid4().hex[:8]}"
    metrics.job_state("queued", 7)
    metrics.job_state("processing", 3)
    metrics.queue_depth(5)
    metrics.job_finished("completed")
    metrics.callback_failed(event)
    metrics.callback_failed(event)
    metrics.bytes_uploaded(1234, store)
    metrics.bytes_uploaded(0, store)  # ignored, not an error
    metrics.actor_recycled()

    enc = res.encoder
    want = {
        ("ray_ecg_frames_rendered_total", ("encoder", enc)): 100.0,
        ("ray_ecg_segment_seconds_count", None): 2.0,
        ("ray_ecg_jobs_by_encoder_total", ("encoder", enc)): 1.0,
        ("ray_ecg_jobs", ("state", "queued")): 7.0,
        ("ray_ecg_jobs", ("state", "processing")): 3.0,
        ("ray_ecg_queue_depth", None): 5.0,
        ("ray_ecg_jobs_finished_total", ("state", "completed")): 1.0,
        ("ray_ecg_callback_failures_total", ("event", event)): 2.0,
        ("ray_ecg_bytes_uploaded_total", ("store", store)): 1234.0,
        ("ray_ecg_actors_recycled_total", None): 1.0,
    }

    def value(samples, key):
        name, label = key
        return total(samples, name, **({label[0]: label[1]} if label else {}))

    deadline = time.monotonic() + 30
    samples: list = []
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                samples = parse(r.read().decode())
        except OSError:
            samples = []
        if (all(value(samples, k) == v for k, v in want.items()) and total(samples, "ray_ecg_render_fps") is not None
                and total(samples, "ray_ecg_actor_memory_mb") is not None):
            break
        if time.monotonic() > deadline:
            got = {k: value(samples, k) for k in want}
            pytest.fail(f"metrics not exported as expected within 30 s: {got}")
        time.sleep(1)

    captured = total(samples, "ray_ecg_frames_captured_total") or 0.0
    reused = total(samples, "ray_ecg_frames_reused_total") or 0.0
    empty = total(samples, "ray_ecg_frames_empty_total") or 0.0
    assert captured + reused + empty == 100.0
    assert captured > 0 and empty > 0  # the cues cover part of the clip
    # Every segment fell into the histogram, and its buckets are the documented ones.
    assert total(samples, "ray_ecg_segment_seconds_bucket", le="+Inf") == 2.0
    les = {lab["le"] for n, lab, _ in samples if n == "ray_ecg_segment_seconds_bucket"}
    assert {float(b) for b in metrics.SEGMENT_SECONDS_BOUNDARIES} <= {float(x) for x in les if x != "+Inf"}
    # The job's fps is frames over a time a little shorter than the whole call took.
    fps = total(samples, "ray_ecg_render_fps", encoder=enc)
    assert fps is not None and 100 / res.seconds <= fps <= 100 / res.seconds * 2
    cap_fps = total(samples, "ray_ecg_capture_fps")
    assert cap_fps is not None and cap_fps >= 0
    # The one actor's memory after its last segment: a Python process with a Chromium is tens of
    # MiB at least, and no more than the most the job's stats saw.
    mem = total(samples, "ray_ecg_actor_memory_mb")
    assert 50 < mem <= res.stats["actor_mb_max"]


def test_recording_never_raises(metrics_ray):
    # Values Ray refuses (negative, zero, wrong types) are dropped, not raised.
    metrics.segment_rendered(0, 0, 0, 0, 0.0, "libx264")
    metrics.segment_rendered(-1, -1, -1, -1, -1.0, "libx264")
    metrics.job_rendered(10, 0.0, "libx264")
    metrics.job_state("queued", None)  # type: ignore[arg-type]
    metrics.bytes_uploaded("many", "s3")  # type: ignore[arg-type]
    metrics.queue_depth(float("nan"))  # type: ignore[arg-type]
    metrics.actor_memory(-5)


def test_without_ray_every_function_is_a_no_op(monkeypatch):
    import ray

    monkeypatch.setattr(metrics, "_metrics", None)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    metrics.job_state("queued", 1)
    metrics.job_finished("failed")
    metrics.queue_depth(1)
    metrics.segment_rendered(1, 1, 0, 0, 1.0, "libx264")
    metrics.job_rendered(1, 1.0, "libx264")
    metrics.callback_failed("completed")
    metrics.bytes_uploaded(1, "local")
    metrics.actor_memory(100)
    metrics.actor_recycled()
    assert metrics._metrics is None  # nothing was made outside Ray


# -- the Grafana dashboard ------------------------------------------------------------------

def _panels(dash: dict) -> list[dict]:
    out = []
    for p in dash["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))  # collapsed rows keep their panels inside
    return out


def test_dashboard_is_importable_and_charts_every_metric():
    dash = json.loads(DASHBOARD.read_text())
    assert dash["title"] and dash["uid"] and isinstance(dash["schemaVersion"], int)
    ds_vars = [v for v in dash["templating"]["list"] if v["type"] == "datasource"]
    assert ds_vars and ds_vars[0]["query"] == "prometheus"
    ds = "${" + ds_vars[0]["name"] + "}"

    panels = _panels(dash)
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    exprs = []
    for p in panels:
        if p["type"] == "row":
            continue
        assert p["datasource"]["uid"] == ds, p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["datasource"]["uid"] == ds and t["expr"], p["title"]
            exprs.append(t["expr"])
    text = "\n".join(exprs)
    for spec in metrics.SPECS.values():
        assert re.search(re.escape(spec.exported) + r"(_bucket)?\b", text), f"no panel for {spec.exported}"
    for ray_metric in ("ray_node_cpu_utilization", "ray_node_gpus_utilization", "ray_node_mem_used"):
        assert ray_metric in text
    # Our counters are charted as rates or increases, never as raw ever-growing totals.
    counters = [s.exported for s in metrics.SPECS.values() if s.kind == "counter"]
    for e in exprs:
        if any(c in e for c in counters):
            assert "rate(" in e or "increase(" in e, e
