"""The open-set rule's default: below which best row match a lesion is an "unknown lesion".

Kept in a module of its own, free of torch and nnU-Net imports, so `malenia predict --help` can
show it quickly. The value is measured on the synthetic benchmark (docs/benchmarks.md, "Open
set"): the match of correctly found lesions of rows in the table against lesions whose disease was
removed from the table.
"""

OPEN_SET_THRESHOLD = 0.5
