"""Teachers run on every training batch (`teacher_forward: online`), for the patch-token term.

Each teacher is frozen (eval, no gradients; under torchrun every rank holds its own copy) and
embeds the very view the student gets (same rotation/flip), resized and normalised as its own
card says. It gives its summary embedding (pooled as the card says) and its patch-token map.
Both are PHI-S standardised, with statistics fitted once on `fit_tiles` un-augmented training
tiles (summary and patch tokens separately). Instrument teachers have no pixels model: they are
cached-only.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch

from harness.distillers.losses import PhiS
from harness.distillers.training_loop import model_input, oriented_tiles
from harness.errors import HarnessError
from harness.models.loading import LoadOptions, load_encoder

MAX_FIT_TOKENS = 50_000  # patch tokens used to fit the patch PHI-S


@dataclass
class TeacherView:
    summary: torch.Tensor  # (B, d) standardised
    patches: torch.Tensor  # (B, n, d) standardised, n = h * w of the teacher's grid


class OnlineTeachers:
    def __init__(self, specs, device: str):

        self.specs, self.device = specs, device
        self.encoders = []
        for spec in specs:
            encoder = load_encoder(spec.model, LoadOptions(random_init=spec.random_init, device=device))
            if not encoder.reads_pixels:
                raise HarnessError(f"teacher '{spec.model}' is an instrument (no network to run on each batch): "
                                   "use teacher_forward: cached")
            encoder.module.eval().requires_grad_(False)
            self.encoders.append(encoder)
        self.summary_phis: list[PhiS] = []
        self.patch_phis: list[PhiS] = []

    @property
    def names(self) -> list[str]:
        return [s.model for s in self.specs]

    @property
    def patch_dims(self) -> list[int]:
        return [phis.mean.shape[0] for phis in self.patch_phis]

    @property
    def n_parameters(self) -> list[int]:
        return [e.info.n_parameters for e in self.encoders]

    @torch.no_grad()
    def raw(self, x01: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per teacher: (summary (B, d), patch tokens (B, n, d)) of images in [0, 1], unstandardised."""
        out = []
        autocast = torch.autocast("cuda", dtype=torch.bfloat16) if self.device.startswith("cuda") else nullcontext()
        for encoder in self.encoders:
            t = encoder.transform
            with autocast:
                tokens = encoder.module.backbone.forward_features(model_input(x01, t.input_size, t.mean, t.std))
                summary = encoder.module.pool(tokens).float()
                grid = encoder.module.patch_grid(tokens).float()
            out.append((summary, grid.flatten(2).transpose(1, 2)))
        return out

    def fit(self, images, index: np.ndarray, batch_size: int = 64) -> None:
        """PHI-S statistics per teacher from these (un-augmented) tiles."""
        summaries, patches = [[] for _ in self.encoders], [[] for _ in self.encoders]
        for i in range(0, len(index), batch_size):
            for k, (s, p) in enumerate(self.raw(oriented_tiles(images, index[i:i + batch_size], None).to(self.device))):
                summaries[k].append(s.cpu().numpy())
                patches[k].append(p.reshape(-1, p.shape[-1]).cpu().numpy())
        rng = np.random.default_rng(0)
        for s, p in zip(summaries, patches):
            tokens = np.concatenate(p)
            if len(tokens) > MAX_FIT_TOKENS:
                tokens = tokens[rng.choice(len(tokens), MAX_FIT_TOKENS, replace=False)]
            self.summary_phis.append(PhiS(np.concatenate(s)))
            self.patch_phis.append(PhiS(tokens))

    def __call__(self, x01: torch.Tensor) -> list[TeacherView]:
        return [TeacherView(s_phis.on_tensor(summary), p_phis.on_tensor(patches))
                for (summary, patches), s_phis, p_phis in zip(self.raw(x01), self.summary_phis, self.patch_phis)]

    def summaries(self, images, index: np.ndarray, batch_size: int = 64) -> list[np.ndarray]:
        """Standardised summary targets of these (un-augmented) tiles, per teacher."""
        parts = [self(oriented_tiles(images, index[i:i + batch_size], None).to(self.device))
                 for i in range(0, len(index), batch_size)]
        return [np.concatenate([p[k].summary.cpu().numpy() for p in parts]) for k in range(len(self.encoders))]
