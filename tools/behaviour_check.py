"""Is the tree's V-NAS behaviour that of an earlier commit? (issue 15: the redesign must not change results.)

Runs a short search and a short retraining on the embedded phantoms with the same seed, fp32, one thread, once with
the code of ``--ref`` (extracted with ``git archive``) and once with the working tree, each in its own process, and
compares what they wrote: the architecture and probabilities of ``arch.json``, and every tensor of the search's
final checkpoint (weights, alpha/beta) and of the retrained ``model.pt``. Exits 1 at the first difference::

    python tools/behaviour_check.py --ref fe7bfb1        # the commit before the redesign of issue 15
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
#: keys both the old and the new bundles take; small enough for a CPU minute, long enough to move alpha/beta
SEARCH_ARGS = ["--max_epochs", "3", "--arch_warmup_epochs", "1", "--epoch_length", "2", "--init_filters", "4",
               "--roi_size", "[32,32,32]", "--num_workers", "0", "--precision", "fp32", "--seed", "0"]
TRAIN_ARGS = ["--max_epochs", "2", "--epoch_length", "2", "--init_filters", "4", "--roi_size", "[32,32,32]",
              "--num_workers", "0", "--precision", "fp32", "--seed", "0", "--val_interval", "100"]


def _extract(ref: str, into: Path) -> Path:
    """The tree of ``ref`` under ``into`` (its tracked files only)."""
    archive = into / "ref.tar"
    subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", "-o", str(archive), ref], check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into / "tree", filter="data")
    return into / "tree"


def _run(tree: Path, work: Path) -> None:
    """Search then retrain with the bundles of ``tree``, its package first on the path."""
    env = dict(os.environ, PYTHONPATH=str(tree), OMP_NUM_THREADS="1", CUBLAS_WORKSPACE_CONFIG=":4096:8")
    stages = [["search", "--config_file", "bundles/vnas_nih/search.json", *SEARCH_ARGS],
              ["--config_file", "bundles/vnas_nih/train.json", *TRAIN_ARGS]]
    for args in stages:
        cmd = [sys.executable, "-m", "monai.bundle", "run", *args, "--work_dir", str(work)]
        out = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
        if out.returncode:
            raise SystemExit(f"{' '.join(cmd)} failed in {tree}:\n{out.stderr[-3000:]}")


def _arch(path: Path) -> dict:
    data = json.loads(path.read_text())
    return {k: data[k] for k in ("encoder", "decoder", "probabilities") if k in data}


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint we write, flattened by key path (weights_only loads all of them)."""
    obj = torch.load(path, map_location="cpu", weights_only=True)
    out: dict[str, torch.Tensor] = {}

    def walk(x, prefix):
        if isinstance(x, torch.Tensor):
            out[prefix] = x
        elif isinstance(x, dict):
            for k, v in x.items():
                walk(v, f"{prefix}.{k}" if prefix else str(k))

    walk(obj, "")
    return out


def compare(old: Path, new: Path) -> list[str]:
    """Differences between two work_dirs' search and retraining outputs (empty: bit-identical)."""
    diffs = []
    a, b = _arch(old / "fold0/search/arch.json"), _arch(new / "fold0/search/arch.json")
    if a != b:
        diffs.append(f"arch.json differs: {a} vs {b}")
    for rel in ("fold0/search/checkpoint_final.pt", "fold0/train/model.pt"):
        ta, tb = _tensors(old / rel), _tensors(new / rel)
        common = sorted(set(ta) & set(tb))
        if not common:
            diffs.append(f"{rel}: no tensor in common")
        for key in common:
            if ta[key].shape != tb[key].shape or not torch.equal(ta[key], tb[key]):
                diffs.append(f"{rel}: {key} differs")
        print(f"{rel}: {len(common)} tensors compared ({len(ta)} old, {len(tb)} new)")
    return diffs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ref", default="fe7bfb1", help="the commit to compare with (default: before issue 15)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        old_tree = _extract(args.ref, tmp)
        _run(old_tree, tmp / "old")
        _run(REPO, tmp / "new")
        diffs = compare(tmp / "old", tmp / "new")
    if diffs:
        print("\n".join(diffs[:20]) + f"\n{len(diffs)} difference(s) against {args.ref}")
        return 1
    print(f"bit-identical to {args.ref}: arch.json, search checkpoint and retrained weights")
    return 0


if __name__ == "__main__":
    sys.exit(main())
