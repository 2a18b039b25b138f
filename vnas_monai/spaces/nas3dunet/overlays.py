"""The torchrun overlays of the NAS-3D-U-Net bundles (``bundles/nas3dunet_brats/multi_gpu_{search,train}.json``),
as the V-NAS bundles': ``torchrun --nproc_per_node N -m monai.bundle run search --config_file
"['search.json', 'multi_gpu_search.json']"`` runs the search of Wang, BraTS 2019 (Table 2) with the supernet in
``DistributedDataParallel`` (the architecture's gradients all-reduced by the engine's ``Architect``); the
stop rule derives from the unwrapped supernet, and rank 0 alone writes the genotype, the figures and the settings.
"""

from __future__ import annotations

from .bundles import P, search_config, train_config

__all__ = ["multi_gpu_search", "multi_gpu_train"]

_DDP_INIT = ["$vnas_monai.bundle.checks.check_config_keys(enabled=@check_keys)",
             "$torch.distributed.is_initialized() or torch.distributed.init_process_group(backend=@multi_gpu_backend)",
             "$torch.cuda.set_device(@run_device) if torch.cuda.is_available() else None",
             "$monai.utils.set_determinism(seed=@seed)"]
_DDP = {"multi_gpu_backend": "$'nccl' if torch.cuda.is_available() else 'gloo'",
        "rank": "$torch.distributed.get_rank()",
        "run_device": "$torch.device('cuda:' + os.environ.get('LOCAL_RANK', '0')) if torch.cuda.is_available() "
                      "else torch.device('cpu')"}
_DDP_END = {"finalize": ["$torch.distributed.is_initialized() and torch.distributed.destroy_process_group()"]}


def _ddp(module_key: str) -> dict:
    return {"_target_": "torch.nn.parallel.DistributedDataParallel", "module": f"@{module_key}",
            "device_ids": "$[@run_device] if @run_device.type == 'cuda' else None", "broadcast_buffers": True}


def multi_gpu_search() -> dict:
    return {**_DDP, "supernet": "$@network_def.to(@run_device)", "network": _ddp("supernet"),
            "optimizer#params": "$@supernet.weight_parameters()",
            "arch_optimizer#params": "$@supernet.arch_parameters()",
            "checkpoint_dict#network": "@supernet", "stop_rule#derive_fn": "$@supernet.derive",
            "train#handlers#0#_disabled_": "$@rank > 0", "initialize": list(_DDP_INIT),
            "search": search_config()["search"][:-1]
            + [f"${P}.finish_search(@stop_rule, @supernet, @output_dir) if @rank == 0 else None"], **_DDP_END}


def multi_gpu_train() -> dict:
    run = train_config()["run"]
    rank0 = ("$@architecture.save", "$vnas_monai.bundle.save_run", "$print")
    return {**_DDP, "model": "$@network_def.to(@run_device)", "network": _ddp("model"),
            "optimizer#params": "$@model.parameters()", "checkpoint_dict#network": "@model",
            "best_saver#save_dict#model": "@model", "final_saver#save_dict#model": "@model",
            "train#handlers#2#_disabled_": "$@rank > 0",
            "validate#sampler": {"_target_": "DistributedSampler", "dataset": "@validate#dataset",
                                 "even_divisible": False, "shuffle": False},
            "validate#dataloader#sampler": "@validate#sampler", "validate#evaluator#network": "@model",
            "validate#evaluator#val_handlers": "$None if @rank > 0 else @validate#handlers",
            "initialize": list(_DDP_INIT),
            "run": [f"{r} if @rank == 0 else None" if r.startswith(rank0) else r for r in run], **_DDP_END}
