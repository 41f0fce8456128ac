# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""The one exception type that becomes a JSON error response.

Pure modules raise it; the web layer renders it as ``{"error": {"code", "message"}, "request_id"}``.
"""

from __future__ import annotations

from collections.abc import Mapping


class ApiError(Exception):
    """An error with an HTTP status, a stable slug and a sentence for humans."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        log: Mapping[str, object] | None = None,
        close: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})
        # Extra fields for the access-log line (for example a rejection reason).
        self.log = dict(log or {})
        # Close the connection after the answer (its request body was not read to the end).
        self.close = close
