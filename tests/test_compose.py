"""docker-compose.yaml against the Compose specification's JSON schema (vendored in
tests/data/compose/ from check-jsonschema 0.39.0's copy, Apache-2.0), before and after variable
interpolation, and the stack's wiring. No Docker here: nothing is started (README says so)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from ecg_ray.config import Settings, env_name

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yaml"
SCHEMA = Path(__file__).parent / "data" / "compose" / "compose-spec.json"
# What an operator exports before `docker compose up` (docs/operations.md).
ENV = {"S3_ACCESS_KEY": "ecgray", "S3_SECRET_KEY": "a-local-password"}
_VAR = re.compile(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}")


def interpolate(value, env: dict[str, str]):
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error} over every string of the file."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(m: re.Match) -> str:
        name, op, arg = m.group(1), m.group(2) or "", m.group(3) or ""
        if env.get(name):
            return env[name]
        if op.endswith("?"):
            raise KeyError(f"{name}: {arg}")
        return arg if op.endswith("-") else ""

    return _VAR.sub(one, value)


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def schema_errors(doc: dict) -> list[str]:
    v = jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text()))
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in v.iter_errors(doc)]


def test_compose_file_passes_the_compose_spec_schema():
    raw = compose()
    assert schema_errors(raw) == []
    assert schema_errors(interpolate(raw, ENV)) == []
    # The schema itself rejects what Compose would: a sanity check that it is not vacuous.
    bad = interpolate(raw, ENV)
    bad["services"]["ray-worker"]["deploy"]["resources"]["reservations"]["devices"][0]["gpus"] = 1
    assert schema_errors(bad)


def test_compose_secrets_come_from_the_environment():
    with pytest.raises(KeyError, match="S3_SECRET_KEY"):
        interpolate(compose(), {"S3_ACCESS_KEY": "x"})
    text = COMPOSE.read_text()
    for key in ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "MINIO_ROOT_PASSWORD", "MINIO_ROOT_USER"):
        for value in re.findall(rf"{key}:\s*(\S+)", text):
            assert value.startswith("${"), f"{key} is written into the file"


def test_compose_stack_wiring():
    doc = interpolate(compose(), ENV)
    svc = doc["services"]
    assert {"redis", "s3", "s3-init", "ray-head", "ray-worker"} <= set(svc)
    head, worker = svc["ray-head"], svc["ray-worker"]

    # One image for all of ours, built from ./Dockerfile with the Dockerfile's own default base
    # (the image tests/test_image.py builds).
    build = head["build"]
    assert (ROOT / build["context"] / build["dockerfile"]).resolve() == ROOT / "Dockerfile"
    default_base = re.search(r"^ARG BASE=(\S+)", (ROOT / "Dockerfile").read_text(), re.M).group(1)
    assert build["args"]["BASE"] == default_base
    assert head["image"] == worker["image"] == svc["s3-init"]["image"]

    # GPUs with the video capability (NVENC/NVDEC libraries) on the workers only.
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and {"gpu", "video"} <= set(devices[0]["capabilities"])
    assert "deploy" not in head
    assert "--num-gpus=0" in head["command"][-1]
    assert "nvenc" in worker["command"][-1] and "--address=ray-head:6379" in worker["command"][-1]
    for s in (head, worker):
        assert s["shm_size"] and s["init"] is True

    # Redis: the service's job store and Ray's GCS fault tolerance, the same server.
    redis_port = 6379
    assert head["environment"]["REDIS_URL"].startswith(f"redis://redis:{redis_port}/")
    assert head["environment"]["RAY_REDIS_ADDRESS"] == f"redis:{redis_port}"
    assert head["depends_on"]["redis"]["condition"] == "service_healthy"

    # Every ecg_ray setting named is a real one; the S3 store is the local one.
    known = {env_name(n) for n in Settings.model_fields} | {"REDIS_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    for s in (head, worker):
        env = s["environment"]
        for k in env:
            assert k in known or k.startswith("RAY_"), f"{k} is not a setting"
        assert env["ECG_S3_ENDPOINT_URL"] == "http://s3:9000" and env["ECG_STORAGE"] == "s3"
    assert worker["environment"] == {k: v for k, v in head["environment"].items() if not k.startswith("RAY_")}

    # The API and the image's HEALTHCHECK agree on the port.
    assert "--port 8090" in head["command"][-1] and any(p.endswith(":8090") for p in head["ports"])
    assert "http://127.0.0.1:8090/health" in " ".join(head["healthcheck"]["test"])
    # Third-party images are pinned to a version, never :latest.
    for name in ("redis", "s3"):
        image = svc[name]["image"]
        assert re.search(r":[\w][\w.-]*$", image) and not image.endswith(":latest"), image
