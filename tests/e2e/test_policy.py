"""The front door's policy on the deployed lab: the database is the boundary, the validator the early refusal.

* The grants the database holds are exactly the policy's, on every SQL node (read from information_schema, compared
  with what the collection's filter derives from the same policy and the node's own columns).
* Blast radius: writes that touch 99 and 100 rows commit; 101 rows are rolled back with 403 too_many_rows and
  change nothing, for UPDATE, DELETE, INSERT ... SELECT and an upsert.
* A key column that a foreign key follows with ON UPDATE CASCADE cannot be updated (the database refuses it).
* The readonly key cannot write; nobody reads a hidden column; results are capped in bytes as they stream.
* A write stopped by the statement time limit is the caller's 422, not a 5xx.
* Every write leaves an audit line with the key, scope, statement fingerprint, rows and request id.
* A key is revoked by a reload, without a restart, and refused at once.
* Bodies that never finish hold nothing: another key is served meanwhile, the slow ones get 408.
* /metrics answers nobody outside the monitoring addresses; /healthz says no more than a bare status.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shlex
import socket
import sys
import time

import pytest

from conftest import ROOT, Lab, wait_until
from reliability import (
    GatekeeperClient,
    checksums,
    row_counts,
    service_listen,
    service_memory,
    service_node,
    write_report,
)

sys.path.insert(0, str(ROOT / "collections"))
from ansible_collections.cloudpatterns.mysql.plugins.filter.sql_policy import (  # noqa: E402
    SCHEMA_QUERIES,
    sql_policy_accounts,
    sql_policy_scopes,
)

import yaml  # noqa: E402

CAP = 100  # max_affected_rows of the default scope (inventory/group_vars/all/policy.yml)
MEMORY_BOUND = 256 * 1024 * 1024


@pytest.fixture(scope="module")
def client(lab: Lab):
    gatekeeper = GatekeeperClient(lab)
    yield gatekeeper
    gatekeeper.close()


def mysql(node, sql: str) -> list[list[str]]:
    out = node.sh(f"mariadb -N -B sakila -e {shlex.quote(sql)}").stdout
    return [line.split("\t") for line in out.splitlines() if line]


def wait_synced(lab: Lab) -> None:
    """Until every SQL node has applied the same last committed write (CHECKSUM comparisons need it)."""
    nodes = lab.with_role("sql_node")

    def same() -> bool:
        seen = {mysql(node, "SHOW STATUS LIKE 'wsrep_last_committed'")[0][1] for node in nodes}
        return len(seen) == 1

    wait_until(same, 20, 0.2, "every SQL node at the same wsrep_last_committed")


def test_every_sql_node_holds_exactly_the_policys_grants(lab: Lab) -> None:
    policy = yaml.safe_load((ROOT / "inventory/group_vars/all/policy.yml").read_text())["sql_policy"]
    for node in lab.with_role("sql_node"):
        columns_sql, cascades_sql = (query.replace("%(db)s", "'sakila'") for query in SCHEMA_QUERIES)
        columns = [{"table": t, "column": c, "type": k} for t, c, k in mysql(node, columns_sql)]
        cascades = [{"table": t, "column": c, "on_update": u, "on_delete": d}
                    for t, c, u, d in mysql(node, cascades_sql)]
        assert cascades, f"{node.name}: sakila declares ON UPDATE CASCADE keys; none were found"
        scopes = sql_policy_scopes(policy, columns)
        expected: dict[str, set[tuple[str, str, str]]] = {}
        for account in sql_policy_accounts(scopes, columns, cascades, "sakila", "sqlgate_probe", "language"):
            grants = expected.setdefault(account["user"], set())
            for item in account["priv"].split("/"):
                target, _, privileges = item.rpartition(":")
                table = target.split(".")[1]
                for privilege in re.split(r",(?![^(]*\))", privileges):
                    name, _, cols = privilege.partition(" (")
                    if cols:
                        grants |= {(table, name, col.strip("` )")) for col in cols.split(",")}
                    else:
                        grants.add((table, name, "*"))
        held: dict[str, set[tuple[str, str, str]]] = {user: set() for user in expected}
        for user, table, privilege in mysql(node, (
                "SELECT SUBSTRING_INDEX(REPLACE(GRANTEE, \"'\", ''), '@', 1), LOWER(TABLE_NAME), PRIVILEGE_TYPE "
                "FROM information_schema.TABLE_PRIVILEGES WHERE TABLE_SCHEMA = 'sakila'")):
            held.setdefault(user, set()).add((table, privilege, "*"))
        for user, table, column, privilege in mysql(node, (
                "SELECT SUBSTRING_INDEX(REPLACE(GRANTEE, \"'\", ''), '@', 1), LOWER(TABLE_NAME), LOWER(COLUMN_NAME), "
                "PRIVILEGE_TYPE FROM information_schema.COLUMN_PRIVILEGES WHERE TABLE_SCHEMA = 'sakila'")):
            held.setdefault(user, set()).add((table, privilege, column))
        for user in expected:
            assert held[user] == expected[user], (
                f"{node.name} {user}: missing {sorted(expected[user] - held[user])[:5]}, "
                f"extra {sorted(held[user] - expected[user])[:5]}")
        hidden = [row for user in held for row in held[user] if row[0] == "staff" and row[2] in ("password", "picture")]
        assert hidden == [], f"{node.name}: a scope user holds a hidden column: {hidden}"
        assert not any(row[1] != "SELECT" for row in held["sg_readonly_r"] | held["sg_default_r"])
        limits = mysql(node, "SELECT User, max_user_connections FROM mysql.user WHERE User LIKE 'sg\\\\_%'")
        assert limits and all(int(limit) > 0 for _, limit in limits), limits


@pytest.mark.parametrize("statement", [
    "UPDATE payment SET amount = amount + 1 WHERE payment_id <= {n}",
    "DELETE FROM payment WHERE payment_id <= {n}",
    "INSERT INTO film_text (film_id, title) SELECT film_id + 5000, title FROM film WHERE film_id <= {n}",
    "INSERT INTO film_text (film_id, title) SELECT film_id, title FROM film WHERE film_id <= {n} "
    "ON DUPLICATE KEY UPDATE title = VALUES(title)",
])
def test_a_write_over_the_cap_is_rolled_back_and_changes_nothing(lab: Lab, client: GatekeeperClient,
                                                                 statement: str) -> None:
    manager = lab.with_role("cluster_manager")[0]
    wait_synced(lab)
    before = checksums(manager)
    answer = client.query("direct", statement.format(n=CAP + 1))
    assert (answer.status, answer.error_code) == (403, "too_many_rows"), answer.body
    assert f"{CAP + 1} rows" in answer.body["error"]["message"] and str(CAP) in answer.body["error"]["message"]
    wait_synced(lab)
    assert checksums(manager) == before, "a refused write changed a table"
    for node in lab.with_role("sql_node"):
        assert checksums(node) == before, f"{node.name} differs after a refused write"


def test_writes_up_to_the_cap_commit_and_report_the_rows(lab: Lab, client: GatekeeperClient) -> None:
    manager = lab.with_role("cluster_manager")[0]
    wait_synced(lab)
    before = checksums(manager)
    for n in (CAP - 1, CAP):
        # last_update is set to itself, or ON UPDATE CURRENT_TIMESTAMP would change the checksum for good.
        up = client.query("direct", "UPDATE payment SET amount = amount + 1, last_update = last_update "
                                    "WHERE payment_id <= %s", [n])
        assert up.status == 200 and up.body["affected_rows"] == n, up.body
        assert checksums(manager)["sakila.payment"] != before["sakila.payment"]
        down = client.query("direct", "UPDATE payment SET amount = amount - 1, last_update = last_update "
                                      "WHERE payment_id <= %s", [n])
        assert down.status == 200 and down.body["affected_rows"] == n, down.body
    # Unchanged rows count too: CLIENT_FOUND_ROWS makes an UPDATE report what it matched.
    same = client.query("direct", "UPDATE payment SET amount = amount WHERE payment_id <= %s", [CAP + 1])
    assert (same.status, same.error_code) == (403, "too_many_rows"), same.body
    wait_synced(lab)
    for node in lab.with_role("sql_node"):
        assert checksums(node) == before


def test_a_cascading_key_cannot_be_updated(lab: Lab, client: GatekeeperClient) -> None:
    manager = lab.with_role("cluster_manager")[0]
    films = mysql(manager, "SELECT COUNT(*) FROM film WHERE language_id = 1")[0][0]
    answer = client.query("direct", "UPDATE language SET language_id = 9 WHERE language_id = 1")
    assert (answer.status, answer.error_code) == (403, "database_denied"), answer.body
    assert answer.body["error"]["message"].endswith("for this API key") and "sg_" not in json.dumps(answer.body)
    assert mysql(manager, "SELECT COUNT(*) FROM film WHERE language_id = 1")[0][0] == films


def test_a_delete_that_would_change_other_rows_is_refused(lab: Lab, client: GatekeeperClient) -> None:
    """payment.rental_id is ON DELETE SET NULL: deleting one rental would change its payments behind the
    statement's back, so no scope may DELETE from rental (the database refuses it)."""
    manager = lab.with_role("cluster_manager")[0]
    before = mysql(manager, "SELECT COUNT(*) FROM payment WHERE rental_id IS NULL")[0][0]
    answer = client.query("direct", "DELETE FROM rental WHERE rental_id = %s", [1])
    assert (answer.status, answer.error_code) == (403, "database_denied"), answer.body
    assert mysql(manager, "SELECT COUNT(*) FROM payment WHERE rental_id IS NULL")[0][0] == before


def test_the_readonly_key_reads_and_never_writes(lab: Lab) -> None:
    reader = GatekeeperClient(lab, key="readonly")
    try:
        ok = reader.query("random", "SELECT first_name FROM actor WHERE actor_id = %s", [1])
        assert ok.status == 200 and ok.body["rows"] == [["PENELOPE"]]
        for sql in ("UPDATE actor SET first_name = 'X' WHERE actor_id = 1", "DELETE FROM actor WHERE actor_id = 1",
                    "INSERT INTO actor (first_name, last_name) VALUES ('A', 'B')"):
            answer = reader.query("direct", sql)
            assert (answer.status, answer.error_code) == (403, "statement_not_allowed"), (sql, answer.body)
    finally:
        reader.close()


def test_hidden_columns_and_oversized_results_are_refused(lab: Lab, client: GatekeeperClient) -> None:
    for sql in ("SELECT password FROM staff", "SELECT * FROM staff", "SELECT s.* FROM staff s",
                "SELECT staff_id FROM staff WHERE password IS NOT NULL", "SELECT `PassWord` FROM staff"):
        answer = client.query("random", sql)
        assert (answer.status, answer.error_code) == (403, "column_not_allowed"), (sql, answer.body)
    visible = client.query("random", "SELECT staff_id, first_name, username FROM staff ORDER BY staff_id")
    assert visible.status == 200 and visible.body["rows"][0][:2] == [1, "Mike"]
    big = client.query("random", "SELECT CONCAT(f.description, f.description, f.description, f.description) AS a, "
                                 "CONCAT(g.description, g.description, g.description, g.description) AS b "
                                 "FROM film f JOIN film g LIMIT 9000")
    assert (big.status, big.error_code) == (403, "result_too_large"), big.body
    # Text counts in UTF-8 bytes: about 2.8 million characters (under the cap) but 6.4 MB (over it).
    wide = client.query("random", "SELECT CONCAT(REPEAT('\u20ac', 200), f.description) AS a, g.title "
                                  "FROM film f JOIN film g LIMIT 9000")
    assert (wide.status, wide.error_code) == (403, "result_too_large"), wide.body
    # Generators take small literal lengths only: long strings are what the server's timer cannot interrupt.
    huge = client.query("random", "SELECT SPACE(16000000), SPACE(16000000) FROM rental LIMIT 100")
    assert (huge.status, huge.error_code) == (403, "function_not_allowed"), huge.body
    rss = {}
    for service in ("gatekeeper", "trusted", "proxy"):
        memory = service_memory(service_node(lab, service), service)
        assert memory["rss_bytes"] < MEMORY_BOUND, f"{service}: {memory}"
        rss[service] = round(memory["rss_bytes"] / 2**20, 1)
    write_report(lab, "policy", "memory", {"rss_mib": rss})


def test_a_slow_write_is_stopped_and_is_the_callers_error(lab: Lab, client: GatekeeperClient) -> None:
    manager = lab.with_role("cluster_manager")[0]
    before = row_counts(manager)["film_text"]
    answer = client.query("direct", "DELETE FROM film_text WHERE film_id = "
                                    "(SELECT COUNT(*) FROM rental a, rental b, payment c WHERE a.rental_id > 0)")
    assert (answer.status, answer.error_code) == (422, "statement_timeout"), answer.body
    assert row_counts(manager)["film_text"] == before


def test_every_write_is_audited(lab: Lab, client: GatekeeperClient) -> None:
    answer = client.query("direct", "UPDATE actor SET last_name = last_name WHERE actor_id = %s", [7])
    assert answer.status == 200
    request_id = answer.headers["x-request-id"]
    proxy = service_node(lab, "proxy")

    def audited() -> list[dict]:
        out = proxy.sh("journalctl -u sqlgate-proxy -o cat --no-pager -n 2000").stdout
        return [json.loads(line) for line in out.splitlines()
                if line.startswith("{") and '"audit"' in line and request_id in line]

    wait_until(lambda: audited(), 5, 0.2, "the audit line of the write")
    line = audited()[0]
    assert line["api_key"] == "default" and line["scope"] == "default" and line["outcome"] == "ok"
    assert line["matched_rows"] == 1 and len(line["fingerprint"]) == 16 and "?" in line["statement"]
    assert "7" not in line["statement"].split("actor_id")[-1], "a bound value reached the audit line"


def test_a_revoked_key_is_refused_at_once_without_a_restart(lab: Lab) -> None:
    gatekeeper = service_node(lab, "gatekeeper")
    original = gatekeeper.sh("cat /etc/sqlgate/api_keys").stdout
    pid = service_memory(gatekeeper, "gatekeeper")["pid"]
    key = "revoke-me-" + hashlib.sha256(str(time.time()).encode()).hexdigest()
    digest = hashlib.sha256(key.encode()).hexdigest()
    temporary = original.rstrip("\n") + f"\ntemporary:default:{digest}\n"

    def install(text: str) -> None:
        encoded = base64.b64encode(text.encode()).decode()
        gatekeeper.sh(f"echo {encoded} | base64 -d > /etc/sqlgate/api_keys && systemctl reload sqlgate-gatekeeper")

    try:
        install(temporary)
        wait_until(lambda: post_with(lab, key) == 200, 5, 0.1, "the new key accepted after a reload")
        install(original)
        wait_until(lambda: post_with(lab, key) == 401, 5, 0.05, "the revoked key refused after a reload")
    finally:
        install(original)
    assert service_memory(gatekeeper, "gatekeeper")["pid"] == pid, "the gatekeeper was restarted"
    assert post_with(lab, lab.api_key("default")) == 200


def post_with(lab: Lab, key: str) -> int:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        f"{lab.gatekeeper_url}/direct", data=json.dumps({"query": "SELECT 1 FROM dual"}).encode(), method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_bodies_that_never_finish_hold_nothing(lab: Lab) -> None:
    host, port = lab.gatekeeper_url.removeprefix("http://").split(":")
    key = lab.api_key("bench")
    head = (f"POST /direct HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\n"
            "Content-Length: 60000\r\n\r\n{\"query\": \"SELECT ").encode()
    stalled = []
    try:
        for _ in range(300):
            sock = socket.create_connection((host, int(port)), timeout=30)
            sock.sendall(head)
            stalled.append(sock)
        started = time.monotonic()
        assert post_with(lab, lab.api_key("default")) == 200, "another key was not served while bodies stalled"
        assert time.monotonic() - started < 2
        answers = []
        for sock in stalled[:20]:
            sock.settimeout(15)
            answers.append(sock.recv(4096).decode(errors="replace"))
        assert all(answer.startswith("HTTP/1.1 408") and "body_timeout" in answer for answer in answers), answers[:2]
    finally:
        for sock in stalled:
            sock.close()


def test_metrics_and_health_details_only_for_monitoring(lab: Lab) -> None:
    """From a neighbour that is not a monitoring address (the tier in front or behind), each service's /metrics is
    refused and its /healthz is a bare status."""
    script = ("import urllib.request,urllib.error,sys\n"
              "def get(u):\n"
              "  try:\n    r=urllib.request.urlopen(u,timeout=5); return r.status, r.read().decode()\n"
              "  except urllib.error.HTTPError as e: return e.code, e.read().decode()\n"
              "print(get(sys.argv[1] + '/metrics')[0]); print(get(sys.argv[1] + '/healthz')[1])\n")
    checked = []
    for service in ("gatekeeper", "trusted", "proxy"):
        target = service_node(lab, service)
        _, port = service_listen(target, service)
        neighbours = [(node, network) for node in lab.nodes.values() if node.name != target.name
                      for network in set(node.addresses) & set(target.addresses)]
        assert neighbours, f"no container shares a network with {service}"
        node, network = neighbours[0]
        out = node.sh(f"python3 -c {shlex.quote(script)} http://{target.addresses[network]}:{port}").stdout.splitlines()
        assert out[0] == "403", (service, node.name, out)
        assert json.loads(out[1]) == {"status": "ok"}, (service, node.name, out)
        checked.append((service, node.name))
    assert len(checked) == 3


def test_the_lab_is_unchanged_by_this_module(lab: Lab) -> None:
    """The writes above restored what they changed: every node still equals the manager."""
    wait_synced(lab)
    manager = lab.with_role("cluster_manager")[0]
    reference = checksums(manager)
    for node in lab.with_role("sql_node"):
        assert checksums(node) == reference
