"""The double's jobspec parser: the API JSON it builds and the HCL it rejects."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.nomad_double.errors import ApiError
from support.nomad_double.jobspec import canonicalize, parse_duration, parse_hcl, validate

FIXTURE = Path(__file__).parent.parent / "fixtures" / "nomad" / "batch-processor.nomad.hcl"

MINIMAL = """
job "tiny" {
  type = "batch"
  group "g" {
    task "t" {
      driver = "exec"
      config {
        command = "/bin/true"
      }
      %s
    }
  }
}
"""


def parse_error(text: str) -> ApiError:
    with pytest.raises(ApiError) as caught:
        parse_hcl(text)
    return caught.value


def test_fixture_parses_to_api_shape():
    job = canonicalize(parse_hcl(FIXTURE.read_text()))
    validate(job)

    assert job["ID"] == "vault-batch-processor"
    assert job["Name"] == "vault-batch-processor"
    assert job["Type"] == "batch"
    assert job["Datacenters"] == ["dc1"]
    assert job["Periodic"]["Specs"] == ["0 2 * * *"]
    assert job["Periodic"]["SpecType"] == "cron"
    assert job["Periodic"]["ProhibitOverlap"] is True
    assert job["Periodic"]["TimeZone"] == "Pacific/Honolulu"
    assert job["Periodic"]["Enabled"] is True
    assert job["Constraints"] == [
        {"LTarget": "${node.unique.name}", "RTarget": "lil-pakalolo", "Operand": "="}
    ]

    (group,) = job["TaskGroups"]
    assert group["Name"] == "processor"
    assert group["Count"] == 1
    volume = group["Volumes"]["vault-clients"]
    assert volume["Name"] == "vault-clients"
    assert volume["Type"] == "host"
    assert volume["Source"] == "vault-clients-lil-pakalolo"
    assert volume["ReadOnly"] is False
    assert volume["AccessMode"] == "single-node-writer"
    assert volume["AttachmentMode"] == "file-system"
    assert group["RestartPolicy"]["Attempts"] == 0
    assert group["RestartPolicy"]["Mode"] == "fail"
    assert group["ReschedulePolicy"]["Attempts"] == 0
    assert group["ReschedulePolicy"]["Unlimited"] is False

    (task,) = group["Tasks"]
    assert task["Name"] == "batch-processor"
    assert task["Driver"] == "exec"
    assert task["User"] == "nobody"
    assert task["Config"] == {"command": "python3", "args": ["-m", "batch_processor", "run"]}
    assert task["Env"]["VAULT_PASSWORD_FILE"] == "${NOMAD_SECRETS_DIR}/vault-password"
    assert task["VolumeMounts"] == [
        {
            "Volume": "vault-clients",
            "Destination": "/opt/vault-clients",
            "ReadOnly": False,
            "PropagationMode": "private",
        }
    ]
    assert task["Resources"]["CPU"] == 200
    assert task["Resources"]["MemoryMB"] == 256
    assert task["KillTimeout"] == 45_000_000_000
    assert task["KillSignal"] == "SIGTERM"

    (template,) = task["Templates"]
    assert template["DestPath"] == "secrets/vault-password"
    assert template["Perms"] == "0400"
    assert template["ChangeMode"] == "noop"
    assert template["EmbeddedTmpl"].startswith('{{- with nomadVar "nomad/jobs/vault-batch-processor"')
    assert template["EmbeddedTmpl"].endswith("{{- end -}}\n")


def test_parse_without_canonicalize_leaves_defaults_out():
    job = parse_hcl(MINIMAL % "")

    assert "Region" not in job
    assert "KillTimeout" not in job["TaskGroups"][0]["Tasks"][0]
    canonical = canonicalize(job)
    assert canonical["Region"] == "global"
    assert canonical["TaskGroups"][0]["Tasks"][0]["KillTimeout"] == 5_000_000_000
    assert canonical["TaskGroups"][0]["RestartPolicy"]["Attempts"] == 3


def test_unknown_block_rejected():
    error = parse_error(MINIMAL % "sidecar { }")

    assert error.status == 400
    assert 'Unsupported block type; Blocks of type "sidecar" are not expected here.' in (error.message)
    assert 'task "t"' in error.message


def test_unknown_attribute_rejected():
    error = parse_error(MINIMAL % 'foo = "bar"')

    assert error.status == 400
    assert 'Unsupported argument; An argument named "foo" is not expected here.' in error.message


def test_attribute_for_block_gets_hint():
    error = parse_error(MINIMAL % "resources = { cpu = 100 }")

    assert 'An argument named "resources" is not expected here.' in error.message
    assert 'Did you mean to define a block of type "resources"?' in error.message


def test_wrong_type_rejected():
    error = parse_error(MINIMAL % 'resources {\n memory = "lots"\n }')

    assert error.status == 400
    assert "Incorrect attribute value type" in error.message
    assert 'Inappropriate value for attribute "memory": a number is required.' in error.message


def test_list_where_string_expected_rejected():
    error = parse_error(MINIMAL % 'user = ["root"]')

    assert 'Inappropriate value for attribute "user": string is required.' in error.message


def test_unknown_driver_option_rejected():
    text = MINIMAL.replace('command = "/bin/true"', 'command = "/bin/true"\n image = "x"') % ""

    error = parse_error(text)

    assert 'An argument named "image" is not expected here.' in error.message


def test_missing_driver_rejected():
    text = MINIMAL.replace('driver = "exec"', "") % ""

    error = parse_error(text)

    assert 'Missing required argument; The argument "driver" is required' in error.message


def test_bad_duration_rejected():
    error = parse_error(MINIMAL % 'kill_timeout = "45 seconds"')

    assert 'failed to parse "kill_timeout"' in error.message
    assert 'invalid duration "45 seconds"' in error.message


def test_syntax_error_rejected():
    error = parse_error('job "x" {')

    assert error.status == 400
    assert "Invalid HCL syntax" in error.message


def test_variable_reference_rejected():
    error = parse_error(MINIMAL % 'user = "${var.user}"')

    assert 'Unknown variable; There is no variable named "var".' in error.message


def test_bare_expression_rejected():
    error = parse_error(MINIMAL % "user = node.unique.name")

    assert 'There is no variable named "node".' in error.message


def test_interpolations_kept_literal():
    env = 'env {\n A = "${NOMAD_ALLOC_DIR}/x"\n B = "$${literal}"\n N = 3\n }'

    job = parse_hcl(MINIMAL % env)

    task_env = job["TaskGroups"][0]["Tasks"][0]["Env"]
    assert task_env == {"A": "${NOMAD_ALLOC_DIR}/x", "B": "${literal}", "N": "3"}


def test_quoted_escapes_decoded():
    job = parse_hcl(MINIMAL % 'env {\n A = "line\\nnext \\"q\\""\n }')

    assert job["TaskGroups"][0]["Tasks"][0]["Env"]["A"] == 'line\nnext "q"'


def test_heredoc_keeps_trailing_newline():
    template = 'template {\n data = <<EOT\nhello\n  world\nEOT\n destination = "local/a"\n }'

    job = parse_hcl(MINIMAL % template)

    assert job["TaskGroups"][0]["Tasks"][0]["Templates"][0]["EmbeddedTmpl"] == "hello\n  world\n"


@pytest.mark.parametrize(
    ("text", "nanoseconds"),
    [
        ("45s", 45_000_000_000),
        ("5m", 300_000_000_000),
        ("1h30m", 5_400_000_000_000),
        ("250ms", 250_000_000),
        ("1.5s", 1_500_000_000),
        ("0", 0),
    ],
)
def test_durations_to_nanoseconds(text, nanoseconds):
    assert parse_duration(text) == nanoseconds


@pytest.mark.parametrize("text", ["45", "s", "5 m", "1d", "-"])
def test_invalid_durations_rejected(text):
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


def test_periodic_service_job_invalid():
    text = FIXTURE.read_text().replace('type        = "batch"', 'type        = "service"')

    with pytest.raises(ApiError) as caught:
        validate(canonicalize(parse_hcl(text)))

    assert caught.value.status == 400
    assert "Periodic can only be used with batch or sysbatch jobs" in caught.value.message


def test_mount_of_undefined_volume_invalid():
    text = FIXTURE.read_text().replace('volume      = "vault-clients"', 'volume      = "other"')

    with pytest.raises(ApiError) as caught:
        validate(canonicalize(parse_hcl(text)))

    assert "references undefined volume other" in caught.value.message


def test_unknown_constraint_operator_invalid():
    text = FIXTURE.read_text().replace(
        'value     = "lil-pakalolo"', 'value     = "lil-pakalolo"\n    operator = "like"'
    )

    with pytest.raises(ApiError) as caught:
        validate(canonicalize(parse_hcl(text)))

    assert 'Unknown constraint type "like"' in caught.value.message


def test_invalid_time_zone_invalid():
    text = FIXTURE.read_text().replace("Pacific/Honolulu", "Mars/Olympus")

    with pytest.raises(ApiError) as caught:
        validate(canonicalize(parse_hcl(text)))

    assert 'invalid time zone "Mars/Olympus"' in caught.value.message
