"""A toy third search space (2 cells x 2 ops), defined only here, through the generic search code: the bilevel
trainer with its Architect and entropy penalty, the architecture logger (arch.json with margins and decision,
history, TensorBoard-free), the probability plot, the architecture figure, the registry, fold aggregation and the
MONAI Label export (its bundle run by MONAI's ``ConfigWorkflow``). Nothing outside this file knows the space."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from monai.data import DataLoader
from torch import nn

from vnas_monai.engine import ArchEntropyPenalty, ArchitectureLogger, VNASSearchTrainer
from vnas_monai.io import atomic_write_text, save_figure
from vnas_monai.spaces import (
    BundleNetwork,
    DifferentiableSpace,
    Encoding,
    RowLayout,
    SearchSpace,
    cell_margins,
    choices_digest,
    decision_of,
    get_space,
    register_space,
)

OPS = ("conv3", "conv1")


class ToyEncoding:
    space = "toy"

    def __init__(self, codes, probabilities=None, meta=None):
        if len(codes) != 2 or any(c not in (0, 1) for c in codes):
            raise ValueError(f"a toy encoding has 2 codes in {{0, 1}}, got {codes}.")
        self.codes, self.probabilities, self.meta = [int(c) for c in codes], probabilities, dict(meta or {})

    @classmethod
    def from_dict(cls, data):
        return cls(data["codes"], data.get("probabilities"))

    @classmethod
    def from_probabilities(cls, probabilities, meta=None):
        return cls([max(range(2), key=row.__getitem__) for row in probabilities["cells"]], probabilities, meta)

    def to_dict(self):
        out = {"space": self.space, "codes": self.codes, **self.meta}
        if self.probabilities is not None:
            out["probabilities"] = self.probabilities
        return out

    def digest(self):
        return choices_digest(self.space, {"codes": self.codes})

    def rows(self):
        return {"cells": [OPS[c] for c in self.codes]}

    def options(self):
        return {"cells": list(OPS)}

    def neighbours(self):
        return [ToyEncoding([1 - c if j == i else c for j, c in enumerate(self.codes)]) for i in range(2)]

    @staticmethod
    def layout():
        return RowLayout({"cells": ["C1", "C2"]}, ["3x3x3", "1x1x1"], [], "0=conv3, 1=conv1")

    def summary(self):
        return "cells [" + " ".join(str(c) for c in self.codes) + "]"

    def margins(self):
        return None if self.probabilities is None else {k: cell_margins(v) for k, v in self.probabilities.items()}

    def decision(self):
        margins = self.margins()
        return None if margins is None else decision_of(margins)

    def save(self, path):
        atomic_write_text(path, json.dumps(self.to_dict()) + "\n")
        return path

    def plot(self, path, title=None):
        from matplotlib.figure import Figure

        fig = Figure(figsize=(2, 1))
        fig.add_subplot(1, 1, 1).bar(range(2), [1 + c for c in self.codes])
        fig.suptitle(title or self.summary(), fontsize=6)
        return save_figure(fig, path)


class ToySupernet(nn.Module):
    def __init__(self, width: int = 4, in_channels: int = 1, out_channels: int = 2):
        super().__init__()
        self.mix = False
        self.alpha = nn.Parameter(torch.zeros(2, 2))
        self.cells = nn.ModuleList(
            nn.ModuleList([nn.Conv3d(in_channels if i == 0 else width, width, 3, padding=1),
                           nn.Conv3d(in_channels if i == 0 else width, width, 1)]) for i in range(2)
        )
        self.head = nn.Conv3d(width, out_channels, 1)

    def forward(self, x):
        for row, ops in zip(F.softmax(self.alpha, -1), self.cells):
            x = F.relu(ops[0](x) if len(ops) == 1 else sum(w * op(x) for w, op in zip(row, ops)))
        return self.head(x)

    def arch_parameters(self):
        return [self.alpha]

    def weight_parameters(self):
        return [p for n, p in self.named_parameters() if n != "alpha"]

    def arch_probabilities(self):
        return {"cells": F.softmax(self.alpha.detach(), -1)}

    def derive(self):
        p = self.arch_probabilities()["cells"]
        return ToyEncoding(p.argmax(-1).tolist(), {"cells": p.tolist()})


def build_toy_network(encoding, width: int = 4, in_channels: int = 1, out_channels: int = 2):
    """The toy space's discrete network: each cell keeps only its chosen op (module names as the supernet's);
    ``encoding`` may be an arch.json path, as an exported bundle's ``network_def`` passes it."""
    if not isinstance(encoding, ToyEncoding):
        from vnas_monai.spaces.aggregate import load_encoding

        encoding = load_encoding(encoding)
    net = ToySupernet(width, in_channels, out_channels)
    for i, code in enumerate(encoding.codes):
        net.cells[i] = nn.ModuleList([net.cells[i][code]])
    with torch.no_grad():
        net.alpha.zero_()
    net.alpha.requires_grad_(False)
    return net


def toy_network_def(architecture):
    """The toy network in a bundle config: the builder, shaped by the bundle's channels, classes and width."""
    return {"_target_": f"{__name__}.build_toy_network", "encoding": architecture, "width": "@init_filters",
            "in_channels": "@in_channels", "out_channels": "@num_classes"}


#: what a MONAI bundle of the toy network needs: every input size a multiple of 4
TOY_BUNDLE = BundleNetwork(title="Toy", network_def=toy_network_def, divisor=4,
                           description="A toy space of two cells, each a 3x3x3 or a 1x1x1 convolution.",
                           references=("the vnas_monai test suite",), notes=("two cells and a 1x1x1 head.",))


def _loader(seed):
    g = torch.Generator().manual_seed(seed)
    data = [{"image": torch.randn(1, 8, 8, 4, generator=g), "label": torch.randint(0, 2, (1, 8, 8, 4), generator=g)}
            for _ in range(4)]
    return DataLoader(data, batch_size=2)


def _register():
    register_space(SearchSpace("toy", encoding=f"{__name__}:ToyEncoding", network=f"{__name__}:build_toy_network",
                               supernet=f"{__name__}:ToySupernet", bundle=f"{__name__}:TOY_BUNDLE"), overwrite=True)
    return get_space("toy")


def _search_trainer(net, max_epochs, **kwargs):
    """The generic bilevel trainer on the toy supernet (weights on one loader, architecture on another)."""
    return VNASSearchTrainer(
        device="cpu", max_epochs=max_epochs, train_data_loader=_loader(0), network=net,
        optimizer=torch.optim.SGD(net.weight_parameters(), lr=0.05),
        loss_function=lambda p, y: F.cross_entropy(p, y[:, 0].long()), arch_data_loader=_loader(1),
        arch_optimizer=torch.optim.Adam(net.arch_parameters(), lr=0.1), arch_warmup_epochs=1, precision="fp32",
        **kwargs,
    )


def test_toy_space_through_the_generic_search(tmp_path):
    space = _register()
    torch.manual_seed(0)
    net = space.supernet_class()()
    assert isinstance(net, DifferentiableSpace) and isinstance(net.derive(), Encoding)
    trainer = _search_trainer(net, 4, arch_penalty=ArchEntropyPenalty(0.5, ramp_steps=2))
    logger = ArchitectureLogger(tmp_path)
    logger.attach(trainer)
    trainer.run()
    saved = json.loads((tmp_path / "arch.json").read_text())
    arch = space.from_dict(saved)
    assert arch.codes == net.derive().codes  # the logged architecture is the derived one
    assert set(saved["margins"]) == {"cells"} and saved["decision"]["median_margin"] > 0
    assert len(saved["history"]) == 4 and all(len(h["cells"]) == 2 for h in saved["history"])
    assert (tmp_path / "arch_probabilities.png").stat().st_size > 0
    # the history resumes through the logger's state (validated against the toy layout, not V-NAS's)
    restored = ArchitectureLogger(tmp_path / "again", space="toy")  # no network yet: the registered space's layout
    restored.load_state_dict(logger.state_dict())
    assert restored.history == logger.history
    with pytest.raises(ValueError, match="cells"):
        restored.load_state_dict({"history": [{"epoch": 1, "encoder": [[1.0, 0.0]]}]})
    assert len({n.digest() for n in arch.neighbours()}) == 2
    assert arch.plot(tmp_path / "architecture.png").stat().st_size > 0
    discrete = space.network_builder()(arch)
    assert all(len(ops) == 1 for ops in discrete.cells)
    assert discrete(torch.randn(1, 1, 8, 8, 4)).shape == (1, 2, 8, 8, 4)


def _search_config(seed, output_dir):
    """A search bundle of the toy space: the generic bilevel trainer, its logger and the toy supernet."""
    return {
        "imports": ["$import torch", f"$import {__name__} as toy"],
        "seed": seed,
        "output_dir": str(output_dir),
        "network": {"_target_": f"{__name__}.ToySupernet"},
        "optimizer": {"_target_": "torch.optim.SGD", "params": "$@network.weight_parameters()", "lr": 0.05},
        "arch_optimizer": {"_target_": "torch.optim.Adam", "params": "$@network.arch_parameters()", "lr": 0.1},
        "arch_logger": {"_target_": "vnas_monai.engine.ArchitectureLogger", "output_dir": "@output_dir",
                        "space": "toy"},
        "trainer": {
            "_target_": "vnas_monai.engine.VNASSearchTrainer", "device": "cpu", "max_epochs": 3,
            "train_data_loader": "$toy._loader(@seed)", "arch_data_loader": "$toy._loader(@seed + 100)",
            "network": "@network", "optimizer": "@optimizer", "arch_optimizer": "@arch_optimizer",
            "loss_function": "$lambda p, y: torch.nn.functional.cross_entropy(p, y[:, 0].long())",
            "arch_warmup_epochs": 1, "precision": "fp32", "train_handlers": ["@arch_logger"],
        },
        "initialize": ["$torch.manual_seed(@seed)"],
        "run": ["$@trainer.run()"],
        "finalize": [],
    }


def test_toy_space_through_a_bundle_and_fold_aggregation(tmp_path):
    """Two folds' searches as MONAI bundle configs (``ConfigWorkflow``), then the generic fold aggregation."""
    from monai.bundle import ConfigWorkflow

    from vnas_monai.spaces.aggregate import aggregate, load_encoding

    _register()
    files = []
    for fold in (0, 1):
        config = tmp_path / f"search{fold}.json"
        config.write_text(json.dumps(_search_config(fold, tmp_path / f"fold{fold}")))
        workflow = ConfigWorkflow(config_file=str(config), workflow_type=None)
        workflow.initialize()
        workflow.run()
        workflow.finalize()
        files.append(tmp_path / f"fold{fold}" / "arch.json")
    folds = [load_encoding(f) for f in files]
    assert all(isinstance(f, ToyEncoding) for f in folds)
    final = aggregate(files)
    mean = [[(a + b) / 2 for a, b in zip(r0, r1)] for r0, r1 in zip(*(f.probabilities["cells"] for f in folds))]
    assert isinstance(final, ToyEncoding) and final.meta["aggregated_from"] == [str(f) for f in files]
    assert [v for row in final.probabilities["cells"] for v in row] == pytest.approx([v for row in mean for v in row])
    assert final.codes == [max(range(2), key=row.__getitem__) for row in mean]
    with pytest.raises(ValueError, match="different search spaces"):
        from vnas_monai.spaces.vnas import Architecture

        aggregate([files[0], Architecture.preset("nih")])


def test_toy_space_exports_a_monai_label_bundle(tmp_path):
    """The toy's derived encoding and trained weights through the generic MONAI Label export; the exported
    inference config builds the toy network with those weights and runs through MONAI's ``ConfigWorkflow``."""
    import nibabel as nib
    import numpy as np
    from monai.bundle import ConfigParser, ConfigWorkflow

    from vnas_monai.bundle import save_run_settings
    from vnas_monai.export import export_bundle
    from vnas_monai.spaces.aggregate import load_encoding

    space = _register()
    torch.manual_seed(0)
    supernet = ToySupernet()
    _search_trainer(supernet, 2).run()
    arch = supernet.derive()
    run = tmp_path / "fold0" / "train"  # a training run's folder: model.pt and settings.json
    net = space.network_builder()(arch)
    optimizer = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.05)
    for batch in _loader(2):
        optimizer.zero_grad()
        F.cross_entropy(net(batch["image"]), batch["label"][:, 0].long()).backward()
        optimizer.step()
    save_run_settings(run, architecture=arch, in_channels=1, num_classes=2, init_filters=4,
                      class_names=["background", "blob"], intensity_clip=None, spacing=None, roi_size=[8, 8, 4],
                      infer_roi_size=[8, 8, 4], flip_axes=[0])
    torch.save(net.state_dict(), run / "model.pt")
    arch_file = arch.save(run.parent / "search" / "arch.json")
    with pytest.raises(ValueError, match=r"multiple of 4 \(the input of the 'toy' space's network\)"):
        export_bundle(str(tmp_path / "bad"), str(run), arch=str(arch_file), bundle_dir=None, roi_size=[6, 8, 4])
    other = {"space": "toy", "codes": [1 - arch.codes[0], arch.codes[1]]}  # the other op in the first cell
    with pytest.raises(ValueError, match="does not fit"):
        export_bundle(str(tmp_path / "bad"), str(run), arch=other, bundle_dir=None)
    assert not (tmp_path / "bad").exists()

    out = Path(export_bundle(str(tmp_path / "toy_bundle"), str(run), arch=str(arch_file), bundle_dir=None))
    assert load_encoding(out / "models" / "arch.json").codes == arch.codes
    inference = json.loads((out / "configs" / "inference.json").read_text())
    assert inference["network_def"] == toy_network_def("@arch_file") and inference["_desc_"].startswith("Toy ")
    assert inference["roi_size"] == [8, 8, 4] and "VNASNet" not in json.dumps(inference)
    meta = json.loads((out / "configs" / "metadata.json").read_text())
    assert meta["name"] == "Toy segmentation" and meta["references"] == ["the vnas_monai test suite"]
    assert f"Architecture (0=conv3, 1=conv1): {arch.summary()}." in meta["description"]
    assert meta["network_data_format"]["outputs"]["pred"]["channel_def"] == {"0": "background", "1": "blob"}

    # the exported network_def with models/model.pt computes what the trained network computes
    parser = ConfigParser()
    parser.read_config(str(out / "configs" / "inference.json"))
    parser["bundle_root"] = str(out)
    exported = parser.get_parsed_content("network_def")
    exported.load_state_dict(torch.load(out / "models" / "model.pt", weights_only=True))
    x = torch.randn(1, 1, 8, 8, 4)
    with torch.no_grad():
        torch.testing.assert_close(exported.eval()(x), net.eval()(x))

    # the whole inference bundle on a tiny image: load, sliding window, invert, save
    image = tmp_path / "case.nii.gz"
    nib.save(nib.Nifti1Image(np.random.default_rng(0).random((12, 8, 6), dtype=np.float32), np.eye(4)), str(image))
    workflow = ConfigWorkflow(config_file=str(out / "configs" / "inference.json"), logging_file=False,
                              workflow_type=None, bundle_root=str(out), images=str(image),
                              output_dir=str(tmp_path / "seg"), device="cpu")
    workflow.initialize()
    workflow.run()
    workflow.finalize()
    seg = nib.load(str(tmp_path / "seg" / "case_seg.nii.gz"))
    assert seg.shape == (12, 8, 6)
    assert set(np.unique(np.asarray(seg.dataobj)).tolist()) <= {0, 1}
