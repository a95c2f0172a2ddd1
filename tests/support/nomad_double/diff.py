"""Compute the `Diff` of a job plan in the shape of Nomad's `api.JobDiff`.

Like Nomad's non-contextual diff, it lists only what changed: scalar fields
become FieldDiffs with string Old/New values, nested objects become
ObjectDiffs, task groups and tasks are matched by name. Lists of scalars
(Datacenters, args, crons) are compared as sets of elements, and lists of
objects (Constraints, Templates, VolumeMounts) by whole element, as Nomad does.
"""

from __future__ import annotations

import json
from typing import Any

# Fields that change on every register or are state, never part of a job's spec.
IGNORED_JOB_FIELDS = frozenset(
    {
        "Status",
        "StatusDescription",
        "Stable",
        "Version",
        "CreateIndex",
        "ModifyIndex",
        "JobModifyIndex",
        "SubmitTime",
        "TaskGroups",
        "NomadTokenID",
        "ParentID",
        "Dispatched",
        "VaultToken",
        "ConsulToken",
    }
)

# The object name Nomad gives each list element or nested object in a diff.
OBJECT_NAMES = {
    "Constraints": "Constraint",
    "Templates": "Template",
    "VolumeMounts": "VolumeMount",
    "Volumes": "Volume",
    "RestartPolicy": "RestartPolicy",
    "ReschedulePolicy": "ReschedulePolicy",
    "Resources": "Resources",
    "Periodic": "Periodic",
    "Config": "Config",
    "Env": "Env",
    "Meta": "Meta",
}


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value)


def _field(kind: str, name: str, old: Any, new: Any) -> dict[str, Any]:
    return {"Type": kind, "Name": name, "Old": _text(old), "New": _text(new), "Annotations": None}


def _change_type(old_missing: bool, new_missing: bool) -> str:
    if old_missing:
        return "Added"
    if new_missing:
        return "Deleted"
    return "Edited"


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _empty(value: Any) -> bool:
    return value is None or value in ({}, [], "")


def diff_fields(old: dict[str, Any], new: dict[str, Any], skip: frozenset[str]) -> tuple[list, list]:
    """Return (FieldDiffs, ObjectDiffs) between two objects, leaving out `skip` keys."""
    fields: list[dict[str, Any]] = []
    objects: list[dict[str, Any]] = []
    for key in sorted(set(old) | set(new)):
        if key in skip:
            continue
        before, after = old.get(key), new.get(key)
        if before == after or (_empty(before) and _empty(after)):
            continue
        if _is_scalar(before) and _is_scalar(after):
            kind = _change_type(before is None, after is None)
            fields.append(_field(kind, key, before, after))
        elif isinstance(before or after, dict):
            objects.extend(_diff_mapping(key, before or {}, after or {}))
        else:
            element_fields, element_objects = _diff_list(key, before or [], after or [])
            fields.extend(element_fields)
            objects.extend(element_objects)
    return fields, objects


def _diff_mapping(key: str, before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
    name = OBJECT_NAMES.get(key, key)
    if key == "Volumes":
        # Group volumes are a map of objects: one ObjectDiff per volume.
        out = []
        for volume in sorted(set(before) | set(after)):
            out.extend(_diff_mapping("Volume", before.get(volume) or {}, after.get(volume) or {}))
        return out
    fields, objects = diff_fields(before, after, frozenset())
    if not fields and not objects:
        return []
    kind = _change_type(not before, not after)
    return [{"Type": kind, "Name": name, "Fields": fields, "Objects": objects or None}]


def _diff_list(key: str, before: list[Any], after: list[Any]) -> tuple[list, list]:
    fields: list[dict[str, Any]] = []
    objects: list[dict[str, Any]] = []
    encoded_before = {json.dumps(item, sort_keys=True): item for item in before}
    encoded_after = {json.dumps(item, sort_keys=True): item for item in after}
    for encoded, item in encoded_before.items():
        if encoded not in encoded_after:
            if _is_scalar(item):
                fields.append(_field("Deleted", key, item, None))
            else:
                objects.extend(_whole_object("Deleted", key, item))
    for encoded, item in encoded_after.items():
        if encoded not in encoded_before:
            if _is_scalar(item):
                fields.append(_field("Added", key, None, item))
            else:
                objects.extend(_whole_object("Added", key, item))
    return fields, objects


def _whole_object(kind: str, key: str, item: dict[str, Any]) -> list[dict[str, Any]]:
    before, after = ({}, item) if kind == "Added" else (item, {})
    fields, objects = diff_fields(before, after, frozenset())
    return [
        {
            "Type": kind,
            "Name": OBJECT_NAMES.get(key, key),
            "Fields": fields,
            "Objects": objects or None,
        }
    ]


def _diff_task(before: dict[str, Any] | None, after: dict[str, Any] | None) -> dict[str, Any]:
    name = (after or before or {})["Name"]
    fields, objects = diff_fields(before or {}, after or {}, frozenset({"Name"}))
    if before is None:
        kind, annotations = "Added", ["forces create"]
    elif after is None:
        kind, annotations = "Deleted", ["forces destroy"]
    elif fields or objects:
        kind, annotations = "Edited", ["forces create/destroy update"]
    else:
        kind, annotations = "None", None
    return {
        "Type": kind,
        "Name": name,
        "Fields": fields or None,
        "Objects": objects or None,
        "Annotations": annotations,
    }


def _diff_group(before: dict[str, Any] | None, after: dict[str, Any] | None) -> dict[str, Any]:
    name = (after or before or {})["Name"]
    fields, objects = diff_fields(before or {}, after or {}, frozenset({"Name", "Tasks"}))
    old_tasks = {task["Name"]: task for task in (before or {}).get("Tasks") or []}
    new_tasks = {task["Name"]: task for task in (after or {}).get("Tasks") or []}
    tasks = [
        _diff_task(old_tasks.get(task), new_tasks.get(task))
        for task in sorted(set(old_tasks) | set(new_tasks))
    ]
    if before is None:
        kind = "Added"
    elif after is None:
        kind = "Deleted"
    elif fields or objects or any(task["Type"] != "None" for task in tasks):
        kind = "Edited"
    else:
        kind = "None"
    return {
        "Type": kind,
        "Name": name,
        "Fields": fields or None,
        "Objects": objects or None,
        "Tasks": tasks,
        "Updates": None,
    }


def diff_jobs(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """Return the JobDiff from the registered job `old` (None when new) to `new`."""
    fields, objects = diff_fields(old or {}, new, IGNORED_JOB_FIELDS)
    old_groups = {group["Name"]: group for group in (old or {}).get("TaskGroups") or []}
    new_groups = {group["Name"]: group for group in new.get("TaskGroups") or []}
    groups = [
        _diff_group(old_groups.get(name), new_groups.get(name))
        for name in sorted(set(old_groups) | set(new_groups))
    ]
    if old is None:
        kind = "Added"
    elif fields or objects or any(group["Type"] != "None" for group in groups):
        kind = "Edited"
    else:
        kind = "None"
    return {
        "Type": kind,
        "ID": new["ID"],
        "Fields": fields or None,
        "Objects": objects or None,
        "TaskGroups": groups,
    }


def spec_changed(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Tell whether a re-registered job changes the spec, which is when Nomad bumps Version."""
    return diff_jobs(old, new)["Type"] != "None"
