"""Contrastive objectives over L2-normalised video/text embeddings, returned per sample (shape [B]).

The subtractive angular margin of MAMA replaces the positive logit cos θ/τ by cos(θ − m)/τ: a positive pair is
pulled towards angle m rather than to perfect similarity. We evaluate cos(θ ∓ m) with the angle-sum identity
cos θ cos m ± sin θ sin m, which is exactly cos(acos(c) ∓ m) for the clamped cosine c but keeps gradients
finite at θ = 0 and θ = π (where d acos/dc is infinite), and makes m = 0 reduce to InfoNCE bit for bit.

The losses are computed in float32 whatever autocast surrounds them: under bfloat16 a logit near 1/τ = 100 (the
paper's τ = 0.01) is stored with a spacing of 0.5, coarser than the margin's whole effect (≈ m·sin θ/τ, one logit
at m = 0.01), so a bfloat16 similarity would quietly erase the margin.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_SIN_EPS = 1e-12


def _sin_of_angle(cos: Tensor) -> Tensor:
    """sin(acos(c)) = sqrt(1 − c²) with a floor under the root so that its gradient stays finite."""
    return torch.sqrt(torch.clamp(1.0 - cos * cos, min=_SIN_EPS))


def subtractive_positive(cos: Tensor, margin: float) -> Tensor:
    """cos(θ − m) for θ = acos(cos); θ − m is not clamped, so θ < m is allowed."""
    if margin == 0:
        return cos
    return cos * math.cos(margin) + _sin_of_angle(cos) * math.sin(margin)


def additive_positive(cos: Tensor, margin: float) -> Tensor:
    """cos(θ + m), the ArcFace-style margin, which pushes positives harder instead of relaxing them."""
    if margin == 0:
        return cos
    return cos * math.cos(margin) - _sin_of_angle(cos) * math.sin(margin)


def _upcast(x: Tensor) -> Tensor:
    """Half precision is computed in float32 (acos and exp need the range); float64 stays float64."""
    return x if x.dtype == torch.float64 else x.float()


def _margin_nce(
    video: Tensor,
    text: Tensor,
    positive: Callable[[Tensor], Tensor],
    temperature: float | Tensor,
    video_all: Tensor | None,
    text_all: Tensor | None,
    offset: int,
) -> Tensor:
    """Per-sample mean of the v→t and t→v cross-entropies, with the positive logit transformed.

    `video_all`/`text_all` are the candidates (the batch gathered across ranks under DDP); local row i is
    candidate `offset + i`. Autocast is switched off here (see the module docstring).
    """
    with torch.autocast(video.device.type, enabled=False):
        v = F.normalize(_upcast(video), dim=-1)
        t = F.normalize(_upcast(text), dim=-1)
        v_all = v if video_all is None else F.normalize(_upcast(video_all), dim=-1)
        t_all = t if text_all is None else F.normalize(_upcast(text_all), dim=-1)
        n = v.shape[0]
        idx = torch.arange(n, device=v.device)
        target = idx + offset
        pos = positive(torch.clamp((v * t).sum(-1), -1.0, 1.0))
        losses = []
        for query, cands in ((v, t_all), (t, v_all)):
            cos = torch.clamp(query @ cands.T, -1.0, 1.0)
            logits = cos.index_put((idx, target), pos) / temperature
            losses.append(F.cross_entropy(logits, target, reduction="none"))
        return 0.5 * (losses[0] + losses[1])


def angular_margin_nce(
    video: Tensor,
    text: Tensor,
    margin: float = 0.1,
    temperature: float | Tensor = 0.05,
    *,
    video_all: Tensor | None = None,
    text_all: Tensor | None = None,
    offset: int = 0,
) -> Tensor:
    """MAMA's subtractive angular margin contrastive loss, per sample; `margin=0` is symmetric InfoNCE."""
    return _margin_nce(video, text, lambda c: subtractive_positive(c, margin), temperature, video_all, text_all, offset)


def additive_margin_nce(
    video: Tensor,
    text: Tensor,
    margin: float = 0.1,
    temperature: float | Tensor = 0.05,
    *,
    video_all: Tensor | None = None,
    text_all: Tensor | None = None,
    offset: int = 0,
) -> Tensor:
    """ArcFace-style comparison variant: positive logit cos(θ + m)/τ."""
    return _margin_nce(video, text, lambda c: additive_positive(c, margin), temperature, video_all, text_all, offset)


def info_nce(video: Tensor, text: Tensor, temperature: float | Tensor = 0.05, **candidates) -> Tensor:
    """Symmetric InfoNCE (CLIP's objective), per sample: the subtractive loss with m = 0."""
    return angular_margin_nce(video, text, 0.0, temperature, **candidates)


def contrastive_loss(kind: str, video: Tensor, text: Tensor, margin: float, temperature: float | Tensor, **kw) -> Tensor:
    """Dispatch by name: "infonce", "subtractive" or "additive"."""
    if kind == "infonce":
        return info_nce(video, text, temperature, **kw)
    if kind == "subtractive":
        return angular_margin_nce(video, text, margin, temperature, **kw)
    if kind == "additive":
        return additive_margin_nce(video, text, margin, temperature, **kw)
    raise ValueError(f"unknown contrastive loss {kind!r}; expected infonce, subtractive or additive")


class Temperature(nn.Module):
    """A temperature τ, fixed or learned through log τ (clamped, as CLIP does, so logits cannot explode)."""

    def __init__(self, value: float, learnable: bool = False, min_value: float = 0.01):
        super().__init__()
        self.min_value = min_value
        log_t = torch.tensor(math.log(value))
        if learnable:
            self.log_t = nn.Parameter(log_t)
        else:
            self.register_buffer("log_t", log_t)

    def forward(self) -> Tensor:
        return torch.clamp(self.log_t.exp(), min=self.min_value)


def loss_profile(thetas: Tensor, kind: str, margin: float, temperature: float, batch: int = 64) -> tuple[Tensor, Tensor]:
    """Per-sample loss of a positive pair at each angle θ, and its derivative dℓ/dθ, computed by this module's
    losses themselves: a batch whose other pairs are orthogonal to the positive (as random embeddings nearly
    are in high dimension), so ℓ(θ) = −log(e^{p(θ)/τ} / (e^{p(θ)/τ} + B − 1)) with p the positive logit.
    dℓ/dθ = 0 where the loss stops pulling: θ = 0 for InfoNCE, θ = m for the subtractive margin."""
    theta = thetas.detach().double().clone().requires_grad_(True)
    eye = torch.eye(batch + 1, dtype=torch.float64)
    losses = []
    for th in theta:
        video = eye[:batch]
        text = torch.cat([(torch.cos(th) * eye[0] + torch.sin(th) * eye[batch]).unsqueeze(0), eye[1:batch]])
        losses.append(contrastive_loss(kind, video, text, margin, temperature)[0])
    loss = torch.stack(losses)
    (grad,) = torch.autograd.grad(loss.sum(), theta)
    return loss.detach(), grad
