"""A small MLP variational auto-encoder, the generator of generative replay.

Kingma & Welling (2014), "Auto-Encoding Variational Bayes". Inputs are flattened; the
decoder is linear (Gaussian likelihood, squared error), so it suits any real-valued input.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn


class VAE(nn.Module):
    """Encoder ``D -> hidden -> (mu, log_var)`` [latent], decoder ``latent -> hidden -> D``."""

    def __init__(self, input_shape: Sequence[int], latent_dim: int = 16, hidden: int = 128) -> None:
        super().__init__()
        self.input_shape = tuple(int(s) for s in input_shape)
        self.latent_dim = latent_dim
        d = math.prod(self.input_shape)
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, 2 * latent_dim))
        self.decoder = nn.Sequential(nn.Linear(latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, d))

    def decode(self, z: Tensor) -> Tensor:
        """Inputs [N, *input_shape] for latent codes ``z`` [N, latent]."""
        return self.decoder(z).view(len(z), *self.input_shape)

    def loss(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Negative ELBO per sample: squared reconstruction error plus KL(q(z|x) || N(0, I))."""
        mu, log_var = self.encoder(x).chunk(2, dim=1)  # [B, latent] each
        eps = torch.randn(mu.shape, generator=generator).to(mu)
        z = mu + eps * (0.5 * log_var).exp()
        recon = (self.decoder(z) - x.flatten(1)).square().sum(1)  # [B]
        kl = 0.5 * (mu.square() + log_var.exp() - 1 - log_var).sum(1)  # [B]
        return (recon + kl).mean()

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` generated inputs, decoded from ``z ~ N(0, I)``."""
        device = next(self.parameters()).device
        return self.decode(torch.randn(n, self.latent_dim, generator=generator).to(device))
