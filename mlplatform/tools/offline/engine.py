"""Run a Pulumi program in-process, without an engine, a cloud or a cluster.

This is the real Pulumi Python SDK with `pulumi.runtime.set_mocks`: the program
registers its resources exactly as under `pulumi up`, and a recording mock
answers in place of the providers with plausible ids, ARNs and endpoints. The
test suite uses it to assert on what a program declares, and `mlplatform render`
uses it to write the declared objects out.

What it cannot show: provider-side diffs, replacements and await behaviour.
Those need the real engine. What a run registered is a `recording.Recording`;
the secret markers in it are read with `secrets`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc, settings
from pulumi.runtime.settings import SETTINGS
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _ensure_event_loop, _sync_await

from mlplatform.tools.offline.mocks import RecordingMocks
from mlplatform.tools.offline.recording import RecordedResource, Recording
from mlplatform.tools.offline.secrets import whole_numbers_as_ints
from mlplatform.tools.stackfile.reader import placeholder, read_stack_config, read_stack_document


def _describe_alias(alias: Any) -> str:
    """An alias as text: its URN, or the name/type/parent it points to."""
    if getattr(alias, "urn", ""):
        return alias.urn
    spec = getattr(alias, "spec", None)
    if spec is not None:
        return f"name={spec.name} type={spec.type} parent={spec.parentUrn or ('(none)' if spec.noParent else '(same)')}"
    return str(alias)


class _RecordingMonitor(pulumi_mocks.MockMonitor):
    """The SDK's mock monitor, plus a record of each registration's options."""

    def __init__(self, mocks: pulumi.runtime.Mocks):
        super().__init__(mocks)
        self.recorded: list[RecordedResource] = []

    def RegisterResource(self, request):  # the gRPC method's name
        response = super().RegisterResource(request)
        if request.type == "pulumi:pulumi:Stack":
            return response
        registration = self.resources[response.urn]
        raw_inputs = whole_numbers_as_ints(rpc.deserialize_properties(request.object, keep_unknowns=True))
        self.recorded.append(
            RecordedResource(
                urn=response.urn,
                type=request.type,
                name=request.name,
                custom=bool(request.custom),
                raw_inputs=dict(raw_inputs),
                outputs=dict(registration.state),
                id=registration.id or "",
                parent=request.parent,
                provider=request.provider,
                dependencies=list(request.dependencies),
                property_dependencies={k: list(v.urns) for k, v in request.propertyDependencies.items()},
                protect=bool(request.protect),
                retain_on_delete=bool(request.retainOnDelete),
                delete_before_replace=bool(request.deleteBeforeReplace),
                ignore_changes=list(request.ignoreChanges),
                replace_on_changes=list(request.replaceOnChanges),
                aliases=[_describe_alias(a) for a in request.aliases],
            )
        )
        return response


def config_as_runtime_values(namespace_config: Mapping[str, Any]) -> dict[str, str]:
    """Pulumi passes config to the program as strings, structured values as JSON."""
    return {key: value if isinstance(value, str) else json.dumps(value) for key, value in namespace_config.items()}


async def _resolve_exports() -> dict[str, Any]:
    """The values passed to `pulumi.export`, resolved; secret ones keep Pulumi's secret marker.

    The mock runtime finishes its root Stack before the program runs, so exports are
    never sent to the monitor: read them off the Stack object instead.
    """
    root = settings.get_root_resource()
    exported: dict[str, Any] = {}
    for key, value in dict(getattr(root, "outputs", {}) or {}).items():
        output = pulumi.Output.from_input(value)
        resolved = await output.future(with_unknowns=True)
        exported[key] = rpc.wrap_rpc_secret(resolved) if await output.is_secret() else resolved
    return exported


def run_program(
    program: Callable[[], Any],
    *,
    project: str,
    stack: str,
    config: Mapping[str, Any] | None = None,
    secret_keys: Iterable[str] = (),
    stack_references: Mapping[str, Mapping[str, Any]] | None = None,
    mocks: RecordingMocks | None = None,
) -> Recording:
    """Run `program` under recording mocks and return what it registered.

    `config` holds fully qualified keys (`mlplatform:cluster`) with plain or
    structured values. Exceptions raised by the program (a `ConfigError`, say)
    propagate after the runtime has settled, so callers can assert on both the
    error and the (empty) recording.
    """
    mocks = mocks or RecordingMocks(stack_references=stack_references)
    monitor = _RecordingMonitor(mocks)
    # A fresh root Stack per run, so one run's exports never leak into the next.
    settings.ROOT.set(None)
    # `organization`: what the self-managed backends call every org, as a real `up` there gives it.
    pulumi.runtime.set_mocks(
        mocks, project=project, stack=stack, preview=False, monitor=monitor, organization="organization"
    )
    pulumi.runtime.set_all_config(config_as_runtime_values(config or {}), list(secret_keys))
    # pulumi's `contextproperty` hides these attributes from type checkers (the SDK marks them `type: ignore`).
    SETTINGS.rpc_manager.clear()  # pyright: ignore[reportAttributeAccessIssue]
    SETTINGS.outputs.clear()  # pyright: ignore[reportAttributeAccessIssue]
    error: BaseException | None = None
    quiet = _QuietOnFailure().start()
    try:
        _sync_await(run_pulumi_func(program))
    except BaseException as exc:  # re-raised below, once the recording is attached
        error = exc
    stack_outputs: dict[str, Any] = {}
    if error is None:
        try:
            stack_outputs = _sync_await(_resolve_exports())
        except BaseException as exc:  # an export that fails to resolve is the program's error
            error = exc
    quiet.release(failed=error is not None)
    recording = Recording(
        project=project,
        stack=stack,
        resources=list(monitor.recorded),
        stack_outputs=stack_outputs,
    )
    if error is not None:
        error.recording = recording  # type: ignore[attr-defined]
        raise error
    return recording


def recording_of(error: BaseException) -> Recording:
    """What a run registered before the program raised `error`: `run_program` attaches it to the error."""
    recording = getattr(error, "recording", None)
    if not isinstance(recording, Recording):
        raise TypeError(
            f"{type(error).__name__} was not raised by a program under run_program: no recording"
        ) from error
    return recording


class _QuietOnFailure:
    """Hold back the SDK's leftovers while a program runs; show them only if it succeeds.

    A failing program leaves tasks whose exception nobody retrieves (every Output that
    depended on the failed registration) and coroutines that were never awaited; asyncio
    reports them as they are garbage-collected, about nine lines of "Task exception was
    never retrieved" and RuntimeWarnings printed before the real message. The error
    itself is re-raised by `run_program`, so after a failure they are noise. After a
    success they would be a real problem, and are passed on as asyncio would print them.
    """

    def start(self) -> _QuietOnFailure:
        import warnings

        self._warnings = warnings.catch_warnings(record=True)
        self.held_warnings = self._warnings.__enter__()
        warnings.simplefilter("always", RuntimeWarning)
        self.loop = _ensure_event_loop()  # the loop `_sync_await` runs the program on
        self.held_contexts: list[dict[str, Any]] = []
        self._previous_handler = self.loop.get_exception_handler()
        self.loop.set_exception_handler(lambda _loop, context: self.held_contexts.append(context))
        return self

    def release(self, failed: bool) -> None:
        import gc
        import warnings

        gc.collect()  # let the failed run's leftovers report now, while they are held
        self.loop.set_exception_handler(self._previous_handler)
        self._warnings.__exit__(None, None, None)
        if failed:
            return
        for context in self.held_contexts:
            self.loop.call_exception_handler(context)
        for held in self.held_warnings:
            warnings.showwarning(held.message, held.category, held.filename, held.lineno)


def read_stack_file(path: Path, project: str) -> tuple[dict[str, Any], list[str]]:
    """The `config:` block of a `Pulumi.<stack>.yaml`, with keys qualified by the
    project's namespace where they are not already, and the key paths holding `secure:`
    values (at any depth: `pulumi config set --secret --path` nests them). Those cannot
    be decrypted offline; each becomes a `[secret:<key path>]` placeholder that the run
    treats as a Pulumi secret. A malformed file raises `StackFileError` (see
    `mlplatform.tools.stackfile.reader`)."""
    stack_config = read_stack_config(path, project)
    return stack_config.values, stack_config.secret_paths


def project_name(project_dir: Path) -> str:
    return str(read_stack_document(Path(project_dir) / "Pulumi.yaml").get("name"))


def run_entry_point(
    project_dir: Path,
    *,
    stack: str,
    config: Mapping[str, Any] | None = None,
    secret_keys: Iterable[str] = (),
    stack_references: Mapping[str, Mapping[str, Any]] | None = None,
    mocks: RecordingMocks | None = None,
) -> Recording:
    """Run a Pulumi project's real `__main__.py` under recording mocks.

    With `config=None` the stack's own `Pulumi.<stack>.yaml` is read, as
    `pulumi up` would; otherwise `config` (fully qualified keys) is used as given.
    """
    import runpy

    project_dir = Path(project_dir).resolve()
    project = project_name(project_dir)
    if config is None:
        config, file_secrets = read_stack_file(project_dir / f"Pulumi.{stack}.yaml", project)
        secret_keys = [*secret_keys, *file_secrets]
    secret_keys = list(secret_keys)
    entry = project_dir / "__main__.py"
    recording = run_program(
        lambda: runpy.run_path(str(entry), run_name="__main__"),
        project=project,
        stack=stack,
        config=config,
        secret_keys=secret_keys,
        stack_references=stack_references,
        mocks=mocks,
    )
    recording.secret_placeholders = sorted(k for k in secret_keys if _is_placeholder(config, k))
    return recording


def _is_placeholder(config: Mapping[str, Any], key_path: str) -> bool:
    """Whether the value at `key_path` (e.g. `mlplatform:cluster.kubeconfig`) is an offline placeholder."""

    def find(value: Any, path: str) -> bool:
        if value == placeholder(path):
            return True
        if isinstance(value, dict):
            return any(find(v, f"{path}.{k}") for k, v in value.items())
        if isinstance(value, list):
            return any(find(v, f"{path}[{i}]") for i, v in enumerate(value))
        return False

    return any(find(value, key) for key, value in config.items())
