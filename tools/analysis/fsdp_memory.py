"""Memory per rank of model, optimizer state and EMA: DDP vs FSDP.

Run with torchrun (gloo on CPU works; nothing is trained)::

    torchrun --nproc_per_node 2 tools/analysis/fsdp_memory.py \
        [--config CONFIG] [--optimizer adamw]

Builds the config's model (default: the MAE ViT-B SEMA config), then on
every rank measures the bytes of (1) the parameters the rank holds, (2) the
optimizer state after one AdamW step with zero gradients, and (3) the EMA
``SwitchEMAHook`` keeps, first as under DDP (every rank holds everything),
then wrapped with FSDP1 (full sharding, one unit, ``use_orig_params``) and
the sharded EMA.
Rank 0 prints a Markdown table in MiB. Activations, gradients and the
all-gathered parameters of the FSDP unit being computed are not counted.
"""
import argparse

import torch
import torch.distributed as dist
from mmengine.config import Config
from mmengine.registry import MODELS, DefaultScope

import sema_mm  # noqa: F401
from sema_mm.ema.factory import build_averager

MAE = 'configs/selfsup/mae/mae_vit-base-p16_8xb512-amp-coslr-300e_in1k_sema.py'


def tensor_bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def optimizer_bytes(params) -> int:
    """Bytes of AdamW state after one step with zero gradients."""
    params = [p for p in params if p.numel() and p.requires_grad]
    for p in params:
        p.grad = torch.zeros_like(p)
    opt = torch.optim.AdamW(params, lr=0.0)
    opt.step()
    size = sum(
        tensor_bytes(v for v in state.values() if torch.is_tensor(v))
        for state in opt.state.values())
    for p in params:
        p.grad = None
    return size


def measure(model, wrapped) -> dict:
    averager = build_averager(model, 'FusedEMA', 1e-3, teacher=None,
                              wrapped=wrapped)
    params = list(wrapped.parameters())
    return dict(model=tensor_bytes(params),
                optimizer=optimizer_bytes(params),
                ema=tensor_bytes(averager.pairs.averaged_tensors()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--config', default=MAE)
    args = parser.parse_args()
    dist.init_process_group('gloo')
    cfg = Config.fromfile(args.config)
    DefaultScope.get_instance('fsdp_memory',
                              scope_name=cfg.get('default_scope', 'mmengine'))
    torch.manual_seed(0)
    rows = {'DDP': measure(*(2 * [MODELS.build(cfg.model)]))}
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
    model = MODELS.build(cfg.model)
    wrapped = FSDP(model, device_id=torch.device('cpu'),
                   use_orig_params=True)
    rows['FSDP'] = measure(wrapped.module, wrapped)
    gathered = {}
    for kind, row in rows.items():
        values = torch.tensor([row['model'], row['optimizer'], row['ema']],
                              dtype=torch.float64)
        dist.all_reduce(values, op=dist.ReduceOp.MAX)
        gathered[kind] = values / 2**20
    if dist.get_rank() == 0:
        n = dist.get_world_size()
        print(f'{args.config}, {n} ranks, max over ranks (MiB per rank)\n')
        print('| wrapping | model | optimizer (AdamW) | EMA | total |')
        print('|---|---|---|---|---|')
        for kind, v in gathered.items():
            print(f'| {kind} | {v[0]:.1f} | {v[1]:.1f} | {v[2]:.1f} | '
                  f'{float(v.sum()):.1f} |')
    dist.barrier()
    dist.destroy_process_group()


if __name__ == '__main__':
    main()
