"""nnunetv2-malenia: Malenia zero-shot lesion segmentation as an nnU-Net v2 plugin.

Kept import-light on purpose: the start-up hook and `malenia --help` import this package, and
neither should pay for torch or nnU-Net.
"""

__version__ = "0.1.0"
