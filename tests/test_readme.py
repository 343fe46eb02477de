"""README's thirty-second example runs as written, and its set-up commands are the ones CI runs."""

import re
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.cli

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_thirty_second_example_runs_and_its_gradients_have_the_documented_shapes():
    code = re.search(r"```python\n(.*?)```", README, flags=re.S).group(1)
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["z"].shape == (1000, 2)
    assert namespace["dz0"].shape == (2,) and namespace["dA"].shape == (2, 2)
    assert namespace["dt"].shape == (1000,) and np.all(np.isfinite(namespace["dt"]))


def code_blocks(text):
    """The contents of the fenced code blocks of a Markdown text, in order."""
    blocks, current = [], None
    for line in text.splitlines():
        if line.startswith("```"):
            if current is None:
                current = []
            else:
                blocks.append("\n".join(current))
                current = None
        elif current is not None:
            current.append(line)
    return blocks


def set_up_commands():
    """The command lines of README's "Set up" section, in order."""
    section = README.split("## Set up", 1)[1].split("\n## ", 1)[0]
    return [line.strip() for block in code_blocks(section) for line in block.splitlines()
            if line.strip()]


def test_ci_runs_exactly_the_test_command_readme_gives():
    test_command = next(c for c in set_up_commands() if c.endswith("pytest -q"))
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert test_command in [line.strip() for line in ci.splitlines()]
    assert "python3 -m venv" in ci          # in a new virtual environment, as the README does


def test_set_up_starts_in_a_virtual_environment_that_git_ignores():
    """Debian's and Ubuntu's system Python refuse pip outside a virtual environment."""
    commands = set_up_commands()
    assert commands[0] == "python3 -m venv .venv && . .venv/bin/activate"
    assert all(c.startswith("python3 -m pip install -e ") for c in commands[1:])
    ignored = (ROOT / ".gitignore").read_text(encoding="utf-8").split()
    assert "/.venv/" in ignored or ".venv/" in ignored
