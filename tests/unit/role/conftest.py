"""Make the role's module_utils importable the way Ansible ships them to a module."""

from __future__ import annotations

from pathlib import Path

import ansible.module_utils

ROLE_DIR = Path(__file__).resolve().parents[3] / "roles" / "vault_batch_client"

# A module imports ansible.module_utils.vault_batch_client_common; Ansible
# finds it in the role's module_utils folder, and so does this extra path.
ansible.module_utils.__path__.append(str(ROLE_DIR / "module_utils"))
