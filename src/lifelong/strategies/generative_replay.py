"""Deep Generative Replay: a generator replays pseudo-samples of the past, labelled by the old solver.

Shin et al. (2017), "Continual Learning with Deep Generative Replay". A small VAE learns the
input distribution alongside the solver, on the current inputs plus generated ones; at each
boundary the solver and generator are frozen, and during the next experience every batch
gets generated samples labelled by the frozen solver (arg-max over the classes it knew).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lifelong.data.dataset import Batch
from lifelong.errors import ConfigError, StrategyMismatchError
from lifelong.learn.buffers import make_buffer
from lifelong.learn.params import check_param
from lifelong.learn.strategy import Strategy
from lifelong.learn.tokens import input_embedding
from lifelong.strategies._vae import VAE

if TYPE_CHECKING:
    from lifelong.data.scenarios import Experience
    from lifelong.learn.learner import Learner


#: how new and replayed samples share the loss (see ``GenerativeReplay``'s ``weighting``)
WEIGHTINGS = ("equal", "tasks")


class GenerativeReplay(Strategy):
    """Append ``replay_size`` generated, pseudo-labelled samples to each batch after the first experience.

    Parameters
    ----------
    latent_dim, hidden : size of the VAE's latent code and of its hidden layers.
    gen_lr, gen_steps : Adam learning rate of the generator, and its steps per solver step (a
        generator needs many more updates than a classifier).
    replay_size : generated samples per batch; None matches the incoming batch.
    weighting : ``"equal"``: one mean over new and replayed samples (Shin et al.'s equal weighting);
        ``"tasks"``: the current task's loss weighs 1/t and the replayed samples' (t-1)/t at the
        t-th experience, for the solver and the generator, as van de Ven's code (``rnt = 1/context``).
        On his Split protocol (Fashion-MNIST, 500 iterations per task, seed 0) both score ACC 0.497,
        "tasks" keeping the first tasks better (0.52/0.82 against 0.37/0.20) and the fourth worse.
    store_generated : keep a reservoir of this many generated samples (drawn at each boundary),
        replayed too; no raw sample is ever stored, for settings where data may not be kept.
    """

    name = "generative-replay"
    keeps_teacher = True
    float32_only = True
    supports = frozenset({"class", "domain"})

    def __init__(self, latent_dim: int = 16, hidden: int = 128, gen_lr: float = 3e-3, gen_steps: int = 1,
                 replay_size: int | None = None, store_generated: int = 0, weighting: str = "equal") -> None:  # fmt: skip
        check_param(self, "latent_dim", latent_dim, int, low=1)
        check_param(self, "hidden", hidden, int, low=1)
        check_param(self, "gen_lr", gen_lr, low=0, low_open=True)
        check_param(self, "gen_steps", gen_steps, int, low=1)
        check_param(self, "replay_size", replay_size, int, low=1, none="the incoming batch's size")
        check_param(self, "store_generated", store_generated, int, low=0)
        self.latent_dim, self.hidden, self.gen_lr, self.gen_steps = latent_dim, hidden, gen_lr, gen_steps
        if weighting not in WEIGHTINGS:
            raise ConfigError(
                f"GenerativeReplay: weighting must be one of {', '.join(WEIGHTINGS)}, got {weighting!r}"
            )
        self.replay_size, self.store_generated, self.weighting = replay_size, store_generated, weighting
        self.input_shape_: list[int] = []
        self.vae_: dict[str, Tensor] = {}  # the generator's weights, synced from the live module
        self.vae_optimizer_: dict[str, Any] = {}
        self.old_vae_: dict[str, Tensor] | None = None
        self.old_solver_: dict[str, Tensor] | None = None
        self.old_classes_: list[int] = []
        self.memory_ = make_buffer("reservoir", store_generated)
        self._reset_modules()

    def _reset_modules(self) -> None:
        self._vae: VAE | None = None
        self._opt: torch.optim.Optimizer | None = None
        self._old_vae: VAE | None = None
        self._old_solver: nn.Module | None = None
        self._train_x: Tensor | None = None

    def attach(self, learner: Learner) -> None:
        embedding = input_embedding(learner.model)
        if embedding is not None:  # refused here, before training, not at the first replayed batch
            raise StrategyMismatchError(
                f"GenerativeReplay generates continuous inputs with a VAE, but {type(learner.model).__name__} "
                f"starts with {type(embedding).__name__} and takes token ids; replay stored samples instead "
                "(Replay, DERPP, ERACE)"
            )

    def generator(self, learner: Learner) -> VAE:
        """The generator being trained (built on first use from ``vae_`` or seeded from the learner)."""
        if self._vae is None:
            seed = int(torch.randint(2**62, (1,), generator=learner.generator)) if not self.vae_ else 0
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                self._vae = VAE(self.input_shape_, self.latent_dim, self.hidden).to(learner.device)
            if self.vae_:
                self._vae.load_state_dict(self.vae_)
            self._opt = torch.optim.Adam(self._vae.parameters(), lr=self.gen_lr)
            if self.vae_optimizer_:
                self._opt.load_state_dict(self.vae_optimizer_)
        return self._vae

    def _frozen(self, learner: Learner) -> tuple[VAE, nn.Module]:
        assert self.old_vae_ is not None and self.old_solver_ is not None  # kept after an experience
        if self._old_vae is None or self._old_solver is None:
            with torch.random.fork_rng(devices=[]):  # weights loaded below: a resumed run's global draws
                self._old_vae = VAE(self.input_shape_, self.latent_dim, self.hidden).to(
                    learner.device
                )  # (dropout)
            self._old_vae.load_state_dict(self.old_vae_)  # stay those of the uninterrupted one
            self._old_solver = copy.deepcopy(learner.model).eval().requires_grad_(False)
            self._old_solver.load_state_dict(self.old_solver_)
        return self._old_vae.eval().requires_grad_(False), self._old_solver

    @torch.no_grad()
    def generate(self, learner: Learner, n: int, vae: VAE, solver: nn.Module, classes: list[int]) -> Batch:
        """``n`` samples from ``vae``, labelled by ``solver``'s arg-max over ``classes``."""
        x = vae.sample(n, learner.generator)  # [n, *input_shape]
        cls = torch.tensor(classes, device=x.device)
        was_training = solver.training
        solver.eval()
        y = cls[solver(x)[:, cls].argmax(1)]
        solver.train(was_training)
        return Batch(x.cpu(), y.cpu())

    def batch(self, learner: Learner, batch: Batch) -> Batch:
        if not self.input_shape_:
            self.input_shape_ = list(batch.x.shape[1:])
        n = self.replay_size or len(batch.y)
        parts = [batch]
        if self.old_vae_ is not None:
            parts.append(self.generate(learner, n, *self._frozen(learner), self.old_classes_))
        if len(self.memory_):
            parts.append(self.memory_.sample(n, learner.generator)[1])
        self._train_x = torch.cat([p.x for p in parts])  # the generator learns new and replayed inputs
        return batch if len(parts) == 1 else Batch(self._train_x, torch.cat([p.y for p in parts]), batch.t)

    def _new_share(self, learner: Learner) -> float | None:
        """The current task's weight under ``weighting="tasks"`` (1/t), None for one plain mean."""
        if self.weighting == "equal" or self.old_vae_ is None:
            return None
        return 1.0 / (learner.experience_index + 1)

    def loss(self, learner: Learner, batch: Batch, logits: Tensor) -> Tensor | None:
        share = self._new_share(learner)
        if share is None or learner.incoming is None or len(batch.y) == len(learner.incoming.y):
            return None
        n = len(learner.incoming.y)  # the incoming samples come first, the replayed after them
        per_sample = F.cross_entropy(logits, batch.y.to(logits.device), reduction="none")
        return share * per_sample[:n].mean() + (1 - share) * per_sample[n:].mean()

    def after_step(self, learner: Learner) -> None:
        assert learner.incoming is not None  # the learner sets it before each step
        x = self._train_x if self._train_x is not None else learner.incoming.x
        vae = self.generator(learner)
        opt = self._opt
        assert opt is not None  # built with the generator
        vae.train()
        share, n = self._new_share(learner), len(learner.incoming.y)
        for _ in range(self.gen_steps):
            if share is not None and len(x) > n:  # weighted as the solver's loss
                new, old = x[:n].to(learner.device), x[n:].to(learner.device)
                loss = share * vae.loss(new, learner.generator) + (1 - share) * vae.loss(
                    old, learner.generator
                )
            else:
                loss = vae.loss(x.to(learner.device), learner.generator)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        self._train_x = None

    def after_experience(self, learner: Learner, experience: Experience) -> None:
        if self._vae is None and not self.vae_:
            return  # nothing was learned (after a checkpoint load, vae_ holds what was)
        vae = self.generator(learner)
        self.old_vae_ = {k: v.detach().clone() for k, v in vae.state_dict().items()}
        self.old_solver_ = {k: v.detach().clone() for k, v in learner.model.state_dict().items()}
        self.old_classes_ = list(learner.classes_seen)
        self._old_vae = self._old_solver = None
        if self.store_generated:
            new = self.generate(learner, self.store_generated, vae, learner.model, self.old_classes_)
            self.memory_.add(new.x, new.y, generator=learner.generator)

    def state_dict(self) -> dict[str, Any]:
        if self._vae is not None and self._opt is not None:  # both built by generator()
            self.vae_ = {k: v.detach().clone() for k, v in self._vae.state_dict().items()}
            self.vae_optimizer_ = copy.deepcopy(self._opt.state_dict())
        return super().state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self._reset_modules()

    def extra_parameters(self) -> int:
        live = self._vae.state_dict() if self._vae is not None else self.vae_
        return sum(v.numel() for d in (live, self.old_vae_ or {}, self.old_solver_ or {}) for v in d.values())

    def memory_bytes(self) -> int:
        return self.memory_.nbytes()
