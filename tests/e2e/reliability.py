"""Helpers of the reliability tests (issue 7: injection, fuzzing, overload, failure) against the deployed lab.

Everything here talks only to the lab: the gatekeeper's published port on 127.0.0.1, and the containers through
`docker exec` (SQL as root over the server's own socket, the services' /healthz and /metrics on their own listen
addresses). Figures go to reports/reliability/<part>.json (git-ignored), from which docs/reliability.md is written.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import platform
import re
import subprocess
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from conftest import ROOT, Lab, Node

DATA = Path(__file__).resolve().parent / "data"
REPORTS = ROOT / "reports" / "reliability"
ROUTES = ("direct", "random", "customized")
SERVICES = {"gatekeeper": "gatekeeper", "trusted": "trusted_host", "proxy": "sql_proxy"}  # service -> role


# -- figures ------------------------------------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    load = os.getloadavg()
    return {
        "hostname": platform.node(),
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_average_1m_at_start": round(load[0], 2),
    }


def write_report(lab: Lab, part: str, section: str, figures: dict[str, Any]) -> Path:
    """Record one section's figures in reports/reliability/<part>.json, with its date, machine and lab (the other
    sections of the file are kept, so each test can be rerun alone)."""
    REPORTS.mkdir(parents=True, exist_ok=True)
    path = REPORTS / f"{part}.json"
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        document = {}
    document.setdefault("part", part)
    document.setdefault("sections", {})[section] = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "lab_project": lab.project,
        "figures": figures,
    }
    path.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n")
    return path


def percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def latency_summary(seconds: list[float]) -> dict[str, Any]:
    """p50/p95/p99/max in milliseconds."""
    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 1)

    return {
        "count": len(seconds),
        "p50_ms": ms(percentile(seconds, 0.5)),
        "p95_ms": ms(percentile(seconds, 0.95)),
        "p99_ms": ms(percentile(seconds, 0.99)),
        "max_ms": ms(max(seconds) if seconds else None),
    }


class Deadline:
    """A test's time bound: `check()` fails the test once it is spent."""

    def __init__(self, seconds: float, what: str) -> None:
        self.seconds = seconds
        self.what = what
        self.start = time.monotonic()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def check(self) -> None:
        assert self.elapsed < self.seconds, f"{self.what} exceeded its time bound of {self.seconds} s"


# -- the gatekeeper, over one keep-alive connection ---------------------------------------------------------------
@dataclass
class Answer:
    status: int
    raw: bytes
    headers: dict[str, str]
    elapsed: float
    body: Any = None  # the parsed JSON document, None when the body is not JSON
    rate_limited_retries: int = 0

    @property
    def error_code(self) -> str | None:
        if isinstance(self.body, dict) and isinstance(self.body.get("error"), dict):
            return self.body["error"].get("code")
        return None


@dataclass
class GatekeeperClient:
    """Sends bodies (JSON or raw bytes) to the gatekeeper at a steady pace below its rate limit, so that the
    limiter never decides an outcome of the corpus tests; a 429 that still happens is waited out (Retry-After)
    and counted."""

    lab: Lab
    key: str = "default"
    rate: float = 40.0  # requests per second, below the lab's 50/s per key
    timeout: float = 20.0
    sent: int = 0
    rate_limited: int = 0
    _next: float = field(default=0.0, repr=False)
    _conn: http.client.HTTPConnection | None = field(default=None, repr=False)

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            host, port = self.lab.gatekeeper_url.removeprefix("http://").split(":")
            self._conn = http.client.HTTPConnection(host, int(port), timeout=self.timeout)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _pace(self) -> None:
        now = time.monotonic()
        if now < self._next:
            time.sleep(self._next - now)
        self._next = max(now, self._next) + 1.0 / self.rate

    def _once(self, method: str, path: str, data: bytes | None, headers: dict[str, str]) -> Answer:
        self._pace()
        for attempt in (1, 2):
            started = time.perf_counter()
            try:
                conn = self._connection()
                conn.request(method, path, body=data, headers=headers)
                response = conn.getresponse()
                raw = response.read()
            except (ConnectionError, http.client.HTTPException, TimeoutError, OSError):
                self.close()  # a keep-alive connection the server closed: one new connection, then give up
                if attempt == 2:
                    raise
                continue
            elapsed = time.perf_counter() - started
            if response.getheader("Connection", "").lower() == "close":
                self.close()
            self.sent += 1
            answer = Answer(response.status, raw, {k.lower(): v for k, v in response.getheaders()}, elapsed)
            try:
                answer.body = json.loads(raw)
            except ValueError:
                answer.body = None
            return answer
        raise AssertionError("unreachable")

    def send(
        self, route: str, data: bytes, content_type: str | None = "application/json", key: str | None = "",
        method: str = "POST",
    ) -> Answer:
        headers = {"Content-Type": content_type} if content_type is not None else {}
        key = self.key if key == "" else key
        if key:
            headers["Authorization"] = f"Bearer {self.lab.api_key(key)}"
        retries = 0
        while True:
            answer = self._once(method, f"/{route}", data, headers)
            if answer.status != 429 or retries >= 5:
                answer.rate_limited_retries = retries
                return answer
            retries += 1
            self.rate_limited += 1
            time.sleep(int(answer.headers.get("retry-after", "1")))

    def query(self, route: str, sql: str, params: list[Any] | None = None) -> Answer:
        body: dict[str, Any] = {"query": sql}
        if params is not None:
            body["params"] = params
        return self.send(route, json.dumps(body).encode())

    def get(self, path: str) -> Answer:
        return self._once("GET", path, None, {})


# -- corpora ------------------------------------------------------------------------------------------------------
def load_corpus(name: str) -> list[dict[str, Any]]:
    """tests/e2e/data/<name>.jsonl: one JSON object per line."""
    lines = (DATA / f"{name}.jsonl").read_text(encoding="ascii").splitlines()
    entries = [json.loads(line) for line in lines if line.strip()]
    ids = [entry["id"] for entry in entries]
    assert len(ids) == len(set(ids)), "corpus ids must be unique"
    return entries


def request_body(entry: dict[str, Any]) -> tuple[bytes, str | None]:
    """The exact bytes an entry sends, and its Content-Type (None: no header).

    `query`/`params` make a normal JSON body; `body` is any JSON document sent as is; `raw` is a string whose
    characters U+0000..U+00FF are the bytes to send (so invalid UTF-8 fits a JSON line); `long` builds a large
    value from `prefix` + `unit` * `count` + `suffix` into the query (default), a param, the raw body, or a list
    of `count` params (`params_list`).
    """
    content_type = entry.get("content_type", "application/json") or None
    if "raw" in entry:
        return entry["raw"].encode("latin-1"), content_type
    if "body" in entry:
        return json.dumps(entry["body"]).encode(), content_type
    document: dict[str, Any] = {"query": entry.get("query")}
    if "params" in entry:
        document["params"] = entry["params"]
    long = entry.get("long")
    if long:
        where = long.get("in", "query")
        if where == "params_list":
            document["params"] = [long["unit"]] * long["count"]
        else:
            text = long.get("prefix", "") + long["unit"] * long["count"] + long.get("suffix", "")
            if where == "raw":
                return text.encode("latin-1"), content_type
            if where == "params":
                document["params"] = [text]
            else:
                document["query"] = text
    return json.dumps(document).encode(), content_type


def describe(entry: dict[str, Any], limit: int = 100) -> str:
    text = entry.get("query") or entry.get("raw") or json.dumps(entry.get("body")) or json.dumps(entry.get("long"))
    text = repr(text)
    return text if len(text) <= limit else text[:limit] + "..."


# -- SQL as root inside a SQL node's container --------------------------------------------------------------------
_RUN_QUERIES = r"""
import json, subprocess, sys
out = []
for sql in json.load(sys.stdin):
    done = subprocess.run(["mysql", "--xml", "--default-character-set=utf8mb4", "sakila"], input=sql.encode(),
                          capture_output=True)
    out.append({"rc": done.returncode, "xml": done.stdout.decode("utf-8", "replace"),
                "error": done.stderr.decode("utf-8", "replace")})
print(json.dumps(out))
"""
_NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"


def run_as_root(node: Node, queries: list[str], timeout: float = 180) -> list[dict[str, Any]]:
    """Run each statement as root with the mysql client in the node's container (one `docker exec` for all).

    Returns, per statement, {"columns": [...], "rows": [[text or None]]} or {"error": message}; values are
    the server's own text (`mysql --xml`), NULL is None.
    """
    done = subprocess.run(
        ["docker", "exec", "-i", node.container, "python3", "-c", _RUN_QUERIES],
        input=json.dumps(queries).encode(), capture_output=True, timeout=timeout, check=False,
    )
    assert done.returncode == 0, f"{node.name}: {done.stderr.decode(errors='replace')}"
    results = []
    for item in json.loads(done.stdout):
        if item["rc"] != 0:
            results.append({"error": item["error"].strip()})
            continue
        columns: list[str] = []
        rows: list[list[str | None]] = []
        if item["xml"].strip():
            for row in ET.fromstring(item["xml"]).iter("row"):
                fields = row.findall("field")
                if not columns:
                    columns = [f.get("name", "") for f in fields]
                rows.append([None if f.get(_NIL) == "true" else (f.text or "") for f in fields])
        results.append({"columns": columns, "rows": rows})
    return results


def sql_literal(value: Any) -> str:
    """A param as PyMySQL binds it, written independently of PyMySQL (the expected side of the comparison)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (int, float)):
        return repr(value)
    escapes = {"\\": "\\\\", "'": "\\'", '"': '\\"', "\0": "\\0", "\n": "\\n", "\r": "\\r", "\x1a": "\\Z"}
    return "'" + "".join(escapes.get(char, char) for char in str(value)) + "'"


def inline_params(sql: str, params: list[Any] | None) -> str:
    """The statement with its %s placeholders replaced by literals (and %% by %), as the driver does."""
    if not params:
        return sql
    values = iter(params)
    return re.sub(r"%s|%%", lambda m: "%" if m.group() == "%%" else sql_literal(next(values)), sql)


_ISO_DATETIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?$")


def as_server_text(value: Any) -> str | None:
    """An API cell in the text the server prints for it (DATETIME with a space, booleans as 1/0)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, dict) and "base64" in value:
        return base64.b64decode(value["base64"]).decode("latin-1")
    if isinstance(value, str) and _ISO_DATETIME.match(value):
        return value.replace("T", " ")
    return str(value)


def same_number(api: Any, text: str | None) -> bool:
    """Floats (DOUBLE results) are compared by value: the server and Python print them differently."""
    try:
        return isinstance(api, float) and text is not None and abs(api - float(text)) <= 1e-9 * max(1.0, abs(api))
    except ValueError:
        return False


def _row_key(row: list[str | None]) -> tuple[tuple[bool, str], ...]:
    return tuple((cell is None, cell or "") for cell in row)


def rows_match(api_rows: list[list[Any]], server_rows: list[list[str | None]], ordered: bool) -> bool:
    """Whether the API's rows are the server's rows (in the same order when `ordered`, else as multisets)."""
    mine = [([as_server_text(cell) for cell in row], row) for row in api_rows]
    theirs = list(server_rows)
    if not ordered:
        mine.sort(key=lambda pair: _row_key(pair[0]))
        theirs.sort(key=_row_key)
    if len(mine) != len(theirs):
        return False
    for (converted, original), expected in zip(mine, theirs, strict=True):
        if len(converted) != len(expected):
            return False
        for cell, raw, text in zip(converted, original, expected, strict=True):
            if cell != text and not same_number(raw, text):
                return False
    return True


def sakila_tables(node: Node) -> list[str]:
    (result,) = run_as_root(node, [
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'sakila' "
        "AND table_type = 'BASE TABLE' ORDER BY table_name"
    ])
    tables = [row[0] for row in result["rows"]]
    assert len(tables) >= 16, f"{node.name}: sakila has only {tables}"
    return tables


def checksums(node: Node) -> dict[str, str | None]:
    """CHECKSUM TABLE of every sakila base table, as root in the node's container."""
    tables = sakila_tables(node)
    (result,) = run_as_root(node, ["CHECKSUM TABLE " + ", ".join(f"sakila.{table}" for table in tables)])
    assert "error" not in result, result
    return {row[0]: row[1] for row in result["rows"]}


def row_counts(node: Node) -> dict[str, int]:
    tables = sakila_tables(node)
    union = " UNION ALL ".join(f"SELECT '{t}', COUNT(*) FROM sakila.{t}" for t in tables)
    (result,) = run_as_root(node, [union])
    assert "error" not in result, result
    return {row[0]: int(row[1]) for row in result["rows"]}


def galera_status(node: Node) -> dict[str, str]:
    (result,) = run_as_root(node, [
        "SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_cluster_size', 'wsrep_local_state_comment', "
        "'wsrep_ready', 'wsrep_cluster_status', 'wsrep_last_committed')"
    ])
    if "error" in result:
        return {"error": result["error"]}
    return {row[0]: row[1] for row in result["rows"]}


# -- the services inside their containers -------------------------------------------------------------------------
def service_node(lab: Lab, service: str) -> Node:
    return lab.with_role(SERVICES[service])[0]


def service_listen(node: Node, service: str) -> tuple[str, int]:
    """The address and port the service listens on, from its configuration file."""
    config = json.loads(node.sh(f"cat /etc/sqlgate/{service}.json").stdout)
    return config.get("host", "0.0.0.0"), int(config.get("port", 0))


def service_memory(node: Node, service: str) -> dict[str, Any]:
    """Main PID, its resident set (VmRSS, /proc) and the unit's MemoryCurrent (cgroup; may be unavailable)."""
    shown = node.sh(f"systemctl show -p MainPID -p MemoryCurrent -p NRestarts sqlgate-{service}").stdout
    props = dict(line.split("=", 1) for line in shown.splitlines() if "=" in line)
    pid = int(props.get("MainPID", "0"))
    rss = None
    if pid:
        status = node.sh(f"cat /proc/{pid}/status", check=False).stdout
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        rss = int(match.group(1)) * 1024 if match else None
    current = props.get("MemoryCurrent", "")
    return {
        "pid": pid,
        "rss_bytes": rss,
        "memory_current_bytes": int(current) if current.isdigit() else None,
        "restarts": int(props.get("NRestarts", "0") or 0),
    }


_FETCH = r"""
import json, sys, urllib.request, urllib.error
try:
    with urllib.request.urlopen(sys.argv[1], timeout=5) as r:
        print(json.dumps({"status": r.status, "body": r.read().decode()}))
except urllib.error.HTTPError as e:
    print(json.dumps({"status": e.code, "body": e.read().decode()}))
"""


def fetch_inside(node: Node, service: str, path: str) -> tuple[int, str]:
    """GET a path of the service from inside its own container (the proxy only lets the trusted host query it,
    but /healthz and /metrics are read here on its own listen address)."""
    host, port = service_listen(node, service)
    host = "127.0.0.1" if host in ("0.0.0.0", "") else host
    answer = json.loads(node.sh(f"python3 -c '{_FETCH}' http://{host}:{port}{path}").stdout)
    return answer["status"], answer["body"]


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text: 'name{labels}' -> value."""
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            try:
                values[name] = float(value)
            except ValueError:
                continue
    return values


def metrics_of(lab: Lab, service: str) -> dict[str, float]:
    status, text = fetch_inside(service_node(lab, service), service, "/metrics")
    assert status == 200, f"{service} /metrics: {status}"
    return parse_metrics(text)


_POLL = r"""
import json, os, sys, time, urllib.request, urllib.error
url, seconds, interval = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
print(json.dumps({"pid": os.getpid()}), flush=True)
end = time.time() + seconds
while time.time() < end:
    started = time.time()
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            status, body = r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        status, body = e.code, e.read().decode()
    except Exception as e:
        status, body = 0, type(e).__name__
    print(json.dumps({"t": started, "elapsed": time.time() - started, "status": status, "body": body}), flush=True)
    time.sleep(max(0.0, interval - (time.time() - started)))
"""


class Poller:
    """GET a service's /healthz every `interval` seconds, for at most `seconds`, from inside its container, in the
    background. Each answer is a sample with the wall-clock time (the containers share the host's clock), read
    as it arrives; `stop()` ends the poller early (killing `docker exec` would leave it running in the container,
    so it is killed there by its PID)."""

    def __init__(self, node: Node, service: str, seconds: float, interval: float = 0.25) -> None:
        host, port = service_listen(node, service)
        host = "127.0.0.1" if host in ("0.0.0.0", "") else host
        self.node = node
        self.seconds = seconds
        self.pid: int | None = None
        self.lines: list[dict[str, Any]] = []
        self.process = subprocess.Popen(
            ["docker", "exec", node.container, "python3", "-c", _POLL, f"http://{host}:{port}/healthz",
             str(seconds), str(interval)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            sample = json.loads(line)
            if "pid" in sample:
                self.pid = sample["pid"]
                continue
            try:
                sample["body"] = json.loads(sample["body"])
            except ValueError:
                pass
            self.lines.append(sample)

    def samples(self) -> list[dict[str, Any]]:
        """The samples so far."""
        return list(self.lines)

    def wait(self) -> list[dict[str, Any]]:
        """Wait for the poller to end by itself; all its samples."""
        self.process.wait(timeout=self.seconds + 60)
        self.reader.join(10)
        return self.samples()

    def stop(self) -> list[dict[str, Any]]:
        if self.process.poll() is None:
            if self.pid:
                self.node.sh(f"kill {self.pid}", check=False)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.reader.join(10)
        return self.samples()


def secret_values(lab: Lab) -> list[str]:
    """Every secret of the lab, which no response may ever contain."""
    values = []
    for path in sorted(lab.secrets_dir.rglob("*")):
        if path.is_file():
            text = path.read_text(errors="replace").split()
            if text and len(text[0]) >= 16:
                values.append(text[0])
    assert values, f"no secrets found in {lab.secrets_dir}"
    return values


# Text that only appears in a response if something leaked: a stack trace, a password hash from mysql.user, the
# server's version string, a file of the server's file system, the database user the proxy runs as.
LEAK_MARKERS = [
    re.compile(r"Traceback \(most recent call last\)"),
    re.compile(r"\*[0-9A-F]{40}"),
    re.compile(r"\b\d+\.\d+\.\d+-MariaDB"),
    re.compile(r"root:x:0:0"),
    re.compile(r"mysql_native_password"),
    re.compile(r"sakila_app@"),
]


def leaks(text: str, secrets: list[str]) -> list[str]:
    found = [marker.pattern for marker in LEAK_MARKERS if marker.search(text)]
    found += ["a lab secret" for secret in secrets if secret in text]
    return found
