"""A small MLP variational auto-encoder, the generator of generative replay.

Kingma & Welling (2014), "Auto-Encoding Variational Bayes". Inputs are flattened; the
decoder is linear with a Gaussian likelihood whose shared variance is set to its optimum, the
mean squared error (Rybkin et al., 2021, "Simple and Effective VAE Training with Calibrated
Decoders"), so the balance between reconstruction and prior does not depend on the input's
scale and the posterior does not collapse onto the mean input.
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
        self.encoder = nn.Sequential(
            nn.Flatten(), nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, 2 * latent_dim)
        )
        self.decoder = nn.Sequential(nn.Linear(latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, d))

    def decode(self, z: Tensor) -> Tensor:
        """Inputs [N, *input_shape] for latent codes ``z`` [N, latent]."""
        return self.decoder(z).view(len(z), *self.input_shape)

    def loss(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Negative ELBO per sample (up to a constant): ``D/2 log(mse)`` plus KL(q(z|x) || N(0, I))."""
        mu, log_var = self.encoder(x).chunk(2, dim=1)  # [B, latent] each
        eps = torch.randn(mu.shape, generator=generator).to(mu)
        z = mu + eps * (0.5 * log_var).exp()
        mse = (self.decoder(z) - x.flatten(1)).square().mean()  # the optimal shared variance
        kl = 0.5 * (mu.square() + log_var.exp() - 1 - log_var).sum(1).mean()
        return 0.5 * z.new_tensor(x[0].numel()) * mse.clamp(min=1e-6).log() + kl

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` generated inputs, decoded from ``z ~ N(0, I)``."""
        device = next(self.parameters()).device
        return self.decode(torch.randn(n, self.latent_dim, generator=generator).to(device))
