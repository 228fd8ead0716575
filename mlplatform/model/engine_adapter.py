"""The one place the program reaches into the Pulumi SDK's internals.

`send_registrations` and `resolve_now` use `pulumi.runtime.sync_await._sync_await` (and the first
the event loop's run queue), which are not public API. Both are pinned here: `PULUMI_SDK_VERSION` is the SDK this was
written and tested against, and `tests/model/test_engine_adapter.py` fails when requirements.txt
pins another version, so an SDK upgrade re-checks this module rather than silently losing the
overlap (or breaking `up`).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pulumi
from pulumi.runtime.sync_await import _sync_await

PULUMI_SDK_VERSION = "3.272.0"

# Enough for one registration to reach the engine (a few event-loop rounds); a bound, not a wait.
_SEND_ROUNDS = 50


def send_registrations() -> None:
    """Hand the registrations declared so far to the engine now, rather than when the program ends.

    The SDK sends a RegisterResource RPC from a task of its event loop, and a synchronous program
    yields to that loop only when it awaits something or ends. Without this, the engine would see
    the provider only after everything is declared, and start it (process start, CheckConfig,
    Configure with the API server's whole OpenAPI document) only then. Pumping the loop until it has
    nothing ready lets the provider's registration leave on its worker thread; the engine then sets
    the provider up while Python imports and declares the rest. Costs microseconds; waits for nothing.
    """

    async def settle() -> None:
        loop = asyncio.get_running_loop()
        for _ in range(_SEND_ROUNDS):
            await asyncio.sleep(0)
            # `_ready` is the loop's run queue, which the SDK's own _sync_await relies on too.
            if not getattr(loop, "_ready", None):
                return

    _sync_await(settle())


def resolve_now(output: pulumi.Output[Any]) -> Any:
    """An Output's value, synchronously, where the program must branch on it before declaring more
    (the platform stack's outputs decide what the model stack declares). `Output.future()` is the
    SDK's own accessor; waiting on it synchronously is what `_sync_await` exists for."""
    return _sync_await(output.future())
