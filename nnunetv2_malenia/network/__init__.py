"""Malenia network: nnU-Net backbone adapter, masked-attention transformer decoder, CMKI, disease head."""
from .attribute_bank import AttributeBank, grouped_log_softmax
from .backbone_adapter import BackboneOutput, NnUNetBackboneAdapter, build_nnunet_backbone
from .cmki import CMKIOutput, CrossModalKnowledgeInjection, MaskQuery, ensemble_log_probs, ensemble_probs, mask_logits
from .config import MaleniaConfig
from .disease_head import DiseaseHead
from .malenia_network import MaleniaNetwork, build_malenia_network
from .transformer_decoder import DecoderLayerOutput, DecoderOutput, MaskedAttentionDecoder

__all__ = [
    "AttributeBank", "grouped_log_softmax", "BackboneOutput", "NnUNetBackboneAdapter", "build_nnunet_backbone",
    "CMKIOutput", "CrossModalKnowledgeInjection", "MaskQuery", "ensemble_log_probs", "ensemble_probs",
    "mask_logits", "MaleniaConfig", "DiseaseHead", "MaleniaNetwork", "build_malenia_network",
    "DecoderLayerOutput", "DecoderOutput", "MaskedAttentionDecoder",
]
