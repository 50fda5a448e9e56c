"""ResNet-18 (CIFAR stem) on CIFAR-100, SGD, 200 epochs: baseline.

mmpretrain 1.2.0 has no CIFAR-100 ResNet-18 config. This one composes upstream
parts:

* model: ``_base_/models/resnet18_cifar.py`` (``ResNet_CIFAR``: 3x3
  stride-1 stem, no max-pool, the paper's "CIFAR version" of ResNet,
  Appendix B.1) with a 100-class head;
* data: ``_base_/datasets/cifar100_bs16.py`` (32x32, RandomCrop(32,
  padding=4) + horizontal flip), 16 images per GPU: 8 GPUs x 16 = 128;
* schedule: ``_base_/schedules/cifar10_bs128.py`` (SGD lr 0.1, momentum
  0.9, 200 epochs, validation every epoch) with the changes of mmpretrain's
  own CIFAR-100 recipe, ``resnet/resnet50_8xb16_cifar100.py``: weight decay
  5e-4 and MultiStepLR at epochs 60/120/160 with gamma 0.2.

Why: the paper trains the classical CNNs on CIFAR-100 with SGD at 32x32 for 200
epochs but gives no learning-rate schedule or weight decay; mmpretrain's
CIFAR-100 recipe is the standard 200-epoch one (Zagoruyko & Komodakis) and the
only CIFAR-100 schedule upstream, so it is used unchanged. With batch 128 an
epoch is 391 iterations.
"""
_base_ = [
    'mmpretrain::_base_/models/resnet18_cifar.py',
    'mmpretrain::_base_/datasets/cifar100_bs16.py',
    'mmpretrain::_base_/schedules/cifar10_bs128.py',
    'mmpretrain::_base_/default_runtime.py',
]
custom_imports = dict(imports=['sema_mm'], allow_failed_imports=False)

model = dict(head=dict(num_classes=100))

optim_wrapper = dict(optimizer=dict(weight_decay=5e-4))
param_scheduler = dict(
    type='MultiStepLR', by_epoch=True, milestones=[60, 120, 160], gamma=0.2)
