"""Synthetic anomalies with a label of their own (AnomalyConfig(label_in_head="own")): one more channel
of nnU-Net's head, a lesion channel of no disease (MaleniaConfig.anomaly_head_channel)."""
from types import SimpleNamespace

import numpy as np
import torch

from nnunetv2_malenia.inference.zero_shot_predictor import output_labels
from nnunetv2_malenia.network import MaleniaConfig, build_malenia_network
from nnunetv2_malenia.network.toy import random_vocabulary, unet_plans
from nnunetv2_malenia.training.nnUNetTrainerMalenia import nnUNetTrainerMalenia
from nnunetv2_malenia.training.synthetic_anomalies import AnomalyConfig

VOCAB = (2, 3, 3)
V = sum(VOCAB)
SHAPE = (16, 16, 16)
LESION = 1            # the dataset: background 0, one lesion label 1 (num_segmentation_heads 2)


def make_net(anomaly_head_channel: bool):
    torch.manual_seed(0)
    cfg = MaleniaConfig(hidden_dim=16, num_tokens=5, num_heads=2, ffn_dim=16, fusion_layers=1, text_dim=8,
                        num_attribute_types=3, voxel_readout=True, lesion_naming="voxel", lesion_presence="nnunet",
                        lesion_labels=(LESION,), anomaly_head_channel=anomaly_head_channel)
    p = unet_plans([4, 8, 8, 8], convs_per_stage=1)
    net = build_malenia_network(p["network_class_name"], p["arch_kwargs"], p["_kw_requires_import"], 1, 2, cfg, V)
    net.set_vocabulary(*random_vocabulary(VOCAB, cfg.text_dim))
    return net


def test_the_head_gets_a_channel_that_is_lesion_mass_of_no_disease():
    plain, own = make_net(False), make_net(True)
    assert plain.decoder.seg_layers[-1].out_channels == 2 and own.decoder.seg_layers[-1].out_channels == 3
    assert own.disease_head.head_label_map.tolist() == [0, -1, -1]   # background kept; lesion and anomaly channels not
    own.eval().set_knowledge_table(torch.rand(2, V), [1, 2])
    x = torch.randn(1, 1, *SHAPE)
    with torch.no_grad():
        own.decoder.seg_layers[-1].bias[:] = torch.tensor([0.0, -20.0, 20.0])   # every voxel: the anomaly channel
        log_probs = own.predict_details(x)["log_probs"]
    assert log_probs.shape[1] == 3                         # the output's labels: background and the two diseases
    lesion_mass = log_probs.exp()[:, 1:].sum(1)
    assert (lesion_mass > 0.99).all()                      # counted as lesion mass, shared by the table's diseases


def test_the_predictor_maps_channels_past_the_datasets_labels_to_no_output_label():
    labels = {"background": 0, "liver": 1, "liver cyst": 2}
    _, _, head_map = output_labels(labels, {2: "liver cyst"}, ("liver cyst", "liver hemangioma"), head_channels=4)
    assert head_map == [0, 1, -1, -1]
    _, _, plain = output_labels(labels, {2: "liver cyst"}, ("liver cyst", "liver hemangioma"))
    assert plain == [0, 1, -1]


class _Trainer:
    """The trainer's anomaly methods without nnU-Net's setup."""
    anomaly_label = nnUNetTrainerMalenia.anomaly_label
    _add_anomalies = nnUNetTrainerMalenia._add_anomalies
    _anomaly_vectors = nnUNetTrainerMalenia._anomaly_vectors
    _lesion_region_loss = nnUNetTrainerMalenia._lesion_region_loss

    def __init__(self, label_in_head: str):
        from nnunetv2_malenia.knowledge import load_vocabulary

        self.anomalies = AnomalyConfig(probability=1.0, max_per_patch=1, label_in_head=label_in_head)
        self.label_manager = SimpleNamespace(num_segmentation_heads=3)   # background, organ, lesion
        self.knowledge = SimpleNamespace(lesion_labels=[2])
        self.vocabulary = load_vocabulary()
        self.max_lesions = 3
        self._anomaly_rng = np.random.default_rng(0)

    def _anomaly_intensity(self):
        return 0.01, (-10.0, 10.0), None


def test_the_trainer_labels_the_blobs_with_the_extra_channel_and_counts_it_as_lesion():
    from nnunetv2_malenia.loss.targets import LesionTargets

    seg = np.zeros((24, 24, 24), dtype=np.int16)
    seg[2:22, 2:22, 2:22] = 1                                # an organ, no lesion: the blob is the only lesion
    batches = {}
    for mode in ("lesion", "own"):
        trainer = _Trainer(mode)
        assert trainer.anomaly_label == (3 if mode == "own" else None)
        batch = {"data": torch.zeros(1, 1, *seg.shape), "target": [torch.from_numpy(seg[None, None].copy())]}
        empty = LesionTargets(torch.zeros(0, *seg.shape, dtype=torch.bool),
                              torch.zeros(0, len(trainer.vocabulary.phrases), dtype=torch.bool))
        (targets,) = trainer._add_anomalies(batch, [empty])
        blob = targets.masks[0].numpy()
        marked = batch["target"][0][0, 0].numpy()
        assert (marked[blob] == (3 if mode == "own" else 2)).all()   # "lesion": the first lesion label
        batches[mode] = (trainer, marked)
    # the "any lesion" loss: logits that call everything organ are wrong on the blob only if the
    # blob's label counts as lesion, which with "own" it does through the extra channel
    trainer, marked = batches["own"]
    logits = torch.zeros(1, 4, *seg.shape)
    logits[:, 1] = 10.0
    target = torch.from_numpy(marked[None, None].astype(np.int64))
    everything_organ = trainer._lesion_region_loss(logits, target, {"keys": ["case"]})
    logits[:, 3][target[:, 0] == 3] = 30.0                   # the blob in the anomalies' channel
    blob_found = trainer._lesion_region_loss(logits, target, {"keys": ["case"]})
    assert everything_organ > 0.5 and blob_found < 0.1 * everything_organ
