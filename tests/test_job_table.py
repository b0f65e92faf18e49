"""The job table's contract (jobtable.py), one set of cases for both kinds: SQLite in a state
directory and Redis (a real redis-server on loopback). Queue order, claims and leases, cancels
asked through another instance, the change feed, final callbacks owed, a restart, expiry."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ecg_ray.service.jobtable import JobRecord, JobTable, StoreUnavailable
from ecg_ray.service.models import JobState, JobStatus, RenderRequest
from ecg_ray.service.redis_table import RedisTable
from ecg_ray.service.sqlite_table import SqliteTable

from .redisutil import RedisServer

LEASE_S = 1.5


def _rec(job_id: str, tenant: str = "") -> JobRecord:
    req = RenderRequest.model_validate({"job_id": job_id, "video_url": "https://cdn.example/v.mp4",
                                        "scenario": {"version": "1.3", "cues": []}})
    return JobRecord(0, req, req.fingerprint(),
                     JobStatus(job_id=job_id, tenant=tenant, state=JobState.QUEUED, created_at=1.0))


@pytest.fixture(params=["sqlite", "redis"])
def open_table(request, tmp_path: Path) -> Iterator[Callable[..., JobTable]]:
    opened: list[JobTable] = []
    if request.param == "sqlite":
        def make(instance: str = "a") -> JobTable:
            opened.append(SqliteTable(str(tmp_path / "state")))
            return opened[-1]
        yield make
    else:
        with RedisServer(tmp_path / "redis") as srv:
            def make(instance: str = "a") -> JobTable:
                opened.append(RedisTable(srv.url, "t", instance, lease_s=LEASE_S, job_ttl_s=60))
                return opened[-1]
            yield make
    for t in opened:
        t.close()


def test_queue_order_claims_and_unqueue(open_table):
    t = open_table()
    for j in ("j1", "j2", "j3"):
        t.add(_rec(j))
    assert t.queued() == ["j1", "j2", "j3"]
    assert t.claim() == ("j1", False)
    assert t.running() == ["j1"] and t.queued() == ["j2", "j3"]
    assert t.unqueue("j2") is True and t.unqueue("j2") is False  # exactly one caller ends it
    assert t.claim() == ("j3", False)
    assert t.claim() is None
    t.release("j1", ended=True)
    assert t.running() == ["j3"]


def test_statuses_the_change_feed_and_owed_finals(open_table):
    t = open_table()
    t.add(_rec("f1"))
    t.add(_rec("f2"))
    version, first = t.changes(0, full=True)
    assert {s.job_id for s in first} == {"f1", "f2"}
    got = t.claim()
    assert got == ("f1", False)
    st = t.get("f1").status.model_copy(update={"state": JobState.PROCESSING, "progress": 12.0})
    t.touch(st)
    v2, changed = t.changes(version, full=False)
    assert v2 > version and "f1" in {s.job_id for s in changed}
    assert [s.progress for s in changed if s.job_id == "f1"] == [12.0]
    done = st.model_copy(update={"state": JobState.COMPLETED, "progress": 100.0})
    outbox = {"status": "completed", "attempt": 1, "url": "http://cb", "fields": {"progress": 100}}
    t.save(done, outbox)
    assert t.get("f1").outbox == outbox
    assert [r.status.job_id for r in t.owed()] == ["f1"]
    t.outbox_done("f1", attempt=2)  # another attempt's: kept
    assert t.get("f1").outbox == outbox
    t.outbox_done("f1", attempt=1)
    assert not t.get("f1").outbox and t.owed() == []
    # A new attempt of an ended job: queued again, last.
    again = _rec("f1")
    again.status = again.status.model_copy(update={"attempt": 2})
    t.add(again)
    assert t.queued() == ["f2", "f1"] and t.get("f1").status.attempt == 2


def test_a_restarted_instance_takes_its_running_jobs_back_first(open_table):
    t = open_table()
    for j in ("r1", "r2"):
        t.add(_rec(j))
    assert t.claim() == ("r1", False)
    t.save(t.get("r1").status.model_copy(update={"state": JobState.PROCESSING}))
    t.close()
    again = open_table()  # the same instance started again (its old run died without a word)
    assert again.get("r1").status.state == JobState.PROCESSING
    assert again.running() == ["r1"]
    assert again.claim() == ("r1", True)   # going on, before the queue
    assert again.claim() == ("r2", False)


def _refs(statuses: list[JobStatus]) -> list[str]:
    return [st.ref for st in statuses]


def test_recent_jobs_newest_first_by_tenant_and_state(open_table):
    t = open_table()
    for job_id, tenant in (("n1", ""), ("n2", "acme"), ("n3", "bravo"), ("n4", "acme"), ("n5", "")):
        t.add(_rec(job_id, tenant))
    assert _refs(t.recent(10)) == ["n5", "acme.n4", "bravo.n3", "acme.n2", "n1"]
    assert _refs(t.recent(2)) == ["n5", "acme.n4"]
    assert _refs(t.recent(10, "acme")) == ["acme.n4", "acme.n2"]
    assert _refs(t.recent(1, "acme")) == ["acme.n4"]
    assert _refs(t.recent(10, "")) == ["n5", "n1"]          # the open tenant's own, not everyone's
    assert t.recent(10, "nobody") == []
    # States as saved; the statuses are the table's latest.
    assert t.claim() == ("n1", False)
    t.save(t.get("n1").status.model_copy(update={"state": JobState.PROCESSING, "progress": 40.0}))
    t.save(t.get("acme.n2").status.model_copy(update={"state": JobState.COMPLETED, "progress": 100.0}))
    assert _refs(t.recent(10, states={JobState.COMPLETED})) == ["acme.n2"]
    assert _refs(t.recent(10, "acme", {JobState.QUEUED})) == ["acme.n4"]
    assert _refs(t.recent(10, states={JobState.PROCESSING, JobState.COMPLETED})) == ["acme.n2", "n1"]
    assert [st.progress for st in t.recent(10, states={JobState.PROCESSING})] == [40.0]
    # A new attempt counts as submitted anew: first again.
    again = _rec("n2", "acme")
    again.status = again.status.model_copy(update={"attempt": 2})
    t.add(again)
    assert _refs(t.recent(2)) == ["acme.n2", "n5"] and t.recent(1)[0].attempt == 2
    t.close()
    # The order lives through a restart (SQLite reads it back by seq; Redis keeps its index).
    assert _refs(open_table().recent(10)) == ["acme.n2", "n5", "acme.n4", "bravo.n3", "n1"]


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer(tmp_path / "redis") as srv:
        yield srv


def _redis(srv: RedisServer, instance: str) -> RedisTable:
    return RedisTable(srv.url, "t", instance, lease_s=LEASE_S, job_ttl_s=60)


# (Redis only: one instance owns a SQLite table, so there are no leases between instances, and
# a file is not away.)
def test_leases_between_instances(redis_server):
    a, b = _redis(redis_server, "a"), _redis(redis_server, "b")
    a.add(_rec("l1"))
    assert b.queued() == ["l1"]               # seen from the other instance
    assert a.claim() == ("l1", False)
    assert b.claim() is None                  # held by a's lease
    assert b.leases(["l1"])["l1"].startswith("a/")
    assert a.renew(["l1"]) == {"l1"}
    b.request_cancel("l1")                    # asked through b ...
    assert a.cancel_requested(["l1"]) == {"l1"}  # ... seen by a, which renders it
    time.sleep(LEASE_S + 0.3)                 # a falls silent: its lease lapses
    assert b.leases(["l1"]) == {"l1": ""}     # lapsed: to be taken over
    assert b.claim() == ("l1", True)          # b takes it over
    assert a.renew(["l1"]) == set()           # and a learns it lost it
    b.release("l1", ended=True)
    assert b.running() == []
    ttl = b.r.ttl("t:job:l1")
    assert 0 < ttl <= 60                      # an ended job's keys expire (ECG_REDIS_JOB_TTL_S)


def test_redis_away_is_a_clear_error_and_back_is_back(redis_server):
    t = _redis(redis_server, "a")
    t.add(_rec("d1"))
    srv = redis_server
    srv.stop()
    with pytest.raises(StoreUnavailable) as ei:
        t.queued()
    assert ei.value.code == "store_unavailable" and f"127.0.0.1:{srv.port}" in ei.value.message
    srv.start()                                # restarted on its data directory
    assert t.queued() == ["d1"]                # the queue lived through it


def test_recent_jobs_in_redis_page_through_the_index_and_drop_expired_jobs(redis_server, monkeypatch):
    import ecg_ray.service.redis_table as redis_table

    monkeypatch.setattr(redis_table, "_LIST_PAGE", 2)  # pages of two: every path of the walk taken
    t = _redis(redis_server, "a")
    for i in range(7):
        t.add(_rec(f"e{i}", "acme" if i % 3 == 0 else "bravo"))
    assert _refs(t.recent(10, "acme")) == ["acme.e6", "acme.e3", "acme.e0"]
    # Expired jobs (ECG_REDIS_JOB_TTL_S) leave the index when a listing meets them, and the walk
    # goes on from the right place.
    t.r.delete("t:job:bravo.e5", "t:job:bravo.e4", "t:job:acme.e3")
    assert _refs(t.recent(3)) == ["acme.e6", "bravo.e2", "bravo.e1"]
    assert t.r.zscore("t:jobs", "bravo.e5") is None and t.r.zscore("t:jobs", "acme.e3") is None
    assert _refs(t.recent(10)) == ["acme.e6", "bravo.e2", "bravo.e1", "acme.e0"]
    assert t.r.zcard("t:jobs") == 4
