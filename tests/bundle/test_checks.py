"""Misspelt configuration keys are refused, naming the key and the closest known one (``vnas_monai.bundle.checks``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from monai.bundle import ConfigParser, ConfigWorkflow

from tests.bundles.test_search_bundle import error_chain
from tests.conftest import BUNDLES, REPO
from vnas_monai.bundle.checks import (
    ConfigKeyError,
    check_config_keys,
    find_config_workflow,
    known_config_keys,
    unknown_config_keys,
)

BUNDLE = BUNDLES / "vnas_nih"
SEARCH = str(BUNDLE / "search.json")


def test_known_keys_are_those_of_the_bundle_configs():
    keys = known_config_keys(BUNDLE)
    assert {"learning_rate", "arch_learning_rate", "network_def", "train", "search", "_meta_"} <= keys
    assert {"multi_gpu_backend", "sync_bn"} <= keys  # from the multi_gpu_search.json overlay
    assert "learnig_rate" not in keys


def test_unknown_keys_get_the_closest_suggestion():
    known = {"learning_rate", "arch_learning_rate", "max_epochs"}
    config = {"learnig_rate": 1, "max_epoch": 2, "zzz_qqq": 3, "learning_rate": 4}
    assert unknown_config_keys(config, known) == {"learnig_rate": "learning_rate", "max_epoch": "max_epochs",
                                                  "zzz_qqq": None}
    assert unknown_config_keys({**config, "extra_keys": ["learnig_rate", "max_epoch", "zzz_qqq"]},
                               known | {"extra_keys"}) == {}


def test_check_config_keys_on_a_parser(tmp_path):
    parser = ConfigParser()
    parser.read_config(SEARCH)
    assert check_config_keys(parser, bundle_dir=BUNDLE)
    parser.update({"arch_lerning_rate": 0.1})
    with pytest.raises(ConfigKeyError) as info:
        check_config_keys(parser, bundle_dir=BUNDLE)
    message = str(info.value)
    assert "'arch_lerning_rate': did you mean 'arch_learning_rate'?" in message and "extra_keys" in message
    assert not check_config_keys(parser, bundle_dir=BUNDLE, enabled=False)


def test_no_workflow_on_the_stack_skips_with_a_warning(caplog):
    assert find_config_workflow() is None
    assert check_config_keys() is False
    assert "not checked" in caplog.text


def _workflow(tmp_path, config_file=SEARCH, **overrides) -> ConfigWorkflow:
    out = tmp_path / "search"
    return ConfigWorkflow(config_file=config_file, workflow_type=None, run_id="search", work_dir=str(tmp_path),
                          output_dir=str(out), device="cpu", **overrides)


def test_misspelt_override_stops_the_bundle_in_initialize(tmp_path):
    workflow = _workflow(tmp_path, learnig_rate=0.1)
    with pytest.raises(RuntimeError) as info:  # MONAI wraps errors of "$" expressions
        workflow.initialize()
    assert isinstance(info.value.__cause__, ConfigKeyError)
    assert "'learnig_rate': did you mean 'learning_rate'?" in error_chain(info.value)
    assert not (tmp_path / "search").exists(), "the run wrote outputs before failing"


def test_misspelt_key_in_a_user_overlay_file(tmp_path):
    overlay = tmp_path / "my_overlay.json"
    overlay.write_text(json.dumps({"arch_warmup_epoch": 5}))
    workflow = _workflow(tmp_path, config_file=[SEARCH, str(overlay)])
    with pytest.raises(RuntimeError) as info:
        workflow.initialize()
    assert "'arch_warmup_epoch': did you mean 'arch_warmup_epochs'?" in error_chain(info.value)


def test_declared_extra_keys_and_check_keys_false_are_accepted(tmp_path):
    _workflow(tmp_path, my_note="x", extra_keys=["my_note"]).initialize()
    _workflow(tmp_path, learnig_rate=0.1, check_keys=False).initialize()


@pytest.mark.slow
def test_misspelt_key_on_the_monai_bundle_command_line(tmp_path):
    cmd = [sys.executable, "-m", "monai.bundle", "run", "search", "--config_file", SEARCH,
           "--output_dir", str(tmp_path / "search"), "--work_dir", str(tmp_path), "--max_epoch", "3"]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert done.returncode != 0
    assert "'max_epoch': did you mean 'max_epochs'?" in done.stderr, done.stderr[-3000:]
    assert not (tmp_path / "search").exists()
