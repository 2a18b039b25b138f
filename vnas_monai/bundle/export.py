"""What an exported MONAI bundle's ``configs/inference.json`` calls: ``$vnas_monai.bundle.export.image_datalist``.

The export itself is :mod:`vnas_monai.export`; this name stays here because every bundle exported so far (and every
one exported now) refers to it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Union

from .datalists import inference_datalist, scan_image_dir

__all__ = ["image_datalist"]


def image_datalist(images: Union[str, os.PathLike, Sequence[Any]]) -> list[dict[str, str]]:
    """Datalist for the exported inference.json: ``images`` is an image file, a DICOM series folder, a folder of
    images and series, or a list of files / ``{"image": ...}`` dicts.

    The same rules as the pipeline's inference bundle (:func:`vnas_monai.bundle.datalists.inference_datalist`): a folder
    is scanned for NIfTI/ITK files and DICOM series folders (a folder holding only DICOM slices is one series).

    Raises:
        FileNotFoundError: a file or folder that does not exist.
        ValueError: no image found, or two images that would be written under the same case name.
    """
    if isinstance(images, (str, os.PathLike)) and Path(images).expanduser().is_dir():
        images = scan_image_dir(images, field="images")
    return inference_datalist(images=images)
