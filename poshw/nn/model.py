"""The float model of a :class:`~poshw.spec.ModelSpec`, with the common ``predict`` interface."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..spec import ModelSpec
from .layers import build_layer


class PoshwNet(nn.Module):
    """A network built from a spec. ``forward`` takes float images (pixel/255)."""

    def __init__(self, spec: ModelSpec):
        super().__init__()
        self.spec = spec
        self.layers = nn.Sequential(*(build_layer(cfg, spec.seed, i) for i, cfg in enumerate(spec.layers)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x.reshape(x.shape[0], *self.spec.input_shape))

    def trainable_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    @torch.no_grad()
    def logits(self, images: np.ndarray, batch_size: int = 1000) -> np.ndarray:
        """Float logits of uint8 images ``(N, 28, 28)``."""
        was_training = self.training
        self.eval()
        out = []
        for i in range(0, len(images), batch_size):
            x = torch.from_numpy(np.asarray(images[i:i + batch_size], dtype=np.float32) / 255.0)
            out.append(self(x).numpy())
        self.train(was_training)
        return np.concatenate(out) if out else np.zeros((0, self.spec.num_classes), np.float32)

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Class indices of uint8 images (lowest index wins ties, as everywhere in poshw)."""
        return np.argmax(self.logits(images), axis=1)


def build_model(spec: ModelSpec) -> PoshwNet:
    return PoshwNet(spec)
