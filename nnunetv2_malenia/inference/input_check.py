"""Checks of the images handed to `malenia predict`, before anything is written.

nnU-Net itself resamples any spacing and reorients any direction, so those are not errors; what
it cannot recover from, or would silently get wrong, is: a file that is not a readable 3D
image, a file cut short (SimpleITK reads the missing part as zeros: data_integrity.py), a wrong
number of channels, and (for a model normalised as CT) an image that is not in Hounsfield units,
e.g. an MR volume or a picture saved as .nii.gz.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import SimpleITK as sitk

from nnunetv2_malenia.data_integrity import check_complete
from nnunetv2_malenia.errors import MaleniaError

# A body CT always holds air (-1000 HU) or at least fat (-100 HU) somewhere; MR and pictures do not go negative.
CT_MIN_BELOW_HU = -200.0


def check_case(files: Sequence[str | Path], num_channels: int, expects_ct: bool) -> None:
    """Raise MaleniaError naming the file and the fix if the case cannot be predicted correctly."""
    if len(files) != num_channels:
        raise MaleniaError(f"{Path(files[0]).name}: the case has {len(files)} channel file(s) (CASE_0000, CASE_0001, "
                           f"...) but the model takes {num_channels}")
    for path in files:
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        try:
            reader.ReadImageInformation()
        except RuntimeError:
            raise MaleniaError(f"{path}: not a readable medical image (SimpleITK cannot read it); "
                               "convert it to NIfTI (.nii.gz) or another format nnU-Net reads") from None
        if reader.GetDimension() != 3 or reader.GetNumberOfComponents() != 1:
            raise MaleniaError(f"{path}: a {reader.GetDimension()}D image with {reader.GetNumberOfComponents()} "
                               "component(s) per voxel; the model needs one 3D scalar volume per channel file")
        check_complete(path)
        if expects_ct:
            array = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
            low, high = float(np.min(array)), float(np.max(array))
            if low > CT_MIN_BELOW_HU:
                raise MaleniaError(f"{path}: does not look like CT in Hounsfield units (values {low:g} to {high:g}, "
                                   f"none below {CT_MIN_BELOW_HU:g}; air is -1000, fat -100); the model was trained "
                                   "on CT. Rescale it to HU, or pass --no-ct-check if it is CT")
