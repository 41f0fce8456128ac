# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""JSON-safe conversion of database values."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest

from sqlgate.convert import convert_rows, to_json_value


@pytest.mark.parametrize(('value', 'expected'), [
    (None, None),
    (True, True),
    (42, 42),
    (-(2**63), -(2**63)),
    (1.5, 1.5),
    (float('inf'), 'inf'),
    ('MARY', 'MARY'),
    (Decimal('2.99'), '2.99'),
    (Decimal('1E+2'), '1E+2'),
    (dt.datetime(2005, 5, 24, 22, 53, 30), '2005-05-24T22:53:30'),
    (dt.datetime(2005, 5, 24, 22, 53, 30, 120000), '2005-05-24T22:53:30.120000'),
    (dt.date(2006, 2, 15), '2006-02-15'),
    (dt.time(4, 34, 33), '04:34:33'),
    (dt.timedelta(hours=1, minutes=2, seconds=3), '01:02:03'),
    (dt.timedelta(hours=838, minutes=59, seconds=59), '838:59:59'),
    (-dt.timedelta(hours=1, seconds=1), '-01:00:01'),
    (dt.timedelta(seconds=1, microseconds=5), '00:00:01.000005'),
    (b'Trailers', 'Trailers'),
    ('é'.encode(), 'é'),
    (b'\x00\x01\xff', {'base64': 'AAH/'}),
    (bytearray(b'\xfe'), {'base64': '/g=='}),
    ({'Trailers', 'Deleted Scenes'}, 'Deleted Scenes,Trailers'),
])
def test_values(value, expected):
    assert to_json_value(value) == expected


def test_rows_are_lists_and_serialise():
    rows = convert_rows([(1, Decimal('0.99'), b'\xff'), (2, None, 'x')])
    assert rows == [[1, '0.99', {'base64': '/w=='}], [2, None, 'x']]
    json.dumps(rows, allow_nan=False)
