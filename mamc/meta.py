"""Meta-Weight-Net style sample weighting and the bi-level step that trains it.

The weighting MLP maps a sample's (detached) loss to a weight in (0, 1). It is trained so that one virtual SGD
step of the model on the weighted loss lowers the plain loss on a small, clean, topic-balanced meta batch:

    θ'(φ) = θ − α ∇θ Σᵢ wφ(ℓᵢ) ℓᵢ(θ)          (virtual step, graph kept)
    φ ← φ − β ∇φ L_meta(θ'(φ))                   (meta update)
    θ ← θ − η ∇θ Σᵢ wφ(ℓᵢ)·ℓᵢ(θ), w detached    (real step with the new weights)

The training losses ℓᵢ(θ) are computed once: the virtual step differentiates them (twice, through φ) and the
real step backpropagates the same graph with the updated weights.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor, nn
from torch.func import functional_call
from torch.nn.attention import SDPBackend, sdpa_kernel


class WeightNet(nn.Module):
    """loss → weight: 1 → hidden → 1 with ReLU and a sigmoid output (hidden 100 as in Meta-Weight-Net)."""

    def __init__(self, hidden: int = 100):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(1, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, losses: Tensor) -> Tensor:
        return torch.sigmoid(self.net(losses.reshape(-1, 1))).reshape(-1)


def sample_weights(
    weight_net: nn.Module, losses: Tensor, normalize: bool = True, mean_fn: Callable[[Tensor], Tensor] = torch.mean
) -> Tensor:
    """Weights for a batch from the detached losses; normalised to mean 1 (over the global batch under DDP,
    through `mean_fn`) so that the step size stays comparable with unweighted training."""
    w = weight_net(losses.detach())
    if normalize:
        w = w / mean_fn(w).clamp_min(1e-8)
    return w


def select_params(model: nn.Module, spec: str) -> dict[str, Tensor]:
    """Parameters that the virtual step updates: "all", "head" (projection heads and final blocks), or a
    comma-separated list of name prefixes. Restricting them trades exactness of the meta-gradient for speed."""
    named = {n: p for n, p in model.named_parameters() if p.requires_grad}
    if spec == "all":
        return named
    prefixes = getattr(model, "head_prefixes", ()) if spec == "head" else tuple(s.strip() for s in spec.split(","))
    chosen = {n: p for n, p in named.items() if n.startswith(tuple(prefixes))}
    if not chosen:
        raise ValueError(f"meta_params={spec!r} selects no trainable parameter; names start with e.g. {list(named)[:5]}")
    return chosen


def meta_kernels():
    """The attention kernel that the meta step needs, as a context manager: the fused CPU kernel has no double
    backward, so the training forward that the virtual step differentiates twice runs with the math kernel."""
    return sdpa_kernel(SDPBackend.MATH)


def virtual_meta_loss(
    model: nn.Module,
    weight_net: nn.Module,
    losses: Tensor,
    meta_loss_fn: Callable[[nn.Module, dict[str, Tensor] | None], Tensor],
    virtual_lr: float,
    params: dict[str, Tensor],
    normalize: bool = True,
    mean_fn: Callable[[Tensor], Tensor] = torch.mean,
    reduce_grads: Callable[[list[Tensor]], list[Tensor]] | None = None,
) -> tuple[Tensor, Tensor]:
    """L_meta(θ'(φ)) as a function of the MLP's parameters φ, and the weighted training loss.

    `losses` are the per-sample training losses ℓᵢ(θ) with their graph (computed under `meta_kernels()`); the
    graph is kept, so the real step can backpropagate the same forward with the updated weights.
    `meta_loss_fn(model, params)` returns the meta batch's per-sample losses, evaluating the model with `params`
    substituted through `torch.func.functional_call`. Under DDP, `mean_fn` is the global mean and
    `reduce_grads` averages the virtual gradients across ranks (differentiably) so that every rank takes the
    same virtual step.
    """
    weights = sample_weights(weight_net, losses, normalize, mean_fn)
    weighted = (weights * losses).mean()
    names = list(params)
    grads = torch.autograd.grad(weighted, [params[n] for n in names], create_graph=True, allow_unused=True)
    grads = [torch.zeros_like(params[n]) if g is None else g for n, g in zip(names, grads)]
    if reduce_grads is not None:
        grads = reduce_grads(grads)
    virtual = {n: params[n] - virtual_lr * g for n, g in zip(names, grads)}
    return meta_loss_fn(model, virtual).mean(), weighted


def meta_step(
    model: nn.Module,
    weight_net: nn.Module,
    weight_opt: torch.optim.Optimizer,
    losses: Tensor,
    meta_loss_fn: Callable[[nn.Module, dict[str, Tensor] | None], Tensor],
    virtual_lr: float,
    params: dict[str, Tensor],
    sync_grads: Callable[[Iterable[Tensor]], None] | None = None,
    **options,
) -> dict[str, float]:
    """One update of the weighting MLP through a virtual model step on the training losses `losses` (their
    forward shared with the real step, whose graph stays usable; `options`: normalize, mean_fn and reduce_grads
    of `virtual_meta_loss`). `sync_grads` averages the MLP's gradients across ranks under DDP."""
    with meta_kernels():
        meta_loss, weighted = virtual_meta_loss(model, weight_net, losses, meta_loss_fn, virtual_lr, params, **options)
        weight_opt.zero_grad(set_to_none=True)
        meta_loss.backward(inputs=list(weight_net.parameters()), retain_graph=True)
    if sync_grads is not None:
        sync_grads(weight_net.parameters())
    weight_opt.step()
    return {"meta_loss": float(meta_loss.detach()), "virtual_loss": float(weighted.detach())}


def call_with(model: nn.Module, params: dict[str, Tensor] | None, *args, **kwargs):
    """Run `model` with some parameters replaced (the virtual model), or as it is when params is None."""
    if params is None:
        return model(*args, **kwargs)
    return functional_call(model, params, args, kwargs, strict=False)
