"""The trainer's cross-rank decisions under DDP (2 CPU processes, gloo): a non-finite loss on one rank
skips the step on every rank, and logged sums cover all ranks."""

import os
import socket
from types import SimpleNamespace

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from nnunetv2_malenia.training.nnUNetTrainerMalenia import nnUNetTrainerMalenia


def _worker(rank: int, port: int, out_dir: str) -> None:
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        trainer = SimpleNamespace(is_ddp=True, device=torch.device("cpu"))
        healthy = nnUNetTrainerMalenia._all_finite(trainer, torch.tensor(1.0 + rank))
        one_nan = nnUNetTrainerMalenia._all_finite(trainer, torch.tensor(float("nan") if rank == 1 else 2.0))
        sums = nnUNetTrainerMalenia._sum_over_ranks(trainer, np.array([1.0 + rank, 10.0 * rank, 3.0]))
        torch.save({"healthy": healthy, "one_nan": one_nan, "sums": sums}, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ranks_agree_on_skipping_and_sums(tmp_path):
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    for rank in range(2):
        result = torch.load(tmp_path / f"rank{rank}.pt", weights_only=False)
        assert result["healthy"] is True
        assert result["one_nan"] is False  # rank 0's loss was finite, it still skips
        np.testing.assert_allclose(result["sums"], [3.0, 10.0, 6.0])


def test_single_process_needs_no_collectives():
    trainer = SimpleNamespace(is_ddp=False, device=torch.device("cpu"))
    assert nnUNetTrainerMalenia._all_finite(trainer, torch.tensor(1.0))
    assert not nnUNetTrainerMalenia._all_finite(trainer, torch.tensor(float("inf")))
    np.testing.assert_allclose(nnUNetTrainerMalenia._sum_over_ranks(trainer, np.array([1, 2])), [1.0, 2.0])
