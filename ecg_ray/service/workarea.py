"""A running job's work area in the store: where its finished segments wait out a restart.

Local store: ``{ECG_OUTPUT_DIR}/.work/{job_id}/`` (beside the results, so on the same disk
that outlives the service). S3: ``s3://{S3_BUCKET}/{ECG_S3_PREFIX}/.work/{job_id}/``, which
another instance or a replaced head node can read too. The area is removed when the job ends;
areas of jobs that are no longer running are swept when the service starts.
"""

from __future__ import annotations

import logging
import os
import shutil
from typing import Any

from ecg_ray.files import discard
from ecg_ray.rendering.resume import SegmentArea
from ecg_ray.service.storage import LocalStore, S3Store, Store, check_job_id

log = logging.getLogger(__name__)

WORK_DIR = ".work"


class LocalArea:
    def __init__(self, root: str) -> None:
        self.root = root

    def put(self, name: str, data: bytes) -> None:
        os.makedirs(self.root, exist_ok=True)
        path = os.path.join(self.root, name)
        part = path + ".part"
        try:
            with open(part, "wb") as fh:
                fh.write(data)
            os.replace(part, path)  # whole or not at all
        finally:
            discard(part)

    def get(self, name: str) -> bytes | None:
        try:
            with open(os.path.join(self.root, name), "rb") as fh:
                return fh.read()
        except FileNotFoundError:
            return None

    def names(self) -> list[str]:
        try:
            return [n for n in os.listdir(self.root) if not n.endswith(".part")]
        except FileNotFoundError:
            return []

    def clear(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


class S3Area:
    def __init__(self, store: S3Store, prefix: str) -> None:
        self.store = store
        self.prefix = prefix  # ends with "/"

    def put(self, name: str, data: bytes) -> None:
        self.store.client.put_object(Bucket=self.store.bucket, Key=self.prefix + name, Body=data)

    def get(self, name: str) -> bytes | None:
        try:
            obj = self.store.client.get_object(Bucket=self.store.bucket, Key=self.prefix + name)
        except self.store.client.exceptions.NoSuchKey:
            return None
        return bytes(obj["Body"].read())

    def names(self) -> list[str]:
        return [k[len(self.prefix):] for k in self._keys()]

    def _keys(self) -> list[str]:
        keys: list[str] = []
        pages = self.store.client.get_paginator("list_objects_v2").paginate(Bucket=self.store.bucket,
                                                                           Prefix=self.prefix)
        for page in pages:
            keys.extend(o["Key"] for o in page.get("Contents", []))
        return keys

    def clear(self) -> None:
        keys = self._keys()
        for i in range(0, len(keys), 1000):  # DeleteObjects takes 1000 keys a call
            self.store.client.delete_objects(Bucket=self.store.bucket,
                                             Delete={"Objects": [{"Key": k} for k in keys[i:i + 1000]]})


def work_area(store: Store, job_id: str) -> SegmentArea:
    """The work area of ``job_id`` in ``store``."""
    check_job_id(job_id)
    if isinstance(store, S3Store):
        base = f"{store.prefix}/{WORK_DIR}/" if store.prefix else f"{WORK_DIR}/"
        return S3Area(store, f"{base}{job_id}/")
    if isinstance(store, LocalStore):
        return LocalArea(os.path.join(store.output_dir, WORK_DIR, job_id))
    raise TypeError(f"no work area for a {type(store).__name__}")


def remove_work_area(store: Store, job_id: str) -> None:
    """The job ended: its kept segments go (best effort; a failure is swept at the next start)."""
    try:
        work_area(store, job_id).clear()
    except Exception as exc:  # noqa: BLE001 - logged; the start-up sweep retries
        log.warning("work area not removed", extra={"job_id": job_id, "error": str(exc)[:300]})


def sweep_work_areas(store: Store, keep: set[str]) -> None:
    """Remove the work areas of jobs not in ``keep`` (those going on after this start)."""
    try:
        ids = _area_ids(store)
    except Exception as exc:  # noqa: BLE001 - the store may be down; nothing depends on the sweep
        log.warning("work areas not swept", extra={"error": str(exc)[:300]})
        return
    for job_id in ids - keep:
        remove_work_area(store, job_id)


def _area_ids(store: Store) -> set[str]:
    if isinstance(store, LocalStore):
        try:
            return set(os.listdir(os.path.join(store.output_dir, WORK_DIR)))
        except FileNotFoundError:
            return set()
    if isinstance(store, S3Store):
        base = f"{store.prefix}/{WORK_DIR}/" if store.prefix else f"{WORK_DIR}/"
        ids: set[str] = set()
        pages: Any = store.client.get_paginator("list_objects_v2").paginate(
            Bucket=store.bucket, Prefix=base, Delimiter="/")
        for page in pages:
            ids.update(p["Prefix"][len(base):].rstrip("/") for p in page.get("CommonPrefixes", []))
        return ids
    return set()
