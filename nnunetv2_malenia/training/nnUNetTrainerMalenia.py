"""nnUNetTrainerMalenia: nnU-Net's trainer with Malenia's lesion head.

Everything nnU-Net does stays nnU-Net's: planning, data loading and augmentation, the loop, poly
learning rate, AMP on CUDA, DDP, checkpoints, `--c`, final validation. This class overrides only:

- `__init__`: resolves the dataset's lesion knowledge (which labels are lesions, their disease,
  attributes, table, vocabulary) and embeds the vocabulary with the frozen text tower, once, from
  the on-disk cache. It writes the head's configuration into the plans under "malenia", which
  nnU-Net copies to the model folder, so `build_network_architecture` (static, called by the
  predictor with the plans only) can rebuild the network.
- `build_network_architecture`: the plans' backbone + the Malenia head.
- `configure_optimizers`: the one hook between building the network and wrapping it in DDP, so the
  vocabulary and table buffers are installed there; AdamW with nnU-Net's poly schedule.
- `_build_loss`: nnU-Net's deep-supervised Dice+CE for its own head (organs, and lesions as a
  prior) and `MaleniaCriterion` for the tokens. On a merged, partially labelled dataset
  (`annotated_labels.json` beside dataset.json) the Dice+CE is the marginal one, per case
  (the `PartialLabels` mixin, training/partial_labels.py).
- `train_step` / `validation_step`: lesion targets per patch, both losses, a skipped step on a
  non-finite loss; validation logs Dice from the eval output and attribute accuracy per type.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from torch import autocast
from torch import distributed as dist
from torch._dynamo import OptimizedModule

from nnunetv2.training.loss.dice import get_tp_fp_fn_tn
from nnunetv2.training.lr_scheduler.polylr import PolyLRScheduler
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.helpers import dummy_context
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager, PlansManager

from nnunetv2_malenia.errors import MaleniaError
from nnunetv2_malenia.knowledge.knowledge_table import disease_name_table
from nnunetv2_malenia.loss import LossWeights, MaleniaCriterion
from nnunetv2_malenia.loss.lesion_region import lesion_region_loss
from nnunetv2_malenia.loss.targets import LesionTargets
from nnunetv2_malenia.network import MaleniaConfig, MaleniaNetwork, build_malenia_network
from nnunetv2_malenia.network.config import PLANS_KEY
from nnunetv2_malenia.training.dataset_knowledge import dataset_knowledge, raw_dataset_folder
from nnunetv2_malenia.training.lesion_paste import LesionPasteConfig, build_lesion_bank, paste_lesion, place_values
from nnunetv2_malenia.training.lesion_targets import LesionAttributeLookup, build_lesion_targets
from nnunetv2_malenia.training.partial_labels import PartialLabels
from nnunetv2_malenia.training.progress import MaleniaProgressLogger
from nnunetv2_malenia.training.synthetic_anomalies import AnomalyConfig, paste_anomalies


def unwrap(network: torch.nn.Module) -> MaleniaNetwork:
    """The MaleniaNetwork inside DDP and/or torch.compile wrappers."""
    module = network.module if isinstance(network, torch.nn.parallel.DistributedDataParallel) else network
    return module._orig_mod if isinstance(module, OptimizedModule) else module


def mark_in_head_targets(target: torch.Tensor | list[torch.Tensor], sample: int, mask: np.ndarray, label: int) -> None:
    """Write `label` into nnU-Net's target of one sample (every deep supervision scale, in place)
    where `mask` (X, Y, Z, full resolution) is set, downsampled as nnU-Net's own
    DownsampleSegForDSTransform does (nearest-exact)."""
    full = torch.from_numpy(mask)[None, None].float()
    for scale in (target if isinstance(target, list) else [target]):
        shape = tuple(scale.shape[2:])
        m = full if shape == mask.shape else torch.nn.functional.interpolate(full, shape, mode="nearest-exact")
        scale[sample, 0][m[0, 0].to(scale.device) > 0.5] = label


def batch_arrays(batch: dict) -> tuple[np.ndarray, np.ndarray]:
    """(data (B, C, X, Y, Z), segmentation (B, X, Y, Z) at full resolution) of a training batch as
    numpy views: writing into them writes into the batch."""
    target = batch["target"][0] if isinstance(batch["target"], list) else batch["target"]
    seg = target[:, 0].numpy() if isinstance(target, torch.Tensor) else np.asarray(target)[:, 0]
    data = batch["data"].numpy() if isinstance(batch["data"], torch.Tensor) else batch["data"]
    return data, seg


def with_lesions(targets: LesionTargets, masks: np.ndarray, attributes: np.ndarray) -> LesionTargets:
    """`targets` with more lesions appended (masks (N, X, Y, Z) bool, attributes (N, values) bool)."""
    return LesionTargets(torch.cat([targets.masks, torch.from_numpy(masks).to(targets.masks.device)]),
                         torch.cat([targets.attribute_targets,
                                    torch.from_numpy(attributes).to(targets.attribute_targets.device)]))


class nnUNetTrainerMalenia(PartialLabels, nnUNetTrainer):
    """Malenia on nnU-Net: `nnUNetv2_train DATASET 3d_fullres FOLD -tr nnUNetTrainerMalenia`."""

    # Head configuration; variants override single fields (see MaleniaConfig for the meaning).
    malenia_config: dict[str, Any] = {}
    loss_weights = LossWeights()
    # Weight of Malenia's token loss next to nnU-Net's Dice+CE in the total. The two meet only in the
    # shared backbone (the decoder, CMKI and alignment see the token loss alone, and AdamW is blind
    # to a loss's scale), so this sets how much of the backbone's update serves the tokens:
    # at 1.0 the token loss's backbone gradient is 12-24x nnU-Net's (docs/benchmarks.md).
    malenia_loss_weight = 1.0
    # Synthetic anomalies pasted into training patches as class-agnostic lesion targets for the
    # tokens (training/synthetic_anomalies.py); None: off.
    anomalies: AnomalyConfig | None = None
    # Seen training lesions moved into another organ of a patch, with their attribute values
    # (training/lesion_paste.py); None: off.
    lesion_paste: LesionPasteConfig | None = None
    # Weight of a class-agnostic "any lesion" Dice+BCE on the head's summed lesion channels, next to
    # nnU-Net's loss (loss/lesion_region.py): what the eval rule lesion_presence="nnunet" reads; 0: off.
    lesion_region_weight = 0.0
    text_tower = "default"  # a tower spec (docs/text_tower.md); $MALENIA_TEXT_TOWER overrides it
    initial_lr_malenia = 3e-4  # AdamW; see docs/training.md for the comparison with nnU-Net's SGD
    # nnU-Net trainer attributes a variant sets after nnU-Net's __init__ (num_epochs, save_every, ...)
    schedule: dict[str, int] = {}

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        if self.label_manager.has_regions or self.label_manager.has_ignore_label:
            raise MaleniaError("nnUNetTrainerMalenia needs plain integer labels: region-based training and the "
                               "ignore label are not supported")
        self.initial_lr = self.initial_lr_malenia
        for name, value in self.schedule.items():
            setattr(self, name, value)
        self.text_tower = os.environ.get("MALENIA_TEXT_TOWER") or self.text_tower
        self.knowledge = dataset_knowledge(dataset_json, raw_dataset_folder(self.plans_manager.dataset_name))
        self.vocabulary, self.table, self.attribute_lookup = self._build_attribute_space()
        self.bank = self._embed_vocabulary()
        config = MaleniaConfig(**{**self.malenia_config, "text_dim": self.bank.embeddings.shape[1],
                                  "num_attribute_types": len(self.vocabulary.types),
                                  "lesion_labels": tuple(self.knowledge.lesion_labels),
                                  "anomaly_head_channel": self.anomaly_label is not None})
        self.plans_manager.plans[PLANS_KEY] = {
            "config": config.to_dict(),
            "num_values": len(self.vocabulary.phrases),
            "vocabulary": self.vocabulary.to_dict(),
            "knowledge_table": self.table.to_dict(),
            "disease_of_label": {str(k): v for k, v in self.knowledge.disease_of_label.items()},
            "text_tower": dict(self.bank.tower),
            "text_tower_spec": str(self.text_tower),
        }
        self.max_lesions = config.num_tokens
        self._anomaly_rng = np.random.default_rng()
        self._lesion_bank: list = []
        self._pasted = np.zeros(2)  # (patches that got a lesion, patches) this epoch
        self.criterion: MaleniaCriterion | None = None
        self.logger.local_logger = MaleniaProgressLogger.replacing(self.logger.local_logger, self.vocabulary.type_keys,
                                                                   config.num_blocks + 1)

    # ----- knowledge and text ------------------------------------------------------------------
    def _build_attribute_space(self):
        """(vocabulary, table restricted to the training diseases, lookup of lesion attributes)."""
        knowledge = self.knowledge
        table = knowledge.table
        lookup = LesionAttributeLookup(table.vocabulary, table, knowledge.disease_of_label, knowledge.lesion_attributes)
        return table.vocabulary, table, lookup

    def _embed_vocabulary(self):
        from nnunetv2_malenia.text import embed_vocabulary

        bank = embed_vocabulary(self.vocabulary, self.text_tower, progress=self.local_rank == 0)
        if tuple(bank.phrases) != tuple(self.vocabulary.phrases):
            raise MaleniaError("the embedding bank's phrases are not the vocabulary's, in order; re-run `malenia embed`")
        return bank

    def _table_tensors(self) -> tuple[torch.Tensor, list[int]]:
        labels = self.knowledge.lesion_labels
        rows = [self.table.disease_names.index(self.knowledge.disease_of_label[label]) for label in labels]
        return torch.from_numpy(self.table.weight_matrix()[rows]), labels

    # ----- network -------------------------------------------------------------------------------
    @staticmethod
    def build_network_architecture(plans_manager: PlansManager, configuration_manager: ConfigurationManager,
                                   num_input_channels: int, num_output_channels: int,
                                   enable_deep_supervision: bool = True) -> MaleniaNetwork:
        spec = plans_manager.plans.get(PLANS_KEY)
        if spec is None:
            raise MaleniaError("plans.json has no 'malenia' section: this model was not trained with "
                               "nnUNetTrainerMalenia (pass the trainer it was trained with to -tr)")
        return build_malenia_network(configuration_manager.network_arch_class_name,
                                     configuration_manager.network_arch_init_kwargs,
                                     configuration_manager.network_arch_init_kwargs_req_import,
                                     num_input_channels, num_output_channels,
                                     MaleniaConfig.from_dict(spec["config"]), int(spec["num_values"]),
                                     deep_supervision=enable_deep_supervision)

    def configure_optimizers(self):
        network = unwrap(self.network)
        network.set_vocabulary(self.bank.embeddings.to(self.device),
                               torch.tensor(self.vocabulary.value_type, device=self.device))
        table, labels = self._table_tensors()
        network.set_knowledge_table(table.to(self.device), labels, num_labels=self.label_manager.num_segmentation_heads)
        optimizer = torch.optim.AdamW(self.network.parameters(), lr=self.initial_lr, weight_decay=self.weight_decay)
        return optimizer, PolyLRScheduler(optimizer, self.initial_lr, self.num_epochs)

    def _build_loss(self):
        self.criterion = MaleniaCriterion(self.loss_weights)
        return super()._build_loss()

    # ----- steps ---------------------------------------------------------------------------------
    def _lesion_targets(self, batch: dict) -> tuple[list, list[list[int]]]:
        _, seg = batch_arrays(batch)
        built = [build_lesion_targets(seg[b], key, self.attribute_lookup, self.max_lesions, self.device)
                 for b, key in enumerate(batch["keys"])]
        return [t for t, _ in built], [labels for _, labels in built]

    def _anomaly_intensity(self) -> tuple[float, tuple[float, float], float | None]:
        """(one contrast unit, value range, 0 HU) in the network's input units, from the plans: HU
        for CT normalisation (the foreground mean and std, the clip percentiles), else 1/400 of a
        unit and no absolute scale (None: no tissue blobs)."""
        scheme = self.configuration_manager.normalization_schemes[0]
        props = self.plans_manager.foreground_intensity_properties_per_channel.get("0")
        if scheme == "CTNormalization" and props:
            std = max(float(props["std"]), 1e-8)
            mean = float(props["mean"])
            return 1.0 / std, ((float(props["percentile_00_5"]) - mean) / std,
                               (float(props["percentile_99_5"]) - mean) / std), -mean / std
        return 1.0 / 400.0, (-np.inf, np.inf), None

    def _anomaly_vectors(self) -> dict[str, np.ndarray]:
        """Per drawn property, its multi-hot vocabulary vector (empty if describe is off)."""
        vectors = {}
        if self.anomalies.describe:
            for prop, type_key, phrase in self.anomalies.phrases:
                if type_key in self.vocabulary.type_keys and phrase in self.vocabulary.phrases:
                    vector = np.zeros(len(self.vocabulary.phrases), dtype=bool)
                    vector[self.vocabulary.value_index(type_key, phrase)] = True
                    vectors[prop] = vector
        return vectors

    def _add_anomalies(self, batch: dict, targets: list) -> list:
        """Paste synthetic anomalies into batch["data"] (in place) and append them to the targets.
        Their attribute targets hold only what `describe` names (none by default: the contrastive
        loss skips a target without values, and CMKI injects the predicted ones)."""
        data, seg = batch_arrays(batch)
        unit, clip, zero_hu = self._anomaly_intensity()
        vectors = self._anomaly_vectors()
        empty = np.zeros(len(self.vocabulary.phrases), dtype=bool)
        lesion_labels = set(self.knowledge.lesion_labels)
        out = []
        for b, t in enumerate(targets):
            pasted = paste_anomalies(data[b], seg[b], lesion_labels, self.max_lesions - t.num_lesions,
                                     self.anomalies, unit, clip, self._anomaly_rng, zero_hu)
            if pasted and self.anomalies.label_in_head != "organ":
                mark_in_head_targets(batch["target"], b, np.any([a.mask for a in pasted], 0),
                                     min(lesion_labels) if self.anomaly_label is None else self.anomaly_label)
            if pasted:
                attrs = np.stack([np.any([vectors.get(p, empty) for p in a.properties] + [empty], 0) for a in pasted])
                t = with_lesions(t, np.stack([a.mask for a in pasted]), attrs)
            out.append(t)
        return out

    def on_train_start(self):
        super().on_train_start()
        if self.lesion_paste is not None:
            self._lesion_bank = self._build_lesion_bank()

    def _build_lesion_bank(self) -> list:
        """Every lesion of the fold's training cases, for lesion_paste (validation cases stay unseen)."""
        train_keys, _ = self.do_split()
        dataset = self.dataset_class(self.preprocessed_dataset_folder, train_keys,
                                     folder_with_segs_from_previous_stage=self.folder_with_segs_from_previous_stage)

        def cases():
            for key in train_keys:
                data, seg, _, _ = dataset.load_case(key)
                yield key, np.asarray(data[:]), np.asarray(seg[0])

        bank = build_lesion_bank(cases(), self.knowledge.lesion_labels, self.attribute_lookup.vector,
                                 place_values(self.vocabulary, self.lesion_paste), self.lesion_paste)
        self.print_to_log_file(f"lesion copy-paste: {len(bank)} lesions banked from {len(train_keys)} training cases")
        return bank

    def _add_pasted_lesions(self, batch: dict, targets: list) -> list:
        """Move one banked lesion into another organ of each patch (with lesion_paste.probability;
        batch["data"] and nnU-Net's target in place) and append it to the patch's targets."""
        data, seg = batch_arrays(batch)
        unit, clip, _ = self._anomaly_intensity()
        lesion_labels = set(self.knowledge.lesion_labels)
        annotated = getattr(self, "annotated_labels", None)
        out = []
        for b, t in enumerate(targets):
            if t.num_lesions >= self.max_lesions:
                out.append(t)
                continue
            # partial labels: write only a label the case's source annotates
            labelled = None if annotated is None else \
                annotated.mask([str(batch["keys"][b])], self.label_manager.num_segmentation_heads)[0]
            hit = paste_lesion(data[b], seg[b], lesion_labels, self._lesion_bank, self.lesion_paste, unit, clip,
                               self._anomaly_rng,
                               (lambda label: True) if labelled is None else (lambda label: bool(labelled[label])))
            if hit is not None:
                lesion, placed = hit
                mark_in_head_targets(batch["target"], b, placed, lesion.label)
                self._pasted[0] += 1
                t = with_lesions(t, placed[None], lesion.attributes[None])
            out.append(t)
        self._pasted[1] += len(targets)
        return out

    @property
    def anomaly_label(self) -> int | None:
        """The synthetic anomalies' own label in nnU-Net's target and head (one past the dataset's
        labels), when they have one (AnomalyConfig.label_in_head="own")."""
        if self.anomalies is None or self.anomalies.label_in_head != "own":
            return None
        return self.label_manager.num_segmentation_heads

    def _lesion_region_loss(self, logits, seg, batch: dict) -> torch.Tensor:
        """lesion_region_loss on the full-resolution output; cases whose source leaves a lesion label
        unannotated are left out."""
        logits = logits[0] if isinstance(logits, (list, tuple)) else logits
        seg = seg[0] if isinstance(seg, (list, tuple)) else seg
        labels = sorted(self.knowledge.lesion_labels)
        keep_labels = list(labels)
        if self.anomaly_label is not None:  # the anomalies' own channel is lesion too
            labels = labels + [self.anomaly_label]
        channels = torch.zeros(logits.shape[1], dtype=torch.bool, device=logits.device)
        channels[labels] = True
        keep = None
        if getattr(self, "annotated_labels", None) is not None:
            annotated = self.annotated_labels.mask([str(k) for k in batch["keys"]], logits.shape[1])
            keep = torch.from_numpy(annotated[:, keep_labels].all(1)).to(logits.device)
        return lesion_region_loss(logits, seg, channels, torch.tensor(labels), keep)

    def _all_finite(self, value: torch.Tensor) -> bool:
        """Every rank must take the same decision, or DDP's gradient all-reduce hangs."""
        finite = torch.isfinite(value.detach()).float().reshape(1)
        if self.is_ddp:
            dist.all_reduce(finite, op=dist.ReduceOp.MIN)
        return bool(finite.item() > 0)

    def train_step(self, batch: dict) -> dict:
        targets, _ = self._lesion_targets(batch)
        if self.lesion_paste is not None:
            targets = self._add_pasted_lesions(batch, targets)
        if self.anomalies is not None:
            targets = self._add_anomalies(batch, targets)
        data = batch["data"].to(self.device, non_blocking=True)
        seg = [t.to(self.device, non_blocking=True) for t in batch["target"]] if isinstance(batch["target"], list) \
            else batch["target"].to(self.device, non_blocking=True)
        self.optimizer.zero_grad(set_to_none=True)
        with autocast(self.device.type, enabled=True) if self.device.type == "cuda" else dummy_context():
            out = self.network(data, targets=targets, matcher=self.criterion.matcher)
            with self.annotation_of(batch):  # marginal Dice+CE on partially labelled cases
                nnunet_loss = self.loss(out["seg"], seg)
            parts = self.criterion(out, targets)
            loss = nnunet_loss + self.malenia_loss_weight * parts["loss"]
            if self.lesion_region_weight:
                region = self._lesion_region_loss(out["seg"], seg, batch)
                loss = loss + self.lesion_region_weight * region
                parts["lesion_region"] = region.detach()
        if not self._all_finite(loss):
            self.print_to_log_file(f"non-finite loss ({loss.item()}) in epoch {self.current_epoch}: step skipped "
                                   f"(cases {list(batch['keys'])})")
            return {"loss": np.nan}
        if self.grad_scaler is not None:
            self.grad_scaler.scale(loss).backward()
            self.grad_scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.network.parameters(), 12)
            self.grad_scaler.step(self.optimizer)
            self.grad_scaler.update()
        else:
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.network.parameters(), 12)
            self.optimizer.step()
        logged = {k: float(v) for k, v in parts.items() if k != "loss"}
        return {"loss": loss.detach().cpu().numpy(), "nnunet_loss": float(nnunet_loss.detach()), **logged}

    def on_train_epoch_end(self, train_outputs: list[dict]):
        finite = [o for o in train_outputs if np.isfinite(o["loss"])]
        if len(finite) < len(train_outputs):
            self.print_to_log_file(f"{len(train_outputs) - len(finite)} of {len(train_outputs)} training steps "
                                   "skipped (non-finite loss)")
        super().on_train_epoch_end([{"loss": o["loss"]} for o in finite] or [{"loss": np.nan}])
        keys = sorted(k for k in (finite[0] if finite else {}) if k != "loss")
        sums = self._sum_over_ranks(np.array([sum(o[k] for o in finite) for k in keys] + [len(finite)]))
        means = {k: sums[i] / sums[-1] for i, k in enumerate(keys)} if sums[-1] else {}
        self.logger.local_logger.log_components(means, self.current_epoch, prefix="train")
        if self.lesion_paste is not None:
            pasted, patches = self._sum_over_ranks(self._pasted)
            self.print_to_log_file(f"lesion copy-paste: {int(pasted)} of {int(patches)} patches got a moved lesion")
            self._pasted = np.zeros(2)

    def _sum_over_ranks(self, values: np.ndarray) -> np.ndarray:
        if not self.is_ddp:
            return values.astype(np.float64)
        tensor = torch.as_tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor)
        return tensor.cpu().numpy()

    def validation_step(self, batch: dict) -> dict:
        targets, _ = self._lesion_targets(batch)
        target = batch["target"][0] if isinstance(batch["target"], list) else batch["target"]
        target = target.to(self.device, non_blocking=True)
        data = batch["data"].to(self.device, non_blocking=True)
        with autocast(self.device.type, enabled=True) if self.device.type == "cuda" else dummy_context():
            details = unwrap(self.network).predict_details(data)
        log_probs = details["log_probs"]
        loss = torch.nn.functional.nll_loss(log_probs, target[:, 0].long())
        predicted = torch.zeros_like(log_probs).scatter_(1, log_probs.argmax(1, keepdim=True), 1)
        tp, fp, fn, _ = get_tp_fp_fn_tn(predicted, target, axes=[0] + list(range(2, log_probs.ndim)))
        correct, total = self._attribute_hits(details, targets)
        return {"loss": loss.detach().cpu().numpy(), "tp_hard": tp.detach().cpu().numpy()[1:],
                "fp_hard": fp.detach().cpu().numpy()[1:], "fn_hard": fn.detach().cpu().numpy()[1:],
                "attribute_correct": correct, "attribute_total": total}

    def _attribute_hits(self, details: dict, targets: list) -> tuple[np.ndarray, int]:
        """Per type, how many lesions the best-overlapping token gives a correct value for."""
        value_type = torch.tensor(self.vocabulary.value_type, device=self.device)
        n_types = len(self.vocabulary.types)
        correct = np.zeros(n_types)
        total = 0
        for b, target in enumerate(targets):
            if target.num_lesions == 0:
                continue
            probs = details["token_probs"][b].flatten(1).float()  # (N, voxels)
            masks = target.masks.flatten(1).float()  # (n, voxels)
            dice = 2 * masks @ probs.T / (masks.sum(1, keepdim=True) + probs.sum(1)[None] + 1e-6)
            tokens = dice.argmax(1)
            predicted = details["attribute_probs"][b, tokens].argmax(-1)  # (n, T): value index per type
            for t in range(n_types):
                hit = target.attribute_targets.gather(1, predicted[:, t:t + 1]).squeeze(1)
                correct[t] += float((hit & (value_type[predicted[:, t]] == t)).sum())
            total += target.num_lesions
        return correct, total

    def on_validation_epoch_end(self, val_outputs: list[dict]):
        super().on_validation_epoch_end(val_outputs)
        sums = self._sum_over_ranks(np.append(np.sum([o["attribute_correct"] for o in val_outputs], 0),
                                              sum(o["attribute_total"] for o in val_outputs)))
        accuracy = {k: (sums[i] / sums[-1] if sums[-1] else float("nan"))
                    for i, k in enumerate(self.vocabulary.type_keys)}
        self.logger.local_logger.log_components(accuracy, self.current_epoch, prefix="val_accuracy")

    def on_epoch_end(self):
        accuracy = self.logger.local_logger.attribute_accuracy(self.current_epoch)
        super().on_epoch_end()
        if accuracy:
            self.print_to_log_file("attribute accuracy (val patches): " +
                                   ", ".join(f"{k} {v:.2f}" for k, v in accuracy.items()))


class nnUNetTrainerMalenia_smoke(nnUNetTrainerMalenia):
    """2 epochs x 5 iterations with a small head: proves the whole pipeline runs (CPU tests)."""

    malenia_config = {"hidden_dim": 64, "num_tokens": 8, "num_heads": 4, "ffn_dim": 128, "fusion_layers": 1}
    # save_every 1: a checkpoint_latest.pth after every epoch but the last, for resume tests
    schedule = {"num_epochs": 2, "num_iterations_per_epoch": 5, "num_val_iterations_per_epoch": 2, "save_every": 1}


class nnUNetTrainerMalenia_demo(nnUNetTrainerMalenia):
    """`malenia demo`'s CPU-sized schedule: 40 epochs x 10 iterations.

    19 min measured on 2 cores at 48^3 (docs/benchmarks.md).
    """

    schedule = {"num_epochs": 40, "num_iterations_per_epoch": 10, "num_val_iterations_per_epoch": 2}


class nnUNetTrainerMalenia_nameonly(nnUNetTrainerMalenia):
    """Ablation: each lesion is aligned to one phrase, its disease's name, instead of its 8 attributes
    (the text conditioning of Universal Model / ZePT). Everything else is nnUNetTrainerMalenia's."""

    def _build_attribute_space(self):
        names = disease_name_table(self.knowledge.table)
        return names.vocabulary, names, LesionAttributeLookup(names.vocabulary, names, self.knowledge.disease_of_label)


class nnUNetTrainerMalenia_5epochs(nnUNetTrainerMalenia):
    schedule = {"num_epochs": 5}


class nnUNetTrainerMalenia_50epochs(nnUNetTrainerMalenia):
    schedule = {"num_epochs": 50}


class nnUNetTrainerMalenia_250epochs(nnUNetTrainerMalenia):
    schedule = {"num_epochs": 250}
