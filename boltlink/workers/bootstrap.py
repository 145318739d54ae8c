"""What every worker process does first: logging and the event loop."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

from boltlink.config import Config

T = TypeVar("T")

LOG_FORMAT = "%(asctime)s %(levelname)s %(processName)s[%(process)d] %(name)s: %(message)s"


def configure_logging(config: Config, process_name: str) -> None:
    import multiprocessing

    multiprocessing.current_process().name = process_name
    logging.basicConfig(
        level=config.log_level.upper(), format=LOG_FORMAT, datefmt="%Y-%m-%dT%H:%M:%S%z",
        stream=sys.stderr, force=True,
    )


def run_async(main: Coroutine[Any, Any, T]) -> T:
    """Run main on uvloop when it is installed (hypercorn's graceful shutdown relies on it, see DESIGN.md)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on every supported platform
        return asyncio.run(main)
    return uvloop.run(main)
