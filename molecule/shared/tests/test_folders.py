"""Host volume folders: ownership and modes on the node."""

from __future__ import annotations

import pytest

# (folder below the base dir, owner, group, mode): the operator owns the base
# and scripts/, the Nomad task user may write logs/ and results/ only.
FOLDERS = [
    ("", "root", "root", 0o755),
    ("scripts", "root", "root", 0o755),
    ("logs", "nobody", "nogroup", 0o750),
    ("results", "nobody", "nogroup", 0o750),
]


@pytest.mark.parametrize(("name", "owner", "group", "mode"), FOLDERS)
def test_folder_owner_and_mode(host, base_dir, name, owner, group, mode):
    folder = host.file(f"{base_dir}/{name}".rstrip("/"))

    assert folder.is_directory
    assert folder.user == owner
    assert folder.group == group
    assert folder.mode == mode


def test_no_folder_world_writable(host, base_dir):
    found = host.check_output(f"find {base_dir} -not -path '*/venv/*' -perm -o+w -not -type l")

    assert found == ""
