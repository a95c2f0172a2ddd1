#!/usr/bin/python
"""Ansible module: register a Nomad dynamic host volume, or check a static one."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: nomad_host_volume
short_description: Register a Nomad dynamic host volume for an existing folder
description:
  - Finds the target node, either as the node of the Nomad agent at O(addr)
    or by its name, and checks that its name is O(node_name).
  - With O(mode=dynamic), registers O(host_path) as the dynamic host volume
    O(name) on that node. A volume of that name on that node is left alone
    when it matches, and updated by its ID when its capabilities differ.
    The module fails when it points at another host path.
  - With O(mode=static), only checks that the node's client configuration
    has a C(host_volume) block O(name) with path O(host_path).
options:
  name:
    description: Name of the host volume, as the job's C(volume) block requests it.
    type: str
    required: true
  host_path:
    description: Absolute path of the folder on the node; it must exist there.
    type: path
    required: true
  node_name:
    description: Name of the Nomad client node that has the folder.
    type: str
    required: true
  node_lookup:
    description:
      - C(agent) asks the agent at O(addr) for its own node, as C(nomad node status -self) does.
      - C(name) looks the node up by O(node_name) in the node list.
    type: str
    choices: [agent, name]
    default: agent
  mode:
    description: C(dynamic) registers the volume through the API, C(static) expects it in the client configuration.
    type: str
    choices: [dynamic, static]
    default: dynamic
  access_mode:
    description: Access mode of the volume's only capability.
    type: str
    default: single-node-writer
  attachment_mode:
    description: Attachment mode of the volume's only capability.
    type: str
    default: file-system
  addr:
    description: Nomad HTTP API address, for example C(https://127.0.0.1:4646).
    type: str
    required: true
  token:
    description: Nomad ACL token, sent in the C(X-Nomad-Token) header; empty when ACLs are off.
    type: str
    default: ""
  namespace:
    description: Nomad namespace of the volume.
    type: str
    default: default
  ca_cert:
    description: CA bundle that signs the Nomad server certificate.
    type: path
  client_cert:
    description: Client certificate for Nomad's mutual TLS.
    type: path
  client_key:
    description: Private key of O(client_cert).
    type: path
  validate_certs:
    description: Whether to verify the Nomad server certificate.
    type: bool
    default: true
  timeout:
    description: Seconds to wait for each Nomad response.
    type: int
    default: 30
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
notes:
  - Needs Nomad 1.10 or newer for dynamic host volumes.
  - "ACL capabilities: C(node:read), C(agent:read) for O(node_lookup=agent), and
    C(host-volume-read) and C(host-volume-register) in the namespace for O(mode=dynamic)."
"""

EXAMPLES = r"""
- name: Register the batch folder as a host volume on the local agent's node
  nomad_host_volume:
    addr: http://127.0.0.1:4646
    name: vault-clients-lil-pakalolo
    host_path: /opt/nomad/vault-clients
    node_name: lil-pakalolo
"""

RETURN = r"""
node_id:
  description: ID of the node that has the volume.
  returned: success
  type: str
volume_id:
  description: ID of the dynamic host volume; empty for a static one and for a new one in check mode.
  returned: success
  type: str
"""

from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.vault_batch_client_nomad import (
    NomadClient,
    NomadError,
    connection_argument_spec,
    escape_segment,
)


class VolumeError(Exception):
    """A state the module cannot fix on its own; the message states what to do."""


def find_node(client: NomadClient, lookup: str, node_name: str) -> dict[str, Any]:
    """Return the node to register on, found through the local agent or by name.

    https://developer.hashicorp.com/nomad/api-docs/agent#query-self and
    https://developer.hashicorp.com/nomad/api-docs/nodes
    """
    if lookup == "agent":
        agent = client.get("/v1/agent/self", namespaced=False)
        node_id = ((agent.get("stats") or {}).get("client") or {}).get("node_id")
        if not node_id:
            raise VolumeError(
                f"the Nomad agent at {client.addr} is not a client, so it has no node: point "
                "vault_batch_client_nomad_addr at the agent on the node, or set "
                "vault_batch_client_nomad_node_lookup to name"
            )
        node = client.get(f"/v1/node/{escape_segment(node_id)}", namespaced=False)
        if node["Name"] != node_name:
            raise VolumeError(
                f"the Nomad agent at {client.addr} runs node {node['Name']!r}, but the job is "
                f"constrained to {node_name!r}: fix vault_batch_client_nomad_node_name or "
                "vault_batch_client_nomad_addr"
            )
        return node
    stubs = client.get("/v1/nodes", namespaced=False) or []
    matches = [stub for stub in stubs if stub.get("Name") == node_name]
    if not matches:
        raise VolumeError(f"no Nomad node is named {node_name!r}: check vault_batch_client_nomad_node_name")
    if len(matches) > 1:
        ids = ", ".join(stub["ID"] for stub in matches)
        raise VolumeError(
            f"{len(matches)} Nomad nodes are named {node_name!r} ({ids}): set "
            "vault_batch_client_nomad_node_lookup to agent and run against that node's agent"
        )
    return client.get(f"/v1/node/{escape_segment(matches[0]['ID'])}", namespaced=False)


def static_volume_snippet(name: str, host_path: str) -> str:
    """Return the client configuration block that defines the static host volume."""
    return f'client {{ host_volume "{name}" {{ path = "{host_path}"  read_only = false }} }}'


def check_static(node: dict[str, Any], name: str, host_path: str) -> None:
    """Fail unless the node's client configuration has host volume `name` at `host_path`."""
    found = (node.get("HostVolumes") or {}).get(name)
    if found is None:
        raise VolumeError(
            f"node {node['Name']} has no host volume {name!r}: add "
            f"{static_volume_snippet(name, host_path)} to its Nomad client configuration and "
            "restart the agent, or set vault_batch_client_nomad_volume_mode to dynamic"
        )
    if found.get("Path") != host_path:
        raise VolumeError(
            f"host volume {name!r} on node {node['Name']} points at {found.get('Path')!r}, not "
            f"{host_path!r}: fix its path in the client configuration or vault_batch_client_base_dir"
        )


def find_dynamic_volume(client: NomadClient, node_id: str, name: str) -> dict[str, Any] | None:
    """Return the full dynamic host volume `name` on the node, or None.

    https://developer.hashicorp.com/nomad/api-docs/volumes#list-volumes and
    https://developer.hashicorp.com/nomad/api-docs/volumes#read-dynamic-host-volume
    """
    stubs = client.get("/v1/volumes", {"type": "host"}) or []
    for stub in stubs:
        if stub.get("Name") == name and stub.get("NodeID") == node_id:
            return client.get(f"/v1/volume/host/{escape_segment(stub['ID'])}")
    return None


def capability_set(volume: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (capability.get("AccessMode", ""), capability.get("AttachmentMode", ""))
        for capability in volume.get("RequestedCapabilities") or []
    }


def describe_volume(volume: dict[str, Any] | None) -> str:
    """Render the fields this module manages as diff text."""
    if volume is None:
        return ""
    capabilities = sorted(capability_set(volume))
    lines = [
        f"name: {volume.get('Name')}",
        f"namespace: {volume.get('Namespace') or 'default'}",
        f"node_id: {volume.get('NodeID')}",
        f"host_path: {volume.get('HostPath')}",
        *(f"capability: {access} / {attachment}" for access, attachment in capabilities),
    ]
    return "".join(f"{line}\n" for line in lines)


def plan_volume(
    existing: dict[str, Any] | None, desired: dict[str, Any], node: dict[str, Any]
) -> dict[str, Any] | None:
    """Return the volume to register, or None when `existing` already matches `desired`.

    Raises VolumeError when the name is taken by a volume at another path.
    """
    name = desired["Name"]
    if existing is None:
        static = (node.get("HostVolumes") or {}).get(name)
        if static is not None and not static.get("ID"):
            raise VolumeError(
                f"node {node['Name']} already has a static host volume {name!r} at "
                f"{static.get('Path')!r} from its client configuration: set "
                "vault_batch_client_nomad_volume_mode to static, or remove that host_volume block"
            )
        return desired
    if existing.get("HostPath") != desired["HostPath"]:
        raise VolumeError(
            f"dynamic host volume {name!r} (ID {existing['ID']}) on node {node['Name']} points at "
            f"{existing.get('HostPath')!r}, not {desired['HostPath']!r}: set "
            "vault_batch_client_base_dir to that path, or stop the jobs that use the volume and "
            f"delete it with 'nomad volume delete -type host {existing['ID']}'"
        )
    if capability_set(existing) == capability_set(desired):
        return None
    # Registering with the ID updates the volume in place instead of adding a second one.
    return dict(desired, ID=existing["ID"])


def run_module() -> None:
    module = AnsibleModule(
        argument_spec=connection_argument_spec(
            name={"type": "str", "required": True},
            host_path={"type": "path", "required": True},
            node_name={"type": "str", "required": True},
            node_lookup={"type": "str", "choices": ["agent", "name"], "default": "agent"},
            mode={"type": "str", "choices": ["dynamic", "static"], "default": "dynamic"},
            access_mode={"type": "str", "default": "single-node-writer"},
            attachment_mode={"type": "str", "default": "file-system"},
        ),
        supports_check_mode=True,
    )
    params = module.params
    client = NomadClient(params)
    name = params["name"]
    host_path = params["host_path"].rstrip("/") or "/"
    try:
        node = find_node(client, params["node_lookup"], params["node_name"])
        if params["mode"] == "static":
            check_static(node, name, host_path)
            module.exit_json(changed=False, node_id=node["ID"], volume_id="")

        existing = find_dynamic_volume(client, node["ID"], name)
        desired = {
            "Name": name,
            "Namespace": client.namespace,
            "NodeID": node["ID"],
            "HostPath": host_path,
            "RequestedCapabilities": [
                {"AccessMode": params["access_mode"], "AttachmentMode": params["attachment_mode"]}
            ],
        }
        to_register = plan_volume(existing, desired, node)
    except VolumeError as error:
        module.fail_json(msg=str(error))
    except NomadError as error:
        module.fail_json(msg=error.describe(f"look up host volume {name}"), status=error.status)

    volume_id = existing["ID"] if existing else ""
    if to_register is not None and not module.check_mode:
        # https://developer.hashicorp.com/nomad/api-docs/volumes#register-dynamic-host-volume
        try:
            response = client.request(
                "PUT", "/v1/volume/host/register", {"Volume": to_register, "PolicyOverride": False}
            )
        except NomadError as error:
            module.fail_json(msg=error.describe(f"register host volume {name}"), status=error.status)
        volume_id = response["Volume"]["ID"]
        if response.get("Warnings"):
            module.warn(f"Nomad registered host volume {name} with warnings: {response['Warnings']}")

    module.exit_json(
        changed=to_register is not None,
        node_id=node["ID"],
        volume_id=volume_id,
        diff={"before": describe_volume(existing), "after": describe_volume(to_register or existing)},
    )


def main() -> None:
    run_module()


if __name__ == "__main__":
    main()
