"""Time `malenia synth` on the speed goal: 40 training cases of 64^3 on 2 worker processes.

Usage: python3 benchmarks/bench_synth.py [--cases 40] [--workers 2] [--repeats 1]
Generates into a temporary folder (removed afterwards) and prints wall time, time per case and
the peak resident memory of the driver process and of the largest worker. The goal (issue
"synthetic benchmark") is < 60 s for 40 cases of 64^3 on 2 cores, memory bounded regardless of N.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nnunetv2_malenia.synthetic.dataset_writer import SynthConfig, generate_dataset, plan_jobs  # noqa: E402
from nnunetv2_malenia.synthetic.benchmark import load_benchmark  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--shape", type=int, nargs=3, default=[64, 64, 64])
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    for repeat in range(args.repeats):
        with tempfile.TemporaryDirectory() as root:
            cfg = SynthConfig(dataset_id=901, name="Bench", cases=args.cases, output_root=root, seed=repeat,
                              shape_xyz=tuple(args.shape), workers=args.workers)
            n_jobs = len(plan_jobs(cfg, load_benchmark()))
            start = time.perf_counter()
            folder = generate_dataset(cfg)
            elapsed = time.perf_counter() - start
            size_mb = sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file()) / 1e6
        driver = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"{args.cases} training + {n_jobs - args.cases} test cases of {'x'.join(map(str, args.shape))}, "
              f"{args.workers} workers: {elapsed:.1f} s ({elapsed / n_jobs:.2f} s/case, "
              f"{elapsed * args.cases / n_jobs:.1f} s for the {args.cases} training cases alone), "
              f"{size_mb:.1f} MB on disk, peak RSS driver {driver:.0f} MB, largest worker {children:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
