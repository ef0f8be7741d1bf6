"""Layers with forward and backward passes (chapters 5-6)."""

from dlscratch.layers.activations import ACTIVATIONS, Relu, Sigmoid, Tanh
from dlscratch.layers.affine import Affine
from dlscratch.layers.arithmetic import AddLayer, MulLayer
from dlscratch.layers.base import Layer
from dlscratch.layers.conv import Convolution, Flatten, Pooling, col2im, im2col
from dlscratch.layers.dropout import Dropout
from dlscratch.layers.losses import IdentityWithLoss, LossLayer, SigmoidWithLoss, SoftmaxWithLoss
from dlscratch.layers.normalization import BatchNormalization

__all__ = [
    "col2im",
    "im2col",
    "ACTIVATIONS",
    "Affine",
    "AddLayer",
    "BatchNormalization",
    "Convolution",
    "Dropout",
    "Flatten",
    "IdentityWithLoss",
    "Layer",
    "LossLayer",
    "MulLayer",
    "Pooling",
    "Relu",
    "Sigmoid",
    "SigmoidWithLoss",
    "SoftmaxWithLoss",
    "Tanh",
]
