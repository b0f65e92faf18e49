"""The job table in Redis (REDIS_URL): one queue for several service instances.

Keys, under ECG_REDIS_PREFIX (``ecg``):
  {p}:job:{id}        hash: seq, request, fingerprint, status, outbox (JSON); expires
                      ECG_REDIS_JOB_TTL_S after the job ended
  {p}:queue           sorted set of queued job ids by seq
  {p}:running         set of job ids being rendered (or waiting to be taken over)
  {p}:lease:{id}      "<instance>/<run id>" of the instance rendering it; expires unless renewed
  {p}:cancel:{id}     a cancel asked through any instance, seen by the one rendering
  {p}:owed            set of ended jobs whose final callback is not settled yet
  {p}:seq, {p}:version counters; {p}:changes sorted set (job id by version): the change feed
  {p}:jobs            sorted set of job ids by seq (the jobs list, newest last; an expired
                      job's entry goes when a listing meets it)
  {p}:incarnation     the feed's id (new if Redis lost its data: the mirrors resync)
  {p}:lock:{id}       short lock around submit/cancel decisions on one job

A job is claimed by a Lua script (atomic on the server): a running job whose lease lapsed (its
instance died), or whose lease names this instance under an earlier run (it was restarted),
is taken over first; else the lowest seq of the queue. A lease that lapsed while Redis itself
was away says nothing about its holder: an instance takes over others' jobs only once it has
reached Redis without a break for a whole lease (the holders renew theirs meanwhile). Redis
Cluster is not supported (the scripts touch keys they compute).
"""

from __future__ import annotations

import json
import logging
import secrets
import time
import uuid
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from ecg_ray.service.jobtable import JobRecord, StoreUnavailable
from ecg_ray.service.models import JobState, JobStatus, split_ref
from ecg_ray.service.state import stored_request
from ecg_ray.sources.urls import redact

log = logging.getLogger(__name__)

T = TypeVar("T")
_RECENT_ON_RESYNC = 2000
_CHANGES_KEPT = 100_000   # feed entries kept (a mirror further behind resyncs), and jobs listed
_LIST_PAGE = 500          # job ids read at a time while listing recent jobs
_CANCEL_TTL_S = 3600

_CLAIM = """
local running = {}
if ARGV[5] == '1' then running = redis.call('SMEMBERS', KEYS[2]) end
for _, id in ipairs(running) do
  local lease = ARGV[1] .. ':lease:' .. id
  local holder = redis.call('GET', lease)
  if (not holder) or (holder ~= ARGV[2] and string.sub(holder, 1, string.len(ARGV[4])) == ARGV[4]) then
    redis.call('SET', lease, ARGV[2], 'PX', ARGV[3])
    return {id, '1'}
  end
end
local top = redis.call('ZPOPMIN', KEYS[1])
if #top == 0 then return false end
redis.call('SADD', KEYS[2], top[1])
redis.call('SET', ARGV[1] .. ':lease:' .. top[1], ARGV[2], 'PX', ARGV[3])
return {top[1], '0'}
"""

_RENEW = """
local kept = {}
for i, id in ipairs(KEYS) do
  local lease = ARGV[1] .. ':lease:' .. id
  local holder = redis.call('GET', lease)
  if holder == ARGV[2] then
    redis.call('PEXPIRE', lease, ARGV[3])
    table.insert(kept, id)
  elseif not holder then
    -- lapsed while Redis was away: take it back unless another instance has
    redis.call('SET', lease, ARGV[2], 'PX', ARGV[3])
    table.insert(kept, id)
  end
end
return kept
"""

# KEYS: job hash, queue, version, changes, owed, jobs; ARGV: job id, queue seq ('' = not queued;
# given when the job is submitted, so also its place in the jobs list), feed and list length,
# then field, value pairs (an "outbox" field also puts the job in or out of the owed set)
_WRITE = """
for i = 4, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  if ARGV[i] == 'outbox' then
    if ARGV[i + 1] == '' then redis.call('SREM', KEYS[5], ARGV[1]) else redis.call('SADD', KEYS[5], ARGV[1]) end
  end
end
redis.call('PERSIST', KEYS[1])
if ARGV[2] ~= '' then
  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
  redis.call('ZADD', KEYS[6], ARGV[2], ARGV[1])
  redis.call('ZREMRANGEBYRANK', KEYS[6], 0, -tonumber(ARGV[3]) - 1)
end
local version = redis.call('INCR', KEYS[3])
redis.call('ZADD', KEYS[4], version, ARGV[1])
redis.call('ZREMRANGEBYRANK', KEYS[4], 0, -tonumber(ARGV[3]) - 1)
return version
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
redis.call('SREM', KEYS[2], ARGV[2])
if ARGV[3] == '1' then redis.call('EXPIRE', KEYS[3], ARGV[4]) end
return 1
"""


class RedisTable:
    kind = "redis"

    def __init__(self, url: str, prefix: str, instance: str, lease_s: float, job_ttl_s: int,
                 client: Any = None) -> None:
        import redis

        self._errors: tuple[type[BaseException], ...] = (redis.ConnectionError, redis.TimeoutError)
        self.r: Any = client or redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5,
                                                     health_check_interval=10, decode_responses=True)
        self.url_shown = redact(url)
        self.p = prefix
        self.instance = instance
        self.holder = f"{instance}/{uuid.uuid4().hex[:12]}"  # this run of the instance
        self.lease_ms = int(lease_s * 1000)
        self.job_ttl_s = job_ttl_s
        self._claim = self.r.register_script(_CLAIM)
        self._renew = self.r.register_script(_RENEW)
        self._release = self.r.register_script(_RELEASE)
        self._write_script = self.r.register_script(_WRITE)
        self.incarnation = ""
        self._reachable_since: float | None = time.monotonic() - lease_s  # at start: takeovers allowed
        self._feed_id()

    # -- plumbing ----------------------------------------------------------------------------
    def _do(self, what: str, fn: Callable[[], T]) -> T:
        try:
            out = fn()
        except self._errors as exc:
            self._reachable_since = None
            raise StoreUnavailable(f"the job table (Redis at {self.url_shown}) is not reachable ({what}): "
                                   f"{str(exc)[:200]}") from None
        if self._reachable_since is None:
            self._reachable_since = time.monotonic()
        return out

    def _feed_id(self) -> str:
        def get() -> str:
            key = f"{self.p}:incarnation"
            self.r.set(key, uuid.uuid4().hex, nx=True)
            return str(self.r.get(key))
        self.incarnation = self._do("start", get)
        return self.incarnation

    def _key(self, job_id: str) -> str:
        return f"{self.p}:job:{job_id}"

    @staticmethod
    def _record(raw: dict[str, str]) -> JobRecord | None:
        if not raw or "status" not in raw:
            return None
        outbox = raw.get("outbox")
        return JobRecord(int(raw["seq"]), stored_request(json.loads(raw["request"])), raw["fingerprint"],
                         JobStatus.model_validate_json(raw["status"]), json.loads(outbox) if outbox else None)

    # -- the contract -------------------------------------------------------------------------
    @contextmanager
    def lock(self, job_id: str) -> Iterator[None]:
        lock = self.r.lock(f"{self.p}:lock:{job_id}", timeout=10, blocking_timeout=10)
        if not self._do("lock", lambda: lock.acquire()):
            raise StoreUnavailable(f"job {job_id!r} is held by another call; retry")
        try:
            yield
        finally:
            try:
                lock.release()
            except Exception:  # noqa: BLE001 - expired or Redis away: it times out by itself
                pass

    def get(self, job_id: str) -> JobRecord | None:
        return self._record(self._do("read", lambda: self.r.hgetall(self._key(job_id))))

    def _write(self, job_id: str, fields: dict[str, Any], queue_seq: int | None = None) -> None:
        """Fields of the job's hash, a feed entry (and its place in the queue): one script, atomic."""
        args: list[Any] = [job_id, "" if queue_seq is None else queue_seq, _CHANGES_KEPT]
        for k, v in fields.items():
            args += [k, v]
        self._do("write", lambda: self._write_script(
            keys=[self._key(job_id), f"{self.p}:queue", f"{self.p}:version", f"{self.p}:changes", f"{self.p}:owed",
                  f"{self.p}:jobs"],
            args=args))

    def add(self, rec: JobRecord) -> JobRecord:
        rec.seq = int(self._do("write", lambda: self.r.incr(f"{self.p}:seq")))
        self._write(rec.status.ref, {
            "seq": rec.seq, "request": rec.request.model_dump_json(), "fingerprint": rec.fingerprint,
            "status": rec.status.model_dump_json(), "outbox": ""}, queue_seq=rec.seq)
        self._do("write", lambda: self.r.delete(f"{self.p}:cancel:{rec.status.ref}"))
        return rec

    def save(self, status: JobStatus, outbox: dict[str, Any] | None = None) -> None:
        fields: dict[str, Any] = {"status": status.model_dump_json()}
        if outbox is not None:
            fields["outbox"] = json.dumps(outbox)
        self._write(status.ref, fields)

    touch = save  # every change goes to Redis: the other instances read it there

    def outbox_done(self, job_id: str, attempt: int) -> None:
        rec = self.get(job_id)
        if rec is not None and rec.outbox is not None and rec.outbox.get("attempt") == attempt:
            def clear() -> None:
                pipe = self.r.pipeline(transaction=True)
                pipe.hset(self._key(job_id), "outbox", "")
                pipe.srem(f"{self.p}:owed", job_id)
                pipe.execute()
            self._do("write", clear)

    def owed(self) -> list[JobRecord]:
        """From the owed set (kept with each outbox write): no scan over every job at start-up."""
        out = []
        for job_id in self._do("read", lambda: self.r.smembers(f"{self.p}:owed")):
            rec = self.get(job_id)
            if rec is None:  # expired meanwhile: nothing left to report
                self._do("write", lambda: self.r.srem(f"{self.p}:owed", job_id))
            elif rec.outbox and JobState(rec.status.state).terminal:
                out.append(rec)
        return out

    def queued(self) -> list[str]:
        return list(self._do("read", lambda: self.r.zrange(f"{self.p}:queue", 0, -1)))

    def running(self) -> list[str]:
        return sorted(self._do("read", lambda: self.r.smembers(f"{self.p}:running")))

    def unqueue(self, job_id: str) -> bool:
        if self._do("write", lambda: self.r.zrem(f"{self.p}:queue", job_id)):
            return True
        # waiting to be taken over (running, its lease lapsed): taken out by whoever gets its lease
        def take() -> bool:
            lease = f"{self.p}:lease:{job_id}"
            if self.r.sismember(f"{self.p}:running", job_id) and self.r.set(lease, self.holder, nx=True,
                                                                             px=self.lease_ms):
                self.r.srem(f"{self.p}:running", job_id)
                self.r.delete(lease)
                return True
            return False
        return bool(self._do("write", take))

    def claim(self) -> tuple[str, bool] | None:
        since = self._reachable_since
        takeover = since is not None and time.monotonic() - since >= self.lease_ms / 1000
        got = self._do("claim", lambda: self._claim(
            keys=[f"{self.p}:queue", f"{self.p}:running"],
            args=[self.p, self.holder, self.lease_ms, self.instance + "/", "1" if takeover else "0"]))
        if not got:
            return None
        return str(got[0]), str(got[1]) == "1"

    def release(self, job_id: str, ended: bool) -> None:
        self._do("release", lambda: self._release(
            keys=[f"{self.p}:lease:{job_id}", f"{self.p}:running", self._key(job_id)],
            args=[self.holder, job_id, "1" if ended else "0", self.job_ttl_s]))

    def leases(self, job_ids: list[str]) -> dict[str, str]:
        if not job_ids:
            return {}
        holders = self._do("read", lambda: self.r.mget([f"{self.p}:lease:{j}" for j in job_ids]))
        return {j: h or "" for j, h in zip(job_ids, holders)}

    def renew(self, job_ids: list[str]) -> set[str]:
        if not job_ids:
            return set()
        kept = self._do("renew", lambda: self._renew(keys=job_ids, args=[self.p, self.holder, self.lease_ms]))
        return {str(k) for k in kept}

    def request_cancel(self, job_id: str) -> None:
        self._do("write", lambda: self.r.set(f"{self.p}:cancel:{job_id}", "1", ex=_CANCEL_TTL_S))

    def cancel_requested(self, job_ids: list[str]) -> set[str]:
        if not job_ids:
            return set()
        flags = self._do("read", lambda: self.r.mget([f"{self.p}:cancel:{j}" for j in job_ids]))
        return {j for j, f in zip(job_ids, flags) if f}

    def changes(self, since: int, full: bool) -> tuple[int, list[JobStatus]]:
        def run() -> tuple[int, list[JobStatus]]:
            version = int(self.r.get(f"{self.p}:version") or 0)
            ids: dict[str, None] = dict.fromkeys(self.r.zrange(f"{self.p}:queue", 0, -1))
            if full:
                ids.update(dict.fromkeys(self.r.smembers(f"{self.p}:running")))
                recent = self.r.zrevrange(f"{self.p}:changes", 0, _RECENT_ON_RESYNC - 1)
            else:
                recent = self.r.zrangebyscore(f"{self.p}:changes", f"({since}", "+inf")
            ids.update(dict.fromkeys(recent))
            pipe = self.r.pipeline(transaction=False)
            for j in ids:
                pipe.hget(self._key(j), "status")
            statuses = [JobStatus.model_validate_json(s) for s in pipe.execute() if s]
            return version, statuses
        return self._do("feed", run)

    def recent(self, limit: int, tenant: str | None = None, states: Collection[JobState] = ()) -> list[JobStatus]:
        index = f"{self.p}:jobs"

        def run() -> list[JobStatus]:
            out: list[JobStatus] = []
            seen: set[str] = set()
            start = 0
            while len(out) < limit:
                refs = self.r.zrevrange(index, start, start + _LIST_PAGE - 1)
                if not refs:
                    break
                start += len(refs)
                # Another tenant's jobs are passed over by their ref, without being read.
                mine = [r for r in refs if r not in seen and (tenant is None or split_ref(r)[0] == tenant)]
                seen.update(refs)  # (a job submitted meanwhile moves the ranks: nothing twice)
                pipe = self.r.pipeline(transaction=False)
                for ref in mine:
                    pipe.hget(self._key(ref), "status")
                gone = []
                for ref, raw in zip(mine, pipe.execute() if mine else []):
                    if raw is None:  # expired (ECG_REDIS_JOB_TTL_S)
                        gone.append(ref)
                        continue
                    st = JobStatus.model_validate_json(raw)
                    if not states or st.state in states:
                        out.append(st)
                if gone:
                    self.r.zrem(index, *gone)
                    start -= len(gone)  # they were before the next page
            return out[:limit]
        return self._do("read", run)

    def wait(self, timeout: float) -> None:
        time.sleep(min(timeout, 0.25))  # other instances add work: polled (a claim is one round trip)

    def secret(self, name: str) -> bytes:
        key = f"{self.p}:secret:{name}"

        def get() -> bytes:
            self.r.set(key, secrets.token_hex(32), nx=True)  # the first instance makes it
            return str(self.r.get(key)).encode()
        return self._do("read", get)

    def wake(self) -> None:
        pass

    def describe(self) -> dict[str, Any]:
        try:
            self.r.ping()
            ok, problem = True, ""
        except Exception as exc:  # noqa: BLE001 - reported
            ok, problem = False, str(exc)[:200]
        out: dict[str, Any] = {"kind": self.kind, "url": self.url_shown, "prefix": self.p, "ok": ok,
                               "instance": self.instance, "holder": self.holder}
        if problem:
            out["problem"] = problem
        return out

    def close(self) -> None:
        try:
            self.r.close()
        except Exception:  # noqa: BLE001
            pass

