# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""Read/write classification of one SQL statement, for the proxy's routing.

A statement is a read when it starts with SELECT, SHOW, EXPLAIN or DESCRIBE (or is a WITH ... SELECT)
and has no locking clause (FOR UPDATE, FOR SHARE, LOCK IN SHARE MODE) and no INTO. Everything else,
including anything the lexer (``sqllex``, the one the validator uses) refuses to read, is a write: a
write goes to the manager, which is always correct; a read only goes to a worker when that is
certainly safe.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from .sqllex import Lexed, LexError, Tok, lex, statement_verb, verb_of

Kind = Literal['read', 'write']

READ_VERBS = frozenset({'SELECT', 'SHOW', 'EXPLAIN', 'DESCRIBE', 'DESC'})
# EXPLAIN ANALYZE and MariaDB's ANALYZE run the statement they explain.
_EXPLAINED_WRITES = frozenset({'INSERT', 'UPDATE', 'DELETE', 'REPLACE', 'ANALYZE'})
_LOCKING_PAIRS = frozenset({('FOR', 'UPDATE'), ('FOR', 'SHARE'), ('LOCK', 'IN')})
# Texts longer than this are classified without being cached, so the cache stays small.
CACHE_TEXT_LIMIT = 4096


def classify_tokens(toks: tuple[Tok, ...]) -> Kind:
    return _kind(statement_verb(toks), [tok.up for tok in toks if tok.kind == 'word'])


def classify_lexed(lexed: Lexed) -> Kind:
    """``classify`` of a text already lexed."""
    verb = verb_of(lexed.kinds, lexed.values, lexed.words, lexed.depths)
    return _kind(verb, list(filter(None, lexed.words)))


def _kind(verb: str, words: list[str]) -> Kind:
    if verb not in READ_VERBS:
        return 'write'
    if verb in ('EXPLAIN', 'DESCRIBE', 'DESC') and _EXPLAINED_WRITES.intersection(words):
        return 'write'
    if 'INTO' in words:
        return 'write'
    if 'FOR' in words or 'LOCK' in words:
        pairs = set(zip(words, words[1:], strict=False))  # consecutive words
        if _LOCKING_PAIRS.intersection(pairs):
            return 'write'
    return 'read'


def _classify(sql: str) -> Kind:
    try:
        lexed = lex(sql)
    except LexError:
        return 'write'
    except Exception:  # noqa: BLE001 - anything unreadable is routed as a write, never an error
        return 'write'
    return classify_lexed(lexed)


_classify_cached = lru_cache(maxsize=4096)(_classify)


def classify(sql: str) -> Kind:
    """'read' or 'write'; never raises."""
    if len(sql) > CACHE_TEXT_LIMIT:
        return _classify(sql)
    return _classify_cached(sql)
