"""Packaging: every third-party distribution the stages load at run time is declared in setup.cfg (directly or as a
dependency of a declared one), and CI installs into a fresh virtual environment with the README's test command.

A dependency that is only present because the developer's Python happens to have it (``scipy``, which MONAI's
HD95 and surface Dice import lazily, was one) fails here rather than on a new user's first ``evaluate.json``.
"""

from __future__ import annotations

import configparser
import json
import re
import subprocess
import sys
from importlib import metadata

from tests.conftest import REPO

#: Runs the code paths of the evaluate bundle's metrics (MONAI imports scipy lazily there), the workflows and the
#: export, then prints the top-level modules loaded.
PROBE = r"""
import json, sys
import torch
import vnas_monai.bundle, vnas_monai.evaluation, vnas_monai.export
import vnas_monai.workflows.crossval, vnas_monai.workflows.ablation
from vnas_monai.evaluation import case_metrics
label = torch.zeros(8, 8, 8, dtype=torch.long); label[2:6, 2:6, 2:6] = 1
pred = torch.zeros_like(label); pred[3:6, 2:6, 2:6] = 1
case_metrics(pred, label, num_classes=2, spacing=(1.0, 1.0, 1.0))
print(json.dumps(sorted({name.split('.')[0] for name in sys.modules})))
"""


def _requirement_name(spec: str) -> str:
    return re.split(r"[\s\[<>=!~;]", spec.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _declared(section: str, key: str) -> set[str]:
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    return {_requirement_name(line) for line in cfg[section][key].splitlines() if line.strip()}


def _closure(names: set[str]) -> set[str]:
    """The distributions ``names`` pull in (their installed requirements, recursively; extras not followed)."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        todo += [_requirement_name(r) for r in requires if "extra ==" not in r]
    return seen


def test_runtime_imports_are_declared():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    modules = json.loads(out.stdout.strip().splitlines()[-1])
    owners = metadata.packages_distributions()
    declared = _closure(_declared("options", "install_requires"))
    # MONAI imports optional packages when present (mlflow from the handlers): those of the extras are optional
    optional = _closure(_declared("options.extras_require", "test")) - declared
    undeclared = {}
    for module in modules:
        dists = {d.lower().replace("_", "-") for d in owners.get(module, [])}
        if dists and "vnas-monai" not in dists and not dists & (declared | optional):
            undeclared[module] = sorted(dists)
    assert not undeclared, f"modules loaded at run time from distributions not in install_requires: {undeclared}"
    assert "scipy" in declared and "scipy" not in optional


def test_ci_installs_into_a_fresh_venv_with_the_readme_test_command():
    script = (REPO / ".ci" / "run").read_text()
    readme = (REPO / "README.md").read_text()
    assert re.search(r"python3? -m venv ", script), "CI must create a fresh virtual environment"
    command = 'pip install -e ".[test]" && python -m pytest -q'
    assert command in script
    readme_line = next(line for line in readme.splitlines() if command in line)
    assert "-m venv" in readme_line, f"the README's test command should create the venv too: {readme_line}"
    assert {"onnx", "onnxruntime", "mlflow-skinny"} <= _declared("options.extras_require", "test")


def test_export_templates_ship_as_package_data():
    from vnas_monai.export.templates import apache_2_0, logging_conf

    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    patterns = [p.strip() for p in cfg["options.package_data"]["vnas_monai.export.templates"].split(",")]
    folder = REPO / "vnas_monai" / "export" / "templates"
    shipped = {f.name for pattern in patterns for f in folder.glob(pattern)}
    assert {"LICENSE-Apache-2.0.txt", "logging.conf"} <= shipped
    assert apache_2_0().lstrip().startswith("Apache License") and "[loggers]" in logging_conf()
