"""Small ResNet-18 on the digits, plain SGD (no weight averaging)."""
_base_ = ['./_base_/resnet_digits.py']
