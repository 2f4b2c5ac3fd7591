"""A plugin image model for the example: an ordinary ``nn.Module`` registered by name.

Its ``__init__`` takes ``n_classes`` and nothing about the input's size: ``lifelong`` passes the data's
sizes only where a model's signature takes them, so this CNN is built for 1x8x8 images as it is.
``classifier`` is the head that ``--allow-new-classes`` grows when a new digit arrives.
"""

from __future__ import annotations

from torch import Tensor, nn

from lifelong.learn.models import register_model


@register_model("digitcnn")
class DigitCNN(nn.Module):
    def __init__(self, n_classes: int = 10, width: int = 16) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 8x8 -> 4x4
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(), nn.Flatten(),
        )  # fmt: skip
        self.classifier = nn.Linear(width * 4 * 4, n_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))
