"""The Proxy and Gatekeeper patterns, end to end, through the gatekeeper of the deployed lab."""

from __future__ import annotations

import uuid

import pytest

from conftest import Lab, wait_until

ROUTES = ["direct", "random", "customized"]
FIRST_CUSTOMERS = [("MARY", "SMITH"), ("PATRICIA", "JOHNSON"), ("LINDA", "WILLIAMS")]


@pytest.mark.parametrize("route", ROUTES)
def test_first_customers_on_every_route(lab: Lab, route: str) -> None:
    answer = lab.query(route, "SELECT * FROM customer LIMIT 3")
    first, last = answer["columns"].index("first_name"), answer["columns"].index("last_name")
    assert [(row[first], row[last]) for row in answer["rows"]] == FIRST_CUSTOMERS
    assert answer["route"] == route and answer["kind"] == "read"
    manager = lab.with_role("cluster_manager")[0].name
    workers = {node.name for node in lab.with_role("cluster_worker")}
    assert answer["node"] == manager if route == "direct" else answer["node"] in workers


def test_write_on_direct_is_read_on_customized_from_another_node(lab: Lab) -> None:
    last_name = f"E2E-{uuid.uuid4().hex[:12].upper()}"
    written = lab.query("direct", "INSERT INTO actor (first_name, last_name) VALUES (%s, %s)", ["PROBE", last_name])
    manager = lab.with_role("cluster_manager")[0].name
    assert written["kind"] == "write" and written["node"] == manager and written["affected_rows"] == 1
    actor_id = written["last_insert_id"]
    try:
        read = lab.query("customized", "SELECT first_name, last_name FROM actor WHERE actor_id = %s", [actor_id])
        assert read["node"] != manager
        assert read["rows"] == [["PROBE", last_name]]
    finally:
        lab.query("direct", "DELETE FROM actor WHERE actor_id = %s", [actor_id])


def test_writes_go_to_the_manager_on_every_route(lab: Lab) -> None:
    manager = lab.with_role("cluster_manager")[0].name
    for route in ROUTES:
        answer = lab.query(route, "UPDATE actor SET last_name = last_name WHERE actor_id = %s", [1])
        assert answer["node"] == manager and answer["kind"] == "write"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"query": "DROP TABLE actor"}, 403, None),
        ({"query": "SELECT * FROM mysql.user"}, 403, None),
        ({"query": "DELETE FROM actor"}, 403, None),
        ({"query": "SELECT 1; SELECT 2"}, 403, None),
        ({"query": 42}, 400, None),
        (b"{not json", 400, None),
    ],
)
def test_rejections_are_json_with_a_reason(lab: Lab, body: object, status: int, code: str | None) -> None:
    got, answer, _ = lab.post("direct", body)
    assert got == status, answer
    assert set(answer) == {"error", "request_id"} and answer["error"]["message"]


def test_a_missing_or_wrong_api_key_is_refused(lab: Lab) -> None:
    assert lab.post("direct", {"query": "SELECT 1 FROM actor LIMIT 1"}, key=None)[0] == 401
    (lab.secrets_dir / "api_keys" / "e2e-wrong").write_text("x" * 43)
    try:
        assert lab.post("direct", {"query": "SELECT 1 FROM actor LIMIT 1"}, key="e2e-wrong")[0] == 401
    finally:
        (lab.secrets_dir / "api_keys" / "e2e-wrong").unlink()


def test_reads_keep_succeeding_with_one_sql_node_stopped(lab: Lab) -> None:
    stopped = lab.with_role("cluster_worker")[-1]
    stopped.sh("systemctl stop mariadb")
    try:
        failures = []
        for attempt in range(60):
            route = ROUTES[attempt % 3]
            body = {"query": "SELECT last_name FROM customer WHERE customer_id = %s", "params": [1]}
            status, answer, _ = lab.post(route, body)
            if status != 200 or answer["rows"] != [["SMITH"]]:
                failures.append((route, status, answer))
        assert failures == []
    finally:
        stopped.sh("systemctl start mariadb", timeout=300)
    # The proxy takes the node back once it answers again.
    wait_until(
        lambda: any(lab.query("random", "SELECT 1 FROM actor LIMIT 1")["node"] == stopped.name for _ in range(12)),
        timeout=60,
        what=f"{stopped.name} serving reads again",
    )
