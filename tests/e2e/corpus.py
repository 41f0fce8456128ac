"""The injection corpora of tests/e2e/data and the exact request each entry makes.

Pure functions, without the lab: tests/e2e reads the corpora through here, and so does the offline check in
tests/unit/e2e_corpus, so both send exactly the same bytes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent / "data"


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
