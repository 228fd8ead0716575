"""What every rollout command shares: output, exit codes, the lock, the platform's facts, the gate, the edit.

The exit codes' meanings are in `cli`'s docstring (the `--help` text) and docs/troubleshooting.md's
"Exit codes"; this module only names them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mlplatform.model.config import ModelStackConfig
from mlplatform.tools import kube
from mlplatform.tools.rollout import apply, lock, state
from mlplatform.tools.rollout.gate import GateVerdict, PrometheusClient, PrometheusError, evaluate
from mlplatform.tools.rollout.platform import Platform, PlatformOutputError, port_forward_hint
from mlplatform.tools.service_proxy import LoopbackForwarder, ServiceProxy, ServiceRef, Via
from mlplatform.tools.stackfile import editor as stackfile
from mlplatform.tools.stackfile import rules

EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_UNAVAILABLE, EXIT_IO, EXIT_BUSY, EXIT_APPLY_FAILED = 0, 1, 2, 3, 4, 5, 6
PROMETHEUS_URL_ENV = "PROMETHEUS_URL"
MLFLOW_TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
STATUS_FILE_ENV = "ROLLOUT_STATUS_FILE"


class UsageError(Exception):
    """The command line asks for something that cannot be done as given."""


class GitError(Exception):
    """`git add` or `git commit` of the stack file failed; the file was put back as it was."""


class Output:
    """Readable lines for a terminal, or one JSON object per event for CI (`--json`)."""

    def __init__(self, as_json: bool, stream=None):
        self.as_json = as_json
        self.stream = stream or sys.stdout

    def event(self, kind: str, text: str, **data: Any) -> None:
        if self.as_json:
            print(json.dumps({"event": kind, **data}, default=str), file=self.stream, flush=True)
        else:
            print(text, file=self.stream, flush=True)


@dataclass
class Context:
    path: Path
    out: Output
    args: argparse.Namespace
    up: apply.UpFunction = apply.cli_up
    """How `--apply` applies a rollback: one `pulumi up`; tests inject a fake (the real engine is in the e2e tier)."""
    planned_up: apply.UpFunction = apply.cli_planned_up
    """How `--apply` applies a step forward: preview with a saved plan, the plan checked, `up --plan`."""
    now: Any = time.time
    """Wall-clock seconds: the step start in the status is a timestamp other runs read."""
    _platform: Platform | None = field(default=None, init=False, repr=False)
    _store: state.StatusStore | None = field(default=None, init=False, repr=False)
    _kube: kube.KubeClient | None = field(default=None, init=False, repr=False)
    resources: ExitStack = field(default_factory=ExitStack, init=False, repr=False)
    """What lives as long as the command (the MLflow forwarder); `cli.run_context` closes it."""
    pr_branch: str | None = field(default=None, init=False)
    """Set by an `--apply` edit whose push to the base was refused: the rollback PR's branch."""
    # The file as read under the lock: one read and one validation per locked block,
    # however many steps of the verb look at it. `exclusive` clears it on entry.
    _current: stackfile.StackDocument | None = field(default=None, init=False, repr=False)

    def load(self) -> stackfile.StackDocument:
        if self._current is None:
            self._current = stackfile.read(self.path)
        return self._current

    def option(self, name: str, default: Any = None) -> Any:
        return getattr(self.args, name, default)

    # -- the platform's facts: an explicit flag first, then the platform's outputs --

    def platform(self, config: ModelStackConfig) -> Platform:
        if self._platform is None:
            outputs_file = self.option("platform_outputs")
            self._platform = Platform(
                reference=config.platform_stack,
                project_dir=self.path.parent,
                outputs_file=Path(outputs_file) if outputs_file else None,
                on_source=lambda source: self.out.event(
                    "platform",
                    f"platform {config.platform_stack}: facts from {source}",
                    platformStack=config.platform_stack,
                    source=source,
                ),
            )
        return self._platform

    def namespace(self, config: ModelStackConfig) -> str:
        return self.option("namespace") or config.serving_namespace(lambda: self.platform(config).serving_namespace())

    def tracking_uri(self, config: ModelStackConfig) -> str:
        explicit = self.option("tracking_uri") or os.environ.get(MLFLOW_TRACKING_URI_ENV)
        return explicit or self.platform(config).mlflow_tracking_uri()

    def kube_client(self) -> kube.KubeClient:
        """The one API server client of this command: the rollout state and the service proxy."""
        if self._kube is None:
            self._kube = kube.KubeClient.discover(timeout=self.option("prometheus_timeout", 10.0))
        return self._kube

    def prometheus(self, config: ModelStackConfig) -> PrometheusClient:
        """`--prometheus-url`/`$PROMETHEUS_URL` as given; else the platform's Prometheus, through the API
        server's service proxy when the platform names an in-cluster Service (it does)."""
        timeout = self.args.prometheus_timeout
        url = self.option("prometheus_url") or self.platform(config).prometheus_url()
        service = None if self.option("prometheus_url") else ServiceRef.parse(url)
        if service is None:
            return PrometheusClient(url, timeout, hint=port_forward_hint(url, PROMETHEUS_URL_ENV, "--prometheus-url"))
        via = Via("Prometheus", f"{PROMETHEUS_URL_ENV} (or --prometheus-url)")
        try:
            client = self.kube_client()
        except kube.KubeError as err:
            # No verdict without Prometheus: the gate's own error, so `status` still prints the rest.
            raise PrometheusError(
                f"Prometheus at {service.describe()} is read through the API server's service proxy: {err}; "
                f"or set {via.override} to a URL this machine can reach"
            ) from None
        return PrometheusClient.through(ServiceProxy(client, service, via))

    def status_store(self, config: ModelStackConfig) -> state.StatusStore:
        """Where the rollout's state lives: the InferenceService record's status, or `--status-file`."""
        if self._store is None:
            status_file = self.option("status_file")
            if status_file:
                self._store = state.FileStatusStore(Path(status_file))
            else:
                self._store = state.KubeStatusStore(
                    self.kube_client(),
                    group=self.platform(config).contract().crd_group,
                    namespace=self.namespace(config),
                    name=config.model.name,
                )
        return self._store

    def record(self, config: ModelStackConfig, status: state.RolloutStatus, *, best_effort: bool = False) -> None:
        """Write the rollout's state (not on --dry-run). `best_effort`: a verb whose edit matters more
        (abort, start, promote) reports an unreachable cluster and carries on."""
        if self.option("dry_run", False):
            return
        try:
            self.status_store(config).put(status)
        except (kube.KubeError, PlatformOutputError, OSError) as err:
            if not best_effort:
                raise
            self.out.event("warning", f"warning: rollout state not recorded on the cluster: {err}", warning=str(err))

    def registry(self, config: ModelStackConfig):
        from mlplatform.tools.rollout import registry as reg

        explicit = self.option("tracking_uri") or os.environ.get(MLFLOW_TRACKING_URI_ENV)
        uri = self.tracking_uri(config)
        service = None if explicit else ServiceRef.parse(uri)
        if service is None:
            return reg.Registry(uri, hint=port_forward_hint(uri, MLFLOW_TRACKING_URI_ENV, "--tracking-uri"))
        # MLflow's client takes a base URL and nothing else: a loopback forwarder, for this command only.
        proxy = ServiceProxy(
            self.kube_client(), service, Via("MLflow", f"{MLFLOW_TRACKING_URI_ENV} (or --tracking-uri)")
        )
        forwarder = self.resources.enter_context(LoopbackForwarder(proxy))
        return reg.Registry(forwarder.url, where=proxy.where, refusal=lambda: forwarder.last_error)

    def gate(
        self,
        config: ModelStackConfig,
        since: datetime | None = None,
        at: datetime | None = None,
        evidence: dict | None = None,
    ) -> GateVerdict:
        """The verdict on the evidence since `since`; without it, since the current step's dwell began
        (the file does not record when the step started, so the last dwell stands in for it).
        `evidence`: the judge's tests as the canary's previous step left them (the status' judgeEvidence)."""

        canary = rules.require_canary(config)
        return evaluate(
            self.prometheus(config),
            config.analysis,
            namespace=self.namespace(config),
            deployment=config.version_object_name(canary.version),
            stable_deployment=config.version_object_name(config.stable.version),
            since=since
            or (at or datetime.now(UTC)) - timedelta(seconds=rules.dwell_seconds(config, canary.weight, None)),
            at=at,
            canary_weight=canary.weight,
            evidence=evidence,
        )

    # -- one command at a time per stack file ---------------------------------

    def _snapshot(self) -> tuple[int, int, int] | None:
        # Every write replaces the file by a rename (a new inode), so its identity tells
        # whether it changed without reading it: the verb reads it once, under the lock.
        try:
            st = self.path.stat()
        except OSError:
            return None  # the locked read reports it properly
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    @contextmanager
    def exclusive(self, *, require_unchanged: bool = True) -> Iterator[None]:
        """Hold the stack file's lock (see `lock`). With `require_unchanged`, a file that
        another command changed while this one waited is refused as busy: this command
        was asked to act on what the user saw, not on the other command's result."""
        before = self._snapshot()
        command = self.option("rollout_command", "rollout")

        def waiting(holder: str) -> None:
            self.out.event(
                "waiting",
                f"waiting for {holder} to finish with {self.path} (up to {self.args.lock_timeout:g}s)",
                holder=holder,
                timeout=self.args.lock_timeout,
            )

        with lock.exclusive(self.path, command=command, timeout=self.args.lock_timeout, on_wait=waiting):
            if require_unchanged and self._snapshot() != before:
                raise lock.RolloutBusy(
                    f"{self.path} changed while this command waited for another rollout command; "
                    "nothing was written. Check `rollout status` and run the command again if it still applies."
                )
            self._current = None
            try:
                yield
            finally:
                self._current = None

    # -- writing ----------------------------------------------------------------

    @property
    def applies(self) -> bool:
        return bool(self.option("apply", False))

    def require_clean_for_apply(self) -> None:
        """With `--apply`: refuse (nothing written) when the stack file has uncommitted edits."""
        if self.applies:
            apply.require_clean(self.path)

    def edit(
        self, edit: stackfile.Edit, message: str, verdict: GateVerdict | None = None, *, step_forward: bool = False
    ) -> stackfile.EditResult:
        """Write the edit; with `--apply`, apply it too. `step_forward`: a weight step up, applied under a
        checked plan (`apply.cli_planned_up`); otherwise one `up` (a rollback must not wait)."""
        if self.applies:
            return self._edit_and_apply(edit, message, verdict, step_forward)
        result = stackfile.apply_edit(self.load(), edit, dry_run=self.option("dry_run", False))
        self._current = None
        if result.written and self.option("commit", False):
            try:
                _git_commit(self.path, message, verdict)
            except GitError:
                stackfile.write_atomically(self.path, result.previous_text)
                raise
        return result

    def _edit_and_apply(
        self, edit: stackfile.Edit, message: str, verdict: GateVerdict | None, step_forward: bool
    ) -> stackfile.EditResult:
        """Write, `up`, commit, publish (see `apply`). The file goes back byte for byte when `up` fails."""
        apply.require_clean(self.path)
        current = self.load()
        before = current.text  # the file was valid UTF-8, so the text re-encodes to its bytes
        result = stackfile.apply_edit(current, edit, dry_run=False)
        self._current = None
        if not result.written:
            return result
        stack = stackfile.stack_name(self.path)
        how = "pulumi preview --save-plan, the plan checked, pulumi up --plan" if step_forward else "pulumi up"
        self.out.event(
            "applying", f"applying: {how} on stack {stack} ({self.path.parent})", stack=stack, plan=step_forward
        )
        apply.apply_written(self.path, before, self.planned_up if step_forward else self.up, self._up_output)
        self.out.event("applied", f"applied: pulumi up on stack {stack} succeeded", stack=stack)
        try:
            _git_commit(self.path, message, verdict)
        except GitError as err:
            # The cluster runs the edit now: the file stays as applied, only Git lags behind.
            detail = str(err).removesuffix("; the stack file is unchanged")
            raise GitError(f"{detail}; `pulumi up` applied the edit, so the file keeps it: commit it by hand") from None
        target = apply.Publish(
            push_branch=self.option("git_push"),
            open_pr=self.option("git_pr", False),
            remote=self.option("git_remote", "origin"),
            base=self.option("git_base", "main"),
        )
        where = apply.publish(self.path, target, message.splitlines()[0], stack)
        self.pr_branch = target.pr_branch
        self.out.event("published", f"git: {where}", git=where)
        return result

    def _up_output(self, line: str) -> None:
        # The engine's progress goes to stderr, so `--json` stdout stays one event per line.
        print(line.rstrip("\n"), file=sys.stderr, flush=True)


def _git_commit(path: Path, message: str, verdict: GateVerdict | None) -> None:
    body = [message, ""]
    if verdict is not None:
        body += [
            f"gate: {verdict.summary()}",
            f"target: {verdict.namespace}/{verdict.deployment}",
            *(f"reason: {r}" for r in verdict.reasons),
            # The whole record, so `git log` replays the decision as `rollout explain --json` would.
            f"verdict: {json.dumps(verdict.to_record(), sort_keys=True)}",
        ]
    directory = path.parent.resolve()
    commands = (["git", "add", "--", path.name], ["git", "commit", "-q", "-m", "\n".join(body), "--", path.name])
    for command in commands:
        try:
            done = subprocess.run(command, cwd=directory, capture_output=True, text=True, check=False)
        except OSError as err:
            raise GitError(f"{path}: cannot run git: {err.strerror or err}; the stack file is unchanged") from None
        if done.returncode != 0:
            # git prints some refusals ("nothing to commit") on stdout, others on stderr.
            detail = (done.stderr.strip() or done.stdout.strip() or f"exit code {done.returncode}").splitlines()
            if command[1] == "commit":
                subprocess.run(["git", "reset", "-q", "--", path.name], cwd=directory, capture_output=True, check=False)
            raise GitError(f"{path}: `git {command[1]}` failed: {' / '.join(detail)}; the stack file is unchanged")
