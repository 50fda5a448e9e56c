"""A small ResNet-18 on scikit-learn's 8x8 digits, for CPU demos.

Shared by ``resnet_digits_baseline.py`` (plain SGD), ``resnet_digits_ema.py``
(mmpretrain's EMAHook) and ``resnet_digits_sema.py`` (SwitchEMAHook), which
differ only in ``custom_hooks``.

The data is the image folder written by ``sema_mm.datasets.digits``::

    python -m sema_mm.datasets.digits --out data/digits

(1258 train / 539 val images, 32x32 grayscale PNGs, read as 3 channels).
Another folder is chosen with ``--cfg-options`` on both datasets::

    --cfg-options train_dataloader.dataset.data_root=data/digits_noisy \\
        val_dataloader.dataset.data_root=data/digits_noisy \\
        test_dataloader.dataset.data_root=data/digits_noisy

The backbone is mmpretrain's ResNet-18 with 16 stem and base channels
(0.7 M parameters): its stride-4 stem brings the 32x32 images back to the
digits' native 8x8, and one epoch takes a few seconds on two CPU cores.
"""
default_scope = 'mmpretrain'
custom_imports = dict(imports=['sema_mm'], allow_failed_imports=False)

data_root = 'data/digits'
img_size = 32  # pixels, as written by sema_mm.datasets.digits (--size)
classes = ('0', '1', '2', '3', '4', '5', '6', '7', '8', '9')
batch_size = 32  # 1258 train images: 40 iterations per epoch
max_epochs = 12

# ------------------------------------------------------------------- model
model = dict(
    type='ImageClassifier',
    data_preprocessor=dict(
        num_classes=10,
        # Pixel statistics of the written training images (0-255 scale).
        mean=[78.0, 78.0, 78.0],
        std=[83.0, 83.0, 83.0],
        to_rgb=False),
    backbone=dict(
        type='ResNet',
        depth=18,
        stem_channels=16,
        base_channels=16,
        num_stages=4,
        out_indices=(3, ),
        style='pytorch'),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=10,
        in_channels=128,  # base_channels * 2**3
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, )))

# -------------------------------------------------------------------- data
train_pipeline = [
    dict(type='LoadImageFromFile'),  # grayscale PNG -> 3 equal channels
    dict(type='RandomCrop', crop_size=img_size, padding=2),  # +-2 px shifts
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=0,  # decoding 32x32 PNGs is cheaper than a worker process
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type='CustomDataset',
        data_root=data_root,
        data_prefix='train',
        metainfo=dict(classes=classes),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=128,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='CustomDataset',
        data_root=data_root,
        data_prefix='val',
        metainfo=dict(classes=classes),
        pipeline=test_pipeline))
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator

# ---------------------------------------------------------------- schedule
optim_wrapper = dict(
    optimizer=dict(
        type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True))
# Cosine decay to 0 over the whole run, updated every iteration. A run with
# another length must change `end` and `T_max` with `max_epochs`.
param_scheduler = [
    dict(
        type='CosineAnnealingLR',
        T_max=max_epochs,
        by_epoch=True,
        begin=0,
        end=max_epochs,
        convert_to_iter_based=True)
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
val_cfg = dict()
test_cfg = dict()

# ----------------------------------------------------------------- runtime
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    # An interval longer than an epoch logs one training line per epoch, at
    # its last iteration; the loss shown is the epoch's mean (below).
    logger=dict(type='LoggerHook', interval=1000),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=1),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='VisualizationHook', enable=False),
)
log_processor = dict(
    by_epoch=True,
    custom_cfg=[dict(data_src='loss', method_name='mean',
                     window_size='epoch')])
env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='gloo'))
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='UniversalVisualizer', vis_backends=vis_backends)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0, deterministic=False)
