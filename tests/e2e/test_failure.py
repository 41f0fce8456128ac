"""Failure (issue 7, part 4): under a steady load of reads and acknowledged INSERTs through the gatekeeper, stop a
worker's MariaDB, then the manager's, then restore both; nothing acknowledged may be lost.

Phases: `baseline` (all up), `worker_down`, `manager_down` (the worker still down: two workers serve), `restore`
(both started again) and `after` (all up). The proxy's view of the nodes is read from its /healthz, polled from
inside the proxy's container on its own listen address (the proxy answers queries only from the trusted host).
The time to eject is measured from the end of `systemctl stop` to the first poll that shows the node down, the
time to re-admit from the end of `systemctl start` to the first poll that shows it up.

The proxy does not fail writes over to a worker: Galera could accept them, but a write that failed on the manager
may or may not have been applied, so only a 200 is an acknowledgement and the client decides whether to retry
(files/sqlgate/README.md, "Routing, health, retries"). While the manager is ejected, writes fail fast with 503.

Galera: each `systemctl stop` is a clean leave, so the membership shrinks 4 -> 3 -> 2 and the remaining nodes
keep quorum (2 of the last 3); a restarted node rejoins by incremental state transfer (IST) from the gcache.
The rows are INSERTs into sakila's actor table (the trusted host only allows sakila's tables) with a last_name
unique to the run; they are deleted at the end. Both nodes are started again in a `finally` block, so the lab
stays usable for the other tests. Figures: reports/reliability/failure.json.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from conftest import Lab, Node, wait_until
from reliability import (
    ROUTES,
    Deadline,
    GatekeeperClient,
    Poller,
    checksums,
    fetch_inside,
    galera_status,
    latency_summary,
    metrics_of,
    row_counts,
    run_as_root,
    service_listen,
    service_node,
    write_report,
)

READS_PER_SECOND = 8.0
WRITES_PER_SECOND = 4.0
SETTLE_SECONDS = 4.0  # load in each phase once the proxy has seen the change
EJECT_WITHIN = 20.0  # failure_threshold (3) x probe_interval (1 s) + probe timeouts, with room for a busy machine
READMIT_WITHIN = 150.0  # IST and the first successful probe
FAST_FAILURE_SECONDS = 0.5
READ = ("SELECT first_name, last_name FROM customer WHERE customer_id = %s", [1], [["MARY", "SMITH"]])
INSERT = "INSERT INTO actor (first_name, last_name) VALUES (%s, %s)"


@dataclass
class Steady:
    """Reads (rotating over the three routes) and INSERTs at a steady pace, each recorded with its wall-clock time."""

    lab: Lab
    marker: str
    events: list[dict[str, Any]] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        self.threads = [threading.Thread(target=self._reads, daemon=True),
                        threading.Thread(target=self._writes, daemon=True)]
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(60)

    def _record(self, kind: str, route: str, answer: Any, **extra: Any) -> dict[str, Any]:
        body = answer.body if isinstance(answer.body, dict) else {}
        sent = answer.sent
        message = body.get("error", {}).get("message") if answer.status != 200 else None
        event = {"t": sent, "kind": kind, "route": route, "status": answer.status, "code": answer.error_code,
                 "message": message, "node": body.get("node"), "elapsed": answer.elapsed, **extra}
        self.events.append(event)
        return event

    def _reads(self) -> None:
        client = GatekeeperClient(self.lab, rate=READS_PER_SECOND, timeout=30)
        sql, params, rows = READ
        number = 0
        while not self.stopping.is_set():
            route = ROUTES[number % len(ROUTES)]
            number += 1
            answer = client.query(route, sql, params)
            correct = answer.status != 200 or answer.body.get("rows") == rows
            self._record("read", route, answer, correct=correct)
        client.close()

    def _writes(self) -> None:
        client = GatekeeperClient(self.lab, rate=WRITES_PER_SECOND, timeout=30)
        number = 0
        while not self.stopping.is_set():
            number += 1
            last_name = f"{self.marker}-{number:05d}"
            answer = client.query("direct", INSERT, ["RELIABILITY", last_name])
            inserted = answer.body.get("last_insert_id") if answer.status == 200 else None
            self._record("write", "direct", answer, last_name=last_name, actor_id=inserted)
        client.close()


def first_state(samples: list[dict[str, Any]], node: str, state: str, since: float) -> float | None:
    """Wall-clock time of the first /healthz sample after `since` in which the proxy reports `node` in `state`."""
    for sample in samples:
        if sample["t"] >= since and in_state(sample, node, state):
            return sample["t"]
    return None


def in_state(sample: dict[str, Any], node: str, state: str) -> bool:
    body = sample.get("body")
    return isinstance(body, dict) and any(n["name"] == node and n["state"] == state for n in body.get("nodes", []))


def down_runs(samples: list[dict[str, Any]], node: str, since: float) -> list[tuple[float, float]]:
    """The intervals in which the proxy held `node` ejected, as far as polling every 0.2 s can tell: for each run of
    consecutive samples (after `since`) that show it down, from the answer of the first to the start of the last.
    A sample reports the state at some moment between its start and its answer."""
    runs: list[tuple[float, float]] = []
    current: list[dict[str, Any]] = []
    for sample in [s for s in samples if s["t"] >= since] + [{"t": float("inf"), "elapsed": 0.0}]:
        if in_state(sample, node, "down"):
            current.append(sample)
            continue
        if len(current) >= 2:
            runs.append((current[0]["t"] + current[0]["elapsed"], current[-1]["t"]))
        current = []
    return runs


def transitions(samples: list[dict[str, Any]], origin: float) -> list[dict[str, Any]]:
    """Every change of a node's state in the proxy's /healthz, in seconds since `origin`."""
    changes, last = [], {}
    for sample in samples:
        body = sample.get("body")
        for node in body.get("nodes", []) if isinstance(body, dict) else []:
            if last.get(node["name"]) != node["state"]:
                changes.append({"t": round(sample["t"] - origin, 2), "node": node["name"], "state": node["state"]})
                last[node["name"]] = node["state"]
    return changes


def wait_for_state(poller: Poller, node: str, state: str, since: float, within: float) -> float:
    found: dict[str, float] = {}

    def seen() -> bool:
        at = first_state(poller.samples(), node, state, since)
        if at is not None:
            found["t"] = at
        return at is not None

    wait_until(seen, timeout=within, interval=0.2, what=f"the proxy reporting {node} {state}")
    return found["t"]


def restore(node: Node) -> None:
    node.sh("systemctl start mariadb", timeout=300)


def cluster_synced(nodes: list[Node]) -> bool:
    statuses = [galera_status(node) for node in nodes]
    return all(s.get("wsrep_cluster_size") == str(len(nodes)) and s.get("wsrep_local_state_comment") == "Synced"
               and s.get("wsrep_ready") == "ON" for s in statuses)


def test_reads_survive_writes_fail_fast_and_no_acknowledged_insert_is_lost(lab: Lab) -> None:
    deadline = Deadline(420, "the failure test")
    manager = lab.with_role("cluster_manager")[0]
    worker = lab.with_role("cluster_worker")[0]
    sql_nodes = lab.with_role("sql_node")
    proxy = service_node(lab, "proxy")
    assert service_listen(proxy, "proxy")[1]
    assert cluster_synced(sql_nodes), "the cluster must be whole before the test"
    metrics_before = metrics_of(lab, "proxy")
    marker = f"REL-{uuid.uuid4().hex[:8].upper()}"
    poller = Poller(proxy, "proxy", seconds=deadline.seconds, interval=0.2)
    steady = Steady(lab, marker)
    phases: list[tuple[str, float]] = []
    timings: dict[str, Any] = {}
    try:
        wait_until(lambda: len(poller.samples()) > 0, timeout=30, what="the proxy's /healthz poller")
        steady.start()
        phases.append(("baseline", time.time()))
        time.sleep(SETTLE_SECONDS)

        phases.append(("worker_down", time.time()))
        worker.sh("systemctl stop mariadb", timeout=120)
        stopped = time.time()
        timings["worker_stop_seconds"] = round(stopped - phases[-1][1], 2)
        timings["worker_eject_seconds"] = round(
            wait_for_state(poller, worker.name, "down", phases[-1][1], EJECT_WITHIN) - stopped, 2)
        time.sleep(SETTLE_SECONDS)
        deadline.check()

        phases.append(("manager_down", time.time()))
        manager.sh("systemctl stop mariadb", timeout=120)
        stopped = time.time()
        timings["manager_stop_seconds"] = round(stopped - phases[-1][1], 2)
        ejected = wait_for_state(poller, manager.name, "down", phases[-1][1], EJECT_WITHIN)
        timings["manager_eject_seconds"] = round(ejected - stopped, 2)
        time.sleep(SETTLE_SECONDS)
        deadline.check()

        phases.append(("restore", time.time()))
        started: dict[str, float] = {}
        with ThreadPoolExecutor(2) as pool:
            def start_one(node: Node) -> None:
                restore(node)
                started[node.name] = time.time()
            list(pool.map(start_one, [manager, worker]))
        for node in (manager, worker):
            timings[f"{node.name}_start_seconds"] = round(started[node.name] - phases[-1][1], 2)
        for node in (manager, worker):
            readmitted = wait_for_state(poller, node.name, "up", phases[-1][1], READMIT_WITHIN)
            timings[f"{node.name}_readmit_seconds"] = round(readmitted - started[node.name], 2)
        deadline.check()

        phases.append(("after", time.time()))
        time.sleep(SETTLE_SECONDS)
        phases.append(("end", time.time()))
    finally:
        steady.stop()
        samples = poller.stop()
        for node in (manager, worker):  # leave the lab whole for the other tests, whatever happened
            restore(node)
        wait_until(lambda: cluster_synced(sql_nodes), timeout=READMIT_WITHIN, interval=1,
                   what="all four nodes synced in one cluster")

    # Every acknowledged INSERT is on every node, and the nodes agree on everything.
    acknowledged = {e["actor_id"]: e["last_name"] for e in steady.events if e["kind"] == "write" and e["status"] == 200}
    unknown = [e for e in steady.events if e["kind"] == "write" and e["status"] in (0, 502, 504)]
    present: dict[str, dict[int, str]] = {}
    for node in sql_nodes:
        (result,) = run_as_root(node, [f"SELECT actor_id, last_name FROM actor WHERE last_name LIKE '{marker}-%'"])
        present[node.name] = {int(row[0]): row[1] for row in result["rows"]}
    lost = {node: sorted(set(acknowledged.items()) - set(rows.items())) for node, rows in present.items()}
    counts = {node.name: row_counts(node) for node in sql_nodes}
    sums = {node.name: checksums(node) for node in sql_nodes}
    metrics_after = metrics_of(lab, "proxy")
    # Remove the run's rows (as root on the manager; Galera replicates the DELETE).
    run_as_root(manager, [f"DELETE FROM actor WHERE last_name LIKE '{marker}-%'"])
    wait_until(
        lambda: all(not run_as_root(n, [f"SELECT 1 FROM actor WHERE last_name LIKE '{marker}-%'"])[0]["rows"]
                    for n in sql_nodes),
        timeout=30, what="the run's rows deleted on every node",
    )

    # The writes sent and answered while the proxy certainly held the manager ejected.
    manager_stop = dict(phases)["manager_down"]
    ejected = down_runs(samples, manager.name, manager_stop)
    readmitted = next(s for s in samples if ejected and s["t"] > ejected[-1][1] and in_state(s, manager.name, "up"))
    manager_readmitted = readmitted["t"] + readmitted["elapsed"]
    while_ejected = [e for e in steady.events if e["kind"] == "write"
                     and any(start <= e["t"] and e["t"] + e["elapsed"] <= end for start, end in ejected)]

    bounds = phases + [("end", float("inf"))]
    per_phase: dict[str, Any] = {}
    for (name, begin), (_, end) in zip(bounds, bounds[1:], strict=False):
        if name == "end":
            continue
        events = [e for e in steady.events if begin <= e["t"] < end]
        reads = [e for e in events if e["kind"] == "read"]
        writes = [e for e in events if e["kind"] == "write"]
        per_phase[name] = {
            "seconds": round(min(end, phases[-1][1]) - begin, 1),
            "reads": len(reads),
            "read_errors": dict(Counter(f"{e['status']} {e['code']}" for e in reads if e["status"] != 200)),
            "reads_by_node": dict(Counter(e["node"] for e in reads if e["status"] == 200)),
            "writes": len(writes),
            "writes_acknowledged": sum(1 for e in writes if e["status"] == 200),
            "write_errors": dict(Counter(f"{e['status']} {e['code']}" for e in writes if e["status"] != 200)),
            "write_error_latency": latency_summary([e["elapsed"] for e in writes if e["status"] != 200]),
            "error_messages": sorted({e["message"] for e in events if e["message"]}),
        }
    figures = {
        "nodes_stopped": {"worker": worker.name, "manager": manager.name},
        "load": {"reads_per_s": READS_PER_SECOND, "writes_per_s": WRITES_PER_SECOND},
        "timings": timings,
        "phases": per_phase,
        "manager_ejected_seconds": round(sum(end - start for start, end in ejected), 2),
        "state_changes_seen_by_the_proxy": transitions(samples, phases[0][1]),
        "writes_while_manager_ejected": dict(Counter(f"{e['status']} {e['code']}" for e in while_ejected)),
        "write_latency_while_manager_ejected": latency_summary([e["elapsed"] for e in while_ejected]),
        "failed_requests": [
            {**{k: e[k] for k in ("kind", "route", "status", "code", "message", "node")},
             "t": round(e["t"] - phases[0][1], 2), "elapsed_ms": round(e["elapsed"] * 1000, 1)}
            for e in steady.events if e["status"] != 200
            and not (e["code"] == "no_healthy_node" and e in while_ejected)
        ][:40],
        "acknowledged_inserts": len(acknowledged),
        "unknown_outcome_writes": len(unknown),
        "unknown_outcome_writes_applied": sum(1 for e in unknown if e["last_name"] in present[manager.name].values()),
        "rows_of_the_run_per_node": {node: len(rows) for node, rows in present.items()},
        "acknowledged_lost_per_node": {node: len(items) for node, items in lost.items()},
        "row_counts_equal_on_every_node": len({str(c) for c in counts.values()}) == 1,
        "checksums_equal_on_every_node": len({str(c) for c in sums.values()}) == 1,
        "row_counts": counts[manager.name],
        "proxy_metrics_delta": {
            name: metrics_after.get(name, 0) - metrics_before.get(name, 0)
            for name in sorted(set(metrics_after) | set(metrics_before))
            if name.startswith(("sqlgate_node_ejections_total", "sqlgate_node_readmissions_total",
                                "sqlgate_read_retries_total", "sqlgate_no_healthy_node_total"))
        },
        "healthz_samples": len(samples),
        "seconds": round(deadline.elapsed, 1),
    }
    write_report(lab, "failure", "stop_and_restore", figures)

    # Nothing acknowledged is lost, and the nodes agree on everything.
    assert acknowledged and all(not items for items in lost.values()), f"acknowledged INSERTs lost: {lost}"
    assert figures["row_counts_equal_on_every_node"], counts
    assert figures["checksums_equal_on_every_node"], sums
    assert len({len(rows) for rows in present.values()}) == 1, figures["rows_of_the_run_per_node"]
    # Reads never fail: a healthy node always remained.
    failed_reads = [e for e in steady.events if e["kind"] == "read" and (e["status"] != 200 or not e["correct"])]
    assert failed_reads == [], f"reads failed while healthy nodes remained: {figures['failed_requests']}"
    # Writes fail at once with 503 while the manager is ejected, and the 503 says so.
    assert while_ejected, "no write was attempted while the manager was ejected"
    slow_or_wrong = [e for e in while_ejected
                     if (e["status"], e["code"]) != (503, "no_healthy_node") or e["elapsed"] > FAST_FAILURE_SECONDS]
    assert slow_or_wrong == [], f"writes while the manager is ejected must fail fast with 503: {slow_or_wrong[:5]}"
    messages = {e["message"] for e in steady.events if e["code"] == "no_healthy_node"}
    wrong = sorted(m for m in messages if not re.search(r"\b(not|no longer|un)\s*available|\bdown\b", m))
    assert wrong == [], f"the 503 message contradicts the error: {wrong}"
    # Writes are acknowledged while the manager is up: before it stops, and once it is back.
    early = [e for e in steady.events if e["kind"] == "write" and e["t"] < manager_stop and e["status"] != 200]
    assert early == [], f"writes failed while the manager was up: {early[:5]}"
    late = [e for e in steady.events if e["kind"] == "write" and e["t"] > manager_readmitted and e["status"] != 200]
    assert late == [], f"writes failed after the manager was re-admitted: {late[:5]}"


def test_a_node_that_refuses_queries_is_passed_over_for_reads(lab: Lab) -> None:
    """A Galera node that is up but not ready answers every statement with error 1047 ("WSREP has not yet
    prepared node for application use"): while it joins, while it shuts down, in a non-primary component, or in
    maintenance (wsrep_reject_queries). That is the node's state, not the statement's fault: reads must go to
    another node and succeed. The node is put in that state with wsrep_reject_queries = ALL, its documented
    maintenance switch, and given back in a finally block."""
    deadline = Deadline(120, "the refusing-node test")
    worker = lab.with_role("cluster_worker")[-1]
    client = GatekeeperClient(lab, rate=20)
    sql, params, rows = READ
    outcomes: Counter = Counter()
    failures = []
    try:
        run_as_root(worker, ["SET GLOBAL wsrep_reject_queries = ALL"])
        for number in range(60):
            deadline.check()
            route = ("random", "customized")[number % 2]
            answer = client.query(route, sql, params)
            node = answer.body.get("node") if isinstance(answer.body, dict) else None
            outcomes[f"{answer.status} {node or answer.error_code}"] += 1
            if answer.status != 200 or answer.body.get("rows") != rows:
                failures.append(f"/{route}: {answer.status} {answer.body}")
        health = json.loads(fetch_inside(service_node(lab, "proxy"), "proxy", "/healthz")[1])
    finally:
        run_as_root(worker, ["SET GLOBAL wsrep_reject_queries = NONE"])
        client.close()
    state = next(n for n in health["nodes"] if n["name"] == worker.name)
    write_report(lab, "failure", "node_refusing_queries", {
        "node": worker.name, "reads": sum(outcomes.values()), "outcomes": dict(outcomes),
        "node_state_in_the_proxy": state, "failures": failures[:5], "seconds": round(deadline.elapsed, 1),
    })
    assert failures == [], f"{len(failures)} of 60 reads failed while {worker.name} refused queries: {failures[:3]}"
