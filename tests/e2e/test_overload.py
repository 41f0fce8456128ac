"""Overload (issue 7, part 3): a bounded load above the per-key rate limit through the gatekeeper of the lab.

An aiohttp client in this process sends primary-key SELECTs with the `default` key from CONCURRENCY connections at
OFFERED_RATE for LOAD_SECONDS (at most MAX_REQUESTS), only to the gatekeeper's published port on 127.0.0.1.
Meanwhile the gatekeeper's /healthz is polled from here, the trusted host's and the proxy's from inside their
containers, and the `bench` key sends a few queries to show that one key's flood does not starve another.

It proves: the limiter answers 429 with Retry-After at once instead of queueing (429s stay fast while accepted
requests wait for the chain; the accepted count stays within burst + rate x time); no 500 or 502 and no 5xx
without a documented code; every service's /healthz keeps answering; no service restarts; each service's memory
(RSS of its process, and the unit's MemoryCurrent where the cgroup reports it) before and after is recorded, and
grows by less than MEMORY_GROWTH_LIMIT. Figures: reports/reliability/overload.json.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from typing import Any

import aiohttp

from conftest import Lab
from reliability import (
    SERVICES,
    Deadline,
    Poller,
    latency_summary,
    metrics_of,
    service_memory,
    service_node,
    write_report,
)

LOAD_SECONDS = 8.0
CONCURRENCY = 16
OFFERED_RATE = 300.0  # requests per second, six times the key's limit, paced so the load lasts LOAD_SECONDS
MAX_REQUESTS = 3000
# The key users get. (`bench` may carry a per-key override that lifts its limit for the benchmark; it is the other
# key here, whose queries must keep succeeding.)
KEY = "default"
OTHER_KEY = "bench"
QUERY = {"query": "SELECT first_name, last_name FROM actor WHERE actor_id = %s", "params": [7]}
MEMORY_GROWTH_LIMIT = 64 * 1024 * 1024
# 5xx codes the API documents as answers to load; anything else (or a 500, a 502) is a failure.
DOCUMENTED_LOAD_5XX = {"overloaded", "pool_exhausted", "upstream_timeout", "node_timeout", "statement_timeout"}


async def flood(url: str, key: str, other_key: str) -> dict[str, Any]:
    """The load, the gatekeeper's /healthz and the other key's queries, all for LOAD_SECONDS."""
    results: list[dict[str, Any]] = []
    health: list[tuple[int, float]] = []
    other: list[int] = []
    body = json.dumps(QUERY).encode()
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(limit=CONCURRENCY + 4)
    start = time.monotonic()
    end = start + LOAD_SECONDS

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        async def worker(number: int) -> None:
            next_send = start + number / OFFERED_RATE
            while time.monotonic() < end and len(results) < MAX_REQUESTS:
                await asyncio.sleep(max(0.0, next_send - time.monotonic()))
                next_send += CONCURRENCY / OFFERED_RATE
                sent = time.monotonic()
                try:
                    async with session.post(f"{url}/random", data=body, headers=headers) as response:
                        raw = await response.read()
                        status, retry_after = response.status, response.headers.get("Retry-After")
                except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                    results.append({"t": sent - start, "status": 0, "error": type(exc).__name__,
                                    "elapsed": time.monotonic() - sent})
                    continue
                try:
                    code = json.loads(raw).get("error", {}).get("code")
                except (ValueError, AttributeError):
                    code = "not-json"
                results.append({"t": sent - start, "status": status, "code": code, "retry_after": retry_after,
                                "elapsed": time.monotonic() - sent})

        async def watch_health() -> None:
            while time.monotonic() < end:
                sent = time.monotonic()
                try:
                    async with session.get(f"{url}/healthz") as response:
                        await response.read()
                        health.append((response.status, time.monotonic() - sent))
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    health.append((0, time.monotonic() - sent))
                await asyncio.sleep(0.2)

        async def other_key_queries() -> None:
            other_headers = {"Authorization": f"Bearer {other_key}", "Content-Type": "application/json"}
            while time.monotonic() < end:
                async with session.post(f"{url}/direct", data=body, headers=other_headers) as response:
                    await response.read()
                    other.append(response.status)
                await asyncio.sleep(0.5)

        await asyncio.gather(*(worker(n) for n in range(CONCURRENCY)), watch_health(), other_key_queries())
    return {"results": results, "health": health, "other": other, "seconds": time.monotonic() - start}


def test_the_rate_limit_answers_429_at_once_and_everything_keeps_answering(lab: Lab) -> None:
    deadline = Deadline(120, "the overload test")
    gatekeeper = service_node(lab, "gatekeeper")
    limits = json.loads(gatekeeper.sh("cat /etc/sqlgate/gatekeeper.json").stdout)["rate_limit"]
    limit = {**limits, **limits.get("per_key", {}).get(KEY, {})}  # the limit that applies to KEY
    rate, burst = float(limit["rate"]), float(limit["burst"])
    assert rate * LOAD_SECONDS < MAX_REQUESTS / 2, f"the {KEY} key's limit {limit} is too high to be exceeded here"
    nodes = {service: service_node(lab, service) for service in SERVICES}
    memory_before = {service: service_memory(node, service) for service, node in nodes.items()}
    limited_before = metrics_of(lab, "gatekeeper").get(f'sqlgate_rate_limited_total{{api_key="{KEY}"}}', 0.0)
    time.sleep(burst / rate + 0.5)  # the key's bucket is full again, whatever ran before

    pollers = {service: Poller(nodes[service], service, LOAD_SECONDS + 1) for service in ("trusted", "proxy")}
    try:
        run = asyncio.run(flood(lab.gatekeeper_url, lab.api_key(KEY), lab.api_key(OTHER_KEY)))
    finally:
        inner_health = {service: poller.wait() for service, poller in pollers.items()}
    # Let the services settle before the second memory reading, and the key's bucket fill up for the next tests.
    time.sleep(max(2.0, burst / rate + 0.5))
    memory_after = {service: service_memory(node, service) for service, node in nodes.items()}
    limited_after = metrics_of(lab, "gatekeeper").get(f'sqlgate_rate_limited_total{{api_key="{KEY}"}}', 0.0)
    deadline.check()

    results = run["results"]
    statuses = Counter(result["status"] for result in results)
    ok = [result for result in results if result["status"] == 200]
    limited = [result for result in results if result["status"] == 429]
    server_errors = [result for result in results if result["status"] >= 500 or result["status"] == 0]
    active = max((r["t"] for r in results), default=0.0)  # the load stops early once MAX_REQUESTS are sent
    allowed = burst + rate * active
    figures = {
        "rate_limit": {"api_key": KEY, "rate_per_s": rate, "burst": burst,
                       "per_key_overrides": limits.get("per_key", {})},
        "load": {"seconds": round(active, 2), "concurrency": CONCURRENCY, "requests": len(results),
                 "offered_per_s": round(len(results) / max(active, 0.001), 1), "route": "random"},
        "statuses": {str(status): count for status, count in sorted(statuses.items())},
        "ratio_429": round(len(limited) / len(results), 3) if results else None,
        "accepted": len(ok),
        "accepted_bound_burst_plus_rate_x_time": round(allowed, 1),
        "latency_200": latency_summary([r["elapsed"] for r in ok]),
        "latency_429": latency_summary([r["elapsed"] for r in limited]),
        "latency_429_last_second": latency_summary([r["elapsed"] for r in limited if r["t"] > active - 1]),
        "retry_after_values": dict(Counter(r["retry_after"] for r in limited)),
        "rate_limited_metric_delta": limited_after - limited_before,
        "server_errors": dict(Counter(f"{r['status']} {r.get('code') or r.get('error')}" for r in server_errors)),
        "other_key_statuses": dict(Counter(map(str, run["other"]))),
        "healthz": {
            "gatekeeper": {"answers": len(run["health"]), "statuses": dict(Counter(str(s) for s, _ in run["health"])),
                           "max_ms": round(max((e for _, e in run["health"]), default=0) * 1000, 1)},
            **{service: {"answers": len(samples), "statuses": dict(Counter(str(s["status"]) for s in samples)),
                         "max_ms": round(max((s["elapsed"] for s in samples), default=0) * 1000, 1)}
               for service, samples in inner_health.items()},
        },
        "memory_before": memory_before,
        "memory_after": memory_after,
        "rss_growth_bytes": {
            service: (memory_after[service]["rss_bytes"] or 0) - (memory_before[service]["rss_bytes"] or 0)
            for service in SERVICES
        },
    }
    write_report(lab, "overload", "rate_limit", figures)

    assert len(results) >= 2 * allowed, f"the load did not exceed the rate limit: {figures['load']}"
    assert limited, "no request was rate limited"
    # Refused at once: no queueing in front of the limiter.
    assert figures["latency_429"]["p99_ms"] < 500, figures["latency_429"]
    assert (figures["latency_429_last_second"]["p99_ms"] or 0) < 500, "429s got slower as the load went on"
    assert figures["latency_429"]["p50_ms"] < (figures["latency_200"]["p50_ms"] or 0) + 1, (
        "a 429 should cost less than a request that goes through the chain"
    )
    assert all(r["retry_after"] and r["retry_after"].isdigit() and int(r["retry_after"]) >= 1 for r in limited)
    assert all(r["code"] == "rate_limited" for r in limited)
    assert figures["rate_limited_metric_delta"] == len(limited)
    # The limiter lets through what the bucket allows, no more, and not much less.
    assert len(ok) <= allowed * 1.05 + 2, f"{len(ok)} accepted, the bucket allows {allowed:.0f}"
    assert len(ok) >= allowed * 0.75, f"only {len(ok)} accepted, the bucket allows {allowed:.0f}"
    assert set(statuses) <= {200, 429, 503, 504}, figures["statuses"]
    assert all(r.get("code") in DOCUMENTED_LOAD_5XX for r in server_errors), figures["server_errors"]
    # Another key is not starved by this one's flood.
    assert run["other"] and set(run["other"]) == {200}, figures["other_key_statuses"]
    # Every tier's /healthz kept answering during the load.
    assert len(run["health"]) >= LOAD_SECONDS * 2 and all(status == 200 for status, _ in run["health"])
    for service, samples in inner_health.items():
        assert len(samples) >= LOAD_SECONDS * 2, f"{service}: {len(samples)} health answers"
        assert all(sample["status"] == 200 for sample in samples), f"{service}: {figures['healthz'][service]}"
    for service in SERVICES:
        assert memory_after[service]["restarts"] == memory_before[service]["restarts"], f"{service} restarted"
        assert memory_after[service]["pid"] == memory_before[service]["pid"], f"{service} restarted"
        assert figures["rss_growth_bytes"][service] < MEMORY_GROWTH_LIMIT, figures["rss_growth_bytes"]
