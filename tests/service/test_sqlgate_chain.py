# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""End to end through gatekeeper -> trusted host -> proxy -> MariaDB with sakila."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.asyncio(loop_scope='session')

FIRST_CUSTOMERS = [('MARY', 'SMITH'), ('PATRICIA', 'JOHNSON'), ('LINDA', 'WILLIAMS')]


@pytest.mark.parametrize('route', ['direct', 'random', 'customized'])
async def test_first_three_customers_on_every_route(chain, route):
    status, body, headers = await chain.query(route, 'SELECT * FROM customer LIMIT 3')
    assert status == 200, body
    first, last = body['columns'].index('first_name'), body['columns'].index('last_name')
    assert [(row[first], row[last]) for row in body['rows']] == FIRST_CUSTOMERS
    assert body['row_count'] == 3
    assert body['kind'] == 'read'
    assert body['route'] == route
    assert body['request_id'] == headers['X-Request-Id']
    if route == 'direct':
        assert body['node'] == 'manager'
    else:
        assert body['node'] in ('worker1', 'worker2')
