"""The stage and dataset configs are generated from ``bundles/vnas_nih/search.json`` by ``tools/generate_bundles.py``:
edit the search config or the generator, regenerate, and commit both; this test fails when they drift apart."""

from __future__ import annotations

import filecmp
import shutil
import subprocess
import sys

from tests.conftest import BUNDLES, REPO


def test_committed_configs_equal_the_generator_output(tmp_path):
    copy = tmp_path / "bundles"
    shutil.copytree(BUNDLES, copy)
    subprocess.run([sys.executable, str(REPO / "tools" / "generate_bundles.py"), str(copy)], check=True,
                   capture_output=True)
    stale = []
    for path in sorted(copy.rglob("*.json")):
        rel = path.relative_to(copy)
        if not (BUNDLES / rel).is_file() or not filecmp.cmp(path, BUNDLES / rel, shallow=False):
            stale.append(str(rel))
    assert not stale, f"regenerate with `python tools/generate_bundles.py`: {stale} differ from the generator output"
