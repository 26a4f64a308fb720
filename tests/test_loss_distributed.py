"""MP-NCE over the global batch under DDP (2 CPU processes, gloo) equals the single-process value."""
import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from nnunetv2_malenia.loss import all_gather_padded, global_mean_count, multi_positive_nce

VALUE_TYPE = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2])


def _data(n_total):
    g = torch.Generator().manual_seed(0)
    bank = torch.randn(8, 6, generator=g)
    z = torch.randn(n_total, 6, generator=g)
    pos = torch.zeros(n_total, 8, dtype=torch.bool)
    for i in range(n_total):
        pos[i, [i % 3, 3 + i % 2, 5 + i % 3]] = True
        if i % 2:
            pos[i, 7] = True
    return bank, z, pos


def _worker(rank, world, port, counts, out_dir):
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        bank, z, pos = _data(sum(counts))
        start = sum(counts[:rank])
        z_local = z[start:start + counts[rank]].clone().requires_grad_(True)
        zg, valid = all_gather_padded(z_local)
        posg, _ = all_gather_padded(pos[start:start + counts[rank]].float(), with_grad=False)
        scale = torch.tensor(1 / 0.07, requires_grad=True)
        loss = multi_positive_nce(zg, posg > 0.5, bank, VALUE_TYPE, 3, scale, valid)
        loss.backward()
        torch.save({"loss": loss.detach(), "grad": z_local.grad, "scale_grad": scale.grad,
                    "norm": global_mean_count(counts[rank], torch.device("cpu"))},
                   os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_gathered_contrastive_loss_equals_single_process(tmp_path):
    for counts in ([3, 1], [2, 0]):  # uneven counts (padding) and a rank without lesions
        mp.spawn(_worker, args=(2, _free_port(), counts, str(tmp_path)), nprocs=2, join=True)
        bank, z, pos = _data(sum(counts))
        z = z.clone().requires_grad_(True)
        scale = torch.tensor(1 / 0.07, requires_grad=True)
        ref = multi_positive_nce(z, pos, bank, VALUE_TYPE, 3, scale)
        ref.backward()
        for rank in range(2):
            r = torch.load(tmp_path / f"rank{rank}.pt")
            torch.testing.assert_close(r["loss"], ref.detach())
            torch.testing.assert_close(r["scale_grad"], scale.grad)
            # AllGatherGrad sums over ranks; DDP's averaging (/world) then gives the global gradient
            start = sum(counts[:rank])
            torch.testing.assert_close(r["grad"] / 2, z.grad[start:start + counts[rank]])
            assert r["norm"] == sum(counts) / 2
