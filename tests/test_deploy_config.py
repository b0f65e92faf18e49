"""Deployment files: cluster.yaml against Ray's own cluster-launcher code, serve_config.yaml against
Ray Serve's schema, and static checks of the Dockerfile (no Docker daemon or AWS account needed)."""

from __future__ import annotations

import copy
import fnmatch
import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from ecg_ray.config import Settings, env_name

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = ROOT / "cluster.yaml"
SERVE = ROOT / "serve_config.yaml"
DOCKERFILE = ROOT / "Dockerfile"
CONSTRAINTS = ROOT / "docker" / "constraints.txt"
GPU_TYPES = {"g4dn.xlarge", "g4dn.2xlarge", "g5.xlarge", "g6.xlarge"}


def cluster() -> dict:
    return yaml.safe_load(CLUSTER.read_text())


def serve_config() -> dict:
    return yaml.safe_load(SERVE.read_text())


def workers(cfg: dict) -> dict[str, dict]:
    return {k: v for k, v in cfg["available_node_types"].items() if k != cfg["head_node_type"]}


def render_api(cfg: dict) -> dict:
    (app,) = [a for a in cfg["applications"] if a["name"] == "ecg_ray"]
    (dep,) = [d for d in app["deployments"] if d["name"] == "RenderAPI"]
    return dep


# -- cluster.yaml ---------------------------------------------------------------------------

def test_cluster_yaml_passes_rays_schema_and_validation():
    import jsonschema
    import ray
    from ray.autoscaler._private.util import prepare_config, validate_config

    raw = cluster()
    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    jsonschema.validate(raw, schema)
    # What `ray up` does before it talks to AWS: merge Ray's AWS defaults, then validate.
    prepared = prepare_config(copy.deepcopy(raw))
    validate_config(prepared)
    # Our empty command lists replaced the defaults (which pip-install a nightly Ray).
    assert prepared["setup_commands"] == [] and prepared["head_setup_commands"] == []


def test_cluster_bootstraps_with_rays_aws_code_against_mocked_aws(tmp_path, monkeypatch):
    """`ray up`'s provider bootstrap (instance types, GPUs, key pair, subnets, security group) run
    against moto's in-process EC2/IAM: catches instance types or fields AWS would not accept."""
    from moto import mock_aws

    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # Ray writes the new key pair under ~/.ssh
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-northeast-2")
    with mock_aws():
        import boto3
        from ray.autoscaler._private.commands import _bootstrap_config

        cfg = cluster()
        iam = boto3.client("iam")
        arns = {t["node_config"]["IamInstanceProfile"]["Arn"] for t in cfg["available_node_types"].values()}
        for arn in arns:
            iam.create_instance_profile(InstanceProfileName=arn.rsplit("/", 1)[1])
        out = _bootstrap_config(copy.deepcopy(cfg), no_config_cache=True)

        accel = {"g4dn": "T4", "g5": "A10G", "g6": "L4"}
        for name, t in workers(out).items():
            family = t["node_config"]["InstanceType"].split(".")[0]
            assert t["resources"].get(f"accelerator_type:{accel[family]}") == 1, (name, t["resources"])
            assert t["node_config"]["SubnetIds"] and t["node_config"]["SecurityGroupIds"]
        ec2 = boto3.client("ec2", region_name="ap-northeast-2")
        (sg,) = [g for g in ec2.describe_security_groups()["SecurityGroups"]
                 if g["GroupName"] == cfg["provider"]["security_group"]["GroupName"]]
        assert any(p.get("FromPort") == 8090 for p in sg["IpPermissions"])
        assert not any(p.get("FromPort") == 8265 for p in sg["IpPermissions"])  # dashboard via SSH only


def test_cluster_layout_head_serves_gpu_workers_render():
    cfg = cluster()
    assert cfg["cluster_name"] == "ecg-ray"
    assert cfg["provider"]["type"] == "aws" and cfg["provider"]["region"] == "ap-northeast-2"
    assert cfg["idle_timeout_minutes"] > 0

    head = cfg["available_node_types"][cfg["head_node_type"]]
    assert not head["node_config"]["InstanceType"].startswith(("g4", "g5", "g6", "p"))
    assert head["resources"].get("GPU", 0) == 0
    # The head holds every RenderAPI replica but never a segment actor.
    api = render_api(serve_config())
    api_cpus = api["ray_actor_options"]["num_cpus"]
    head_cpu = head["resources"]["CPU"]
    assert head_cpu >= api["autoscaling_config"]["max_replicas"] * api_cpus
    assert head_cpu - api_cpus < Settings().segment_num_cpus

    ws = workers(cfg)
    assert {w["node_config"]["InstanceType"] for w in ws.values()} == GPU_TYPES
    for name, w in ws.items():
        assert w["node_config"]["InstanceType"].split(".")[0] in {"g4dn", "g5", "g6"}, name
        assert 0 <= w["min_workers"] <= w["max_workers"], name
        r = w["resources"]
        assert r["GPU"] >= 1 and r["CPU"] >= 1, name
        assert isinstance(r["nvenc"], int) and r["nvenc"] >= 1, name
        # One encode per segment actor: the nvenc figure matches the app's GPU share per actor.
        assert r["nvenc"] == round(r["GPU"] / Settings().segment_num_gpus), name
    # A GPU stays in the cluster, so segment actors always ask for a GPU share.
    assert any(w["min_workers"] >= 1 for w in ws.values())
    assert cfg["max_workers"] >= sum(w["min_workers"] for w in ws.values())
    for name, t in cfg["available_node_types"].items():
        arn = t["node_config"]["IamInstanceProfile"]["Arn"]
        assert re.fullmatch(r"arn:aws:iam::\d{12}:instance-profile/[\w+=,.@-]+", arn), name


def test_cluster_docker_and_commands():
    cfg = cluster()
    d = cfg["docker"]
    image = d["image"]
    assert re.search(r":[\w][\w.-]*$", image.rsplit("/", 1)[-1]), "image needs an explicit tag"
    assert d["container_name"]
    shared, head_opts, worker_opts = d.get("run_options", []), d.get("head_run_options", []), d.get("worker_run_options", [])
    assert "--gpus all" in worker_opts
    assert "--gpus all" not in shared + head_opts  # the CPU head has no GPU: docker run would fail
    assert any(o.startswith("--shm-size=") for o in shared)

    every = [c for key in ("initialization_commands", "setup_commands", "head_setup_commands",
                           "worker_setup_commands", "head_start_ray_commands", "worker_start_ray_commands")
             for c in cfg.get(key, [])]
    assert not any("pip install" in c for c in every), "the image has everything"
    assert not any(re.search(r"\bserve\s+(deploy|run|start)\b", c) for c in every), "Serve comes from serve deploy"
    head_start = " ".join(cfg["head_start_ray_commands"])
    worker_start = " ".join(cfg["worker_start_ray_commands"])
    assert "ray start --head" in head_start and "--autoscaling-config=~/ray_bootstrap_config.yaml" in head_start
    assert "--dashboard-host=0.0.0.0" in head_start
    assert "--address=$RAY_HEAD_IP:6379" in worker_start
    port = re.search(r"--metrics-export-port=(\d+)", head_start)
    assert port and f"--metrics-export-port={port.group(1)}" in worker_start

    mounts = cfg["file_mounts"]
    (local,) = [v for k, v in mounts.items() if k.endswith("serve_config.yaml")]
    assert (ROOT / local).resolve() == SERVE


def test_no_aws_keys_in_deploy_files():
    patterns = [
        r"\b(AKIA|ASIA)[0-9A-Z]{16}\b",                        # access key ids
        r"(?i)aws_?secret|aws_?access_?key|secret_?access_?key|aws_?session_?token",
        r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])",  # secret-key shaped strings
    ]
    for path in (CLUSTER, SERVE, DOCKERFILE):
        text = path.read_text()
        for p in patterns:
            assert not re.search(p, text), f"{path.name}: {p}"


# -- serve_config.yaml ----------------------------------------------------------------------

def test_serve_config_passes_serve_schema():
    from ray.serve.schema import ServeDeploySchema

    parsed = ServeDeploySchema.model_validate(serve_config())
    assert parsed.http_options.host == "0.0.0.0" and parsed.http_options.port == 8090
    (app,) = parsed.applications
    assert (app.name, app.route_prefix, app.import_path) == ("ecg_ray", "/", "serve_app:app")

    dep = render_api(serve_config())
    assert dep["ray_actor_options"]["num_cpus"] == 0.25
    auto = dep["autoscaling_config"]
    assert (auto["min_replicas"], auto["max_replicas"]) == (1, 4)
    assert 16 <= auto["target_ongoing_requests"] <= 64
    assert "num_replicas" not in dep  # autoscaling decides
    assert dep["max_ongoing_requests"] >= auto["target_ongoing_requests"]


def test_serve_config_env_vars_are_real_settings():
    env = serve_config()["applications"][0]["runtime_env"]["env_vars"]
    from ecg_ray.config import SERVE_ENV

    known = {env_name(name) for name in Settings.model_fields}
    assert {"MAX_CONCURRENT_JOBS", "S3_BUCKET", "AWS_REGION", "ECG_PUBLIC_BASE_URL", "ECG_STATE_DIR"} <= set(env)
    for k, v in env.items():
        assert k in known or k in SERVE_ENV, f"{k} is not a setting in ecg_ray/config.py"
        assert isinstance(v, str), f"{k}: runtime_env values must be strings"
        if k in SERVE_ENV:
            assert v == SERVE_ENV[k], f"{k}: {v!r} here, {SERVE_ENV[k]!r} in ecg_ray/config.py"
    assert env["AWS_REGION"] == cluster()["provider"]["region"]


def test_serve_tuning_reaches_every_ray_process():
    """The Serve tuning of ecg_ray/config.py is in the image's environment (proxies and replicas
    on cluster nodes) and, for replicas, in serve_config.yaml; the access log is off in both."""
    from ecg_ray.config import SERVE_ENV

    docker = (ROOT / "Dockerfile").read_text()
    for k, v in SERVE_ENV.items():
        assert re.search(rf"^\s*{k}={v}\b", docker, re.M), f"Dockerfile: ENV {k}={v} missing"
    cfg = serve_config()
    assert cfg["logging_config"]["enable_access_log"] is False
    assert cfg["applications"][0]["runtime_env"]["env_vars"]["RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD"] == "0"


def test_serve_config_import_path_and_deployment_exist():
    from ray.serve.schema import ServeDeploySchema

    app_cfg = serve_config()["applications"][0]
    module, attr = app_cfg["import_path"].split(":")
    mod = __import__(module)
    app = getattr(mod, attr)
    bound = getattr(app, "_bound_deployment", None)
    if bound is None:
        pytest.fail(f"{module}:{attr} is not a Serve application")
    # `serve deploy` refuses config for a deployment the application does not have.
    assert bound.name == "RenderAPI"
    assert [d["name"] for d in app_cfg["deployments"]] == [bound.name]
    # Serve applies the config's options to the code's deployment: they must combine.
    opts = ServeDeploySchema.model_validate(serve_config()).applications[0].deployments[0].model_dump(
        exclude_unset=True)
    opts.pop("name")
    bound.options(**opts)


# -- Dockerfile -----------------------------------------------------------------------------

def instructions(text: str) -> list[tuple[str, str, str]]:
    """(INSTRUCTION, arguments, heredoc body) in order, continuation lines joined."""
    lines, out, i = text.splitlines(), [], 0
    while i < len(lines):
        line = lines[i].strip()
        i += 1
        if not line or line.startswith("#"):
            continue
        while line.endswith("\\") and i < len(lines):
            nxt = lines[i].strip()
            i += 1
            if nxt.startswith("#"):
                continue
            line = line[:-1].rstrip() + " " + nxt
        instr, _, args = line.partition(" ")
        body = ""
        heredoc = re.search(r"<<-?['\"]?(\w+)['\"]?", args)
        if heredoc and instr.upper() in ("RUN", "COPY"):
            end = [j for j in range(i, len(lines)) if lines[j].strip() == heredoc.group(1)][0]
            body, i = "\n".join(lines[i:end]), end + 1
        out.append((instr.upper(), args.strip(), body))
    return out


def stages(text: str) -> list[list[tuple[str, str, str]]]:
    """Each stage's instructions, FROM first; global ARGs (before the first FROM) are left out."""
    out: list[list] = []
    for ins in instructions(text):
        if ins[0] == "FROM":
            out.append([])
        if out:
            out[-1].append(ins)
    return out


def global_args(text: str) -> dict[str, str]:
    out = {}
    for instr, args, _ in instructions(text):
        if instr == "FROM":
            break
        if instr == "ARG" and "=" in args:
            k, v = args.split("=", 1)
            out[k] = v
    return out


def env_of(stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for instr, args, _ in stage:
        if instr == "ENV":
            for k, v in re.findall(r'(\w+)=("[^"]*"|\S+)', args):
                env[k] = v.strip('"')
    return env


def test_dockerfile_every_stage_is_the_debian_12_base():
    """One base for all stages, an argument defaulting to Debian 12 slim (the image test passes its
    debootstrap-made one): no CUDA image, since Debian's FFmpeg loads the driver's NVENC/NVDEC
    libraries that the NVIDIA container toolkit mounts."""
    text = DOCKERFILE.read_text()
    assert global_args(text)["BASE"] == "debian:bookworm-slim"
    all_stages = stages(text)
    assert len(all_stages) >= 2
    for st in all_stages:
        assert st[0][1].split()[0] == "${BASE}", st[0][1]


def test_dockerfile_runtime_stage():
    text = DOCKERFILE.read_text()
    final = stages(text)[-1]
    env = env_of(final)
    assert set(env["NVIDIA_DRIVER_CAPABILITIES"].split(",")) >= {"compute", "utility", "video"}
    users = [a for i, a, _ in final if i == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    hc = [a for i, a, _ in final if i == "HEALTHCHECK"]
    assert hc and "http://127.0.0.1:8090/health" in hc[-1]
    exposed = {p for i, a, _ in final if i == "EXPOSE" for p in a.split()}
    assert {"8090", "8265"} <= exposed
    cmd = [a for i, a, _ in final if i == "CMD"]
    assert json.loads(cmd[-1]) == ["python", "serve_app.py", "--host", "0.0.0.0", "--port", "8090"]
    assert not any(i == "ENTRYPOINT" for i, _, _ in final), "Ray's launcher runs `docker run IMAGE bash`"
    # The app's FFmpeg and Chromium are Debian's, installed in this stage.
    assert env["ECG_FFMPEG"] == "/usr/bin/ffmpeg" and env["ECG_CHROMIUM"].startswith("/usr/bin/chromium")
    # No build tools in the runtime stage.
    runs = " ".join(a for i, a, _ in final if i == "RUN")
    installs = " ".join(re.findall(r"apt-get install ([^&;|]*)", runs))
    for tool in ("build-essential", "gcc", "g++", "make", "cmake", "git", "curl", "wget", "nodejs", "npm"):
        assert not re.search(rf"(?<![\w.-]){re.escape(tool)}(?![\w.-])", installs), tool
    assert not re.search(r"\bnpm (ci|install)\b|\bnode \S+\.m?js\b", runs)
    assert "fonts-noto-cjk" in installs and "fonts-noto-color-emoji" in installs
    assert re.search(r"(?<![\w.-])ffmpeg(?![\w.-])", installs) and "chromium" in installs


def test_dockerfile_installs_the_package_with_the_tested_pins():
    text = DOCKERFILE.read_text()
    runs = [a for i, a, _ in instructions(text) if i == "RUN"]
    assert any(re.search(r"\bpip install\b.*\s\.(\s|$)", r) for r in runs), "pip install . of this package"
    assert any("python3-venv" in r for r in runs), "Debian's Python, the runtime stage's too"
    pins = dict(line.split("==") for line in CONSTRAINTS.read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    assert pins.get("ray") == "2.60.0" and pins.get("playwright") == "1.65.2"
    # Every runtime dependency of pyproject.toml is pinned (scripts/image_constraints.py).
    import tomllib

    from packaging.requirements import Requirement

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for d in deps:
        name = re.sub(r"[-_.]+", "-", Requirement(d).name).lower()
        assert name in pins, f"{name}: run scripts/image_constraints.py"
    assert "docker/constraints.txt" in text


def test_dockerfile_bakes_the_npm_assets_as_setup_sh_does():
    text = DOCKERFILE.read_text()
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    vend = re.search(r"^vend=(\S+)", setup, re.M).group(1)
    pairs = re.findall(r'cp (node_modules/\S+) "\$vend/([^"]+)"', setup)
    assert len(pairs) == 2
    runs = " ".join(a for i, a, _ in instructions(text) if i == "RUN")
    assert "npm ci" in runs
    for src, name in pairs:
        assert f"cp {src} {vend}/{name}" in runs, (src, name)
    # The page serves exactly these names (ecg_ray/capture/browser.py).
    browser = (ROOT / "ecg_ray" / "capture" / "browser.py").read_text()
    for _, name in pairs:
        assert f'vend / "{name}"' in browser
    assert re.search(rf"COPY --from=\w+ \S*{re.escape(vend)}/? {re.escape(vend)}/?", text)


def test_dockerfile_shell_syntax_and_build_context():
    text = DOCKERFILE.read_text()
    for instr, args, _ in instructions(text):
        if instr == "RUN" and not args.startswith("["):
            body = re.sub(r"^(--\S+\s+)+", "", args)
            proc = subprocess.run(["bash", "-n", "-c", body], capture_output=True, text=True)
            assert proc.returncode == 0, f"{body[:80]}...: {proc.stderr}"
    ignore = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines()
              if ln.strip() and not ln.startswith("#")]
    for must in (".venv", "node_modules", ".git"):
        assert must in ignore
    for instr, args, body in instructions(text):
        if instr != "COPY" or "--from=" in args or body:
            continue
        for src in args.split()[:-1]:
            assert (ROOT / src).exists(), src
            assert not any(fnmatch.fnmatch(src.rstrip("/"), p) for p in ignore), f"{src} is dockerignored"
