"""Trainer classes for benchmarks/bench_training.py (found through `nnUNet_extTrainer`).

All share one schedule, read from the environment at construction so that stock
`nnUNetv2_train ... -tr CLASS` can run them (nnUNetv2_train has no epochs/iterations options):

    MALENIA_BENCH_EPOCHS          number of epochs (default 10)
    MALENIA_BENCH_ITERATIONS      training iterations per epoch (default 20)
    MALENIA_BENCH_VAL_ITERATIONS  validation iterations per epoch (default 5)

- nnUNetTrainer_bench: nnU-Net's nnUNetTrainer (SGD lr 1e-2, momentum 0.99, Nesterov, poly).
- nnUNetTrainerMalenia_bench: nnUNetTrainerMalenia unchanged (AdamW lr 3e-4, poly).
- nnUNetTrainerMalenia_benchSGD: nnUNetTrainerMalenia with nnU-Net's optimizer and learning rate
  (SGD lr 1e-2, momentum 0.99, Nesterov, poly); the parent's configure_optimizers still runs first,
  so the vocabulary and knowledge-table buffers are installed exactly as in the real trainer.
- nnUNetTrainer_cpu_nnunetrecipe: nnU-Net's recipe on the CPU tier's schedule (not read from the
  environment: CpuRecipe.cpu_schedule), beside nnUNetTrainer_cpu in docs/benchmarks.md.
- nnUNetTrainer_cpu_partial: nnUNetTrainer_cpu with the partial-label (marginal) loss of
  nnunetv2_malenia.training.partial_labels, for benchmarks/bench_partial_labels.py (issue 15).
"""

from __future__ import annotations

import dataclasses
import os

import torch

from nnunetv2.training.lr_scheduler.polylr import PolyLRScheduler
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunetv2_malenia.knowledge.vocabulary import ATTRIBUTE_TYPE_KEYS
from nnunetv2_malenia.training.nnUNetTrainerMalenia import nnUNetTrainerMalenia, nnUNetTrainerMalenia_nameonly


def _schedule() -> tuple[int, int, int]:
    return (int(os.environ.get("MALENIA_BENCH_EPOCHS", "10")),
            int(os.environ.get("MALENIA_BENCH_ITERATIONS", "20")),
            int(os.environ.get("MALENIA_BENCH_VAL_ITERATIONS", "5")))


def _apply_schedule(trainer: nnUNetTrainer) -> None:
    trainer.num_epochs, trainer.num_iterations_per_epoch, trainer.num_val_iterations_per_epoch = _schedule()
    # No intermediate checkpoint_latest.pth (nnU-Net's default is every 50 epochs; benchmark runs are
    # short); checkpoint_best/final are still written as usual.
    trainer.save_every = 10 ** 9
    # Record the schedule in the trainer's logger config (nnU-Net writes the hyperparameters there).
    trainer.print_to_log_file(f"bench schedule: {trainer.num_epochs} epochs x {trainer.num_iterations_per_epoch} "
                              f"iterations, {trainer.num_val_iterations_per_epoch} val iterations per epoch, "
                              f"initial lr {trainer.initial_lr}")


class nnUNetTrainer_bench(nnUNetTrainer):
    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        _apply_schedule(self)


class nnUNetTrainerMalenia_bench(nnUNetTrainerMalenia):
    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        _apply_schedule(self)


class nnUNetTrainerMalenia_benchSGD(nnUNetTrainerMalenia):
    initial_lr_malenia = 1e-2  # nnU-Net's SGD learning rate (nnUNetTrainer.initial_lr)

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        _apply_schedule(self)

    def configure_optimizers(self):
        super().configure_optimizers()  # installs the vocabulary / table buffers; its AdamW is discarded
        optimizer = torch.optim.SGD(self.network.parameters(), self.initial_lr, weight_decay=self.weight_decay,
                                    momentum=0.99, nesterov=True)
        return optimizer, PolyLRScheduler(optimizer, self.initial_lr, self.num_epochs)


class nnUNetTrainerMalenia_nameonly_bench(nnUNetTrainerMalenia_nameonly):
    """The name-only ablation (one disease-name phrase per lesion) on the benchmark schedule."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        _apply_schedule(self)


class nnUNetTrainer_cpu_nnunetrecipe(nnUNetTrainer):
    """nnU-Net's own recipe (SGD 1e-2, momentum 0.99, Nesterov, poly; mirroring; full augmentation)
    on the CPU tier's schedule: what the CPU recipe (nnunetv2_malenia.training.cpu_recipe) buys."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        from nnunetv2_malenia.training.cpu_recipe import CpuRecipe
        for name, value in CpuRecipe.cpu_schedule.items():
            setattr(self, name, value)


# ----- issue 12: one change at a time on the CPU tier's Malenia (docs/benchmarks.md) ------------
from nnunetv2_malenia.training.cpu_recipe import CPU_HEAD, nnUNetTrainerMalenia_cpu  # noqa: E402
from nnunetv2_malenia.training.synthetic_anomalies import AnomalyConfig  # noqa: E402
from nnunetv2_malenia.training.lesion_paste import LesionPasteConfig  # noqa: E402


class nnUNetTrainerMalenia_cpu_centred(nnUNetTrainerMalenia_cpu):
    """nnUNetTrainerMalenia_cpu with the text bank centred within each attribute type."""

    malenia_config = {**CPU_HEAD, "center_text_bank": True}


class nnUNetTrainerMalenia_cpu_lw01(nnUNetTrainerMalenia_cpu):
    """nnUNetTrainerMalenia_cpu with the token loss weighted 0.1 next to nnU-Net's loss."""

    malenia_loss_weight = 0.1


class nnUNetTrainerMalenia_cpu_lw01_anomalies(nnUNetTrainerMalenia_cpu_lw01):
    """nnUNetTrainerMalenia_cpu_lw01 with synthetic anomalies as class-agnostic lesion targets."""

    anomalies = AnomalyConfig()


class nnUNetTrainerMalenia_cpu_lw01_anomalies_described(nnUNetTrainerMalenia_cpu_lw01):
    """... with the anomalies' unambiguous attribute values as targets (AnomalyConfig.describe)."""

    anomalies = AnomalyConfig(describe=True)


class nnUNetTrainerMalenia_cpu_lw01_anomalies_described_voxel(nnUNetTrainerMalenia_cpu_lw01_anomalies_described):
    """... with the per-voxel attribute readout naming each lesion voxel (MaleniaConfig.voxel_readout)."""

    malenia_config = {**CPU_HEAD, "voxel_readout": True, "lesion_naming": "voxel"}


class nnUNetTrainerMalenia_cpu_lw01_anomalies_inhead(nnUNetTrainerMalenia_cpu_lw01):
    """... anomalies labelled as a lesion in nnU-Net's target too; lesion presence from nnU-Net's head."""

    anomalies = AnomalyConfig(label_in_head="lesion")
    malenia_config = {**CPU_HEAD, "lesion_presence": "nnunet"}


class nnUNetTrainerMalenia_cpu_lw01_anomalies_described_voxel_inhead(nnUNetTrainerMalenia_cpu_lw01):
    """Described anomalies labelled as a lesion in nnU-Net's target, lesion presence from nnU-Net's
    head, lesion voxels named by the per-voxel readout."""

    anomalies = AnomalyConfig(describe=True, label_in_head="lesion")
    malenia_config = {**CPU_HEAD, "voxel_readout": True, "lesion_naming": "voxel", "lesion_presence": "nnunet"}


# ----- issue 15: one model on several partially labelled datasets (benchmarks/bench_partial_labels.py) --
from nnunetv2_malenia.training.cpu_recipe import CpuRecipe  # noqa: E402
from nnunetv2_malenia.training.partial_labels import PartialLabels  # noqa: E402


class nnUNetTrainer_cpu_partial(CpuRecipe, PartialLabels, nnUNetTrainer):
    """nnUNetTrainer_cpu (the CPU recipe and schedule) with the partial-label loss: on a dataset from
    `malenia merge-datasets` (annotated_labels.json beside dataset.json) the classes a case's source
    does not annotate are merged into background in that case's Dice+CE; without the file it is
    nnUNetTrainer_cpu unchanged."""


class nnUNetTrainer_cpu_twothirds(CpuRecipe, nnUNetTrainer):
    """nnUNetTrainer_cpu on a fully labelled dataset, trained on two thirds of its fold's training
    cases: those that bench_partial_labels.py deals to sources A and C (sorted case ids, case i ->
    source i mod 3; source B's are left out; validation unchanged). The control of the partial-label
    benchmark: the spleen and kidney classes, which source B drops, see here exactly the labelled
    lesions they see in the merged dataset, with nothing unlabelled beside them, so a gap between
    this model and the partial-label one is the loss's and a gap to nnUNetTrainer_cpu the labels'."""

    left_out_source = 1   # B

    def do_split(self):
        tr_keys, val_keys = super().do_split()
        every_case = sorted(self.dataset_class.get_identifiers(self.preprocessed_dataset_folder))
        left_out = set(every_case[self.left_out_source::3])
        kept = [k for k in tr_keys if k not in left_out]
        self.print_to_log_file(f"two thirds of the training cases: {len(kept)} of {len(tr_keys)} "
                               f"(left out: source {'ABC'[self.left_out_source]}'s)")
        return kept, val_keys


class nnUNetTrainerMalenia_cpu_lw01_anomalies_described_voxel_inhead_tissue(
        nnUNetTrainerMalenia_cpu_lw01_anomalies_described_voxel_inhead):
    """... half of the blobs made of another tissue (an absolute CT number: soft-tissue nodules in the lung)."""

    anomalies = AnomalyConfig(describe=True, label_in_head="lesion", tissue_probability=0.5)


class nnUNetTrainerMalenia_cpu_lw01_anomalies_described_voxel_inhead_local(
        nnUNetTrainerMalenia_cpu_lw01_anomalies_described_voxel_inhead):
    """... the per-voxel readout on a local CNN of the image (15 voxels), not on the backbone's features."""

    malenia_config = {**nnUNetTrainerMalenia_cpu_lw01_anomalies_described_voxel_inhead.malenia_config,
                      "voxel_readout_local": True}


class nnUNetTrainerMalenia_cpu_lw01_anomalies_described_voxel_inhead_local_nameonly(
        nnUNetTrainerMalenia_cpu_lw01_anomalies_described_voxel_inhead_local, nnUNetTrainerMalenia_nameonly):
    """The name-only ablation of the row above: each lesion (and each voxel of it) is aligned to its
    disease's name instead of its 8 attributes; the blobs' drawn values name no disease and are
    skipped. Everything else, the local per-voxel readout included, is the row above's."""


class nnUNetTrainerMalenia_cpu_lw01_anomalies_described_voxel_inhead_local_pertype(
        nnUNetTrainerMalenia_cpu_lw01_anomalies_described_voxel_inhead_local):
    """... one local CNN and readout per attribute type (MaleniaConfig.voxel_readout_per_type)."""

    malenia_config = {**nnUNetTrainerMalenia_cpu_lw01_anomalies_described_voxel_inhead_local.malenia_config,
                      "voxel_readout_per_type": True}


class nnUNetTrainerMalenia_cpu_lw01_anomalies_described_voxel_inhead_local_pertype_lesiononly(
        nnUNetTrainerMalenia_cpu_lw01_anomalies_described_voxel_inhead_local_pertype):
    """... the shape, density-variation and specific-features readouts read the lesion alone (its
    voxels of the image and its mask: MaleniaConfig.voxel_readout_lesion_only_types): the values
    of these types describe the lesion's outline and content, nothing around it."""

    malenia_config = {**nnUNetTrainerMalenia_cpu_lw01_anomalies_described_voxel_inhead_local_pertype.malenia_config,
                      "voxel_readout_lesion_only_types": [ATTRIBUTE_TYPE_KEYS.index(key) for key in
                                                          ("shape", "density_variation", "specific_features")]}


class nnUNetTrainerMalenia_cpu_lw01_anomalies_described_voxel_inhead_local_pertype_lesiononly_maskshape(
        nnUNetTrainerMalenia_cpu_lw01_anomalies_described_voxel_inhead_local_pertype_lesiononly):
    """... and the shape readout reads the lesion mask alone, no image at all
    (MaleniaConfig.voxel_readout_mask_only_types): a shape value describes the outline, and the
    lesion's own CT numbers would still tell the organ."""

    malenia_config = {
        **nnUNetTrainerMalenia_cpu_lw01_anomalies_described_voxel_inhead_local_pertype_lesiononly.malenia_config,
        "voxel_readout_lesion_only_types": [ATTRIBUTE_TYPE_KEYS.index(key) for key in
                                            ("density_variation", "specific_features")],
        "voxel_readout_mask_only_types": [ATTRIBUTE_TYPE_KEYS.index("shape")]}


class nnUNetTrainerMalenia_cpu_lw01_anomalies_described_voxel_inhead_local_pertype_lesiononly_relative(
        nnUNetTrainerMalenia_cpu_lw01_anomalies_described_voxel_inhead_local_pertype_lesiononly):
    """... and the lesion-only readouts read the lesion's CT numbers minus their mean over the
    lesion (MaleniaConfig.voxel_readout_lesion_relative): the absolute CT number is the organ's
    plus an offset, and so tells the organ."""

    malenia_config = {
        **nnUNetTrainerMalenia_cpu_lw01_anomalies_described_voxel_inhead_local_pertype_lesiononly.malenia_config,
        "voxel_readout_lesion_relative": True}


class nnUNetTrainerMalenia_cpu_lw01_anomalies_described_voxel_inhead_local_pertype_lesiononly_featureblobs(
        nnUNetTrainerMalenia_cpu_lw01_anomalies_described_voxel_inhead_local_pertype_lesiononly):
    """... and three in four described anomalies carry a specific feature (calcium dots, darker
    areas or a thin rim; AnomalyConfig.feature_probability): in the seen rows each feature belongs
    to one or two organs, on the blobs to every organ."""

    anomalies = AnomalyConfig(describe=True, label_in_head="lesion", feature_probability=0.75)


class nnUNetTrainerMalenia_cpu_lw01_anomalies_described_voxel_inhead_local_pertype_lesiononly_paste(
        nnUNetTrainerMalenia_cpu_lw01_anomalies_described_voxel_inhead_local_pertype_lesiononly):
    """... and half the patches get a seen training lesion moved into another of their organs
    with its attribute values (cross-organ copy-paste, training/lesion_paste.py): each value's
    look is shown in organs that never had it, and each organ lesions of every look. As measured
    (2026-12-04): the moved lesion kept its source scan's enhancement status as a target, which
    LesionPasteConfig's default now clears."""

    lesion_paste = LesionPasteConfig(place_types=("location", "relationship"))


class nnUNetTrainerMalenia_cpu_lw01_anomalies_described_voxel_inhead_local_pertype_lesiononly_region(
        nnUNetTrainerMalenia_cpu_lw01_anomalies_described_voxel_inhead_local_pertype_lesiononly):
    """... and a class-agnostic "any lesion" Dice+BCE on nnU-Net's summed lesion channels
    (loss/lesion_region.py), what lesion_presence="nnunet" reads: the blobs labelled lesion in the
    head were not learnt as lesions by Dice+CE alone (probe_finding.py, 2026-12-04)."""

    lesion_region_weight = 1.0


class nnUNetTrainerMalenia_cpu_lw01_anomalies_described_voxel_inhead_local_pertype_lesiononly_region_moreblobs(
        nnUNetTrainerMalenia_cpu_lw01_anomalies_described_voxel_inhead_local_pertype_lesiononly_region):
    """... with every patch getting one to three blobs instead of half the patches one or two
    (about 2.7 times as many): with the "any lesion" loss a replayed patch learnt its brighter blob
    in 10 steps, yet on the trainer's own patches brighter blobs ended at a lesion mass of 0.07
    against 0.68 for the real lesions, which outnumbered them three to one (probe_blob_learning.py,
    2026-12-04). Suspect: too few blobs of each kind (organ x sign) for a varied target to be learnt.
    Measured (two runs, docs/benchmarks.md): unseen mean 20.7 and 23.6, the best on the varied tier,
    though brighter liver blobs were not learnt (probe_finding.py): the gain is in the kidneys and
    in naming."""

    anomalies = AnomalyConfig(describe=True, label_in_head="lesion", probability=1.0, max_per_patch=3)


class nnUNetTrainerMalenia_cpu_lw01_anomalies_described_voxel_inhead_local_pertype_lesiononly_region_paste(
        nnUNetTrainerMalenia_cpu_lw01_anomalies_described_voxel_inhead_local_pertype_lesiononly_region):
    """The two changes that each moved one half (2026-12-04): the "any lesion" loss lifted nnU-Net's
    lesion mass on unseen lesions (0.32 -> 0.49, one run), cross-organ copy-paste named them from
    their voxels (0.22 -> 0.48, both runs) but found them in one run of two. Together: found by the
    head, named by the tokens. Copy-paste with LesionPasteConfig's default, which clears the moved
    lesion's enhancement status (the measured _paste trainer kept it, a bug)."""

    lesion_paste = LesionPasteConfig()


class nnUNetTrainerMalenia_cpu_lw01_anomalies_described_voxel_inhead_local_pertype_lesiononly_region_moreblobs_paste(
        nnUNetTrainerMalenia_cpu_lw01_anomalies_described_voxel_inhead_local_pertype_lesiononly_region_moreblobs):
    """The recipe (..._region_moreblobs) plus cross-organ copy-paste with LesionPasteConfig's
    default (the moved lesion's enhancement status cleared). Suspect: the recipe finds unseen
    lesions it does not name (splenic metastases found by a token 1.00, named 0.00; hemangioma
    named in one run of two); copy-paste named unseen lesions from their voxels on the older
    model (0.22 -> 0.48, both runs)."""

    lesion_paste = LesionPasteConfig()


from nnunetv2_malenia.training.zero_shot_recipe import nnUNetTrainerMalenia_cpu_zeroshot  # noqa: E402


class nnUNetTrainerMalenia_cpu_zeroshot_predmask(nnUNetTrainerMalenia_cpu_zeroshot):
    """The recipe with its lesion-only readout types trained on the target lesions joined with the
    mask they get at inference (nnU-Net's lesion mass >= 0.5 of the same forward pass):
    `voxel_readout_training_mask="targets_or_predicted"`. Diagnosis (benchmarks/probe_naming.py,
    seed-1 recipe, 2026-12-05): given the true lesion mask instead of the predicted one, the same
    weights score seen lesions 56.9 instead of 44.4 (liver tumour 14.7 -> 53.3, splenic lymphoma
    13.4 -> 34.5), nearly all of it through the specific-features type alone (56.3); the predicted
    mask grown by one voxel drops liver tumour to 2.6: a ring of organ around a dark lesion reads
    as a thin cystic wall, and the lesion is named a cyst."""

    # measured before the recipe detached the token path from the backbone: kept as measured
    malenia_config = {**nnUNetTrainerMalenia_cpu_zeroshot.malenia_config,
                      "voxel_readout_training_mask": "targets_or_predicted", "token_backbone_gradient": 1.0}


class nnUNetTrainerMalenia_cpu_zeroshot_ownblobs(nnUNetTrainerMalenia_cpu_zeroshot):
    """The recipe with the synthetic blobs labelled in nnU-Net's head by a channel of their own
    (AnomalyConfig.label_in_head="own") instead of the dataset's first lesion label (liver cyst).
    Diagnosis (lesion_confusion.py on the seed-1 recipe scored with lesion_naming="hybrid", where the
    head names the seen diseases): liver tumours went 80 % to liver cyst, the channel that also
    holds every blob in every organ, while nnUNetTrainer_cpu's head names them at 76.7 DSC. With
    the blobs in their own channel, every disease channel holds its disease alone; scored both
    with the recipe's voxel naming and with hybrid naming (`--variant TRAINER:lesion_naming=hybrid`)."""

    anomalies = dataclasses.replace(nnUNetTrainerMalenia_cpu_zeroshot.anomalies, label_in_head="own")
    # measured before the recipe detached the token path from the backbone: kept as measured
    malenia_config = {**nnUNetTrainerMalenia_cpu_zeroshot.malenia_config, "token_backbone_gradient": 1.0}


class nnUNetTrainerMalenia_cpu_zeroshot_detached(nnUNetTrainerMalenia_cpu_zeroshot):
    """The recipe with the token path detached from nnU-Net's backbone
    (`token_backbone_gradient=0.0`): the transformer decoder, masks, CMKI and alignment read the
    backbone's features but send it no gradient, so the backbone learns from nnU-Net's Dice+CE and
    the any-lesion loss alone, as nnUNetTrainer_cpu's does. Diagnosis: over four runs the recipe's
    organs are 86.3 +- 1.0 DSC against nnUNetTrainer_cpu's 92.0 on the same data, and its head names
    seen lesions worse than nnUNetTrainer_cpu's (hybrid naming: seen 23.3 against 57.4); at
    initialisation Malenia's loss gave the backbone 12-24x nnU-Net's gradient (LEARNABILITY.md 4),
    still 1.2-2.4x at the recipe's weight 0.1. At inference the recipe reads nothing the tokens teach
    the backbone: nnU-Net's head decides presence, the per-voxel readout on the image names.
    Measured better on both draws (docs/benchmarks.md), so the recipe itself now detaches: this
    class trains the plugin's nnUNetTrainerMalenia_cpu_zeroshot (tests/test_zero_shot_recipe.py) and
    keeps the name of the measured runs' model folders."""

    malenia_config = {**nnUNetTrainerMalenia_cpu_zeroshot.malenia_config, "token_backbone_gradient": 0.0}


class nnUNetTrainerMalenia_cpu_zeroshot_featureblobs(nnUNetTrainerMalenia_cpu_zeroshot_detached):
    """The (detached) recipe with three in four synthetic blobs carrying one specific feature drawn
    by its definition in any organ (calcium dots, a darker area inside, a thin bright rim;
    AnomalyConfig.feature_probability=0.75). Diagnosis (lesion_confusion.py and the per-lesion
    readout on the detached models): unseen lesions are found (hemangiomas on 80 % of their voxels)
    and misnamed, most in the spleen, where splenic metastases read "thin cystic wall" and go to
    splenic cyst: in the seen rows each feature value belongs to one or two organs (decreased density
    areas to liver tumours alone), and the features CNN reads the organ. Measured on the lesion-only
    model of 2026-12-03, when finding was what failed (not kept there, docs/benchmarks.md). Measured
    on the detached recipe (seed 0): not kept either, unseen 37.9 -> 30.0, seen 44.0 -> 23.0; the
    cysts' "thin cystic wall" took more lesions, not fewer."""

    anomalies = dataclasses.replace(nnUNetTrainerMalenia_cpu_zeroshot_detached.anomalies, feature_probability=0.75)


class nnUNetTrainerMalenia_cpu_zeroshot_detached_ownblobs(nnUNetTrainerMalenia_cpu_zeroshot_detached):
    """The (detached) recipe with the synthetic blobs in a head channel of their own
    (AnomalyConfig.label_in_head="own"), to be scored with hybrid naming (the head names the seen
    diseases). Diagnosis: with the backbone nnU-Net's own, hybrid naming brings the seen mean to
    56.6 on seed 0 (nnUNetTrainer_cpu 57.4) and 42.1 on seed 1 (55.5), and liver tumours still lose
    7 % of their voxels to liver cyst, the channel that also holds every blob in every organ
    (`label_in_head="lesion"`). The own channel measured before on the undetached recipe changed
    nothing the benchmark measures; there the head did not name seen lesions well under any channel.
    Not trained yet; on a second detached seed-0 run the suspect did not show (hybrid naming: liver
    tumours 7 % to liver cyst, kidney tumours none; docs/benchmarks.md, "Lobed blobs")."""

    anomalies = dataclasses.replace(nnUNetTrainerMalenia_cpu_zeroshot_detached.anomalies, label_in_head="own")


class nnUNetTrainerMalenia_cpu_zeroshot_lobedblobs(nnUNetTrainerMalenia_cpu_zeroshot_detached):
    """The (detached) recipe with a third of the synthetic blobs drawn lobulated (3-5 smooth lobes
    with notches between them, named "lobulated"; AnomalyConfig.lobe_probability=1/3). Diagnosis
    (bench_zero_shot_diagnosis.py on the detached seed-0 model, true masks): "lobulated" is never
    the shape readout's answer, liver hemangiomas (lobulated) read round-like on 7 of 9, and splenic
    lymphomas (lobulated 3:1) are named on none: the blobs, 1-3 in every patch and most of what the
    shape readout learns from, drew round and irregular outlines only. Measured once (seed 0,
    beside a second run of the detached recipe; docs/benchmarks.md, "Lobed blobs"): unseen 31.7
    against 31.6, seen 27.9 against 34.8 (liver tumours named liver cyst). Not kept."""

    anomalies = dataclasses.replace(nnUNetTrainerMalenia_cpu_zeroshot_detached.anomalies, lobe_probability=1 / 3)


class nnUNetTrainerMalenia_cpu_zeroshot_surfaceblobs(nnUNetTrainerMalenia_cpu_zeroshot_detached):
    """The (detached) recipe with half of the synthetic blobs drawn on an organ's surface, reaching
    out into the background with the organ's tissue plus their offset (AnomalyConfig.surface_probability
    =0.5). Diagnosis (docs/benchmarks.md, "The margin and the features read with the lesion's
    surroundings"): the spleen's, kidneys' and lungs' lesions sit on their organ's surface, every blob
    lay inside its organ, and every readout probed names splenic metastases with the splenic cyst's
    values although their CT numbers are a liver tumour's and their outline a lung tumour's."""

    anomalies = dataclasses.replace(nnUNetTrainerMalenia_cpu_zeroshot_detached.anomalies, surface_probability=0.5)


class nnUNetTrainerMalenia_cpu_zeroshot_paste(nnUNetTrainerMalenia_cpu_zeroshot_detached):
    """The (detached) recipe with cross-organ copy-paste (LesionPasteConfig's default: half the
    patches get a seen training lesion moved into another of their organs, its attribute targets
    carried along but for location, relationship and enhancement status). Diagnosis (docs/benchmarks.md,
    "The margin and the features read with the lesion's surroundings"): splenic metastases are found
    and read with the splenic cyst's values by every readout, while their CT profile is a liver
    tumour's and their outline a lung tumour's; every lesion the readouts saw in the spleen was a
    cyst or a lymphoma. Moving liver tumours into the spleen shows it the look the row describes.
    Measured before only on the undetached recipe (unseen 20.2 against 22.6 +- 1.6, organs -15),
    when the token losses still trained the backbone. Measured on the detached recipe (seed 0,
    2026-12-06): not kept, unseen 26.3 against 31.6 on the same data, organs 90.5 (kept their
    level); splenic metastases still 80 % splenic cyst."""

    lesion_paste = LesionPasteConfig()


class nnUNetTrainerMalenia_cpu_zeroshot_paste_grown(nnUNetTrainerMalenia_cpu_zeroshot_paste):
    """Cross-organ copy-paste on the detached recipe with the moved lesion zoomed 1.0-1.6x
    (LesionPasteConfig.scale, log-uniform). Diagnosis (docs/benchmarks.md, 2026-12-06): each seen
    disease has its size range, and the one with decreased density areas, the liver tumour, is the
    smallest (median 246 voxels), while splenic metastases are the largest lesions of the tier
    (702; liver cysts 595). Probed (probe_lesion_readout.py --scale 1.0 1.6, every seen training
    crop grown): splenic metastases read "decreased density areas" on 8 of 18 reads after logit
    adjustment (0 of 18 without growing), the first readout of any session to read them so.
    Measured (seed 0, 2026-12-06): not kept, unseen 29.0 (copy-paste 26.3, the recipe 31.6 on the
    same data); splenic metastases 0.0, named with no prior even with the true masks."""

    lesion_paste = LesionPasteConfig(scale=(1.0, 1.6))
