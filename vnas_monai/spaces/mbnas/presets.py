"""The U-Net in the MB-NAS space and the space's variable groups for the paper's comparisons (Bosma et al., SPIE 2022,
§2.1 "the standard U-Net shape is included", §2.4 Macro-, Micro- and Bilevel-NAS).

:func:`comparison_restrictions` gives, per search of §2.4, the keyword arguments of
:func:`vnas_monai.strategies.local_search` / :func:`~vnas_monai.strategies.run_local_search` that restrict the one
MB-NAS space to it, all started from :func:`unet_encoding` (VGG blocks, kernel 3):

* ``mbnas``: every variable, topology and cells together;
* ``macro``: the topology only (``channels.*``, ``skip.*``); the blocks stay VGG;
* ``micro``: blocks and kernels only; the topology stays the U-Net's;
* ``bilevel``: the topology to convergence, then the kernel sizes (the blocks stay VGG), as C2FNAS (Yu et al. 2020).
"""

from __future__ import annotations

from typing import Any

from .encoding import MAX_DOWNSAMPLINGS, NUM_NODES, MBNASEncoding, variable_names
from .rule import NO_SKIP

__all__ = ["cell_variables", "comparison_restrictions", "kernel_variables", "topology_variables", "unet_encoding"]


def topology_variables(num_nodes: int = NUM_NODES) -> list[str]:
    """``channels.*`` and ``skip.*``: the topology (a_l, d_l), in the space's order."""
    return [n for n in variable_names(num_nodes) if n.startswith(("channels.", "skip."))]


def cell_variables(num_nodes: int = NUM_NODES) -> list[str]:
    """``block.*`` and ``kernel.*``: the cell level (b_l, c_l), in the space's order."""
    return [n for n in variable_names(num_nodes) if n.startswith(("block.", "kernel."))]


def kernel_variables(num_nodes: int = NUM_NODES) -> list[str]:
    """``kernel.*`` (c_l): Bilevel-NAS's second stage."""
    return [n for n in variable_names(num_nodes) if n.startswith("kernel.")]


def comparison_restrictions(num_nodes: int = NUM_NODES) -> dict[str, dict[str, Any]]:
    """``{"mbnas": {}, "macro": {"variables": [...]}, "micro": {"variables": [...]}, "bilevel": {"stages": [[...],
    [...]]}}``: keyword arguments of ``local_search`` / ``run_local_search`` (module docstring)."""
    return {
        "mbnas": {},
        "macro": {"variables": topology_variables(num_nodes)},
        "micro": {"variables": cell_variables(num_nodes)},
        "bilevel": {"stages": [topology_variables(num_nodes), kernel_variables(num_nodes)]},
    }


def unet_encoding(num_nodes: int = NUM_NODES, depth: int | None = None, max_downsamplings: int = MAX_DOWNSAMPLINGS,
                  block: str = "vgg", kernel: int = 3) -> MBNASEncoding:
    """The standard U-Net (Ronneberger et al. 2015) as an MB-NAS encoding: the search's initial encoding.

    Node 0 is the first encoder block (``same``, at full resolution), nodes ``1 .. depth`` go down, the next
    ``depth`` go up, each up node taking a skip from the encoder node at its level (up node at level ``L`` <- node
    ``L``), and the nodes left over are ``same`` blocks at full resolution before the head. With 10 nodes and the
    default ``depth = min(max_downsamplings, (num_nodes - 1) // 2) = 4``: levels 0 1 2 3 4 3 2 1 0 0, skips 8 <- 0,
    7 <- 1, 6 <- 2, 5 <- 3, and one extra block (node 9) after U-Net's last decoder block.

    Raises:
        ValueError: a depth that does not fit ``num_nodes`` or ``max_downsamplings``.
    """
    top = min(max_downsamplings, (num_nodes - 1) // 2)
    depth = top if depth is None else int(depth)
    if not 0 <= depth <= top:
        raise ValueError(f"a U-Net of depth {depth} needs {2 * depth + 1} nodes and max_downsamplings >= {depth}; "
                         f"got num_nodes={num_nodes}, max_downsamplings={max_downsamplings}.")
    channels = ["same"] + ["down"] * depth + ["up"] * depth + ["same"] * (num_nodes - 1 - 2 * depth)
    skips = [NO_SKIP] * num_nodes
    for i in range(depth):
        node = depth + 1 + i  # up node at level depth - 1 - i
        skips[node] = depth - 1 - i
    return MBNASEncoding(tuple(channels), (block,) * num_nodes, (kernel,) * num_nodes, tuple(skips),
                         max_downsamplings)
