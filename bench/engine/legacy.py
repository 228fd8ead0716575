"""The rollback's `up` as it was before it became one CLI run: through the Automation API.

Kept only so `bench.engine` can time the old path against the new one in the same run.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mlplatform.tools.rollout.apply import StateLocked, UpFailed


def automation_up(project_dir: Path, stack: str, on_output: Callable[[str], None]) -> None:
    """`up` on one stack through the Automation API (the `pulumi` CLI on PATH, this process's environment)."""
    from pulumi import automation as auto

    try:
        workspace_stack = auto.select_stack(stack_name=stack, work_dir=str(project_dir))
        workspace_stack.up(on_output=on_output, color="never")
    except auto.ConcurrentUpdateError as err:
        raise StateLocked(str(err)) from None
    except auto.CommandError as err:
        raise UpFailed(str(err)) from None
