"""Starting or joining Ray for a render (command line, Python, the service)."""

from __future__ import annotations

import os
from typing import Any

import ray

from ecg_ray.config import usable_cores


def ensure_ray(address: str | None = None, **kw: Any) -> None:
    """Connect to ``address`` (or RAY_ADDRESS), else start a local Ray."""
    if ray.is_initialized():
        return
    # "local" starts a new Ray even when another one runs on this machine (ray.init() alone
    # would join that one: a one-off render must not land on someone else's cluster).
    addr = address or os.environ.get("RAY_ADDRESS") or "local"
    opts: dict[str, Any] = {"ignore_reinit_error": True, "log_to_driver": False}
    if addr == "local":
        opts.setdefault("include_dashboard", False)
        # Ray counts the machine's cores, not the ones this process may run on (taskset, a
        # cpuset): a render confined to 2 of 16 cores would start 16 segment actors.
        allowed = usable_cores()
        if allowed < (os.cpu_count() or 0):
            opts.setdefault("num_cpus", allowed)
    opts.update(kw)
    ray.init(address=addr, **opts)


def _cluster_has_gpus() -> bool:
    return ray.cluster_resources().get("GPU", 0) > 0
