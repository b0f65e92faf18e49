"""deploy/kuberay/rayservice.yaml against KubeRay's CRD schemas (RayService and RayCluster, v1,
KubeRay 1.7.0, vendored gzipped in tests/data/kuberay/), its serveConfigV2 kept equal to
serve_config.yaml, and its layout. No Kubernetes here: nothing is applied (README says so). The
CRDs' CEL rules (x-kubernetes-validations) are not evaluated; unknown fields are rejected as
`kubectl apply --validate=strict` would."""

from __future__ import annotations

import copy
import gzip
import json
import re
from pathlib import Path
from urllib.parse import urlparse

import jsonschema
import yaml

from ecg_ray.config import Settings

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "deploy" / "kuberay" / "rayservice.yaml"
REDIS = ROOT / "deploy" / "kuberay" / "redis.yaml"
DATA = Path(__file__).parent / "data" / "kuberay"
# GPUs with NVENC that clouds offer (T4, A10G, L4, L40S); Hopper and A100 have none.
NVENC_PRODUCTS = {"Tesla-T4", "NVIDIA-A10G", "NVIDIA-L4", "NVIDIA-L40S"}
# serveConfigV2 may differ from serve_config.yaml in these settings' values only.
SITE_SETTINGS = {"S3_BUCKET", "AWS_REGION", "ECG_PUBLIC_BASE_URL"}


def crd(kind: str) -> dict:
    with gzip.open(DATA / f"ray.io_{kind}.v1.schema.json.gz") as f:
        return json.load(f)


def manifest() -> dict:
    return yaml.safe_load(MANIFEST.read_text())


def unknown_fields(obj, schema: dict, path: str = "") -> list[str]:
    """Fields the schema does not declare (Kubernetes prunes or, strictly, rejects them)."""
    out: list[str] = []
    if isinstance(obj, dict) and "properties" in schema:
        for k, v in obj.items():
            if k in schema["properties"]:
                out += unknown_fields(v, schema["properties"][k], f"{path}/{k}")
            elif not schema.get("additionalProperties") and not schema.get("x-kubernetes-preserve-unknown-fields"):
                out.append(f"{path}/{k}")
    elif isinstance(obj, dict) and isinstance(schema.get("additionalProperties"), dict):
        for k, v in obj.items():
            out += unknown_fields(v, schema["additionalProperties"], f"{path}/{k}")
    elif isinstance(obj, list) and "items" in schema:
        for i, v in enumerate(obj):
            out += unknown_fields(v, schema["items"], f"{path}/{i}")
    return out


def problems(doc: dict, kind: str) -> list[str]:
    c = crd(kind)
    schema = c["openAPIV3Schema"]
    errs = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in jsonschema.Draft7Validator(schema).iter_errors(doc)]
    errs += [f"unknown field {p}" for p in unknown_fields(doc, schema)]
    if doc.get("apiVersion") != f"{c['group']}/{c['version']}" or doc.get("kind") != c["kind"]:
        errs.append(f"not a {c['group']}/{c['version']} {c['kind']}")
    return errs


def test_rayservice_passes_the_crd_schemas():
    doc = manifest()
    assert problems(doc, "rayservices") == []
    # The embedded cluster is a RayCluster spec: KubeRay's RayCluster schema takes it too.
    cluster = {"apiVersion": "ray.io/v1", "kind": "RayCluster", "metadata": {"name": "ecg-ray"},
               "spec": doc["spec"]["rayClusterConfig"]}
    assert problems(cluster, "rayclusters") == []
    # The checks are not vacuous: a typo'd field and a wrongly typed one are caught.
    bad = copy.deepcopy(doc)
    bad["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["maxReplica"] = 8
    bad["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["minReplicas"] = "1"
    found = problems(bad, "rayservices")
    assert any("maxReplica" in p for p in found) and any("minReplicas" in p for p in found), found


def test_serve_config_v2_is_serve_config_yaml():
    mine = yaml.safe_load(manifest()["spec"]["serveConfigV2"])
    theirs = yaml.safe_load((ROOT / "serve_config.yaml").read_text())
    for cfg in (mine, theirs):
        for app in cfg["applications"]:
            env = app["runtime_env"]["env_vars"]
            for k in SITE_SETTINGS & set(env):
                env[k] = "<site>"
    assert mine == theirs, "copy serve_config.yaml's changes into serveConfigV2"
    from ray.serve.schema import ServeDeploySchema

    ServeDeploySchema.model_validate(mine)


def test_head_serves_gpu_workers_with_nvenc_render():
    spec = manifest()["spec"]
    rc = spec["rayClusterConfig"]
    serve = yaml.safe_load(spec["serveConfigV2"])
    assert rc["rayVersion"] == "2.60.0" and rc["enableInTreeAutoscaling"] is True

    head = rc["headGroupSpec"]
    assert head["rayStartParams"]["num-gpus"] == "0"
    (hc,) = head["template"]["spec"]["containers"]
    assert "nvidia.com/gpu" not in json.dumps(hc["resources"])
    ports = {p["name"]: p["containerPort"] for p in hc["ports"]}
    assert ports["serve"] == serve["http_options"]["port"] and ports["gcs-server"] == 6379
    # The RenderAPI replicas fit the head's CPUs, a segment actor never does beside them.
    (app,) = serve["applications"]
    (api,) = app["deployments"]
    head_cpu = float(head["rayStartParams"]["num-cpus"])
    assert head_cpu >= api["autoscaling_config"]["max_replicas"] * api["ray_actor_options"]["num_cpus"]
    assert head_cpu - api["ray_actor_options"]["num_cpus"] < Settings().segment_num_cpus

    (group,) = rc["workerGroupSpecs"]
    assert 0 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
    pod = group["template"]["spec"]
    (wc,) = pod["containers"]
    gpus = int(wc["resources"]["limits"]["nvidia.com/gpu"])
    assert gpus >= 1 and int(group["resources"]["nvenc"]) == round(gpus / Settings().segment_num_gpus)
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    products = {v for t in terms for e in t["matchExpressions"] if e["key"] == "nvidia.com/gpu.product"
                for v in e["values"]}
    assert products and products <= NVENC_PRODUCTS, products
    assert not any(re.search(r"H100|H200|A100", p) for p in products)

    # One image everywhere, the one cluster.yaml runs too, with an explicit tag.
    images = {hc["image"], wc["image"]}
    cluster_image = yaml.safe_load((ROOT / "cluster.yaml").read_text())["docker"]["image"]
    assert images == {cluster_image} and re.search(r":[\w][\w.-]*$", cluster_image.rsplit("/", 1)[-1])


def test_gcs_fault_tolerance_and_job_store_share_the_redis():
    rc = manifest()["spec"]["rayClusterConfig"]
    ft = rc["gcsFaultToleranceOptions"]
    host, port = ft["redisAddress"].split(":")
    services = [d for d in yaml.safe_load_all(REDIS.read_text()) if d["kind"] == "Service"]
    assert [(s["metadata"]["name"], s["spec"]["ports"][0]["port"]) for s in services] == [(host, int(port))]
    secret = ft["redisPassword"]["valueFrom"]["secretKeyRef"]
    containers = rc["headGroupSpec"]["template"]["spec"]["containers"] + \
        rc["workerGroupSpecs"][0]["template"]["spec"]["containers"]
    for c in containers:
        env = {e["name"]: e for e in c["env"]}
        url = urlparse(env["REDIS_URL"]["value"].replace("$(REDIS_PASSWORD)", "pw"))
        assert (url.scheme, url.hostname, url.port) == ("redis", host, int(port)) and url.path != "/0"
        assert env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == secret
        # $(VAR) expands only from variables defined before it.
        names = [e["name"] for e in c["env"]]
        assert names.index("REDIS_PASSWORD") < names.index("REDIS_URL")
