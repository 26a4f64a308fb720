"""`malenia predict` input checks: what nnU-Net cannot recover from stops the run with one line."""

import numpy as np
import pytest
import SimpleITK as sitk

from nnunetv2_malenia.errors import MaleniaError
from nnunetv2_malenia.inference.input_check import check_case


def _write(path, array, spacing=(1.0, 1.0, 1.0)):
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing[: image.GetDimension()])
    sitk.WriteImage(image, str(path))
    return path


def test_ct_passes_whatever_its_spacing(tmp_path):
    ct = np.full((8, 8, 8), 40, dtype=np.int16)
    ct[0] = -1000
    check_case([_write(tmp_path / "a_0000.nii.gz", ct, (0.7, 0.7, 5.0))], 1, expects_ct=True)


def test_mr_like_intensities_are_refused_for_a_ct_model_unless_told(tmp_path):
    mr = _write(tmp_path / "mr_0000.nii.gz", np.linspace(0, 1200, 512).reshape(8, 8, 8).astype(np.int16))
    with pytest.raises(MaleniaError) as e:
        check_case([mr], 1, expects_ct=True)
    assert str(e.value) == (f"{mr}: does not look like CT in Hounsfield units (values 0 to 1200, none below -200; "
                            "air is -1000, fat -100); the model was trained on CT. Rescale it to HU, or pass "
                            "--no-ct-check if it is CT")
    check_case([mr], 1, expects_ct=False)


def test_unreadable_2d_and_wrong_channel_count_are_refused(tmp_path):
    text = tmp_path / "notes_0000.nii.gz"
    text.write_text("not an image")
    with pytest.raises(MaleniaError, match="notes_0000.nii.gz: not a readable medical image"):
        check_case([text], 1, expects_ct=False)
    flat = _write(tmp_path / "flat_0000.nii.gz", np.zeros((8, 8), dtype=np.int16) - 1000)
    with pytest.raises(MaleniaError, match="a 2D image with 1 component"):
        check_case([flat], 1, expects_ct=True)
    ct = _write(tmp_path / "b_0000.nii.gz", np.full((4, 4, 4), -1000, dtype=np.int16))
    with pytest.raises(MaleniaError, match=r"b_0000.nii.gz: the case has 1 channel file\(s\) .* but the model takes 2"):
        check_case([ct], 2, expects_ct=True)
