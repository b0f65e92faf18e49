"""Who may do what: API keys with a tenant and rights, and networks let in without a key.

Without keys configured the service is open, as it always was (the platform's backend sends no
credentials): every caller is the tenant "" with every right. With keys (ECG_API_KEYS_FILE
and/or ECG_API_KEYS), every route but ``/health`` needs ``Authorization: Bearer <key>``, and
signed download links open their one file without one (links.py). A key is stored only as
its SHA-256: keys are 256-bit random tokens (``new_key``), so a fast hash is as safe as a slow
one and costs microseconds a request. Every stored hash is compared with ``hmac.compare_digest``
(no early exit), so the answer's time tells nothing of how close a wrong key came.

The key file is read again when it changes (checked at most once a second), so keys are
rotated without a restart: add the new key, move the clients, remove the old one. A file that
no longer parses keeps the keys read before (logged), rather than locking everyone out or
letting everyone in.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ecg_ray.config import Settings
from ecg_ray.service.models import TENANT_PATTERN

log = logging.getLogger(__name__)

_RELOAD_EVERY_S = 1.0
KEY_PREFIX = "ecg_"


class Right(StrEnum):
    """What a key may do. ``admin`` may do everything, for every tenant (``?tenant=``)."""

    SUBMIT = "submit"
    READ = "read"
    CANCEL = "cancel"
    ADMIN = "admin"


class KeyEntry(BaseModel):
    """One key in the key file: its hash, its tenant and its rights (never the key itself)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("", max_length=100, description="for logs and the operator; not a secret")
    tenant: str = Field(pattern=TENANT_PATTERN)
    rights: set[Right]
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="hex SHA-256 of the key")

    @field_validator("rights")
    @classmethod
    def _some(cls, v: set[Right]) -> set[Right]:
        if not v:
            raise ValueError("a key needs at least one right (submit, read, cancel, admin)")
        return v


class KeyFile(BaseModel):
    """The key file's shape (ECG_API_KEYS_FILE, or the same JSON in ECG_API_KEYS)."""

    model_config = ConfigDict(extra="forbid")

    keys: list[KeyEntry]


@dataclass(frozen=True)
class Caller:
    """Who a request comes from: its tenant and rights, and how that was decided."""

    tenant: str
    rights: frozenset[Right]
    via: str            # "open" (no keys configured), "network" (ECG_OPEN_NETWORKS), or "key:<name>"

    def may(self, right: Right) -> bool:
        return Right.ADMIN in self.rights or right in self.rights

    def acts_for(self, tenant: str | None) -> str | None:
        """The tenant a request names (``?tenant=``; None: the caller's own), or None when the
        caller may not act for it."""
        if tenant is None or tenant == self.tenant:
            return self.tenant
        return tenant if Right.ADMIN in self.rights else None


EVERY_RIGHT = frozenset(Right)
OPEN = Caller(tenant="", rights=EVERY_RIGHT, via="open")
# What a request from an open network may do without a key: a backend inside the VPC submits,
# follows and cancels its jobs; administration still takes a key.
NETWORK_RIGHTS = frozenset({Right.SUBMIT, Right.READ, Right.CANCEL})


class AuthError(Exception):
    """401: no key, or not a key of this service."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    """A new API key: 256 random bits, URL-safe, with a prefix that secret scanners can match."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def parse_keys(text: str, where: str) -> list[KeyEntry]:
    """The keys in ``text`` (the key file's JSON); ValueError naming ``where`` and the problem."""
    try:
        return KeyFile.model_validate(json.loads(text)).keys
    except (ValueError, ValidationError) as exc:
        raise ValueError(f"{where}: not a valid key list ({str(exc)[:500]})") from exc


def parse_networks(text: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """ECG_OPEN_NETWORKS: comma-separated CIDRs; ValueError naming the bad one."""
    nets = []
    for part in (p.strip() for p in text.split(",")):
        if part:
            try:
                nets.append(ipaddress.ip_network(part, strict=False))
            except ValueError as exc:
                raise ValueError(f"ECG_OPEN_NETWORKS: {part!r} is not a network ({exc})") from exc
    return nets


class KeyRing:
    """The keys and open networks of one process (each HTTP replica holds one)."""

    def __init__(self, settings: Settings) -> None:
        self._path = settings.api_keys_file
        self._fixed = parse_keys(settings.api_keys, "ECG_API_KEYS") if settings.api_keys.strip() else []
        self._networks = parse_networks(settings.open_networks)
        self._from_file: list[KeyEntry] = []
        self._seen: tuple[float, int, int] | None = None
        self._checked = float("-inf")
        self._lock = threading.Lock()
        if self._path:
            self._from_file = parse_keys(self._read(), self._path)  # a bad file at start-up is an error
            self._seen = self._stamp()

    @property
    def enabled(self) -> bool:
        """Keys are configured (a key file set counts even while it lists none: nobody gets in)."""
        return bool(self._path or self._fixed)

    def _read(self) -> str:
        with open(self._path, encoding="utf-8") as f:
            return f.read()

    def _stamp(self) -> tuple[float, int, int] | None:
        try:
            st = os.stat(self._path)
        except OSError:
            return None
        return (st.st_mtime, st.st_size, st.st_ino)

    def _reload(self) -> None:
        now = time.monotonic()
        with self._lock:
            if not self._path or now - self._checked < _RELOAD_EVERY_S:
                return
            self._checked = now
            stamp = self._stamp()
            if stamp == self._seen:
                return
            try:
                keys = parse_keys(self._read(), self._path)
            except (OSError, ValueError) as exc:
                log.error("API key file not read again; keeping the keys read before", extra={"error": str(exc)[:500]})
                return
            self._from_file, self._seen = keys, stamp
            log.info("API keys read again", extra={"keys": len(keys)})

    def keys(self) -> list[KeyEntry]:
        self._reload()
        return [*self._fixed, *self._from_file]

    def _open_network(self, client_ip: str | None) -> bool:
        if not client_ip or not self._networks:
            return False
        try:
            ip = ipaddress.ip_address(client_ip)
        except ValueError:
            return False
        return any(ip in net for net in self._networks)

    def identify(self, authorization: str | None, client_ip: str | None) -> Caller:
        """The caller of a request with this Authorization header from this address, or AuthError."""
        if not self.enabled:
            return OPEN
        if not authorization:
            if self._open_network(client_ip):
                return Caller(tenant="", rights=NETWORK_RIGHTS, via="network")
            raise AuthError("this route needs an API key: Authorization: Bearer <key>")
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError("the Authorization header must be 'Bearer <key>'")
        digest = hash_key(token.strip()).encode()
        found: KeyEntry | None = None
        for entry in self.keys():  # every entry compared: the time does not depend on which matched
            if hmac.compare_digest(digest, entry.sha256.encode()):
                found = entry
        if found is None:
            raise AuthError("the API key is not valid")
        return Caller(tenant=found.tenant, rights=frozenset(found.rights), via=f"key:{found.name}")
