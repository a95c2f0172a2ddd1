"""meta/argument_specs.yml must document exactly the variables of defaults/main.yml."""

from __future__ import annotations

from pathlib import Path

import yaml

ROLE_DIR = Path(__file__).resolve().parents[3] / "roles" / "vault_batch_client"


def load_defaults() -> dict:
    return yaml.safe_load((ROLE_DIR / "defaults" / "main.yml").read_text())


def load_options() -> dict:
    specs = yaml.safe_load((ROLE_DIR / "meta" / "argument_specs.yml").read_text())
    return specs["argument_specs"]["main"]["options"]


def test_argument_specs_name_every_default() -> None:
    assert sorted(load_options()) == sorted(load_defaults())


def test_argument_specs_defaults_match() -> None:
    defaults = load_defaults()
    for name, option in load_options().items():
        assert option.get("default") == defaults.get(name), name


def test_argument_specs_describe_and_type_each() -> None:
    for name, option in load_options().items():
        assert option.get("description"), f"{name} has no description"
        assert option.get("type"), f"{name} has no type"


def test_argument_specs_choices_include_default() -> None:
    for name, option in load_options().items():
        if "choices" in option:
            assert option["default"] in option["choices"], name


def test_variables_carry_role_prefix() -> None:
    for name in load_defaults():
        assert name.startswith("vault_batch_client_"), name
    internal = yaml.safe_load((ROLE_DIR / "vars" / "main.yml").read_text())
    for name in internal:
        assert name.startswith("_vault_batch_client_"), name
