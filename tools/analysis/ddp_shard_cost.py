"""Memory and time per rank of the DDP EMA, replicated vs ``shard=True``.

Run with torchrun (gloo on CPU works; nothing is trained)::

    torchrun --nproc_per_node 2 tools/analysis/ddp_shard_cost.py \
        [--models resnet50 vit_b_16] [--repeats 5]

For each torchvision model (built without weights, float32, on the CPU, or
on each rank's GPU with ``--device cuda`` and the nccl backend) every rank
builds the EMA that ``SwitchEMAHook`` keeps under DDP, first replicated
(``shard=False``: every rank holds all of it), then sharded
(``shard=True``), and measures:

* the bytes of the EMA this rank holds;
* one EMA update (the fused lerp over this rank's tensors);
* a switch: the replicated EMA copies itself into the weights; the sharded
  one copies its range and gathers the weights (one all-gather);
* a gather of the whole EMA to rank 0's host memory (what a checkpoint
  between switches needs, ``prepare_checkpoint``);
* the temporary bytes of one all-gather of a gather (this rank's padded
  piece and every rank's; a gather sends at most
  ``sema_mm.sharding.ddp.GATHER_ELEMENTS`` elements of all ranks at a time).

Times are medians over ``--repeats`` runs after one warm-up, with a barrier
before each; rank 0 prints a Markdown table (times of rank 0).
"""
import argparse
import statistics
import time

import torch
import torch.distributed as dist
import torchvision

import sema_mm  # noqa: F401
from sema_mm.ema.factory import build_averager


def tensor_bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def timed(fn, repeats: int, device: torch.device) -> float:
    """Median seconds of ``fn()`` (after one warm-up)."""
    times = []
    for i in range(repeats + 1):
        dist.barrier()
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
        if i:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def gather_temporary_bytes(shards) -> int:
    """Bytes one all-gather of a gather allocates at most: this rank's
    padded piece and every rank's."""
    worst = 0
    for group in shards.groups:
        longest = max(stop - start for start, stop in group.ranges)
        piece = min(shards.gather_chunk, longest)
        element = shards.params[group.names[0]].element_size()
        worst = max(worst, piece * (len(group.ranges) + 1) * element)
    return worst


def measure_ema(model: torch.nn.Module, shard: bool, repeats: int,
                device: torch.device) -> dict:
    """Memory and times of one EMA of ``model`` on this rank."""
    averager = build_averager(model, 'FusedEMA', 1e-3, shard=shard)
    averager.seed()
    pairs = averager.pairs
    row = dict(mib=tensor_bytes(pairs.averaged_tensors()) / 2**20,
               update_ms=1e3 * timed(lambda: pairs.lerp_(1e-3), repeats,
                                     device),
               switch_ms=1e3 * timed(pairs.copy_to_source, repeats, device))
    if shard:
        row['gather_ema_ms'] = 1e3 * timed(
            lambda: averager.prepare_checkpoint(ema_is_model=False), repeats,
            device)
        row['gather_tmp_mib'] = gather_temporary_bytes(
            averager.shards) / 2**20
    return row


def measure(name: str, repeats: int, device: torch.device) -> dict:
    model = getattr(torchvision.models, name)().to(device)
    row = dict(model=name,
               params=sum(p.numel() for p in model.parameters()))
    for shard in (False, True):
        key = 'shard' if shard else 'replicated'
        for k, v in measure_ema(model, shard, repeats, device).items():
            row[k if k.startswith('gather') else f'{key}_{k}'] = v
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--models', nargs='+',
                        default=['resnet50', 'vit_b_16'])
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    args = parser.parse_args()
    dist.init_process_group('nccl' if args.device == 'cuda' else 'gloo')
    device = torch.device(args.device)
    if args.device == 'cuda':
        device = torch.device('cuda', dist.get_rank() %
                              torch.cuda.device_count())
        torch.cuda.set_device(device)
    rows = [measure(m, args.repeats, device) for m in args.models]
    if dist.get_rank() == 0:
        world = dist.get_world_size()
        print(f'{world} ranks ({dist.get_backend()}, {args.device}), '
              f'torch {torch.__version__}, medians of {args.repeats}; '
              'memory and times per rank (rank 0)\n')
        print('| model | parameters | EMA MiB replicated | EMA MiB shard | '
              'update ms replicated | update ms shard | switch ms '
              'replicated | switch ms shard | gather EMA ms | gather '
              'temporary MiB |')
        print('|---|---|---|---|---|---|---|---|---|---|')
        for r in rows:
            print(f"| {r['model']} | {r['params'] / 1e6:.1f} M | "
                  f"{r['replicated_mib']:.1f} | {r['shard_mib']:.1f} | "
                  f"{r['replicated_update_ms']:.1f} | "
                  f"{r['shard_update_ms']:.1f} | "
                  f"{r['replicated_switch_ms']:.1f} | "
                  f"{r['shard_switch_ms']:.1f} | "
                  f"{r['gather_ema_ms']:.1f} | {r['gather_tmp_mib']:.1f} |")
    dist.destroy_process_group()


if __name__ == '__main__':
    main()
