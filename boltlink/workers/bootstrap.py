"""What every worker process does first: logging and the event loop."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

from boltlink.config import Config
from boltlink.logformat import RequestIdFilter, make_formatter

T = TypeVar("T")


def configure_logging(config: Config, process_name: str) -> None:
    """Every record of this process, hypercorn's included, to stderr in config.log_format."""
    import multiprocessing

    multiprocessing.current_process().name = process_name
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(make_formatter(config.log_format, process_name))
    handler.addFilter(RequestIdFilter())
    logging.basicConfig(level=config.log_level.upper(), handlers=[handler], force=True)
    # hypercorn.error (workers/api.py hands hypercorn that logger) propagates to this handler. Its
    # access log stays off: boltlink.web.request_log writes one, with request ids, when access_log is on.
    logging.getLogger("hypercorn.access").disabled = True
    if config.access_log:  # asked for explicitly, so written even when log_level is above info
        logging.getLogger("boltlink.access").setLevel(logging.INFO)
    # warnings.warn output would otherwise be a bare multi-line text block in a JSON stream.
    logging.captureWarnings(True)


def run_async(main: Coroutine[Any, Any, T]) -> T:
    """Run main on uvloop when it is installed (hypercorn's graceful shutdown relies on it, see DESIGN.md)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on every supported platform
        return asyncio.run(main)
    return uvloop.run(main)
