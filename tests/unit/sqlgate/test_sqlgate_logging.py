# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""JSON log lines and the batching handler that writes them."""

from __future__ import annotations

import io
import json
import logging
import time

from sqlgate.web import BatchingHandler, JsonFormatter


def make_logger(handler: logging.Handler) -> logging.Logger:
    logger = logging.getLogger(f'sqlgate.test.{id(handler)}')
    logger.propagate = False
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    return logger


def test_access_records_are_written_as_their_dict_and_others_as_json():
    stream = io.StringIO()
    handler = BatchingHandler(stream, interval=0.01)
    handler.setFormatter(JsonFormatter('proxy'))
    logger = make_logger(handler)
    logger.info('request', extra={'access': {'service': 'proxy', 'status': 200, 'path': '/direct'}})
    logger.warning('node %s ejected', 'worker1', extra={'node': 'worker1'})
    try:
        raise ValueError('boom')
    except ValueError:
        logger.exception('unhandled error', extra={'request_id': 'abc'})
    handler.close()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines[0] == {'service': 'proxy', 'status': 200, 'path': '/direct'}
    assert lines[1]['message'] == 'node worker1 ejected' and lines[1]['level'] == 'warning'
    assert lines[1]['service'] == 'proxy' and lines[1]['node'] == 'worker1' and lines[1]['ts'].endswith('Z')
    assert lines[2]['request_id'] == 'abc' and 'ValueError: boom' in lines[2]['exception']


def test_lines_are_batched_and_flushed_in_the_background():
    stream = io.StringIO()
    handler = BatchingHandler(stream, interval=0.05)
    handler.setFormatter(logging.Formatter('%(message)s'))
    logger = make_logger(handler)
    for number in range(100):
        logger.info('line %d', number)
    deadline = time.monotonic() + 2
    while stream.getvalue().count('\n') < 100 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert stream.getvalue().splitlines() == [f'line {number}' for number in range(100)]
    handler.close()


def test_a_stalled_output_bounds_memory_and_reports_the_drop():
    stream = io.StringIO()
    handler = BatchingHandler(stream, interval=60, capacity=10)
    handler.setFormatter(logging.Formatter('%(message)s'))
    logger = make_logger(handler)
    for number in range(25):
        logger.info('line %d', number)
    assert len(handler.pending) == 10
    handler.close()
    lines = stream.getvalue().splitlines()
    assert '15 log lines were dropped' in json.loads(lines[0])['message']
    assert lines[1:] == [f'line {number}' for number in range(15, 25)]


def test_the_event_loop_choice():
    import asyncio

    import pytest

    from sqlgate.web import new_event_loop

    loop = new_event_loop('asyncio')
    assert type(loop).__module__.startswith('asyncio')
    loop.close()
    try:
        import uvloop
    except ImportError:
        with pytest.raises(ImportError):
            new_event_loop('uvloop')
        loop = new_event_loop('auto')
        assert isinstance(loop, asyncio.AbstractEventLoop)
    else:
        loop = new_event_loop('auto')
        assert isinstance(loop, uvloop.Loop)
    loop.close()
