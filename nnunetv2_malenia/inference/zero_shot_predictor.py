"""Zero-shot prediction: nnU-Net's predictor with a Clinical Knowledge Table swapped in.

The trained network scores every token against the rows of whatever table it holds; swapping the
table (new rows, e.g. diseases never trained on) changes the output labels and nothing else. The
sliding window, mirroring, fold ensembling and resampling back to the input geometry stay
nnU-Net's. Output labels: background and the dataset's non-lesion labels keep their values, a
disease that was a training label keeps its label, every other disease takes the next free label
in table order (so the synthetic benchmark's `dataset_test.json` numbering is reproduced).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

from nnunetv2_malenia.errors import MaleniaError
from nnunetv2_malenia.inference.lesion_report import UNKNOWN_LESION, LesionReport
from nnunetv2_malenia.inference.window_tokens import CANDIDATE_MASS, WindowRecorder
from nnunetv2_malenia.knowledge import KnowledgeTable, Vocabulary
from nnunetv2_malenia.knowledge.knowledge_table import DISEASE_NAME_TYPE, disease_name_table, knowledge_table_from_dict
from nnunetv2_malenia.knowledge.vocabulary import AttributeType, vocabulary_from_dict
from nnunetv2_malenia.network.config import PLANS_KEY


def check_part(num_parts: int, part_id: int) -> None:
    """nnUNetv2_predict's -num_parts/-part_id contract; called before a model is loaded, too."""
    if not 0 <= part_id < num_parts:
        raise MaleniaError(f"--part-id must be in 0..{num_parts - 1} for --num-parts {num_parts}, got {part_id}")


@dataclass
class ModelKnowledge:
    """What a trained model folder says about its text side (plans.json's "malenia" section)."""

    vocabulary: Vocabulary
    table: KnowledgeTable
    disease_of_label: dict[int, str]
    tower_identity: dict
    tower_spec: str

    @property
    def name_only(self) -> bool:
        return self.vocabulary.type_keys == (DISEASE_NAME_TYPE,)

    @classmethod
    def from_plans(cls, plans: dict, source: str) -> "ModelKnowledge":
        spec = plans.get(PLANS_KEY)
        if spec is None:
            raise MaleniaError(f"{source}: plans.json has no 'malenia' section; this is not a model trained with "
                               "nnUNetTrainerMalenia (use nnUNetv2_predict for other trainers)")
        keys = [t["key"] for t in spec["vocabulary"]["attribute_types"]]
        vocabulary = vocabulary_from_dict(spec["vocabulary"], source, type_keys=keys)
        table = knowledge_table_from_dict(spec["knowledge_table"], vocabulary, source)
        return cls(vocabulary, table, {int(k): v for k, v in spec["disease_of_label"].items()},
                   spec["text_tower"], spec.get("text_tower_spec", "default"))


def output_labels(training_labels: dict[str, int], disease_of_label: dict[int, str],
                  diseases: tuple[str, ...], head_channels: int | None = None) -> tuple[dict[str, int], list[int], list[int]]:
    """(label name -> value, output label of each disease, nnU-Net head channel -> output label or -1).
    `head_channels`: the head's channel count when it has channels past the dataset's labels (the
    anomalies' own, MaleniaConfig.anomaly_head_channel): lesion channels of no disease, -1."""
    by_value = {int(v): name for name, v in training_labels.items()}
    label_of_trained_disease = {disease: label for label, disease in disease_of_label.items()}
    labels = {name: value for value, name in sorted(by_value.items()) if value not in disease_of_label}
    next_free = max(by_value) + 1
    label_of_disease = []
    for disease in diseases:
        if disease in label_of_trained_disease:
            label = label_of_trained_disease[disease]
        else:
            label, next_free = next_free, next_free + 1
        label_of_disease.append(label)
        if disease in labels and labels[disease] != label:
            raise MaleniaError(f"table disease {disease!r} has the name of a non-lesion label of the model; rename the row")
        labels[disease] = label
    for label, disease in disease_of_label.items():  # trained diseases the table leaves out keep their channel
        if disease not in diseases:
            labels[f"{disease} (not in table)"] = label
    head_label_map = [-1 if value in disease_of_label else value for value in range(max(by_value) + 1)]
    head_label_map += [-1] * ((head_channels or 0) - len(head_label_map))
    return dict(sorted(labels.items(), key=lambda item: item[1])), label_of_disease, head_label_map


def table_in_model_space(table: KnowledgeTable, model: ModelKnowledge) -> KnowledgeTable:
    """The table as the model reads it: a name-only model sees only the disease names."""
    if model.name_only:
        return disease_name_table(table)
    if table.vocabulary.type_keys != model.vocabulary.type_keys:
        raise MaleniaError(f"{table.source}: its attribute types {table.vocabulary.type_keys} are not the model's "
                           f"{model.vocabulary.type_keys}")
    return table


def merged_vocabulary(model: Vocabulary, table: Vocabulary) -> tuple[Vocabulary, list[str]]:
    """The model's vocabulary plus the table's values it lacks (appended per type), and those new phrases."""
    types, new = [], []
    for model_type in model.types:
        extra = [v for v in table.type(model_type.key).values if v not in model_type.values]
        new += extra
        types.append(AttributeType(model_type.key, model_type.name, model_type.values + tuple(extra),
                                   model_type.multi_valued, model_type.none_value))
    return Vocabulary(model.name if not new else f"{model.name}+{table.name}", tuple(types)), new


def mark_unknown_lesions(logits: torch.Tensor, reports: list[LesionReport]) -> torch.Tensor:
    """The logits with the open-set label winning on the voxels of every lesion reported as unknown.

    Done on the logits, before nnU-Net's export resamples them to the input geometry, so the
    relabelled lesion is resampled exactly like every other label. `logits` is left as it is.
    """
    unknown = [r for r in reports if r.disease == UNKNOWN_LESION and r.mask is not None]
    if not unknown:
        return logits
    logits = logits.clone()  # the predictor's output is an inference-mode tensor
    for report in unknown:
        region = logits[(slice(None), *report.bbox)]
        mask = torch.from_numpy(report.mask)
        channel = region[report.label]
        channel[mask] = region.max(0).values[mask] + 10.0
    return logits


def write_case_scores_csv(folder: Path, disease_names: list[str]) -> Path:
    """`case_scores.csv`: one row per case with a CASE.lesions.json in `folder` (this run's and
    earlier ones'), one column per table row: the case-level presence score of that disease."""
    import csv
    import io

    from nnunetv2_malenia._atomic import atomic_write

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["case", *disease_names])
    for report in sorted(folder.glob("*.lesions.json")):
        scores = json.loads(report.read_text()).get("case_scores", {})
        writer.writerow([report.name[: -len(".lesions.json")], *(scores.get(d, "") for d in disease_names)])
    return atomic_write(folder / "case_scores.csv", lambda tmp: tmp.write_text(buffer.getvalue(), encoding="utf-8"))


@dataclass
class FolderPrediction:
    """What ZeroShotPredictor.predict_folder did: cases predicted, and bad cases left out with the reason."""

    predicted: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # case id -> one-line reason


class ZeroShotPredictor(nnUNetPredictor):
    """nnUNetPredictor whose Malenia network answers with the rows of a chosen knowledge table."""

    model: ModelKnowledge
    unknown: tuple[float, int] | None = None  # (threshold, label) of the open-set label
    _recorder: WindowRecorder | None = None  # set while predict_with_windows runs

    def predict_with_windows(self, data: torch.Tensor,
                             candidate_mass: float = CANDIDATE_MASS) -> tuple[torch.Tensor, WindowRecorder]:
        """nnU-Net's logits for a preprocessed case (C, X, Y, Z), and what the tokens said in
        each window of that same pass (every fold's windows), for the lesion reports.
        `candidate_mass` 0 keeps the token masks on every voxel (to report on lesions the model
        did not predict, e.g. ground-truth ones; memory grows with tokens x image)."""
        network = self.network._orig_mod if hasattr(self.network, "_orig_mod") else self.network
        self._recorder = WindowRecorder(tuple(data.shape[1:]), network.disease_head.label_of_disease.cpu(),
                                        candidate_mass)
        try:
            logits = self.predict_logits_from_preprocessed_data(data).cpu()
        finally:
            recorder, self._recorder = self._recorder, None
        return logits, recorder

    def _internal_get_sliding_window_slicers(self, image_size):
        slicers = super()._internal_get_sliding_window_slicers(image_size)
        if self._recorder is not None:
            self._recorder.start_pass(tuple(image_size), slicers)
        return slicers

    def _internal_maybe_mirror_and_predict(self, x: torch.Tensor) -> torch.Tensor:
        if self._recorder is None:
            return super()._internal_maybe_mirror_and_predict(x)
        network = self.network._orig_mod if hasattr(self.network, "_orig_mod") else self.network
        network.keep_next_details()  # the first forward of this window: the window as it is, unmirrored
        prediction = super()._internal_maybe_mirror_and_predict(x)
        self._recorder.add(network.take_kept_details())
        return prediction

    def initialize_from_trained_model_folder(self, model_training_output_dir: str, use_folds,
                                             checkpoint_name: str = "checkpoint_final.pth") -> None:
        folder = Path(model_training_output_dir)
        if not (folder / "plans.json").is_file() or not (folder / "dataset.json").is_file():
            raise MaleniaError(f"{folder}: not an nnU-Net model folder (no plans.json/dataset.json); pass the "
                               "folder nnUNetv2_train wrote, e.g. $nnUNet_results/Dataset901_X/nnUNetTrainerMalenia__nnUNetPlans__3d_fullres")
        for fold in use_folds or []:
            if not (folder / f"fold_{fold}" / checkpoint_name).is_file():
                raise MaleniaError(f"{folder / f'fold_{fold}' / checkpoint_name}: no such checkpoint; "
                                   "train that fold or choose folds with -f")
        self.model = ModelKnowledge.from_plans(json.loads((folder / "plans.json").read_text()), str(folder / "plans.json"))
        super().initialize_from_trained_model_folder(str(folder), use_folds, checkpoint_name)
        self._training_labels = dict(self.dataset_json["labels"])

    def install_table(self, table: KnowledgeTable, tower_spec: str | None = None,
                      unknown_threshold: float = 0.0, seen_row_penalty: float | None = None) -> dict[str, int]:
        """Make every fold's network answer with `table`; returns the output label list.

        With `unknown_threshold` > 0 the labels end with UNKNOWN_LESION: a lesion whose best row
        match (DiseaseHead.row_match) is below the threshold gets it instead of its closest row.
        `seen_row_penalty` replaces the model's (MaleniaConfig.seen_row_penalty, stored in its plans):
        how much lower the rows of the diseases it was trained on are scored.
        """
        if not 0.0 <= unknown_threshold < 1.0:
            raise MaleniaError(f"--unknown-threshold must be in [0, 1), got {unknown_threshold}")
        if seen_row_penalty is not None and not seen_row_penalty >= 0.0:
            raise MaleniaError(f"--seen-row-penalty must be >= 0 (0: score seen and unseen rows alike), "
                               f"got {seen_row_penalty}")
        table = table_in_model_space(table, self.model)
        network = self.network._orig_mod if hasattr(self.network, "_orig_mod") else self.network
        if seen_row_penalty is not None:  # an eval rule: the weights are the same
            network.config = replace(network.config, seen_row_penalty=float(seen_row_penalty))
        vocabulary, new_phrases = merged_vocabulary(self.model.vocabulary, table.vocabulary)
        if new_phrases:
            embeddings = self._embeddings(vocabulary, new_phrases, network, tower_spec)
            network.set_vocabulary(embeddings, torch.tensor(vocabulary.value_type))
        table = KnowledgeTable(table.name, vocabulary, table.diseases, table.source)
        labels, label_of_disease, head_map = output_labels(self._training_labels, self.model.disease_of_label,
                                                           table.disease_names, network.disease_head.head_label_map.numel())
        self.unknown = None
        if unknown_threshold > 0:
            if UNKNOWN_LESION in labels:
                raise MaleniaError(f"{table.source}: a row is named {UNKNOWN_LESION!r}, the open-set label; rename it")
            labels[UNKNOWN_LESION] = max(labels.values()) + 1
            self.unknown = (float(unknown_threshold), labels[UNKNOWN_LESION])
        network.set_knowledge_table(torch.from_numpy(table.weight_matrix()), label_of_disease,
                                    num_labels=max(labels.values()) + 1, head_label_map=head_map)
        swapped = {f"attributes.{k}": v for k, v in network.attributes.state_dict().items() if k in ("value_embeddings", "value_type")}
        swapped |= {f"disease_head.{k}": v for k, v in network.disease_head.state_dict().items()}
        for params in self.list_of_parameters:  # nnU-Net reloads each fold's state dict before predicting
            params.update({k: v.clone() for k, v in swapped.items()})
        self.dataset_json = {**self.dataset_json, "labels": labels}
        self.label_manager = self.plans_manager.get_label_manager(self.dataset_json)
        self.table = table
        self.disease_of_output_label = dict(zip(label_of_disease, table.disease_names))
        return labels

    def predict_folder(self, input_folder: Path, output_folder: Path, overwrite: bool = False,
                       overlays: bool = False, num_parts: int = 1, part_id: int = 0,
                       ct_check: bool = True, skip_bad_inputs: bool = False) -> FolderPrediction:
        """Label map, CASE.lesions.json (and CASE.png with `overlays`) per case, with a progress bar.

        `num_parts`/`part_id` split the cases as nnUNetv2_predict's options do (every num_parts-th
        case from part_id), so several machines can share one folder. Every case is checked first
        (input_check.check_case: readable, complete, channel count; `ct_check` includes the HU
        test), so a bad file stops the run before anything is written. With `skip_bad_inputs` a
        bad case is left out instead (its one-line reason in the result, printed to stderr at
        once) and the others are predicted: one broken copy does not hold up a whole folder.

        nnU-Net's preprocessing, sliding-window prediction and export; a case whose lesions.json (written
        last, atomically) exists is skipped unless `overwrite`.
        """
        from nnunetv2.inference.export_prediction import export_prediction_from_logits
        from nnunetv2.utilities.utils import (create_lists_from_splitted_dataset_folder,
                                              get_identifiers_from_splitted_dataset_folder)
        from tqdm.auto import tqdm

        from nnunetv2_malenia._atomic import write_json_atomic
        from nnunetv2_malenia.inference.lesion_report import lesion_reports
        from nnunetv2_malenia.inference.overlays import write_overlay

        ending = self.dataset_json["file_ending"]
        check_part(num_parts, part_id)
        cases = get_identifiers_from_splitted_dataset_folder(str(input_folder), ending)[part_id::num_parts]
        files = create_lists_from_splitted_dataset_folder(str(input_folder), ending, cases, num_processes=1)
        from nnunetv2_malenia.inference.input_check import check_case

        expects_ct = ct_check and self.configuration_manager.normalization_schemes[0] == "CTNormalization"
        result = FolderPrediction()
        good = []
        for case, case_files in zip(cases, files):
            try:
                check_case(case_files, len(self.dataset_json["channel_names"]), expects_ct)
            except MaleniaError as e:
                if not skip_bad_inputs:
                    raise
                result.skipped[case] = str(e)
                print(f"skipping case {case}: {e}", file=sys.stderr, flush=True)
                continue
            good.append((case, case_files))
        if not good:
            return result
        output_folder.mkdir(parents=True, exist_ok=True)
        write_json_atomic(output_folder / "dataset.json", self.dataset_json)
        preprocessor = self.configuration_manager.preprocessor_class(verbose=False)
        network = self.network._orig_mod if hasattr(self.network, "_orig_mod") else self.network
        for case, case_files in tqdm(good, desc="cases", unit="case"):
            report_file = output_folder / f"{case}.lesions.json"
            if report_file.is_file() and (output_folder / f"{case}{ending}").is_file() and not overwrite:
                continue
            data, _, properties = preprocessor.run_case(case_files, None, self.plans_manager,
                                                        self.configuration_manager, self.dataset_json)
            data = torch.from_numpy(data)
            logits, windows = self.predict_with_windows(data)
            reports = lesion_reports(network, windows, logits.argmax(0).numpy(), self.disease_of_output_label,
                                     self.table, properties, self.plans_manager.transpose_forward,
                                     tuple(self.configuration_manager.spacing), unknown=self.unknown)
            logits = mark_unknown_lesions(logits, reports)
            export_prediction_from_logits(logits, properties, self.configuration_manager, self.plans_manager,
                                          self.dataset_json, str(output_folder / case), False)
            lesions = [r.to_dict() for r in reports]
            if overlays:
                write_overlay(case_files[0], output_folder / f"{case}{ending}", lesions, output_folder / f"{case}.png")
            scores = {k: round(v, 4) for k, v in windows.case_scores(list(self.table.disease_names)).items()}
            write_json_atomic(report_file, {"case": case, "table": self.table.name, "case_scores": scores,
                                            "lesions": lesions})
            result.predicted.append(case)
        write_case_scores_csv(output_folder, list(self.table.disease_names))
        return result

    def _embeddings(self, vocabulary: Vocabulary, new_phrases: list[str], network, tower_spec: str | None) -> torch.Tensor:
        """The model's stored embeddings for known phrases, the text tower's for new ones."""
        from nnunetv2_malenia.text import embed_phrases, tower_identity

        spec = tower_spec or self.model.tower_spec
        try:
            identity = tower_identity(spec)
        except MaleniaError as e:
            raise MaleniaError(f"the table has values the model never embedded ({', '.join(map(repr, new_phrases[:3]))}"
                               f"{', ...' if len(new_phrases) > 3 else ''}) and its text tower is not available: {e}") from None
        expected = self.model.tower_identity
        if identity.get("weights_sha256") != expected.get("weights_sha256") or identity.get("embed_dim") != expected.get("embed_dim"):
            raise MaleniaError(f"the table has values the model never embedded ({', '.join(map(repr, new_phrases[:3]))}); "
                               f"embedding them needs the model's text tower {expected.get('name')} (sha256 "
                               f"{str(expected.get('weights_sha256'))[:12]}...), but --tower {spec} is "
                               f"{identity.get('name')} (sha256 {str(identity.get('weights_sha256'))[:12]}...)")
        fresh, _, _ = embed_phrases(new_phrases, spec, None, False)
        fresh_of = dict(zip(new_phrases, fresh.float()))
        stored = network.attributes.value_embeddings.detach().cpu()
        rows = []
        for attr_type in vocabulary.types:
            for phrase in attr_type.values:
                if self.model.vocabulary.has_value(attr_type.key, phrase):
                    rows.append(stored[self.model.vocabulary.value_index(attr_type.key, phrase)])
                else:
                    rows.append(fresh_of[phrase])
        return torch.stack(rows)
