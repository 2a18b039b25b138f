"""Experiment tracking beside TensorBoard: MONAI's own ``monai.bundle run ... --tracking mlflow`` (MLFlowHandler on
``train#trainer`` and ``validate#evaluator``, a local SQLite store ``<output_dir>/mlruns.db``) runs on the bundles:
the keys it adds are not taken for typos."""

from __future__ import annotations

import pytest
from monai.bundle import ConfigWorkflow

from tests.conftest import BUNDLES
from vnas_monai.bundle.checks import tracking_keys, unknown_config_keys

TINY = dict(init_filters=4, roi_size=[32, 32, 32], max_epochs=1, epoch_length=1, num_samples=2, num_workers=0,
            val_interval=1, infer_roi_size=[32, 32, 32], phantom_cases=4, num_folds=2, arch="2d", cache_rate=0.0)


def test_tracking_keys_are_known():
    assert {"experiment_name", "run_name", "tracking_uri", "save_execute_config"} <= tracking_keys()
    assert unknown_config_keys({"run_name": "x", "learnig_rate": 0.1}, {"learning_rate"}) == {
        "learnig_rate": "learning_rate"}


def test_train_bundle_with_monai_mlflow_tracking(tmp_path):
    mlflow = pytest.importorskip("mlflow")
    pytest.importorskip("sqlalchemy")
    work = tmp_path / "work"
    workflow = ConfigWorkflow(config_file=str(BUNDLES / "vnas_nih" / "train.json"), workflow_type=None,
                              work_dir=str(work), tracking="mlflow", run_name="fold0-train",
                              experiment_name="vnas_test", **TINY)
    workflow.initialize()
    workflow.run()
    workflow.finalize()
    store = work / "fold0" / "train" / "mlruns.db"
    assert store.is_file()
    client = mlflow.tracking.MlflowClient(f"sqlite:///{store}")
    runs = client.search_runs([client.get_experiment_by_name("vnas_test").experiment_id])
    assert [r.info.run_name for r in runs] == ["fold0-train"]
    assert "train_loss" in runs[0].data.metrics and "val_mean_dice" in runs[0].data.metrics, runs[0].data.metrics
