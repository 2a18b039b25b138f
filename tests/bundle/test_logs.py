"""The bundles' console log lines start on their own line while ignite's progress bar (tqdm, stderr) is drawn."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import BUNDLES, REPO

PROBE = r"""
import logging, logging.config, sys
from tqdm import tqdm
import vnas_monai.bundle.errors
logging.config.fileConfig(sys.argv[1], disable_existing_loggers=False)
if sys.argv[2] == "1":
    vnas_monai.bundle.errors.install_excepthook()  # the bundles' first initialize entry
bar = tqdm(total=3, file=sys.stderr, desc="Epoch [1/1]")
for i in range(3):
    bar.update(1)
    logging.getLogger("ignite.engine").info("iteration %d done", i)
bar.close()
"""


@pytest.mark.parametrize("bundle", ["vnas_nih", "vnas_msd_lung", "vnas_msd_pancreas"])
def test_log_records_are_not_appended_to_the_progress_bar(bundle):
    conf = BUNDLES / bundle / "logging.conf"
    shown = {}
    for installed in ("0", "1"):
        out = subprocess.run([sys.executable, "-c", PROBE, str(conf), installed], cwd=REPO, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, timeout=120)
        assert out.returncode == 0, out.stdout[-2000:]
        records = [line for line in out.stdout.split("\n") if "iteration" in line]
        assert len(records) == 3, out.stdout
        # what a terminal shows: the text after the last carriage return
        shown[installed] = [line.split("\r")[-1] for line in records]
    assert not all(line.startswith("20") for line in shown["0"])  # MONAI's plain handler: appended to the bar
    assert all(line.startswith("20") for line in shown["1"]), shown["1"]
