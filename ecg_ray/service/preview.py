"""Where a job's live preview (rendering/preview.py) lies in the store, how it is reached, and
its removal ECG_PREVIEW_TTL_S after the job ended.

Beside the result: ``{ECG_OUTPUT_DIR}/[tenant/]{job_id}.preview/`` (local), or
``s3://{S3_BUCKET}/{ECG_S3_PREFIX}/[tenant/]{job_id}.preview/``. A player opens it through the
service's preview route with one signature for the whole folder (links.py): the route puts the
signature after every URI of the playlists it answers, so the fragments open with it too; with
S3 the fragments are redirects to presigned URLs.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from ecg_ray.rendering.preview import MASTER
from ecg_ray.rendering.resume import SegmentArea
from ecg_ray.service.models import job_ref, split_ref
from ecg_ray.service.storage import LocalStore, S3Store, Store, check_job_id
from ecg_ray.service.workarea import LocalArea, S3Area

log = logging.getLogger(__name__)

SUFFIX = ".preview"
# The files a preview has (playlists, the init segment, fragments): nothing else is served.
FILE_PATTERN = re.compile(r"(master|index)\.m3u8|init\.mp4|seg-\d{5}\.m4s")
PLAYLIST_TYPE = "application/vnd.apple.mpegurl"


def preview_name(ref: str) -> str:
    """The preview's folder under the store's root (what its links are signed for)."""
    tenant, job_id = split_ref(check_job_id(ref))
    return f"{tenant}/{job_id}{SUFFIX}" if tenant else f"{job_id}{SUFFIX}"


def _s3_base(store: S3Store) -> str:
    return f"{store.prefix}/" if store.prefix else ""


def preview_area(store: Store, ref: str) -> SegmentArea:
    if isinstance(store, S3Store):
        return S3Area(store, f"{_s3_base(store)}{preview_name(ref)}/")
    if isinstance(store, LocalStore):
        return LocalArea(os.path.join(store.output_dir, preview_name(ref)))
    raise TypeError(f"no preview area for a {type(store).__name__}")


def preview_route(base_url: str, ref: str, name: str = MASTER) -> str:
    """The service's route to one file of the job's preview (signed before it is handed out)."""
    tenant, job_id = split_ref(check_job_id(ref))
    return f"{base_url}/api/render/{job_id}/preview/{name}" + (f"?{urlencode({'tenant': tenant})}" if tenant else "")


def preview_location(store: Store, ref: str, name: str) -> dict[str, str] | None:
    """Where the route finds file ``name``: {"path": local file} or {"url": presigned}; None when absent."""
    if isinstance(store, LocalStore):
        path = os.path.join(store.output_dir, preview_name(ref), name)
        return {"path": path} if os.path.isfile(path) else None
    if isinstance(store, S3Store):
        return {"url": store.presigned_url(f"{_s3_base(store)}{preview_name(ref)}/{name}")}
    return None


def remove_preview(store: Store, ref: str) -> None:
    try:
        preview_area(store, ref).clear()
    except Exception as exc:  # noqa: BLE001 - the next sweep tries again
        log.warning("preview not removed", extra={"job_id": ref, "error": str(exc)[:300]})


def sweep_previews(store: Store, ttl_s: float, running: Callable[[str], bool], now: float | None = None) -> list[str]:
    """Remove the previews last written more than ``ttl_s`` ago (their job ended then: a running
    job's playlist is written with each segment), except those of jobs ``running`` says are
    still running. The refs removed."""
    now = time.time() if now is None else now
    removed: list[str] = []
    try:
        found = _previews(store)
    except Exception as exc:  # noqa: BLE001 - the store may be down; the next sweep tries again
        log.warning("previews not swept", extra={"error": str(exc)[:300]})
        return removed
    for ref, written in found.items():
        if now - written > ttl_s and not running(ref):
            remove_preview(store, ref)
            removed.append(ref)
    return removed


def _ref_of(folder: str, tenant: str) -> str | None:
    if not folder.endswith(SUFFIX):
        return None
    ref = job_ref(tenant, folder[:-len(SUFFIX)])
    try:
        return check_job_id(ref)
    except Exception:  # noqa: BLE001 - not a job's folder
        return None


def _previews(store: Store) -> dict[str, float]:
    """ref -> when its preview was last written (unix seconds)."""
    out: dict[str, float] = {}
    if isinstance(store, LocalStore):
        for tenant in ["", *_local_tenants(store.output_dir)]:
            root = os.path.join(store.output_dir, tenant)
            for folder in os.listdir(root):
                ref = _ref_of(folder, tenant)
                path = os.path.join(root, folder)
                if ref is not None and os.path.isdir(path):
                    out[ref] = max([os.path.getmtime(path)] + [os.path.getmtime(os.path.join(path, n))
                                                              for n in os.listdir(path)])
    elif isinstance(store, S3Store):
        base = _s3_base(store)
        for tenant in ["", *(p.rstrip("/") for p in _s3_folders(store, base) if not p.endswith(SUFFIX + "/"))]:
            inner = f"{base}{tenant}/" if tenant else base
            for folder in _s3_folders(store, inner):
                ref = _ref_of(folder.rstrip("/"), tenant)
                if ref is not None:
                    out[ref] = _s3_newest(store, f"{inner}{folder}")
    return out


def _local_tenants(root: str) -> list[str]:
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return []
    return [n for n in names if not n.startswith(".") and not n.endswith(SUFFIX)
            and os.path.isdir(os.path.join(root, n))]


def _s3_folders(store: S3Store, prefix: str) -> list[str]:
    """The 'folders' right under ``prefix`` (names ending with /)."""
    names: list[str] = []
    pages: Any = store.client.get_paginator("list_objects_v2").paginate(Bucket=store.bucket, Prefix=prefix,
                                                                      Delimiter="/")
    for page in pages:
        names.extend(p["Prefix"][len(prefix):] for p in page.get("CommonPrefixes", []))
    return [n for n in names if not n.startswith(".")]


def _s3_newest(store: S3Store, prefix: str) -> float:
    newest = 0.0
    pages: Any = store.client.get_paginator("list_objects_v2").paginate(Bucket=store.bucket, Prefix=prefix)
    for page in pages:
        for o in page.get("Contents", []):
            newest = max(newest, o["LastModified"].timestamp())
    return newest
