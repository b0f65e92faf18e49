"""The segment cache in the job store (rendering/segcache.py says what it is for).

Local store: ``{ECG_OUTPUT_DIR}/.segment-cache/``; S3: ``{ECG_S3_PREFIX}/.segment-cache/`` in the
bucket, which every instance and node reads. Each entry is a segment file named by its key, with
its SHA-256 and the time it was written beside it (a ``.json`` file locally, object metadata on
S3): a file that does not match is a miss and is removed, never joined. ``evict`` (after each
job) removes entries older than ECG_SEGMENT_CACHE_TTL_S, then the least recently used ones until
the cache is within ECG_SEGMENT_CACHE_MB. A hit marks its entry used (the ``.json`` file's mtime;
on S3 a copy of the object onto itself, which renews LastModified).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from datetime import timezone
from typing import Any

from ecg_ray.config import Settings
from ecg_ray.files import discard
from ecg_ray.rendering.segcache import SegmentCache
from ecg_ray.service.storage import LocalStore, S3Store, Store

log = logging.getLogger(__name__)

CACHE_DIR = ".segment-cache"
_KEY = re.compile(r"^[0-9a-f]{64}$")


def _check(key: str) -> str:
    if not _KEY.match(key):
        raise ValueError(f"not a segment key: {key!r}")
    return key


class LocalSegmentCache:
    """Entries as ``<key>.mp4`` and ``<key>.json`` in one directory."""

    def __init__(self, root: str, max_bytes: int, ttl_s: float) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.ttl_s = ttl_s

    def _paths(self, key: str) -> tuple[str, str]:
        base = os.path.join(self.root, _check(key))
        return base + ".mp4", base + ".json"

    def get(self, key: str) -> bytes | None:
        data_path, meta_path = self._paths(key)
        try:
            with open(meta_path, "rb") as fh:
                meta = json.loads(fh.read())
            with open(data_path, "rb") as fh:
                data = fh.read()
        except (FileNotFoundError, ValueError):
            return None
        if len(data) != meta.get("size") or hashlib.sha256(data).hexdigest() != meta.get("sha256"):
            log.warning("damaged segment cache entry removed", extra={"key": key})
            self._remove(key)
            return None
        if self.ttl_s > 0 and time.time() - float(meta.get("written", 0)) > self.ttl_s:
            self._remove(key)
            return None
        try:
            os.utime(meta_path)  # used now: last to be evicted
        except FileNotFoundError:
            return None
        return data

    def put(self, key: str, data: bytes) -> None:
        data_path, meta_path = self._paths(key)
        os.makedirs(self.root, exist_ok=True)
        meta = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "written": time.time()}
        # The data first, then the record that vouches for it: a reader sees both or a miss.
        for path, body in ((data_path, data), (meta_path, json.dumps(meta).encode())):
            part = f"{path}.{os.getpid()}.part"
            try:
                with open(part, "wb") as fh:
                    fh.write(body)
                os.replace(part, path)
            finally:
                discard(part)

    def _remove(self, key: str) -> None:
        for p in self._paths(key):
            discard(p)

    def entries(self) -> list[tuple[str, int, float, float]]:
        """(key, bytes, last used, written) of each entry."""
        out = []
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return []
        for name in names:
            key, ext = os.path.splitext(name)
            if ext != ".json" or not _KEY.match(key):
                continue
            data_path, meta_path = self._paths(key)
            try:
                used = os.stat(meta_path).st_mtime
                with open(meta_path, "rb") as fh:
                    written = float(json.loads(fh.read()).get("written", 0))
                size = os.stat(data_path).st_size
            except (OSError, ValueError):
                continue
            out.append((key, size, used, written))
        return out

    def evict(self) -> None:
        _, gone = _evict(self.entries(), self.max_bytes, self.ttl_s)
        for key in gone:
            self._remove(key)
        # Files of puts that died half-way (a .part) and data without its record.
        try:
            names = set(os.listdir(self.root))
        except FileNotFoundError:
            return
        cutoff = time.time() - 3600
        for name in names:
            path = os.path.join(self.root, name)
            orphan = name.endswith(".mp4") and name[:-4] + ".json" not in names
            if name.endswith(".part") or orphan:
                try:
                    if os.stat(path).st_mtime < cutoff:
                        discard(path)
                except OSError:
                    pass


class S3SegmentCache:
    """Entries as objects ``<prefix><key>.mp4`` with their digest in the object's metadata."""

    def __init__(self, store: S3Store, prefix: str, max_bytes: int, ttl_s: float) -> None:
        self.store = store
        self.prefix = prefix  # ends with "/"
        self.max_bytes = max_bytes
        self.ttl_s = ttl_s

    def _key(self, key: str) -> str:
        return f"{self.prefix}{_check(key)}.mp4"

    def get(self, key: str) -> bytes | None:
        client, bucket = self.store.client, self.store.bucket
        try:
            obj = client.get_object(Bucket=bucket, Key=self._key(key))
        except client.exceptions.NoSuchKey:
            return None
        data = bytes(obj["Body"].read())
        meta = obj.get("Metadata") or {}
        if hashlib.sha256(data).hexdigest() != meta.get("sha256"):
            log.warning("damaged segment cache entry removed", extra={"key": key})
            client.delete_object(Bucket=bucket, Key=self._key(key))
            return None
        written = float(meta.get("written") or 0)
        if self.ttl_s > 0 and time.time() - written > self.ttl_s:
            client.delete_object(Bucket=bucket, Key=self._key(key))
            return None
        # Used now: a copy onto itself renews LastModified, the order eviction goes by.
        client.copy_object(Bucket=bucket, Key=self._key(key), CopySource={"Bucket": bucket, "Key": self._key(key)},
                           Metadata=meta, MetadataDirective="REPLACE")
        return data

    def put(self, key: str, data: bytes) -> None:
        self.store.client.put_object(
            Bucket=self.store.bucket, Key=self._key(key), Body=data, ContentType="video/mp4",
            Metadata={"sha256": hashlib.sha256(data).hexdigest(), "written": f"{time.time():.3f}"})

    def entries(self) -> list[tuple[str, int, float, float]]:
        """(key, bytes, last used, written) of each entry; ``written`` is LastModified here (a
        HEAD per entry would be a round trip each): an entry used lately lives on."""
        out = []
        pages: Any = self.store.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.store.bucket, Prefix=self.prefix)
        for page in pages:
            for o in page.get("Contents", []):
                name = o["Key"][len(self.prefix):]
                if name.endswith(".mp4") and _KEY.match(name[:-4]):
                    used = o["LastModified"].replace(tzinfo=o["LastModified"].tzinfo or timezone.utc).timestamp()
                    out.append((name[:-4], int(o["Size"]), used, used))
        return out

    def evict(self) -> None:
        _, gone = _evict(self.entries(), self.max_bytes, self.ttl_s)
        keys = [self._key(k) for k in gone]
        for i in range(0, len(keys), 1000):  # DeleteObjects takes 1000 keys a call
            self.store.client.delete_objects(Bucket=self.store.bucket,
                                             Delete={"Objects": [{"Key": k} for k in keys[i:i + 1000]]})


def _evict(entries: list[tuple[str, int, float, float]], max_bytes: int,
           ttl_s: float) -> tuple[list[str], list[str]]:
    """(kept, removed) keys: past the lifetime first, then least recently used beyond the size."""
    now = time.time()
    gone = [k for k, _, _, written in entries if ttl_s > 0 and now - written > ttl_s]
    live = sorted((e for e in entries if e[0] not in set(gone)), key=lambda e: e[2], reverse=True)
    total, kept = 0, list[str]()
    for key, size, _, _ in live:  # most recently used first; from the first that does not fit, all go
        total += size
        (kept if total <= max_bytes else gone).append(key)
    return kept, gone


def segment_cache(store: Store, settings: Settings) -> SegmentCache | None:
    """The store's segment cache, or None where ECG_SEGMENT_CACHE_MB is 0."""
    if settings.segment_cache_mb <= 0:
        return None
    limit = settings.segment_cache_mb << 20
    if isinstance(store, S3Store):
        base = f"{store.prefix}/{CACHE_DIR}/" if store.prefix else f"{CACHE_DIR}/"
        return S3SegmentCache(store, base, limit, settings.segment_cache_ttl_s)
    if isinstance(store, LocalStore):
        return LocalSegmentCache(os.path.join(store.output_dir, CACHE_DIR), limit, settings.segment_cache_ttl_s)
    return None
