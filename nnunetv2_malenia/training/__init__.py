"""nnU-Net trainers for Malenia."""
