"""The README's walk-through (search -> retrain -> infer one image -> evaluate -> export -> run the exported
bundle) is run as written, at tiny sizes: its size and epoch lines are replaced, every command is the README's."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest

from tests.conftest import REPO

MARKER = "<!-- walk-through: tests/test_readme.py runs this block -->"
#: the README's variables the test sets to tiny values (every other line runs as written)
TINY = {
    "SIZES": '"--init_filters 4 --roi_size [32,32,32] --num_workers 0 --num_samples 2"',
    "SEARCH_EPOCHS": '"--max_epochs 2 --arch_warmup_epochs 1 --epoch_length 1"',
    "TRAIN_EPOCHS": '"--max_epochs 1 --val_interval 1 --epoch_length 1 --infer_roi_size [32,32,32]"',
}


def walkthrough() -> str:
    text = (REPO / "README.md").read_text()
    assert MARKER in text, "the README lost its walk-through marker"
    block = re.search(r"```bash\n(.*?)```", text[text.index(MARKER):], re.S)
    assert block, "no bash block after the walk-through marker"
    return block.group(1)


def test_walkthrough_defines_the_variables_it_is_tested_with():
    script = walkthrough()
    for name in ("W", *TINY):
        assert re.search(rf"^{name}=", script, re.M), name


@pytest.mark.slow
def test_readme_walkthrough_runs(tmp_path):
    script = walkthrough()
    work = tmp_path / "walkthrough"
    script = re.sub(r"^W=.*$", f"W={work}", script, count=1, flags=re.M)
    for name, value in TINY.items():
        script = re.sub(rf"^{name}=.*$", f"{name}={value}", script, count=1, flags=re.M)
    env = dict(os.environ, OMP_NUM_THREADS="1", TMPDIR=str(tmp_path))
    out = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=900)
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-4000:]
    assert "architecture undecided" in log  # a 1-epoch architecture search is not presented as a finding
    train = work / "fold0" / "train"
    settings = json.loads((train / "settings.json").read_text())
    assert settings["init_filters"] == 4 and settings["num_classes"] == 2
    assert (work / "fold0" / "infer" / "phantom_000" / "phantom_000_seg.nii.gz").is_file()
    assert "Dice" in (work / "fold0" / "eval" / "summary.md").read_text()
    exported = json.loads((work / "vnas_demo" / "configs" / "inference.json").read_text())
    assert exported["init_filters"] == 4
    assert list((work / "vnas_demo_seg").rglob("*.nii.gz"))
    assert not list(train.glob("checkpoint_epoch=*.pt"))  # the identical last-epoch copy of the final one
