"""Your own model, served by ``lifelong``: a plugin module that registers it by name.

``lifelong up --plugin mymodels --model tabnet --model-kwargs '{"in_features": 30, "n_classes": 3}'``
imports this module (it must be importable: run from this directory or put it on ``PYTHONPATH``),
builds ``TabNet(in_features=30, n_classes=3)`` for the first champion, and records the name and the
keyword arguments in every checkpoint. The worker, a second process started with the same
``--plugin``, rebuilds the model from that record; nothing is pickled.

Two rules for a servable model: keyword arguments are JSON data (numbers, strings, lists), and the
last layer is named ``classifier`` if you want ``--allow-new-classes`` to grow it.
"""

from __future__ import annotations

import torch
from torch import nn

from lifelong.learn.models import register_model


@register_model("tabnet")
class TabNet(nn.Module):
    """A small residual MLP for tabular rows: ``Linear-LayerNorm-GELU`` stem, one residual block, a head.

    Not Arik and Pfister's attentive TabNet; just a compact net that suits standardised features.
    """

    def __init__(self, in_features: int, n_classes: int, hidden: int = 64, dropout: float = 0.1) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Linear(in_features, hidden), nn.LayerNorm(hidden), nn.GELU())
        self.block = nn.Sequential(
            nn.Linear(hidden, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, hidden)
        )
        self.classifier = nn.Linear(hidden, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, in_features] -> logits [B, n_classes]
        h = self.stem(x.flatten(1))
        return self.classifier(h + self.block(h))
