"""What every command shares: how to build the Config, and how to run against the store."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import click

from boltlink.config import Config, load_config

T = TypeVar("T")


@dataclass
class CliContext:
    config_file: str | None = None
    flags: dict[str, Any] = field(default_factory=dict)

    def config(self, **command_flags: Any) -> Config:
        return load_config(self.config_file, {**self.flags, **command_flags})


pass_cli = click.make_pass_decorator(CliContext, ensure=True)


def run_with_store(config: Config, action: Callable[[Any], Awaitable[T]]) -> T:
    """Open the configured store (migrating it), run action(store), close it."""
    from boltlink.store import create_store

    async def main() -> T:
        store = create_store(config)
        await store.open()
        try:
            return await action(store)
        finally:
            await store.close()

    return asyncio.run(main())
