"""torchvision's PyPI wheel links CUDA, so its ops library cannot load over a CPU torch; declare the
op schemas its import registers fake kernels for (Avalanche's training never calls them)."""

import torch

_lib = torch.library.Library("torchvision", "DEF")
_lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
_lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
