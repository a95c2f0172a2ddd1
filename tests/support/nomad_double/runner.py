"""Run an allocation's tasks as real processes on this machine, the way a Nomad client would.

Nothing here can chroot, so the exec driver's isolation is replaced by path
rewriting:

- Each allocation gets a directory `<data dir>/alloc/<alloc id>` with `alloc/`
  and one directory per task holding `local/`, `secrets/` and `tmp/`, as
  Nomad lays it out. `NOMAD_ALLOC_DIR`, `NOMAD_TASK_DIR` and
  `NOMAD_SECRETS_DIR` hold these host paths instead of `/alloc`, `/local` and
  `/secrets`.
- For a driver that mounts volumes (`exec`), a `volume_mount` destination
  such as `/opt/vault-clients` is replaced by the host volume's `HostPath`.
  This happens wherever the destination starts a path in the command, the
  args and the env values, so the task writes into the host folder.
- The `raw_exec` driver mounts nothing: Nomad's documentation lists "volume
  mounting: none" for it, and Nomad accepts a `volume_mount` on such a task
  but ignores it. The double ignores it too, so a raw_exec task that uses a
  mount destination fails the way it would on a real node.
  https://developer.hashicorp.com/nomad/docs/drivers/raw_exec
- Template destinations are not rewritten: Nomad renders templates on the
  host into the task directory, so a relative or absolute destination ends up
  under the task directory, never inside a volume.
- The process starts with the task env and this machine's PATH only, in the
  task directory, in a session of its own so that signals reach its children.
- NOTE: the task's `user` is not applied; the process runs as the double's user.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import gotemplate

logger = logging.getLogger(__name__)

MISSING_RECHECK_SECONDS = 0.1
INTERPOLATION = "${%s}"


def now_ns() -> int:
    return time.time_ns()


def rfc3339(ns: int | None) -> str:
    if not ns:
        return "0001-01-01T00:00:00Z"
    seconds, remainder = divmod(ns, 1_000_000_000)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{stamp}.{remainder:09d}Z"


def task_event(event_type: str, message: str = "", **extra: Any) -> dict[str, Any]:
    """Build a TaskEvent with the fields of Nomad's `api.TaskEvent`."""
    event: dict[str, Any] = {
        "Type": event_type,
        "Time": now_ns(),
        "Message": message,
        "DisplayMessage": message,
        "Details": {},
        "FailsTask": False,
        "ExitCode": 0,
        "Signal": 0,
        "KillTimeout": 0,
        "KillError": "",
        "KillReason": "",
        "DriverError": "",
        "SetupError": "",
        "ValidationError": "",
    }
    event.update(extra)
    event["Details"] = {key: str(value) for key, value in event["Details"].items()}
    return event


def signal_number(name: str) -> int:
    """Map a kill_signal such as "SIGTERM" to its number; Nomad's default is SIGINT."""
    if not name:
        return int(signal.SIGINT)
    try:
        return int(signal.Signals[name.upper()])
    except KeyError:
        raise ValueError(f'invalid kill_signal "{name}"') from None


# Drivers whose tasks see volume_mount destinations; raw_exec is not one of them.
VOLUME_MOUNT_DRIVERS = frozenset({"exec", "docker", "podman", "java"})

# The folders as paths inside the task. Template destinations resolve against these.
TASK_VIEW_DIRS = {"NOMAD_ALLOC_DIR": "/alloc", "NOMAD_TASK_DIR": "/local", "NOMAD_SECRETS_DIR": "/secrets"}


@dataclass
class TaskPlan:
    """Everything needed to start one task, resolved from the job and the node."""

    name: str
    task: dict[str, Any]
    task_dir: Path
    env: dict[str, str]
    volume_paths: dict[str, str]  # mount destination -> host path


@dataclass
class AllocationRunner:
    """Runs one allocation in a background thread and records its state in `allocation`."""

    allocation: dict[str, Any]
    job: dict[str, Any]
    group: dict[str, Any]
    alloc_dir: Path
    node: dict[str, Any]
    volume_host_paths: dict[str, str]  # group volume name -> host path
    read_variable: Callable[[str, str], dict[str, str] | None]  # (path, task) -> items
    on_change: Callable[[], None]
    # The state lock: readers of the API copy `allocation` while this thread updates it.
    lock: threading.RLock = field(default_factory=threading.RLock)
    stop_requested: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.thread = threading.Thread(
            target=self._run, name=f"alloc-{self.allocation['ID'][:8]}", daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        """Ask the running task to stop; the thread honours kill_signal and kill_timeout."""
        self.stop_requested.set()

    def join(self, timeout: float | None = None) -> None:
        if self.thread is not None:
            self.thread.join(timeout)

    # ------------------------------------------------------------ state

    def _state(self, task_name: str) -> dict[str, Any]:
        return self.allocation["TaskStates"][task_name]

    def _event(self, task_name: str, event: dict[str, Any]) -> None:
        with self.lock:
            self._state(task_name)["Events"].append(event)
            self._touch()

    def _update(self, task_name: str, **fields: Any) -> None:
        with self.lock:
            self._state(task_name).update(fields)
            self._touch()

    def _touch(self) -> None:
        with self.lock:
            self.allocation["ModifyTime"] = now_ns()
            self.on_change()

    def _set_client_status(self, status: str, description: str) -> None:
        with self.lock:
            self.allocation["ClientStatus"] = status
            self.allocation["ClientDescription"] = description
            self._touch()

    # ------------------------------------------------------------ main loop

    def _run(self) -> None:
        # NOTE: tasks of a group run one after another here, while Nomad starts
        # them together; the batch job this double serves has one task.
        alloc_id = self.allocation["ID"]
        try:
            (self.alloc_dir / "alloc" / "logs").mkdir(parents=True, exist_ok=True)
            (self.alloc_dir / "alloc" / "data").mkdir(exist_ok=True)
            (self.alloc_dir / "alloc" / "tmp").mkdir(exist_ok=True)
            failed = False
            for task in self.group["Tasks"]:
                failed = self._run_task(task) or failed
                if self.stop_requested.is_set():
                    break
        except Exception:  # the runner thread must record any crash on the allocation
            logger.exception("allocation %s: runner crashed", alloc_id)
            failed = True
        if self.stop_requested.is_set() and not failed:
            self._set_client_status("complete", "All tasks have completed")
        elif failed:
            self._set_client_status("failed", "Failed tasks")
        else:
            self._set_client_status("complete", "All tasks have completed")
        logger.info("allocation %s: %s", alloc_id, self.allocation["ClientStatus"])

    def _run_task(self, task: dict[str, Any]) -> bool:
        """Run one task through its restarts; return True when it failed."""
        name = task["Name"]
        state = self._state(name)
        self._event(name, task_event("Received", "Task received by client"))
        plan = self._prepare(task)
        self._event(name, task_event("Task Setup", "Building Task Directory"))

        restart = task.get("RestartPolicy") or self.group["RestartPolicy"]
        while True:
            if not self._render_templates(plan):
                self._update(name, State="dead", Failed=True, FinishedAt=rfc3339(now_ns()))
                return True
            if self.stop_requested.is_set():
                self._update(name, State="dead", FinishedAt=rfc3339(now_ns()))
                return False
            exit_code, killed = self._execute(plan)
            if killed or exit_code == 0:
                self._update(name, State="dead", FinishedAt=rfc3339(now_ns()))
                return False
            if state["Restarts"] >= restart["Attempts"]:
                self._event(
                    name,
                    task_event(
                        "Not Restarting",
                        "Exceeded allowed attempts, applying a delay"
                        if restart["Mode"] == "delay"
                        else "Error was unrecoverable",
                        FailsTask=True,
                    ),
                )
                self._update(name, State="dead", Failed=True, FinishedAt=rfc3339(now_ns()))
                return True
            # NOTE: restart.interval is not tracked; every failure counts against attempts.
            delay_seconds = restart["Delay"] / 1e9
            self._event(
                name,
                task_event(
                    "Restarting",
                    f"Task restarting in {delay_seconds:g}s",
                    StartDelay=restart["Delay"],
                    RestartReason="Restart within policy",
                ),
            )
            self._update(name, Restarts=state["Restarts"] + 1, LastRestart=rfc3339(now_ns()))
            if self.stop_requested.wait(delay_seconds):
                self._update(name, State="dead", FinishedAt=rfc3339(now_ns()))
                return False

    # ------------------------------------------------------------ preparing

    def _prepare(self, task: dict[str, Any]) -> TaskPlan:
        name = task["Name"]
        task_dir = self.alloc_dir / name
        for sub in ("local", "secrets", "tmp"):
            (task_dir / sub).mkdir(parents=True, exist_ok=True)
        (task_dir / "secrets").chmod(0o700)

        volume_paths = self._volume_paths(task)
        env = self._base_env(task, task_dir)
        for key, value in (task.get("Env") or {}).items():
            env[key] = rewrite_volume_paths(interpolate(value, env, self.node), volume_paths)
        return TaskPlan(name, task, task_dir, env, volume_paths)

    def _volume_paths(self, task: dict[str, Any]) -> dict[str, str]:
        """Map each mount destination of `task` to its host path, or return {} for a driver without mounts."""
        mounts = task.get("VolumeMounts") or []
        if task.get("Driver") not in VOLUME_MOUNT_DRIVERS:
            if mounts:
                logger.warning(
                    "allocation %s: task %s: driver %s does not mount volumes, ignoring %d volume_mount block(s)",
                    self.allocation["ID"],
                    task["Name"],
                    task.get("Driver"),
                    len(mounts),
                )
            return {}
        return {
            mount["Destination"]: self.volume_host_paths[mount["Volume"]]
            for mount in mounts
            if mount["Volume"] in self.volume_host_paths
        }

    def _base_env(self, task: dict[str, Any], task_dir: Path) -> dict[str, str]:
        allocation = self.allocation
        resources = task.get("Resources") or {}
        job_id = allocation["JobID"]
        return {
            "NOMAD_ALLOC_DIR": str(self.alloc_dir / "alloc"),
            "NOMAD_TASK_DIR": str(task_dir / "local"),
            "NOMAD_SECRETS_DIR": str(task_dir / "secrets"),
            "NOMAD_ALLOC_ID": allocation["ID"],
            "NOMAD_SHORT_ALLOC_ID": allocation["ID"][:8],
            "NOMAD_ALLOC_NAME": allocation["Name"],
            "NOMAD_ALLOC_INDEX": "0",
            "NOMAD_GROUP_NAME": self.group["Name"],
            "NOMAD_TASK_NAME": task["Name"],
            "NOMAD_JOB_ID": job_id,
            "NOMAD_JOB_NAME": self.job["Name"],
            "NOMAD_JOB_PARENT_ID": self.job.get("ParentID") or "",
            "NOMAD_NAMESPACE": allocation["Namespace"],
            "NOMAD_REGION": self.job["Region"],
            "NOMAD_DC": self.node["Datacenter"],
            "NOMAD_CPU_LIMIT": str(resources.get("CPU", 100)),
            "NOMAD_MEMORY_LIMIT": str(resources.get("MemoryMB", 300)),
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        }

    # ------------------------------------------------------------ templates

    def _render_templates(self, plan: TaskPlan) -> bool:
        """Render every template; return False when the task must fail."""
        missing_reported: set[str] = set()
        for template in plan.task.get("Templates") or []:
            # Nomad interpolates a destination with the task's own view of its
            # folders ("/secrets", "/local", "/alloc"), then places it inside the
            # task directory.
            in_task_env = {**plan.env, **TASK_VIEW_DIRS}
            destination = interpolate(template["DestPath"], in_task_env, self.node)
            target = plan.task_dir / destination.lstrip("/")
            if not target.resolve().is_relative_to(plan.task_dir.resolve()):
                return self._fail_template(plan.name, f"destination {destination} escapes the task directory")
            context = gotemplate.Context(
                read_variable=lambda path, task=plan.name: self.read_variable(path, task),
                env=plan.env,
                error_on_missing_key=bool(template.get("ErrMissingKey")),
            )
            while True:
                try:
                    text = gotemplate.render(
                        template.get("EmbeddedTmpl") or "",
                        context,
                        template.get("LeftDelim") or "{{",
                        template.get("RightDelim") or "}}",
                    )
                    break
                except gotemplate.MissingData as missing:
                    # Nomad's template runner waits until the data exists; so does the double.
                    if missing.dependency not in missing_reported:
                        missing_reported.add(missing.dependency)
                        self._event(
                            plan.name,
                            task_event("Template", f"Missing: {missing.dependency}"),
                        )
                    if self.stop_requested.wait(MISSING_RECHECK_SECONDS):
                        return True
                except (gotemplate.TemplateError, PermissionError) as error:
                    return self._fail_template(plan.name, str(error))
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            target.chmod(int(template.get("Perms") or "0644", 8))
            if template.get("Envvars"):
                plan.env.update(parse_env_file(text))
        return True

    def _fail_template(self, task_name: str, message: str) -> bool:
        logger.warning("allocation %s: template failed: %s", self.allocation["ID"], message)
        self._event(
            task_name,
            task_event("Killing", f"Template failed: {message}", FailsTask=True),
        )
        return False

    # ------------------------------------------------------------ the process

    def _command(self, plan: TaskPlan) -> list[str]:
        config = plan.task.get("Config") or {}
        words = [config["command"], *(config.get("args") or [])]
        return [
            rewrite_volume_paths(interpolate(word, plan.env, self.node), plan.volume_paths) for word in words
        ]

    def _execute(self, plan: TaskPlan) -> tuple[int, bool]:
        """Start the task and wait; return (exit code, killed by a stop request)."""
        name = plan.name
        state = self._state(name)
        logs = self.alloc_dir / "alloc" / "logs"
        argv = self._command(plan)
        try:
            with (
                (logs / f"{name}.stdout.0").open("ab") as stdout,
                (logs / f"{name}.stderr.0").open("ab") as stderr,
            ):
                self.process = subprocess.Popen(
                    argv,
                    cwd=plan.task_dir,
                    env=plan.env,
                    stdout=stdout,
                    stderr=stderr,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
        except OSError as error:
            self._event(
                name,
                task_event(
                    "Driver Failure",
                    f"failed to launch command: {error}",
                    DriverError=str(error),
                    FailsTask=True,
                ),
            )
            return 127, False

        logger.info("allocation %s: task %s started: %s", self.allocation["ID"], name, argv)
        self._update(name, State="running", StartedAt=state.get("StartedAt") or rfc3339(now_ns()))
        self._set_client_status("running", "Tasks are running")
        self._event(name, task_event("Started", "Task started by client"))

        killed = False
        while self.process.poll() is None:
            if self.stop_requested.wait(0.05):
                killed = True
                self._kill(plan)
                break
        raw_status = self.process.wait()
        # Popen reports death by signal N as -N; Nomad shows the signal and a shell-style code.
        signal_received = -raw_status if raw_status < 0 else 0
        exit_code = 128 + signal_received if signal_received else raw_status
        message = f"Exit Code: {exit_code}"
        if signal_received:
            message += f", Signal: {signal_received}"
        self._event(
            name,
            task_event(
                "Terminated",
                message,
                ExitCode=exit_code,
                Signal=signal_received,
                Details={"exit_code": exit_code, "signal": signal_received},
            ),
        )
        if killed:
            self._event(name, task_event("Killed", "Task successfully killed"))
        return exit_code, killed

    def _kill(self, plan: TaskPlan) -> None:
        assert self.process is not None
        timeout_ns = int(plan.task.get("KillTimeout") or 5_000_000_000)
        number = signal_number(plan.task.get("KillSignal") or "")
        self._event(
            plan.name,
            task_event(
                "Killing",
                f"Sent interrupt. Waiting {timeout_ns / 1e9:g}s before force killing",
                KillTimeout=timeout_ns,
            ),
        )
        try:
            os.killpg(self.process.pid, number)
        except ProcessLookupError:
            return
        try:
            self.process.wait(timeout_ns / 1e9)
        except subprocess.TimeoutExpired:
            logger.info("allocation %s: kill_timeout passed, sending SIGKILL", self.allocation["ID"])
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                return


def interpolate(text: str, env: dict[str, str], node: dict[str, Any]) -> str:
    """Replace `${NOMAD_*}`, `${env["X"]}` and `${node.*}` / `${attr.*}` references; keep others."""
    values = {f"node.{key}": value for key, value in _node_values(node).items()}
    values.update({f"attr.{key}": value for key, value in (node.get("Attributes") or {}).items()})
    values.update({f"meta.{key}": value for key, value in (node.get("Meta") or {}).items()})
    for key, value in env.items():
        values[key] = value
        values[f'env["{key}"]'] = value
    out = text
    for key, value in values.items():
        out = out.replace(INTERPOLATION % key, value)
    return out


def _node_values(node: dict[str, Any]) -> dict[str, str]:
    return {
        "unique.id": node["ID"],
        "unique.name": node["Name"],
        "datacenter": node["Datacenter"],
        "class": node.get("NodeClass") or "",
        "pool": node.get("NodePool") or "default",
        "region": "global",
    }


def rewrite_volume_paths(text: str, volume_paths: dict[str, str]) -> str:
    """Replace a volume mount destination at the start of any path in `text` with its host path."""
    out = text
    for destination in sorted(volume_paths, key=len, reverse=True):
        host = volume_paths[destination].rstrip("/")
        pattern = destination.rstrip("/")
        index = out.find(pattern)
        while index >= 0:
            end = index + len(pattern)
            starts_path = index == 0 or out[index - 1] in " =:,'\""
            ends_path = end == len(out) or out[end] in "/ :,'\""
            if starts_path and ends_path:
                out = out[:index] + host + out[end:]
                index = out.find(pattern, index + len(host))
            else:
                index = out.find(pattern, end)
    return out


def parse_env_file(text: str) -> dict[str, str]:
    """Read KEY=VALUE lines the way a template with `env = true` is read."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or "=" not in stripped:
            continue
        key, _, value = stripped.partition("=")
        values[key.strip()] = value.strip()
    return values
