"""Parse an HCL2 jobspec into the JSON shape of Nomad's `api.Job`, rejecting what Nomad rejects.

python-hcl2 builds the syntax tree. This module walks it against a schema of
the blocks and attributes a periodic batch job uses, and reports problems with
the summaries HCL's own decoder uses ("Unsupported argument", "Unsupported
block type", "Incorrect attribute value type", "Missing required argument").
Interpolations such as `${node.unique.name}` or `${NOMAD_SECRETS_DIR}` stay
literal strings, as in the JSON that `POST /v1/jobs/parse` returns.

NOTE: python-hcl2 keeps the last value when an attribute is set twice, so
"Attribute redefined" is not reported, and its errors carry no file positions.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import hcl2
from hcl2.utils import SerializationOptions
from lark.exceptions import LarkError

from .errors import ApiError

NANOSECONDS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "h": 3600 * 1_000_000_000,
}
DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")

CONSTRAINT_OPERANDS = frozenset(
    {
        "=",
        "==",
        "is",
        "!=",
        "not",
        "<",
        "<=",
        ">",
        ">=",
        "regexp",
        "set_contains",
        "set_contains_any",
        "set_contains_all",
        "version",
        "semver",
        "distinct_hosts",
        "distinct_property",
        "is_set",
        "is_not_set",
    }
)
JOB_TYPES = frozenset({"service", "batch", "system", "sysbatch"})
RESTART_MODES = frozenset({"delay", "fail"})
TEMPLATE_CHANGE_MODES = frozenset({"noop", "restart", "signal", "script"})
VOLUME_TYPES = frozenset({"host", "csi"})

PARSE_OPTIONS = SerializationOptions(with_comments=False, explicit_blocks=True, preserve_heredocs=True)
BLOCK_MARKER = "__is_block__"
NON_LITERAL_ROOTS = ("var.", "local.", "locals.")


def parse_duration(text: str) -> int:
    """Convert a Go duration string such as "45s" or "1h30m" to nanoseconds."""
    if text in {"0", ""}:
        return 0
    position = 0
    total = 0.0
    for match in DURATION_PART.finditer(text):
        if match.start() != position:
            break
        total += float(match.group(1)) * NANOSECONDS[match.group(2)]
        position = match.end()
    if position != len(text):
        raise ValueError(f'time: invalid duration "{text}"')
    return int(total)


# ---------------------------------------------------------------- the schema


@dataclass(frozen=True)
class Attr:
    """An attribute: its key in the API JSON and the HCL type it must convert to."""

    api: str
    kind: str  # string, number, bool, list(string), duration, map(string)
    required: bool = False


@dataclass(frozen=True)
class Body:
    """The attributes and nested blocks allowed inside one block."""

    attrs: dict[str, Attr] = field(default_factory=dict)
    blocks: dict[str, Block] = field(default_factory=dict)
    # Kind for attributes with free names (env, meta). None rejects unknown names.
    free_kind: str | None = None


@dataclass(frozen=True)
class Block:
    """A nested block: its API key, body, label name and how repeats are collected."""

    api: str
    body: Body
    label: str | None = None
    # "one" is a single object, "list" a list of objects, "map" objects keyed by label.
    shape: str = "one"


CONSTRAINT = Block(
    "Constraints",
    Body(
        {
            "attribute": Attr("LTarget", "string"),
            "operator": Attr("Operand", "string"),
            "value": Attr("RTarget", "string"),
        }
    ),
    shape="list",
)
META = Block("Meta", Body(free_kind="string"))
RESTART = Block(
    "RestartPolicy",
    Body(
        {
            "attempts": Attr("Attempts", "number"),
            "interval": Attr("Interval", "duration"),
            "delay": Attr("Delay", "duration"),
            "mode": Attr("Mode", "string"),
            "render_templates": Attr("RenderTemplates", "bool"),
        }
    ),
)
RESCHEDULE = Block(
    "ReschedulePolicy",
    Body(
        {
            "attempts": Attr("Attempts", "number"),
            "interval": Attr("Interval", "duration"),
            "delay": Attr("Delay", "duration"),
            "delay_function": Attr("DelayFunction", "string"),
            "max_delay": Attr("MaxDelay", "duration"),
            "unlimited": Attr("Unlimited", "bool"),
        }
    ),
)
TEMPLATE = Block(
    "Templates",
    Body(
        {
            "data": Attr("EmbeddedTmpl", "string"),
            "source": Attr("SourcePath", "string"),
            "destination": Attr("DestPath", "string", required=True),
            "change_mode": Attr("ChangeMode", "string"),
            "change_signal": Attr("ChangeSignal", "string"),
            "perms": Attr("Perms", "string"),
            "uid": Attr("Uid", "number"),
            "gid": Attr("Gid", "number"),
            "left_delimiter": Attr("LeftDelim", "string"),
            "right_delimiter": Attr("RightDelim", "string"),
            "env": Attr("Envvars", "bool"),
            "splay": Attr("Splay", "duration"),
            "error_on_missing_key": Attr("ErrMissingKey", "bool"),
        }
    ),
    shape="list",
)
VOLUME_MOUNT = Block(
    "VolumeMounts",
    Body(
        {
            "volume": Attr("Volume", "string", required=True),
            "destination": Attr("Destination", "string", required=True),
            "read_only": Attr("ReadOnly", "bool"),
            "propagation_mode": Attr("PropagationMode", "string"),
        }
    ),
    shape="list",
)
RESOURCES = Block(
    "Resources",
    Body(
        {
            "cpu": Attr("CPU", "number"),
            "cores": Attr("Cores", "number"),
            "memory": Attr("MemoryMB", "number"),
            "memory_max": Attr("MemoryMaxMB", "number"),
        }
    ),
)
LOGS = Block(
    "LogConfig",
    Body(
        {
            "max_files": Attr("MaxFiles", "number"),
            "max_file_size": Attr("MaxFileSizeMB", "number"),
            "disabled": Attr("Disabled", "bool"),
        }
    ),
)
# Driver options of the exec and raw_exec drivers; the key names stay in snake case.
DRIVER_CONFIG = Block(
    "Config",
    Body(
        {
            "command": Attr("command", "string", required=True),
            "args": Attr("args", "list(string)"),
            "pid_mode": Attr("pid_mode", "string"),
            "ipc_mode": Attr("ipc_mode", "string"),
            "cap_add": Attr("cap_add", "list(string)"),
            "cap_drop": Attr("cap_drop", "list(string)"),
            "work_dir": Attr("work_dir", "string"),
        }
    ),
)
TASK = Block(
    "Tasks",
    Body(
        {
            "driver": Attr("Driver", "string", required=True),
            "user": Attr("User", "string"),
            "kill_timeout": Attr("KillTimeout", "duration"),
            "kill_signal": Attr("KillSignal", "string"),
            "leader": Attr("Leader", "bool"),
            "shutdown_delay": Attr("ShutdownDelay", "duration"),
            "env": Attr("Env", "map(string)"),
            "meta": Attr("Meta", "map(string)"),
        },
        {
            "config": DRIVER_CONFIG,
            "env": Block("Env", Body(free_kind="string")),
            "meta": META,
            "template": TEMPLATE,
            "volume_mount": VOLUME_MOUNT,
            "resources": RESOURCES,
            "restart": RESTART,
            "constraint": CONSTRAINT,
            "logs": LOGS,
        },
    ),
    label="name",
    shape="list",
)
VOLUME = Block(
    "Volumes",
    Body(
        {
            "type": Attr("Type", "string"),
            "source": Attr("Source", "string", required=True),
            "read_only": Attr("ReadOnly", "bool"),
            "access_mode": Attr("AccessMode", "string"),
            "attachment_mode": Attr("AttachmentMode", "string"),
            "per_alloc": Attr("PerAlloc", "bool"),
            "sticky": Attr("Sticky", "bool"),
        }
    ),
    label="name",
    shape="map",
)
GROUP = Block(
    "TaskGroups",
    Body(
        {
            "count": Attr("Count", "number"),
            "shutdown_delay": Attr("ShutdownDelay", "duration"),
            "meta": Attr("Meta", "map(string)"),
        },
        {
            "task": TASK,
            "volume": VOLUME,
            "restart": RESTART,
            "reschedule": RESCHEDULE,
            "constraint": CONSTRAINT,
            "meta": META,
            "ephemeral_disk": Block(
                "EphemeralDisk",
                Body(
                    {
                        "size": Attr("SizeMB", "number"),
                        "migrate": Attr("Migrate", "bool"),
                        "sticky": Attr("Sticky", "bool"),
                    }
                ),
            ),
        },
    ),
    label="name",
    shape="list",
)
PERIODIC = Block(
    "Periodic",
    Body(
        {
            "crons": Attr("Specs", "list(string)"),
            "cron": Attr("Spec", "string"),
            "prohibit_overlap": Attr("ProhibitOverlap", "bool"),
            "time_zone": Attr("TimeZone", "string"),
            "enabled": Attr("Enabled", "bool"),
        }
    ),
)
JOB = Block(
    "Job",
    Body(
        {
            "region": Attr("Region", "string"),
            "namespace": Attr("Namespace", "string"),
            "type": Attr("Type", "string"),
            "priority": Attr("Priority", "number"),
            "datacenters": Attr("Datacenters", "list(string)"),
            "node_pool": Attr("NodePool", "string"),
            "all_at_once": Attr("AllAtOnce", "bool"),
            "meta": Attr("Meta", "map(string)"),
        },
        {
            "group": GROUP,
            "periodic": PERIODIC,
            "constraint": CONSTRAINT,
            "meta": META,
            "reschedule": RESCHEDULE,
        },
    ),
    label="name",
)


# ------------------------------------------------------------ string values


def _unescape_quoted(raw: str) -> str:
    out: list[str] = []
    escapes = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}
    index = 0
    while index < len(raw):
        char = raw[index]
        if char == "\\" and index + 1 < len(raw):
            following = raw[index + 1]
            if following in escapes:
                out.append(escapes[following])
                index += 2
                continue
            if following in "uU":
                width = 4 if following == "u" else 8
                out.append(chr(int(raw[index + 2 : index + 2 + width], 16)))
                index += 2 + width
                continue
        out.append(char)
        index += 1
    return "".join(out)


def _decode_heredoc(raw: str) -> str:
    first_line, _, rest = raw.partition("\n")
    body_lines = rest.split("\n")[:-1]  # the last line is the closing marker
    if first_line.startswith("<<-"):
        indents = [len(line) - len(line.lstrip()) for line in body_lines if line.strip()]
        strip = min(indents, default=0)
        body_lines = [line[strip:] for line in body_lines]
    return "".join(line + "\n" for line in body_lines)


def _check_template_sequences(text: str, where: str) -> str:
    for root in NON_LITERAL_ROOTS:
        if "${" + root in text:
            name = root.rstrip(".")
            raise ApiError(
                400,
                f'{where}: Unknown variable; There is no variable named "{name}". '
                "The Nomad API double supports no variable or locals blocks.",
            )
    if re.search(r"(?<!%)%\{", text):
        # NOTE: HCL template directives (%{ if }, %{ for }) are not evaluated by the double.
        raise ApiError(400, f"{where}: HCL template directives (%{{ ... }}) are not supported")
    return text.replace("$${", "${").replace("%%{", "%{")


def decode_value(value: Any, where: str) -> Any:
    """Turn a python-hcl2 value into a plain Python value, keeping `${...}` text literal."""
    if isinstance(value, str):
        if value.startswith('"') and value.endswith('"') and len(value) >= 2:
            inner = value[1:-1]
            if inner.startswith("<<") and "\n" in inner:
                return _check_template_sequences(_decode_heredoc(inner), where)
            return _check_template_sequences(_unescape_quoted(inner), where)
        expression = value.removeprefix("${").removesuffix("}")
        root = re.split(r"[.\[( ]", expression, maxsplit=1)[0]
        raise ApiError(
            400,
            f'{where}: Unknown variable; There is no variable named "{root}". '
            'Quote interpolations such as "${node.unique.name}".',
        )
    if isinstance(value, list):
        return [decode_value(item, where) for item in value]
    if isinstance(value, dict):
        return {
            decode_value(key, where) if key.startswith('"') else key: decode_value(item, where)
            for key, item in value.items()
            if key != BLOCK_MARKER
        }
    return value


# ------------------------------------------------------------------ typing


def _type_error(where: str, name: str, expected_type: str) -> ApiError:
    return ApiError(
        400,
        f"{where}: Incorrect attribute value type; "
        f'Inappropriate value for attribute "{name}": {expected_type} is required.',
    )


def _to_string(value: Any, name: str, where: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    raise _type_error(where, name, "string")


def _to_number(value: Any, name: str, where: str) -> int | float:
    if isinstance(value, float):
        return int(value) if value.is_integer() else value
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value):
        return int(value)
    raise _type_error(where, name, "a number")


def _to_bool(value: Any, name: str, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if value in {"true", "false"}:
        return value == "true"
    raise _type_error(where, name, "a bool")


def _to_string_list(value: Any, name: str, where: str) -> list[str]:
    if not isinstance(value, list):
        raise _type_error(where, name, "list of string")
    return [_to_string(item, name, where) for item in value]


def _to_string_map(value: Any, name: str, where: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise _type_error(where, name, "map of string")
    return {key: _to_string(item, name, where) for key, item in value.items()}


def _to_duration(value: Any, name: str, where: str) -> int:
    text = _to_string(value, name, where)
    try:
        return parse_duration(text)
    except ValueError as error:
        raise ApiError(400, f'{where}: failed to parse "{name}": {error}') from None


CONVERTERS: dict[str, Callable[[Any, str, str], Any]] = {
    "string": _to_string,
    "number": _to_number,
    "bool": _to_bool,
    "list(string)": _to_string_list,
    "map(string)": _to_string_map,
    "duration": _to_duration,
}


def convert_attribute(value: Any, kind: str, name: str, where: str) -> Any:
    """Convert a decoded value to `kind` the way cty converts, or raise a 400 ApiError."""
    return CONVERTERS[kind](value, name, where)


# ------------------------------------------------------------ the walker


def _is_block_list(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(item, dict) for item in value)
        and all(BLOCK_MARKER in item or _labeled_body(item) is not None for item in value)
    )


def _labeled_body(item: dict[str, Any]) -> dict[str, Any] | None:
    if len(item) == 1:
        (only,) = item.values()
        if isinstance(only, dict) and BLOCK_MARKER in only:
            return only
    return None


def _decode_body(body: dict[str, Any], schema: Body, where: str) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, value in body.items():
        if name == BLOCK_MARKER:
            continue
        if _is_block_list(value):
            if name not in schema.blocks:
                raise ApiError(
                    400,
                    f'{where}: Unsupported block type; Blocks of type "{name}" are not expected here.',
                )
            _decode_blocks(name, value, schema.blocks[name], where, result)
            continue
        attr = schema.attrs.get(name)
        if attr is None and schema.free_kind is not None:
            attr = Attr(name, schema.free_kind)
        if attr is None:
            hint = f' Did you mean to define a block of type "{name}"?' if name in schema.blocks else ""
            raise ApiError(
                400,
                f'{where}: Unsupported argument; An argument named "{name}" is not expected here.{hint}',
            )
        decoded = decode_value(value, where)
        result[attr.api] = convert_attribute(decoded, attr.kind, name, where)
    for name, attr in schema.attrs.items():
        if attr.required and attr.api not in result:
            raise ApiError(
                400,
                f'{where}: Missing required argument; The argument "{name}" is required, '
                "but no definition was found.",
            )
    return result


def _decode_blocks(
    name: str, items: list[dict[str, Any]], block: Block, where: str, into: dict[str, Any]
) -> None:
    for item in items:
        labeled = _labeled_body(item)
        if block.label is not None:
            if labeled is None:
                raise ApiError(
                    400,
                    f"{where}: Missing name for {name}; All {name} blocks must have "
                    f"1 labels ({block.label}).",
                )
            (raw_label,) = item.keys()
            label = decode_value(raw_label, where)
            inner_where = f'{where} -> {name} "{label}"'
            decoded = _decode_body(labeled, block.body, inner_where)
        else:
            if labeled is not None and BLOCK_MARKER not in item:
                (raw_label,) = item.keys()
                raise ApiError(
                    400,
                    f"{where}: Extraneous label for {name}; No labels are expected for "
                    f"{name} blocks. (found {decode_value(raw_label, where)!r})",
                )
            label = None
            decoded = _decode_body(item, block.body, f"{where} -> {name}")

        if label is not None and block.shape != "map":
            decoded = {"Name": label, **decoded}
        if block.shape == "one":
            if block.api in into:
                raise ApiError(
                    400,
                    f'{where}: Duplicate {name} block; Only one "{name}" block is allowed. '
                    "Another was defined earlier.",
                )
            into[block.api] = decoded
        elif block.shape == "list":
            into.setdefault(block.api, []).append(decoded)
        else:
            volumes = into.setdefault(block.api, {})
            if label in volumes:
                raise ApiError(400, f'{where}: Duplicate {name} block "{label}"')
            volumes[label] = {"Name": label, **decoded}


def parse_hcl(text: str) -> dict[str, Any]:
    """Parse jobspec HCL into the API's Job JSON, before any defaults are filled in."""
    try:
        tree = hcl2.loads(text, serialization_options=PARSE_OPTIONS)
    except (LarkError, ValueError) as error:
        raise ApiError(400, f"input.hcl: Invalid HCL syntax; {error}") from None

    unexpected = [key for key in tree if key not in {"job"}]
    if unexpected:
        raise ApiError(
            400,
            f'input.hcl: Unsupported block type; Blocks of type "{unexpected[0]}" are not expected here.',
        )
    jobs = tree.get("job")
    if not _is_block_list(jobs):
        raise ApiError(400, 'input.hcl: Missing job block; A "job" block is required.')
    if len(jobs) != 1:
        raise ApiError(400, 'input.hcl: Duplicate job block; Only one "job" block is allowed.')

    holder: dict[str, Any] = {}
    _decode_blocks("job", jobs, JOB, "input.hcl", holder)
    decoded = holder["Job"]
    return {"ID": decoded["Name"], **decoded}


# ------------------------------------------------------------ defaults


def _defaults(target: dict[str, Any], values: dict[str, Any]) -> None:
    for key, value in values.items():
        if target.get(key) is None:
            target[key] = copy.deepcopy(value)


SECOND = 1_000_000_000
BATCH_RESTART = {
    "Attempts": 3,
    "Interval": 24 * 3600 * SECOND,
    "Delay": 15 * SECOND,
    "Mode": "fail",
}
SERVICE_RESTART = {
    "Attempts": 2,
    "Interval": 30 * 60 * SECOND,
    "Delay": 15 * SECOND,
    "Mode": "fail",
}
BATCH_RESCHEDULE = {
    "Attempts": 1,
    "Interval": 24 * 3600 * SECOND,
    "Delay": 5 * SECOND,
    "DelayFunction": "constant",
    "MaxDelay": 0,
    "Unlimited": False,
}
SERVICE_RESCHEDULE = {
    "Attempts": 0,
    "Interval": 0,
    "Delay": 30 * SECOND,
    "DelayFunction": "exponential",
    "MaxDelay": 3600 * SECOND,
    "Unlimited": True,
}


def canonicalize(job: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of `job` with Nomad's defaults filled in, as `Canonicalize: true` does."""
    job = copy.deepcopy(job)
    _defaults(
        job,
        {
            "Region": "global",
            "Namespace": "default",
            "Type": "service",
            "Priority": 50,
            "Datacenters": ["*"],
            "NodePool": "default",
            "AllAtOnce": False,
            "Constraints": None,
            "Meta": None,
            "Stop": False,
            "ParentID": "",
            "Dispatched": False,
            "Status": "",
            "StatusDescription": "",
        },
    )
    if job["Name"] is None:
        job["Name"] = job["ID"]
    batch_like = job["Type"] in {"batch", "sysbatch"}
    periodic = job.get("Periodic")
    if periodic is not None:
        _defaults(
            periodic,
            {"Enabled": True, "SpecType": "cron", "ProhibitOverlap": False, "TimeZone": "UTC"},
        )
        periodic.setdefault("Spec", "")
        periodic.setdefault("Specs", None)
    for constraint in job.get("Constraints") or []:
        _defaults(constraint, {"LTarget": "", "RTarget": "", "Operand": "="})

    job_reschedule = job.pop("ReschedulePolicy", None)
    for group in job.get("TaskGroups") or []:
        _canonicalize_group(group, batch_like, job_reschedule)
    return job


def _canonicalize_group(
    group: dict[str, Any], batch_like: bool, job_reschedule: dict[str, Any] | None
) -> None:
    _defaults(group, {"Count": 1, "Constraints": None, "Meta": None, "Volumes": None})
    group.setdefault("RestartPolicy", {})
    _defaults(group["RestartPolicy"], BATCH_RESTART if batch_like else SERVICE_RESTART)
    group.setdefault("ReschedulePolicy", copy.deepcopy(job_reschedule) or {})
    _defaults(group["ReschedulePolicy"], BATCH_RESCHEDULE if batch_like else SERVICE_RESCHEDULE)
    group.setdefault("EphemeralDisk", {})
    _defaults(group["EphemeralDisk"], {"SizeMB": 300, "Migrate": False, "Sticky": False})
    for constraint in group.get("Constraints") or []:
        _defaults(constraint, {"LTarget": "", "RTarget": "", "Operand": "="})
    for volume in (group.get("Volumes") or {}).values():
        _defaults(
            volume,
            {
                "Type": "",
                "ReadOnly": False,
                "AccessMode": "",
                "AttachmentMode": "",
                "PerAlloc": False,
                "Sticky": False,
                "MountOptions": None,
            },
        )
    for task in group.get("Tasks") or []:
        _canonicalize_task(task, group["RestartPolicy"])


def _canonicalize_task(task: dict[str, Any], group_restart: dict[str, Any]) -> None:
    _defaults(
        task,
        {
            "User": "",
            "Config": None,
            "Env": None,
            "Meta": None,
            "KillTimeout": 5 * SECOND,
            "KillSignal": "",
            "Leader": False,
            "ShutdownDelay": 0,
            "Templates": None,
            "VolumeMounts": None,
            "Constraints": None,
        },
    )
    restart = task.get("RestartPolicy") or {}
    _defaults(restart, group_restart)
    task["RestartPolicy"] = restart
    task.setdefault("Resources", {})
    _defaults(task["Resources"], {"CPU": 100, "Cores": 0, "MemoryMB": 300, "MemoryMaxMB": 0})
    task.setdefault("LogConfig", {})
    _defaults(task["LogConfig"], {"MaxFiles": 10, "MaxFileSizeMB": 10, "Disabled": False})
    for template in task.get("Templates") or []:
        _defaults(
            template,
            {
                "SourcePath": "",
                "EmbeddedTmpl": "",
                "ChangeMode": "restart",
                "ChangeSignal": "",
                "Splay": 5 * SECOND,
                "Perms": "0644",
                "Uid": None,
                "Gid": None,
                "LeftDelim": "{{",
                "RightDelim": "}}",
                "Envvars": False,
                "ErrMissingKey": False,
            },
        )
    for mount in task.get("VolumeMounts") or []:
        _defaults(mount, {"ReadOnly": False, "PropagationMode": "private"})
    for constraint in task.get("Constraints") or []:
        _defaults(constraint, {"LTarget": "", "RTarget": "", "Operand": "="})


# ------------------------------------------------------------ validation


def validate(job: dict[str, Any]) -> None:
    """Check a canonical job as the server does on register and plan; raise a 400 ApiError."""
    problems: list[str] = []
    job_id = job.get("ID")
    if not job_id:
        problems.append("Missing job ID")
    elif " " in job_id:
        problems.append("Job ID contains a space")
    elif "\x00" in job_id:
        problems.append("Job ID contains a null character")
    if job.get("Type") not in JOB_TYPES:
        problems.append(f'Invalid job type: "{job.get("Type")}"')
    if not job.get("Datacenters"):
        problems.append("Missing job datacenters")
    if not job.get("TaskGroups"):
        problems.append("Missing job task groups")
    _validate_constraints(job.get("Constraints"), "Job", problems)
    _validate_periodic(job, problems)

    seen_groups: set[str] = set()
    for index, group in enumerate(job.get("TaskGroups") or []):
        name = group.get("Name") or f"group {index + 1}"
        if name in seen_groups:
            problems.append(f'Job task group {index + 1} redefines "{name}"')
        seen_groups.add(name)
        _validate_group(group, name, problems)

    if problems:
        listed = "\n".join(f"\t* {problem}" for problem in problems)
        count = len(problems)
        noun = "error" if count == 1 else "errors"
        raise ApiError(400, f"{count} {noun} occurred:\n{listed}\n\n")


def _validate_periodic(job: dict[str, Any], problems: list[str]) -> None:
    periodic = job.get("Periodic")
    if periodic is None:
        return
    if job.get("Type") not in {"batch", "sysbatch"}:
        problems.append("Periodic can only be used with batch or sysbatch jobs")
    specs = periodic.get("Specs") or []
    if periodic.get("Spec") and specs:
        problems.append("Periodic: only one of cron or crons may be set")
    if periodic.get("Enabled", True) and not (periodic.get("Spec") or specs):
        problems.append("Periodic: must specify a spec")
    for spec in [periodic.get("Spec"), *specs]:
        if spec and len(spec.split()) not in {5, 6, 7} and not spec.startswith("@"):
            problems.append(f'Periodic: invalid cron spec "{spec}"')
    zone = periodic.get("TimeZone")
    if zone:
        try:
            from zoneinfo import ZoneInfo  # noqa: PLC0415

            ZoneInfo(zone)
        except (KeyError, ValueError):
            problems.append(f'Periodic: invalid time zone "{zone}"')


def _validate_constraints(constraints: list[dict[str, Any]] | None, owner: str, problems: list[str]) -> None:
    for index, constraint in enumerate(constraints or []):
        operand = constraint.get("Operand")
        if operand not in CONSTRAINT_OPERANDS:
            problems.append(f'{owner} constraint {index + 1}: Unknown constraint type "{operand}"')


def _validate_group(group: dict[str, Any], name: str, problems: list[str]) -> None:
    prefix = f'Task group "{name}"'
    if group.get("Count", 0) < 0:
        problems.append(f"{prefix}: Task group count can't be negative")
    restart = group.get("RestartPolicy") or {}
    if restart.get("Mode") not in RESTART_MODES:
        problems.append(f'{prefix}: Unsupported restart mode: "{restart.get("Mode")}"')
    _validate_constraints(group.get("Constraints"), prefix, problems)
    volumes = group.get("Volumes") or {}
    for volume in volumes.values():
        if volume.get("Type") not in VOLUME_TYPES:
            problems.append(
                f'{prefix}: Volume "{volume["Name"]}": volume type "{volume.get("Type")}" '
                "is not supported, expected host or csi"
            )
    if not group.get("Tasks"):
        problems.append(f"{prefix}: Missing tasks for task group")
    seen_tasks: set[str] = set()
    for task in group.get("Tasks") or []:
        task_prefix = f'{prefix} task "{task["Name"]}"'
        if task["Name"] in seen_tasks:
            problems.append(f"{task_prefix}: Task redefined")
        seen_tasks.add(task["Name"])
        for index, mount in enumerate(task.get("VolumeMounts") or []):
            if mount["Volume"] not in volumes:
                problems.append(
                    f"{task_prefix}: Volume Mount {index} references undefined volume {mount['Volume']}"
                )
        for index, template in enumerate(task.get("Templates") or []):
            if not template.get("EmbeddedTmpl") and not template.get("SourcePath"):
                problems.append(f"{task_prefix}: Template {index + 1}: Must specify a source path")
            if template.get("ChangeMode") not in TEMPLATE_CHANGE_MODES:
                problems.append(
                    f'{task_prefix}: Template {index + 1}: Invalid change mode "{template.get("ChangeMode")}"'
                )
            perms = template.get("Perms", "0644")
            if not re.fullmatch(r"0?[0-7]{3,4}", perms):
                problems.append(f'{task_prefix}: Template {index + 1}: Invalid perms "{perms}"')
        if task.get("KillTimeout", 0) < 0:
            problems.append(f"{task_prefix}: KillTimeout must be a positive value")
        if task.get("Driver") in {"exec", "raw_exec"} and not (task.get("Config") or {}).get("command"):
            problems.append(f'{task_prefix}: config: Missing required argument "command"')
