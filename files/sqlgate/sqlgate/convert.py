# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""JSON-safe conversion of the values PyMySQL returns.

* None, bool, int, str: unchanged; float: unchanged when finite, else its text ('inf');
* Decimal: its exact decimal text ('2.99'), never a float, so money keeps its cents;
* datetime, date, time: ISO 8601 text ('2005-05-24T22:53:30', '2006-02-15');
* timedelta (MySQL TIME columns): MySQL's own '[-]HH:MM:SS[.ffffff]' text (hours may exceed 24);
* bytes: the UTF-8 text when the bytes are valid UTF-8, else ``{"base64": "<standard base64>"}``
  (an object, so it can never be mistaken for a string; address.location, a geometry, is one);
* set (SET columns): the members joined by ',' in sorted order, as MySQL prints them.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Iterable, Sequence
from decimal import Decimal
from math import isfinite

JsonValue = object
_PLAIN = (type(None), bool, int, str)


def _timedelta_text(value: dt.timedelta) -> str:
    micros = (value.days * 86400 + value.seconds) * 1_000_000 + value.microseconds
    sign = '-' if micros < 0 else ''
    micros = abs(micros)
    seconds, fraction = divmod(micros, 1_000_000)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = f'{sign}{hours:02d}:{minutes:02d}:{secs:02d}'
    return f'{text}.{fraction:06d}' if fraction else text


def to_json_value(value: object) -> JsonValue:
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, float):
        return value if isfinite(value) else str(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return _timedelta_text(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        try:
            return raw.decode('utf-8')
        except UnicodeDecodeError:
            return {'base64': base64.b64encode(raw).decode('ascii')}
    if isinstance(value, (set, frozenset)):
        return ','.join(sorted(str(member) for member in value))
    return str(value)


def convert_rows(rows: Iterable[Sequence[object]]) -> list[list[JsonValue]]:
    plain = _PLAIN
    return [[cell if type(cell) in plain else to_json_value(cell) for cell in row] for row in rows]
