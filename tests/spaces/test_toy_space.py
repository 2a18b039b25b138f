"""A toy third search space (2 cells x 2 ops), defined only here, through the generic search code: the bilevel
trainer with its Architect and entropy penalty, the architecture logger (arch.json with margins and decision,
history, TensorBoard-free), the probability plot, and the registry. Nothing outside this file knows the space."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from monai.data import DataLoader
from torch import nn

from vnas_monai.engine import ArchEntropyPenalty, ArchitectureLogger, VNASSearchTrainer
from vnas_monai.io import atomic_write_text
from vnas_monai.spaces import (
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

    def to_dict(self):
        out = {"codes": self.codes, **self.meta}
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


class ToySupernet(nn.Module):
    def __init__(self, width: int = 4):
        super().__init__()
        self.mix = False
        self.alpha = nn.Parameter(torch.zeros(2, 2))
        self.cells = nn.ModuleList(
            nn.ModuleList([nn.Conv3d(1 if i == 0 else width, width, 3, padding=1),
                           nn.Conv3d(1 if i == 0 else width, width, 1)]) for i in range(2)
        )
        self.head = nn.Conv3d(width, 2, 1)

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


def build_toy_network(encoding, width: int = 4):
    """The toy space's discrete network: each cell keeps only its chosen op (module names as the supernet's)."""
    net = ToySupernet(width)
    for i, code in enumerate(encoding.codes):
        net.cells[i] = nn.ModuleList([net.cells[i][code]])
    with torch.no_grad():
        net.alpha.zero_()
    net.alpha.requires_grad_(False)
    return net


def _loader(seed):
    g = torch.Generator().manual_seed(seed)
    data = [{"image": torch.randn(1, 8, 8, 4, generator=g), "label": torch.randint(0, 2, (1, 8, 8, 4), generator=g)}
            for _ in range(4)]
    return DataLoader(data, batch_size=2)


def test_toy_space_through_the_generic_search(tmp_path):
    register_space(SearchSpace("toy", encoding=f"{__name__}:ToyEncoding", network=f"{__name__}:build_toy_network",
                               supernet=f"{__name__}:ToySupernet"), overwrite=True)
    space = get_space("toy")
    torch.manual_seed(0)
    net = space.supernet_class()()
    assert isinstance(net, DifferentiableSpace) and isinstance(net.derive(), Encoding)
    trainer = VNASSearchTrainer(
        device="cpu", max_epochs=4, train_data_loader=_loader(0), network=net,
        optimizer=torch.optim.SGD(net.weight_parameters(), lr=0.05),
        loss_function=lambda p, y: F.cross_entropy(p, y[:, 0].long()), arch_data_loader=_loader(1),
        arch_optimizer=torch.optim.Adam(net.arch_parameters(), lr=0.1), arch_warmup_epochs=1, precision="fp32",
        arch_penalty=ArchEntropyPenalty(0.5, ramp_steps=2),
    )
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
    restored = ArchitectureLogger(tmp_path / "again", network=net)
    restored.load_state_dict(logger.state_dict())
    assert restored.history == logger.history
    with pytest.raises(ValueError, match="cells"):
        restored.load_state_dict({"history": [{"epoch": 1, "encoder": [[1.0, 0.0]]}]})
    assert len({n.digest() for n in arch.neighbours()}) == 2
    discrete = space.network_builder()(arch)
    assert all(len(ops) == 1 for ops in discrete.cells)
    assert discrete(torch.randn(1, 1, 8, 8, 4)).shape == (1, 2, 8, 8, 4)
