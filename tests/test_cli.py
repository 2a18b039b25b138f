"""``python -m vnas_monai``: every command's ``--help`` prints its real signature and docstring, under the program
name ``vnas_monai``, whether written ``--help`` or ``-- --help`` (``fire``'s own form)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO
from vnas_monai.cli import _help_behind_separator

#: command -> a phrase of its docstring and a flag of its signature
COMMANDS = {
    "crossval": ("Search, aggregate, retrain and evaluate every fold", "--bundle_dir"),
    "ablation": ("Retrain and evaluate each baseline on every fold", "--variants"),
    "export_bundle": ("self-contained MONAI bundle", "--checkpoint"),
    "datalist": ("seeded k-fold split", "--num_folds"),
}


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vnas_monai", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=120)


@pytest.mark.parametrize("form", [["--help"], ["--", "--help"], ["-h"]])
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_command_help(command, form):
    out = _cli(command, *form)
    text = out.stdout + out.stderr
    phrase, flag = COMMANDS[command]
    assert out.returncode == 0, text[-2000:]
    assert phrase in text and flag in text, text[-2000:]
    assert f"vnas_monai {command}" in text and "__main__" not in text, text[:500]
    assert "Traceback" not in text


def test_command_list_shows_lazy_commands_without_importing_them():
    out = _cli("--help")
    text = out.stdout + out.stderr  # fire prints a group's help on stderr
    assert out.returncode == 0, text[-2000:]
    assert "Search, aggregate, retrain and evaluate every fold" in text and "export_bundle" in text
    assert "__main__" not in text


def test_help_flag_moves_behind_separator():
    assert _help_behind_separator(["crossval", "--help"]) == ["crossval", "--", "--help"]
    assert _help_behind_separator(["crossval", "--", "--help"]) == ["crossval", "--", "--help"]
    assert _help_behind_separator(["crossval", "--fold", "1", "--", "--trace"]) == [
        "crossval", "--fold", "1", "--", "--trace"]
    assert _help_behind_separator(["show", "--arch", "nih"]) == ["show", "--arch", "nih"]
