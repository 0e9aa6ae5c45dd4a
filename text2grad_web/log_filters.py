"""Logging filters: an ordinary refusal (403, 404) is a one-line warning, not a traceback."""

from __future__ import annotations

import logging


class QuietClientErrors(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        status = getattr(record, "status_code", None)
        if status is not None and status < 500:
            record.exc_info = None
            record.exc_text = None
        return True
