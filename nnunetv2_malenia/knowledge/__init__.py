"""Knowledge tables: attribute vocabulary, Clinical Knowledge Table, per-dataset lesion attributes."""

from nnunetv2_malenia.knowledge.knowledge_table import DiseaseRow, KnowledgeTable, load_knowledge_table
from nnunetv2_malenia.knowledge.lesion_attributes import (
    LESION_ATTRIBUTES_FILENAME,
    LesionAttributes,
    LesionRecord,
    load_lesion_attributes,
)
from nnunetv2_malenia.knowledge.vocabulary import ATTRIBUTE_TYPE_KEYS, AttributeType, Vocabulary, load_vocabulary

__all__ = [
    "ATTRIBUTE_TYPE_KEYS", "AttributeType", "DiseaseRow", "KnowledgeTable", "LESION_ATTRIBUTES_FILENAME",
    "LesionAttributes", "LesionRecord", "Vocabulary", "load_knowledge_table", "load_lesion_attributes", "load_vocabulary",
]
