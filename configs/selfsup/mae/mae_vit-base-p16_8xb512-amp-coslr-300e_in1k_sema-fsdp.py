"""MAE, ViT-B/16, AdamW, 300 epochs (batch 8 x 512): SEMA, sharded (FSDP).

The SEMA config (``..._sema.py``: ``SwitchEMAHook(momentum=1e-3)``) trained
with mmengine's ``FlexibleRunner`` and ``FSDPStrategy`` (FSDP1, full
sharding): weights, gradients, AdamW moments and the EMA are all split over
the ranks; each rank keeps the EMA of its own shard (see ``docs/fsdp.md``).
Each transformer block is its own FSDP unit (size-based policy: units of
at least 5 M parameters; a ViT-B block has 7.1 M). Checkpoints are full
(``state_dict_cfg='full'``): ``state_dict`` holds the whole EMA, loadable by
the evaluation configs as for the DDP run. Its DDP reference, same model,
runner and data: ``..._sema-ddp.py``.

    bash tools/dist_train.sh CONFIG 8  # CONFIG: this file
"""
_base_ = './mae_vit-base-p16_8xb512-amp-coslr-300e_in1k_sema.py'

runner_type = 'FlexibleRunner'
strategy = dict(
    type='FSDPStrategy',
    model_wrapper=dict(
        auto_wrap_policy=dict(
            type='size_based_auto_wrap_policy', min_num_params=int(5e6))),
    state_dict_cfg='full')
