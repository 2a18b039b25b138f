"""Command-line tools: ``python -m vnas_monai <command> ...`` (a ``fire`` CLI).

The stages themselves (search, train, inference, evaluation) are MONAI bundles run with ``python -m monai.bundle``;
these commands prepare their inputs and combine their outputs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

__all__ = ["aggregate", "cost", "datalist", "phantoms", "show"]


def datalist(
    dataset_dir: str,
    output: str = "folds.json",
    num_folds: int = 4,
    seed: int = 0,
    layout: str = "auto",
    max_cases: int | None = None,
) -> str:
    """Write a seeded k-fold split of a dataset (MSD or NIH Pancreas-CT layout) to JSON, shared by every stage.

    Example: ``python -m vnas_monai datalist /data/Task07_Pancreas --output folds.json --num_folds 4``.
    """
    from vnas_monai.data import fold_datalists

    splits = fold_datalists(
        dataset_dir, fold=0, num_folds=num_folds, seed=seed, datalist_file=output, layout=layout, max_cases=max_cases
    )
    n = sum(len(splits[k]) for k in ("trainval", "test"))
    print(f"wrote {output}: {n} cases in {num_folds} folds (seed {seed})")
    return output


def aggregate(*arch_files: str, output: str = "arch.json") -> str:
    """Average the folds' choice probabilities and discretise them (V-NAS, paper §3.1: the argmax of each cell), in
    the search space the files name (V-NAS by default); prints the result in the space's notation.

    Example: ``python -m vnas_monai aggregate f0/arch.json f1/arch.json f2/arch.json f3/arch.json --output arch.json``.
    """
    from vnas_monai.spaces.aggregate import aggregate as _aggregate

    arch = _aggregate(list(arch_files))
    arch.save(output)
    print(f"{arch.summary()}  -> {output}")
    return output


def show(arch: str = "nih") -> str:
    """Print an architecture (arch.json path or preset) in the paper's notation."""
    from vnas_monai.spaces.vnas.encoding import Architecture

    enc, dec = Architecture.resolve(arch).to_paper()
    return f"encoder [{enc}]  decoder [{dec}]"


def cost(
    arch: str | None = "nih",
    roi_size: Sequence[int] = (96, 96, 64),
    init_filters: int = 64,
    in_channels: int = 1,
    out_channels: int = 2,
    as_json: bool = False,
) -> str:
    """Parameters and MACs of an architecture (or ``--arch None`` for the supernet) at a patch size."""
    from vnas_monai.networks.cost import format_cost
    from vnas_monai.spaces.vnas.cost import cost_report

    report = cost_report(
        None if arch in (None, "None", "supernet") else arch, tuple(roi_size), in_channels, out_channels, init_filters
    )
    return json.dumps(report) if as_json else format_cost(report)


def phantoms(output_dir: str = "phantom_data", num_cases: int = 12, seed: int = 0, num_classes: int = 2) -> str:
    """Generate the embedded synthetic CT dataset (MSD layout) used when no ``dataset_dir`` is given."""
    from vnas_monai.data import make_phantom_dataset

    return str(Path(make_phantom_dataset(output_dir, num_cases=num_cases, seed=seed, num_classes=num_classes)))


#: Commands implemented in other modules, imported only when called (``module:function``).
_LAZY = {
    "crossval": "vnas_monai.workflows.crossval:crossval",
    "ablation": "vnas_monai.workflows.ablation:ablation",
    "export_bundle": "vnas_monai.export.bundle:export_bundle",
    "plan": "vnas_monai.plan.command:plan",
    "benchmark": "vnas_monai.benchmark.command:benchmark",
    "paired": "vnas_monai.benchmark.paired:paired",
}


def _summary(target: str) -> str:
    """First paragraph of a lazy command's docstring, read from its source file without importing the module."""
    import ast
    import importlib.util

    module, name = target.split(":")
    try:
        tree = ast.parse(Path(importlib.util.find_spec(module).origin).read_text(encoding="utf-8"))
    except (AttributeError, ImportError, OSError, SyntaxError, TypeError, ValueError):
        return ""
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return (ast.get_docstring(node) or "").split("\n\n")[0]
    return ""


def _lazy(target: str):
    """A stand-in for the listing of all commands: it imports the real command only when called."""
    module, name = target.split(":")

    def command(*args, **kwargs):
        return _resolve(target)(*args, **kwargs)

    command.__name__ = name
    command.__doc__ = (_summary(target) + "\n\n" if _summary(target) else "") + f"python -m vnas_monai {name} --help"
    return command


def _resolve(target: str):
    import importlib

    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


#: Flags asking for a command's help. ``fire`` hands them to a command that takes ``**kwargs`` (crossval's bundle
#: keys) as a keyword, so they are moved behind ``--``, where ``fire`` reads its own flags.
_HELP_FLAGS = ("--help", "-h")


def _help_behind_separator(argv: list[str]) -> list[str]:
    head, sep, tail = (argv, [], []) if "--" not in argv else (
        argv[: argv.index("--")], ["--"], argv[argv.index("--") + 1:]
    )
    if not any(a in _HELP_FLAGS for a in head):
        return argv
    tail = [a for a in tail if a not in _HELP_FLAGS]
    return [a for a in head if a not in _HELP_FLAGS] + ["--"] + tail + ["--help"]


def main(argv: Sequence[str] | None = None) -> None:
    """Run a command of ``python -m vnas_monai`` (``argv`` defaults to ``sys.argv[1:]``)."""
    import sys

    import fire

    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {"datalist": datalist, "aggregate": aggregate, "show": show, "cost": cost, "phantoms": phantoms}
    commands.update({name: _lazy(target) for name, target in _LAZY.items()})
    if argv and argv[0] in _LAZY:  # the command asked for: the real function, for its signature and docstring
        commands[argv[0]] = _resolve(_LAZY[argv[0]])
    try:
        fire.Fire(commands, command=_help_behind_separator(argv), name="vnas_monai")
    except Exception:  # a failure of ours ends with its cause, not a traceback (VNAS_DEBUG=1 prints it too)
        from vnas_monai.bundle.errors import report_and_exit

        report_and_exit(*sys.exc_info())
