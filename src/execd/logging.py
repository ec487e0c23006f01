"""Structured logs to stderr: one JSON object a line when stderr is not a terminal (a
file, a pipe, journald, a container's log), key=value text a person reads when it is.
EXECD_LOG_FORMAT=json or console chooses either way."""

from __future__ import annotations

import logging
import sys

import orjson
import structlog

FORMATS = ("auto", "json", "console")


def configure(level: str = "info", form: str = "auto") -> None:
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    logging.basicConfig(level=numeric, stream=sys.stderr, format="%(message)s")
    logging.getLogger("alembic").setLevel(max(numeric, logging.WARNING))
    as_json = form == "json" or (form == "auto" and not sys.stderr.isatty())
    renderer: structlog.typing.Processor
    if as_json:
        renderer = structlog.processors.JSONRenderer(serializer=_dumps)
    else:
        # Plain tracebacks: rendering locals of every frame can take seconds and
        # would stall the event loop on each logged error.
        renderer = structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        )
    processors: list[structlog.typing.Processor] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if as_json:
        processors.append(structlog.processors.format_exc_info)
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
    )


def _dumps(event: object, **_: object) -> str:
    return orjson.dumps(event, default=str).decode()
