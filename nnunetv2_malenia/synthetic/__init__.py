"""Attribute-controlled synthetic CT lesion benchmark (`malenia synth`).

anatomy: body and labelled organs; shapes / appearance / placement / surroundings: one lesion's
outline, CT numbers, position and outside features from its attribute values; sampling: what a
case contains; case: one case end to end; dataset_writer: the nnU-Net raw dataset; preview: a
picture of it. Heavy modules are not imported here, so importing the package stays cheap.
"""
