"""Processor package and its virtual environment on the node."""

from __future__ import annotations

import re


def test_package_copied(host, scripts_dir):
    main = host.file(f"{scripts_dir}/batch_processor/__main__.py")

    assert main.is_file
    assert main.user == "root"
    assert main.mode == 0o644


def test_package_has_no_bytecode(host, scripts_dir):
    found = host.check_output(f"find {scripts_dir}/batch_processor -name '*.pyc' -o -name __pycache__")

    assert found == ""


def test_venv_imports_hvac(host, venv_python, scripts_dir):
    pinned = host.file(f"{scripts_dir}/requirements.txt").content_string
    result = host.run(f"{venv_python} -c 'import hvac, importlib.metadata as m; print(m.version(\"hvac\"))'")

    assert result.rc == 0, result.stderr
    assert f"hvac=={result.stdout.strip()}" in pinned.splitlines()


def test_processor_help_runs(host, venv_python, scripts_dir):
    # Bytecode writing is off so that the test leaves no __pycache__ behind.
    result = host.run(
        f"cd {scripts_dir} && PYTHONDONTWRITEBYTECODE=1 {venv_python} -m batch_processor --help"
    )

    assert result.rc == 0, result.stderr
    assert result.stdout.startswith("usage:")
    assert re.search(r"^\s+run\s", result.stdout, re.MULTILINE), "the run command is not listed"
