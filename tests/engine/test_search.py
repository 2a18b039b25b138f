"""Tests of the V-NAS search trainer (paper Alg. 1): optimizer separation, warm-up, Mix mode, AMP, data cycling."""

from __future__ import annotations

import pickle

import pytest
import torch
import torch.nn.functional as F
from ignite.engine import Events
from monai.data import DataLoader
from torch import nn

from vnas_monai.engine import (
    ARCH_LOSS,
    CyclicLoader,
    PolyLR,
    VNASSearchTrainer,
    cycle_loader,
    epochs_for_iterations,
    num_iterations,
    select_device,
)
from vnas_monai.engine.search import unwrap_network
from vnas_monai.spaces.vnas.encoding import Architecture


class TinySupernet(nn.Module):
    """Stand-in with the ``VNASSupernet`` API: one encoder and one decoder layer mixing 2D/3D/P3D convolutions.

    Every row of alpha (16 x 3) and beta (5 x 3) gets a different weight in the mixture, so all of them receive
    gradients, as in the real supernet where each row drives its own cell.
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 2, width: int = 4, mix: bool = False) -> None:
        super().__init__()
        self.mix = mix
        self.alpha = nn.Parameter(1e-3 * torch.randn(16, 3), requires_grad=not mix)
        self.beta = nn.Parameter(1e-3 * torch.randn(5, 3), requires_grad=not mix)
        if mix:
            with torch.no_grad():
                self.alpha.zero_()
                self.beta.zero_()
        self.register_buffer("enc_rows", torch.arange(1.0, 17.0) / 136.0)
        self.register_buffer("dec_rows", torch.arange(1.0, 6.0) / 15.0)
        self.enc = nn.ModuleList(self._candidates(in_channels, width))
        self.norm = nn.BatchNorm3d(width)
        self.dec = nn.ModuleList(self._candidates(width, out_channels))

    @staticmethod
    def _candidates(cin: int, cout: int) -> list[nn.Module]:
        return [
            nn.Conv3d(cin, cout, (3, 3, 1), padding=(1, 1, 0)),
            nn.Conv3d(cin, cout, 3, padding=1),
            nn.Sequential(
                nn.Conv3d(cin, cout, (3, 3, 1), padding=(1, 1, 0)), nn.Conv3d(cout, cout, (1, 1, 3), padding=(0, 0, 1))
            ),
        ]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = (F.softmax(self.alpha, -1) * self.enc_rows[:, None]).sum(0)
        b = (F.softmax(self.beta, -1) * self.dec_rows[:, None]).sum(0)
        h = F.relu(self.norm(sum(a[i] * op(x) for i, op in enumerate(self.enc))))
        return sum(b[i] * op(h) for i, op in enumerate(self.dec))

    def arch_parameters(self) -> list[nn.Parameter]:
        return [self.alpha, self.beta]

    def weight_parameters(self) -> list[nn.Parameter]:
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]

    def arch_probabilities(self) -> dict[str, torch.Tensor]:
        return {"encoder": F.softmax(self.alpha.detach(), -1), "decoder": F.softmax(self.beta.detach(), -1)}

    def derive(self) -> Architecture:
        p = self.arch_probabilities()
        return Architecture(
            p["encoder"].argmax(-1).tolist(),
            p["decoder"].argmax(-1).tolist(),
            {k: v.tolist() for k, v in p.items()},
        )


def ce_loss(pred: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(pred, label[:, 0].long())


def make_loader(n: int = 4, batch_size: int = 2, seed: int = 0, shape=(16, 16, 8)) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    data = [
        {"image": torch.randn(1, *shape, generator=g), "label": torch.randint(0, 2, (1, *shape), generator=g)}
        for _ in range(n)
    ]
    return DataLoader(data, batch_size=batch_size, shuffle=False, num_workers=0)


def make_trainer(
    net: nn.Module | None = None,
    max_epochs: int = 2,
    warmup: int = 0,
    arch: bool = True,
    handlers: list | None = None,
    seed: int = 0,
    device: str = "cpu",
    precision: str = "fp32",
    **kwargs,
) -> VNASSearchTrainer:
    """A search on 2 + 2 batches of 16x16x8 random volumes with the paper's optimizers (SGD + Adam)."""
    torch.manual_seed(seed)
    net = TinySupernet() if net is None else net
    net = net.to(device)
    opt = torch.optim.SGD(net.weight_parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    arch_opt = torch.optim.Adam(net.arch_parameters(), lr=0.05, weight_decay=1e-3) if arch else None
    return VNASSearchTrainer(
        device=device,
        max_epochs=max_epochs,
        train_data_loader=make_loader(seed=seed),
        network=net,
        optimizer=opt,
        loss_function=ce_loss,
        arch_data_loader=make_loader(seed=seed + 1) if arch else None,
        arch_optimizer=arch_opt,
        arch_warmup_epochs=warmup,
        train_handlers=handlers,
        precision=precision,
        **kwargs,
    )


def _snapshot(params) -> list[torch.Tensor]:
    return [p.detach().clone() for p in params]


def _changed(before, params) -> bool:
    return any(not torch.equal(b, p.detach()) for b, p in zip(before, params))


# ----------------------------------------------------------------------------- helpers
def test_select_device():
    auto = select_device("auto")
    assert auto.type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert select_device(None) == auto
    assert select_device("cpu") == torch.device("cpu")
    assert select_device(torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(ValueError, match="not valid"):
        select_device("gpu please")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            select_device("cuda:0")


class _Sampler:
    def __init__(self):
        self.epochs: list[int] = []

    def set_epoch(self, e):
        self.epochs.append(e)


class _Loader(list):
    """A re-iterable with a ``DistributedSampler``-like sampler."""

    def __init__(self, items):
        super().__init__(items)
        self.sampler = _Sampler()


def test_cycle_loader_cycles_reshuffles_and_pickles():
    loader = _Loader([1, 2, 3])
    it = cycle_loader(loader)
    assert [next(it) for _ in range(7)] == [1, 2, 3, 1, 2, 3, 1]
    assert loader.sampler.epochs == [0, 1, 2] and it.epoch == 3
    clone = pickle.loads(pickle.dumps(it))  # the live iterator stays out of the pickle
    assert clone._iterator is None and clone.epoch == 3 and next(clone) == 1
    with pytest.raises(ValueError, match="empty"):
        next(CyclicLoader([]))


def test_schedule_helpers():
    loader = make_loader(n=6, batch_size=2)  # 3 iterations per epoch
    assert num_iterations(5, loader) == 15 and num_iterations(5, epoch_length=7) == 35
    assert epochs_for_iterations(40000, loader) == 13334 and epochs_for_iterations(1, loader) == 1
    with pytest.raises(ValueError, match="epoch_length"):
        num_iterations(5)
    with pytest.raises(ValueError, match="max_epochs"):
        num_iterations(0, loader)
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.05)
    with pytest.raises(ValueError, match="total_iters"):
        PolyLR(opt, 0)


# ----------------------------------------------------------------------------- Alg. 1 invariants
def test_optimizers_never_touch_each_others_parameters():
    trainer = make_trainer(max_epochs=2, warmup=0)
    net = trainer.network
    weights, arch = net.weight_parameters(), net.arch_parameters()
    log: list[tuple[str, bool, bool]] = []
    grads_after_weight_step: list[torch.Tensor] = []

    def spy(opt, kind):
        step = opt.step

        def wrapped(*a, **k):
            w0, a0 = _snapshot(weights), _snapshot(arch)
            if kind == "arch":  # the S_val backward must leave the weights' gradients as the S_train step left them
                assert all(torch.equal(g, p.grad) for g, p in zip(grads_after_weight_step, weights))
                assert all(p.grad is not None for p in arch)
            out = step(*a, **k)
            log.append((kind, _changed(w0, weights), _changed(a0, arch)))
            if kind == "weight":
                assert all(p.grad is None for p in arch), "the S_train gradient of alpha/beta must be discarded"
                grads_after_weight_step[:] = [p.grad.clone() for p in weights]
            return out

        opt.step = wrapped

    spy(trainer.optimizer, "weight")
    spy(trainer.arch_optimizer, "arch")
    trainer.run()
    assert [k for k, _, _ in log] == ["weight", "arch"] * 4  # Alg. 1: alternate, weights first
    assert all(w and not a for k, w, a in log if k == "weight")
    assert all(a and not w for k, w, a in log if k == "arch")
    assert trainer.state.arch_iteration == 4 and trainer.state.arch_epoch == 2


def test_no_architecture_step_before_warmup():
    trainer = make_trainer(max_epochs=3, warmup=2)
    arch = trainer.network.arch_parameters()
    moved: dict[int, list[bool]] = {}
    snap: list = []
    losses: list = []
    trainer.add_event_handler(Events.ITERATION_STARTED, lambda e: snap.__setitem__(slice(None), _snapshot(arch)))

    def check(engine):
        moved.setdefault(engine.state.epoch, []).append(_changed(snap, arch))
        losses.append(engine.state.output[0][ARCH_LOSS])  # decollated output: one dict per sample

    trainer.add_event_handler(Events.ITERATION_COMPLETED, check)
    trainer.run()
    assert moved == {1: [False, False], 2: [False, False], 3: [True, True]}
    assert losses[:4] == [None] * 4 and all(isinstance(v, float) and v > 0 for v in losses[4:])
    assert trainer.state.arch_iteration == 2
    assert not trainer.arch_step_enabled(2) and trainer.arch_step_enabled(3)


@pytest.mark.parametrize("with_arch_optimizer", [False, True])
def test_mix_mode_never_steps_alpha_beta(with_arch_optimizer):
    net = TinySupernet(mix=True)
    before = _snapshot(net.arch_parameters())
    w0 = _snapshot(net.weight_parameters())
    trainer = make_trainer(net=net, max_epochs=2, warmup=0, arch=with_arch_optimizer)
    assert trainer.mix
    trainer.run()
    assert not _changed(before, net.arch_parameters())
    assert _changed(w0, net.weight_parameters())
    assert trainer.state.arch_iteration == 0


def test_wrong_parameters_are_refused():
    net = TinySupernet()
    sgd_all = torch.optim.SGD(net.parameters(), lr=0.1)
    sgd_w = torch.optim.SGD(net.weight_parameters(), lr=0.1)
    adam_all = torch.optim.Adam(net.parameters())
    adam_a = torch.optim.Adam(net.arch_parameters())
    common = dict(device="cpu", max_epochs=1, train_data_loader=make_loader(), network=net, loss_function=ce_loss)
    with pytest.raises(ValueError, match="weight optimizer holds architecture"):
        VNASSearchTrainer(optimizer=sgd_all, arch_optimizer=adam_a, arch_data_loader=make_loader(), **common)
    with pytest.raises(ValueError, match="architecture optimizer holds parameters"):
        VNASSearchTrainer(optimizer=sgd_w, arch_optimizer=adam_all, arch_data_loader=make_loader(), **common)
    with pytest.raises(ValueError, match="needs arch_data_loader"):
        VNASSearchTrainer(optimizer=sgd_w, arch_optimizer=adam_a, **common)
    with pytest.raises(ValueError, match="arch_warmup_epochs"):
        VNASSearchTrainer(optimizer=sgd_w, arch_optimizer=adam_a, arch_data_loader=make_loader(), arch_warmup_epochs=-1,
                          **common)
    plain = nn.Conv3d(1, 2, 1)
    with pytest.raises(ValueError, match="arch_parameters"):
        VNASSearchTrainer(**{**common, "network": plain}, optimizer=torch.optim.SGD(plain.parameters(), lr=0.1))


@pytest.mark.parametrize("precision, autocast", [("fp32", False), ("bf16", True)])
def test_precision_on_cpu(precision, autocast):
    trainer = make_trainer(max_epochs=1, warmup=0, precision=precision)
    assert trainer.precision.autocast_enabled is autocast
    assert not trainer.scaler.is_enabled() and not trainer.arch_scaler.is_enabled()  # bf16 needs no loss scaling
    alpha0 = _snapshot(trainer.network.arch_parameters())
    trainer.run()
    out = trainer.state.output[0]
    assert torch.isfinite(torch.tensor(out["loss"])) and torch.isfinite(torch.tensor(out[ARCH_LOSS]))
    assert _changed(alpha0, trainer.network.arch_parameters())
    assert out["pred"].dtype == torch.float32  # the loss and handlers see float32 logits in every precision
    assert all(p.dtype == torch.float32 for p in trainer.network.parameters())  # autocast, not a bf16 model


def test_loss_scaling_path_with_autograd_grad():
    """The fp16 path (GradScaler on both steps, alpha/beta gradients set from autograd.grad) on CPU scalers."""
    trainer = make_trainer(max_epochs=1, warmup=0)
    trainer.scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    trainer.arch_scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    net = trainer.network
    a0, w0 = _snapshot(net.arch_parameters()), _snapshot(net.weight_parameters())
    trainer.run()
    assert _changed(a0, net.arch_parameters()) and _changed(w0, net.weight_parameters())
    assert trainer.arch_scaler.get_scale() == 1024.0  # finite gradients: no step skipped, scale kept
    # unscaled before the Adam step: the first Adam step moves each logit by about lr, whatever the loss scale
    step = (net.alpha.detach() - a0[0]).abs().max().item()
    assert 0.01 < step < 0.2


def test_trainer_state_dict_resumes_counters():
    trainer = make_trainer(max_epochs=2, warmup=1)
    trainer.run()
    sd = trainer.state_dict()
    assert sd["arch_iteration"] == 2 and sd["iteration"] == 4 and sd["arch_epoch"] == 1
    fresh = make_trainer(max_epochs=2, warmup=1)
    fresh.load_state_dict(sd)
    assert (fresh.state.epoch, fresh.state.arch_iteration, fresh.state.arch_epoch) == (2, 2, 1)
    fresh.load_state_dict({"iteration": 2, "epoch_length": 2, "max_epochs": 2})  # a plain trainer's state
    assert fresh.state.arch_iteration == 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", ["fp16", "bf16"])
def test_cuda_amp_search(dtype):
    trainer = make_trainer(max_epochs=1, warmup=0, device="cuda", precision=dtype)
    assert trainer.precision.autocast_enabled and trainer.scaler.is_enabled() is (dtype == "fp16")
    net = trainer.network
    a0, w0 = _snapshot(net.arch_parameters()), _snapshot(net.weight_parameters())
    trainer.run()
    assert _changed(a0, net.arch_parameters()) and _changed(w0, net.weight_parameters())
    assert all(p.dtype == torch.float32 for p in net.parameters())  # autocast, not a half-precision model
    assert torch.isfinite(torch.tensor(trainer.state.output[0][ARCH_LOSS]))


def test_single_process_ddp_search(tmp_path):
    """DDP path of the architecture step (no_sync + hand-averaged alpha/beta gradients) on a 1-rank gloo group."""
    dist = torch.distributed
    if not dist.is_available() or dist.is_initialized():
        pytest.skip("torch.distributed unavailable or already initialised")
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        net = TinySupernet()
        a0 = _snapshot(net.arch_parameters())
        opt = torch.optim.SGD(net.weight_parameters(), lr=0.05)
        arch_opt = torch.optim.Adam(net.arch_parameters(), lr=0.05)
        trainer = VNASSearchTrainer(
            "cpu", 1, make_loader(), nn.parallel.DistributedDataParallel(net), opt, ce_loss,
            arch_data_loader=make_loader(seed=1), arch_optimizer=arch_opt,
        )
        assert trainer.supernet is net
        trainer.run()
        assert trainer.state.arch_iteration == 2 and _changed(a0, net.arch_parameters())
    finally:
        dist.destroy_process_group()


def test_unwrap_network():
    net = TinySupernet()
    assert unwrap_network(nn.DataParallel(net)) is net
    assert unwrap_network(net) is net


# ----------------------------------------------------------------------------- the real supernet
def _real_supernet(**kwargs):
    try:
        from vnas_monai.spaces.vnas import VNASSupernet
    except ImportError:
        pytest.skip("vnas_monai.spaces.vnas.VNASSupernet is not available yet")
    return VNASSupernet(spatial_dims=3, in_channels=1, out_channels=2, init_filters=4, **kwargs)


def test_search_step_with_real_supernet():
    """One Alg. 1 iteration through ``VNASSupernet`` (slow on CPU: smallest legal patch, batch 2 for BatchNorm)."""
    torch.manual_seed(0)
    net = _real_supernet()
    a0, w0 = _snapshot(net.arch_parameters()), _snapshot(net.weight_parameters())
    opt = torch.optim.SGD(net.weight_parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    arch_opt = torch.optim.Adam(net.arch_parameters(), lr=3e-4, weight_decay=1e-3)
    trainer = VNASSearchTrainer(
        device="cpu", max_epochs=1, train_data_loader=make_loader(n=2, batch_size=2, shape=(32, 32, 32)),
        network=net, optimizer=opt, loss_function=ce_loss, arch_warmup_epochs=0, arch_optimizer=arch_opt,
        arch_data_loader=make_loader(n=2, batch_size=2, seed=1, shape=(32, 32, 32)),
    )
    trainer.run()
    assert _changed(w0, net.weight_parameters()) and _changed(a0, net.arch_parameters())
    assert trainer.state.arch_iteration == 1
    arch = net.derive()
    assert isinstance(arch, Architecture) and len(arch.codes) == 21


def test_real_supernet_mix_and_wrong_optimizer():
    """The real supernet's Mix flag disables the architecture step; all-parameter SGD is refused."""
    net = _real_supernet(mix=True)
    opt = torch.optim.SGD(net.weight_parameters(), lr=0.05)
    trainer = VNASSearchTrainer("cpu", 1, make_loader(), net, opt, ce_loss)  # Mix: no S_val loader needed
    assert trainer.mix and not trainer.arch_step_enabled(100)
    with pytest.raises(ValueError, match="weight optimizer holds architecture"):
        VNASSearchTrainer("cpu", 1, make_loader(), net, torch.optim.SGD(net.parameters(), lr=0.1), ce_loss)
