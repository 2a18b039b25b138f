"""Regenerate the bundles' stage and dataset configs from ``bundles/vnas_nih/search.json``, the NAS-3D-U-Net
bundle (``bundles/nas3dunet_brats``, :mod:`vnas_monai.spaces.nas3dunet.bundles`) and the MB-NAS bundles
(``bundles/mbnas_{spleen,prostate}``, :mod:`vnas_monai.spaces.mbnas.bundles`).

    python tools/generate_bundles.py [BUNDLES_DIR]

The configs are built by :mod:`vnas_monai.bundle.generate`; this is its command line.
"""

import sys
from pathlib import Path

from vnas_monai.bundle.generate import write_bundles
from vnas_monai.spaces.mbnas.bundles import BUNDLES as MBNAS_BUNDLES
from vnas_monai.spaces.mbnas.bundles import write_bundle as write_mbnas_bundle
from vnas_monai.spaces.nas3dunet.bundles import write as write_nas3dunet_bundle


def main(argv: list[str]) -> None:
    root = argv[1] if len(argv) > 1 else str(Path(__file__).resolve().parents[1] / "bundles")
    write_bundles(root)
    write_nas3dunet_bundle(root)
    for name in MBNAS_BUNDLES:
        write_mbnas_bundle(name, root)
    print("ok")


if __name__ == "__main__":
    main(sys.argv)
