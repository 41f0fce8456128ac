# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""The MySQL client protocol on the event loop, for connections PyMySQL has logged in.

PyMySQL does the handshake and the session set-up in a thread (every authentication plugin it knows,
and the same code the probe and the tests use); the socket is then handed to the event loop, which
speaks the text protocol itself: a statement costs one write and, for a small answer, one read, with no
thread hand-off. Results are parsed as they arrive, so a cap on rows or bytes stops a result before it
is held in memory, and a packet larger than the cap is refused from its header alone. Every command has
a deadline; a server that stops answering (a hung process, a cut network) fails the command in time.

Errors keep PyMySQL's exception classes (``pymysql.err``), so ``db.translate`` reads them as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Callable
from typing import Any

import pymysql
from pymysql.connections import TEXT_TYPES
from pymysql.constants import CR, FIELD_TYPE
from pymysql.converters import decoders, through

_HEADER = struct.Struct('<HBB')
MAX_PAYLOAD = 0xFFFFFF
COM_QUIT = 0x01
COM_QUERY = 0x03
COM_PING = 0x0E
COM_RESET_CONNECTION = 0x1F
_OK, _EOF, _ERR, _NULL = 0x00, 0xFE, 0xFF, 0xFB
# Reading stops while this many bytes wait unparsed: a fast server cannot fill the proxy's memory.
_PAUSE_AT = 1024 * 1024


class PacketTooLarge(pymysql.err.OperationalError):
    pass


def lost(message: str = 'Lost connection to MySQL server during query') -> pymysql.err.OperationalError:
    return pymysql.err.OperationalError(CR.CR_SERVER_LOST, message)


def command(code: int, argument: bytes = b'') -> bytes:
    """One command packet (sequence 0); a longer argument than one packet holds is refused."""
    length = len(argument) + 1
    if length >= MAX_PAYLOAD:
        raise pymysql.err.ProgrammingError(1105, 'the statement is larger than one packet')
    return _HEADER.pack(length & 0xFFFF, length >> 16, 0) + bytes((code,)) + argument


def lenenc_int(data: bytes, pos: int) -> tuple[int | None, int]:
    """A length-encoded integer at ``pos`` and the position after it (None for NULL)."""
    first = data[pos]
    if first < 0xFB:
        return first, pos + 1
    if first == _NULL:
        return None, pos + 1
    if first == 0xFC:
        return data[pos + 1] | data[pos + 2] << 8, pos + 3
    if first == 0xFD:
        return data[pos + 1] | data[pos + 2] << 8 | data[pos + 3] << 16, pos + 4
    return int.from_bytes(data[pos + 1:pos + 9], 'little'), pos + 9


class Ok:
    """An OK packet: the rows a write affected, its insert id and the server's info text."""

    __slots__ = ('affected_rows', 'insert_id', 'message')

    def __init__(self, data: bytes) -> None:
        self.affected_rows, pos = lenenc_int(data, 1)
        self.insert_id, pos = lenenc_int(data, pos)
        self.message = data[pos + 4:]  # after the status flags and the warning count (2 bytes each)


def column(data: bytes, encoding: str) -> tuple[str, int, int]:
    """A column definition's name, type and character set number (the rest is skipped, not parsed)."""
    pos = 0
    for _ in range(4):  # catalog, schema, table, original table
        length, pos = lenenc_int(data, pos)
        pos += length or 0
    length, pos = lenenc_int(data, pos)
    name = data[pos:pos + (length or 0)].decode(encoding)
    pos += length or 0
    length, pos = lenenc_int(data, pos)  # original name
    pos += (length or 0) + 1  # and the length of the fixed fields
    charsetnr = data[pos] | data[pos + 1] << 8
    return name, data[pos + 6], charsetnr


def column_converters(fields: list[tuple[str, int, int]], encoding: str) -> list[tuple[str | None, Any]]:
    """Per column: the text encoding of its values (None: bytes) and PyMySQL's converter, as PyMySQL does."""
    out = []
    for _, kind, charsetnr in fields:
        if kind == FIELD_TYPE.JSON:
            text = encoding
        elif kind in TEXT_TYPES:
            text = None if charsetnr == 63 else encoding
        else:
            text = 'ascii'
        converter = decoders.get(kind)
        out.append((text, None if converter is through else converter))
    return out


def parse_row(data: bytes, converters: list[tuple[str | None, Any]]) -> tuple[list[object], int]:
    """A text-protocol row and the bytes its values take (binary values count 4/3: base64 in JSON)."""
    row: list[object] = []
    pos = 0
    size = 0
    for encoding, converter in converters:
        length, pos = lenenc_int(data, pos)
        if length is None:
            row.append(None)
            continue
        value: Any = data[pos:pos + length]
        pos += length
        if encoding is None:
            size += length * 4 // 3 + 4
        else:
            size += length
            value = value.decode(encoding)
        row.append(value if converter is None else converter(value))
    return row, size


class Wire(asyncio.Protocol):
    """One connection's packets: commands out, answers parsed from a buffer, one command at a time."""

    def __init__(self, max_packet: int) -> None:
        self.max_packet = max_packet
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.parts: list[bytes] = []  # the pieces of a payload longer than one packet
        self.seq = 1
        self.waiter: asyncio.Future[None] | None = None
        self.error: BaseException | None = None
        self.paused = False
        # Answers still to be read and thrown away (the session reset sent after a request), then the
        # callback that gets the connection back (or None when the connection did not survive them).
        self.discard = 0
        self.discarded: Callable[[bool], None] | None = None

    # -- asyncio.Protocol -------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.discard:
            self._discard()
        if len(self.buffer) > _PAUSE_AT:
            self._flow()
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(lost())

    # -- state ------------------------------------------------------------------------------------
    @property
    def usable(self) -> bool:
        return self.error is None and self.transport is not None and not self.transport.is_closing()

    def fail(self, error: BaseException) -> None:
        """The connection is gone: close it and fail whatever waits on it."""
        if self.error is None:
            self.error = error
        if self.transport is not None:
            self.transport.abort()
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if self.discarded is not None:
            done, self.discarded = self.discarded, None
            self.discard = 0
            done(False)

    def time_out(self) -> None:
        self.fail(pymysql.err.OperationalError(CR.CR_SERVER_LOST, 'timed out waiting for the server'))

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            with contextlib.suppress(Exception):
                self.transport.write(command(COM_QUIT))  # the server frees the session at once
            self.transport.close()
        if self.error is None:
            self.error = lost('the connection was closed')

    # -- packets ----------------------------------------------------------------------------------
    def send(self, data: bytes) -> None:
        if self.error is not None:
            raise self.error
        self.seq = 1
        self.transport.write(data)  # type: ignore[union-attr]

    def _take(self) -> bytes | None:
        """The next whole payload from the buffer, or None when it has not all arrived."""
        buffer = self.buffer
        while True:
            if len(buffer) < 4:
                return None
            low, high, seq = _HEADER.unpack_from(buffer)
            length = low | high << 16
            if length + sum(map(len, self.parts)) > self.max_packet:
                error = PacketTooLarge(0, f'the server sent a packet of more than {self.max_packet} bytes')
                self.fail(error)
                raise error
            if len(buffer) < 4 + length:
                return None
            if seq != self.seq:
                error = lost() if seq == 0 else pymysql.err.InternalError(
                    f'packet sequence number wrong: got {seq}, expected {self.seq}')
                self.fail(error)
                raise error
            self.seq = (seq + 1) & 0xFF
            payload = bytes(buffer[4:4 + length])
            del buffer[:4 + length]
            if self.paused:
                self._flow()
            if length == MAX_PAYLOAD:
                self.parts.append(payload)
                continue
            if self.parts:
                self.parts.append(payload)
                payload = b''.join(self.parts)
                self.parts = []
            return payload

    def _flow(self) -> None:
        """Stop reading while the buffer holds more than _PAUSE_AT bytes and a whole packet to parse; read
        again once it does not (a packet larger than the threshold is read whole: max_packet bounds it)."""
        buffer = self.buffer
        complete = False
        if len(buffer) >= 4:
            low, high, _ = _HEADER.unpack_from(buffer)
            complete = len(buffer) >= 4 + (low | high << 16)
        pause = complete and len(buffer) > _PAUSE_AT
        if pause != self.paused and self.transport is not None and not self.transport.is_closing():
            self.paused = pause
            if pause:
                self.transport.pause_reading()
            else:
                self.transport.resume_reading()

    async def packet(self) -> bytes:
        """The next payload (an ERR packet is raised as PyMySQL's exception for it)."""
        while True:
            if self.error is not None:
                raise self.error
            payload = self._take()
            if payload is not None:
                if payload[0] == _ERR:
                    pymysql.err.raise_mysql_exception(payload)
                return payload
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None

    # -- the session reset, read in the background ------------------------------------------------
    def reset_then(self, commands: bytes, done: Callable[[bool], None], sent: bool = False) -> None:
        """Send the reset ``commands`` (unless they went out behind the last statement), read their two
        answers as they come, then ``done``.

        ``done(True)`` when both answered OK; ``done(False)`` (and the connection closed) otherwise.
        """
        try:
            if sent:
                self.seq = 1
            else:
                self.send(commands)
        except Exception:  # noqa: BLE001 - a connection that cannot be reset is dropped
            self.close()
            done(False)
            return
        self.discard = 2
        self.discarded = done
        self._discard()

    def _discard(self) -> None:
        while self.discard:
            try:
                payload = self._take()
            except Exception:  # noqa: BLE001 - fail() has already told the callback
                return
            if payload is None:
                return
            if payload[0] != _OK:
                self.fail(lost('the session reset was refused'))
                return
            self.discard -= 1
            self.seq = 1  # the next answer numbers its packets from 1 again
        if self.discarded is not None:
            done, self.discarded = self.discarded, None
            done(True)


class Connection:
    """A logged-in connection whose commands run on the event loop; ``pymysql`` is kept for escaping only."""

    def __init__(self, pymysql_conn: pymysql.connections.Connection, wire: Wire) -> None:
        self.pymysql = pymysql_conn
        self.wire = wire
        self.encoding = pymysql_conn.encoding
        self.thread_id: int = pymysql_conn.server_thread_id[0]
        self.session_sql: bytes = pymysql_conn.session_sql  # type: ignore[attr-defined]
        self.server_flavor: str = pymysql_conn.server_flavor  # type: ignore[attr-defined]
        self.read_timeout = pymysql_conn._read_timeout or 30.0
        # COM_RESET_CONNECTION, then the session set up again: what runs between two requests.
        self.reset_commands = command(COM_RESET_CONNECTION) + command(COM_QUERY, self.session_sql)
        self.reset_sent = False
        self.cursor = pymysql.cursors.Cursor(pymysql_conn)  # mogrify: PyMySQL's escaping, no I/O

    @classmethod
    async def adopt(cls, conn: pymysql.connections.Connection, max_packet: int) -> Connection:
        """Take over the socket of a PyMySQL connection that has logged in and set up its session."""
        sock = conn._sock
        conn._sock = None
        conn._rfile = None
        fd = sock.detach()
        plain = socket.socket(fileno=fd)
        plain.setblocking(False)
        loop = asyncio.get_running_loop()
        _, wire = await loop.create_connection(lambda: Wire(max_packet), sock=plain)
        return cls(conn, wire)

    @property
    def open(self) -> bool:
        return self.wire.usable

    def close(self) -> None:
        self.wire.close()

    def mogrify(self, sql: str, params: tuple[object, ...]) -> str:
        return self.cursor.mogrify(sql, params)

    def query(self, sql: str | bytes, reset_after: bool = False) -> None:
        """Send one statement (its answer is read with ``wire.packet()``).

        ``reset_after``: the session reset goes out in the same write, behind the statement (the server runs
        them in order); the statement's answer comes first, and ``reset_then`` reads the reset's.
        """
        if self.reset_sent:
            raise pymysql.err.ProgrammingError(0, 'the answers of the reset sent behind the last statement are unread')
        data = command(COM_QUERY, sql if isinstance(sql, bytes) else sql.encode(self.encoding))
        if reset_after:
            data += self.reset_commands
        self.wire.send(data)
        self.reset_sent = reset_after

    def deadline(self, seconds: float | None = None) -> asyncio.TimerHandle:
        """The connection fails unless what follows is over within ``seconds`` (default: the read timeout);
        cancel the handle when it is."""
        return asyncio.get_running_loop().call_later(seconds or self.read_timeout, self.wire.time_out)

    async def columns(self, first: bytes) -> tuple[list[str], list[tuple[str | None, Any]]]:
        """After a result's column count: the column names and their converters (the EOF is read)."""
        count, _ = lenenc_int(first, 0)
        fields = [column(await self.wire.packet(), self.encoding) for _ in range(count or 0)]
        end = await self.wire.packet()
        if not is_eof(end):
            error = pymysql.err.InternalError('protocol error: no EOF after the columns')
            self.wire.fail(error)
            raise error
        return [field[0] for field in fields], column_converters(fields, self.encoding)

    async def ping(self, timeout: float) -> None:
        deadline = self.deadline(timeout)
        try:
            self.wire.send(command(COM_PING))
            await self.wire.packet()
        finally:
            deadline.cancel()

    def reset_then(self, done: Callable[[bool], None]) -> None:
        sent, self.reset_sent = self.reset_sent, False
        self.wire.reset_then(self.reset_commands, done, sent)


def is_eof(payload: bytes) -> bool:
    return payload[0] == _EOF and len(payload) < 9
