"""The open-set rule's default: below which best row match a lesion is an "unknown lesion".

Kept in a module of its own, free of torch and nnU-Net imports, so `malenia predict --help` can
show it quickly. Off (0) by default: the threshold belongs to a model, and on the CPU-trained
models measured so far (docs/benchmarks.md, "Open set") the best row match does not separate
lesions of rows in the table from lesions whose disease was removed from it (AUROC 0.50-0.52), so
any fixed value relabels seen lesions at random. The zero-shot recipe's model is the first
measured exception (one run: AUROC 0.83, best threshold 0.71, its reports read from the per-voxel
readout; docs/benchmarks.md): a threshold measured on a model is passed for that model. `benchmarks/bench_open_set.py` measures a model's
`best_threshold`; pass it as `--unknown-threshold`.
"""

OPEN_SET_THRESHOLD = 0.0
