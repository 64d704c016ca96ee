"""Specification of the contrastive objectives (contract: mamc.losses.angular_margin_nce)."""
import math

import pytest
import torch
import torch.nn.functional as F

from mamc.losses import Temperature, additive_margin_nce, angular_margin_nce, contrastive_loss, info_nce


def reference(video, text, margin, temperature, sign=-1.0):
    """Straightforward loop: positive logit cos(acos(c) ∓ m)/τ, negatives cos/τ, mean of both directions."""
    v, t = F.normalize(video.double(), dim=-1), F.normalize(text.double(), dim=-1)
    cos = (v @ t.T).clamp(-1, 1)
    n = len(v)
    out = []
    for i in range(n):
        terms = []
        for row in (cos[i], cos[:, i]):
            logits = row.clone()
            logits[i] = torch.cos(torch.acos(cos[i, i]) + sign * margin)
            logits = logits / temperature
            terms.append(-(logits[i] - torch.logsumexp(logits, 0)))
        out.append(0.5 * (terms[0] + terms[1]))
    return torch.stack(out)


@pytest.mark.parametrize("margin", [0.0, 0.1, 0.5, 1.2])
def test_matches_reference_loop(margin):
    g = torch.Generator().manual_seed(0)
    video, text = torch.randn(7, 5, generator=g) * 3, torch.randn(7, 5, generator=g)
    got = angular_margin_nce(video, text, margin, 0.07)
    assert got.shape == (7,)
    torch.testing.assert_close(got.double(), reference(video, text, margin, 0.07), rtol=1e-5, atol=1e-5)


def test_additive_variant_matches_reference():
    g = torch.Generator().manual_seed(1)
    video, text = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    torch.testing.assert_close(
        additive_margin_nce(video, text, 0.3, 0.1).double(), reference(video, text, 0.3, 0.1, sign=1.0), rtol=1e-5, atol=1e-5
    )


def test_zero_margin_is_symmetric_infonce_to_float_precision():
    g = torch.Generator().manual_seed(2)
    video, text = torch.randn(16, 8, generator=g), torch.randn(16, 8, generator=g)
    v, t = F.normalize(video, dim=-1), F.normalize(text, dim=-1)
    logits = v @ t.T / 0.05
    labels = torch.arange(16)
    clip = 0.5 * (F.cross_entropy(logits, labels, reduction="none") + F.cross_entropy(logits.T, labels, reduction="none"))
    assert torch.equal(angular_margin_nce(video, text, 0.0, 0.05), info_nce(video, text, 0.05))
    torch.testing.assert_close(angular_margin_nce(video, text, 0.0, 0.05), clip)


def test_input_scale_does_not_matter():
    g = torch.Generator().manual_seed(3)
    video, text = torch.randn(5, 6, generator=g), torch.randn(5, 6, generator=g)
    torch.testing.assert_close(angular_margin_nce(video, text, 0.2, 0.1), angular_margin_nce(video * 40, text * 0.01, 0.2, 0.1))


@pytest.mark.parametrize("angle", [0.0, math.pi])
def test_gradients_finite_at_extreme_angles(angle):
    video = torch.tensor([[1.0, 0.0], [0.0, 1.0]], requires_grad=True)
    text = torch.tensor([[math.cos(angle), math.sin(angle)], [0.0, 1.0]], requires_grad=True)
    loss = angular_margin_nce(video, text, 0.3, 0.05).sum()
    loss.backward()
    assert torch.isfinite(video.grad).all() and torch.isfinite(text.grad).all()


def test_margin_relaxes_the_positive():
    """A subtractive margin raises the positive logit for θ > m/2, so the loss drops below InfoNCE's."""
    g = torch.Generator().manual_seed(4)
    video, text = torch.randn(8, 16, generator=g), torch.randn(8, 16, generator=g)
    assert (angular_margin_nce(video, text, 0.2, 0.1) < info_nce(video, text, 0.1)).all()
    assert (additive_margin_nce(video, text, 0.2, 0.1) > info_nce(video, text, 0.1)).all()


def test_gathered_candidates_give_the_full_batch_loss_for_local_rows():
    g = torch.Generator().manual_seed(5)
    video, text = torch.randn(8, 4, generator=g), torch.randn(8, 4, generator=g)
    full = angular_margin_nce(video, text, 0.2, 0.1)
    part = angular_margin_nce(video[4:], text[4:], 0.2, 0.1, video_all=video, text_all=text, offset=4)
    torch.testing.assert_close(part, full[4:])


def test_dispatch_and_learnable_temperature():
    video, text = torch.randn(4, 3), torch.randn(4, 3)
    temp = Temperature(0.07, learnable=True)
    loss = contrastive_loss("subtractive", video, text, 0.1, temp()).mean()
    loss.backward()
    assert temp.log_t.grad is not None and torch.isfinite(temp.log_t.grad)
    with pytest.raises(ValueError, match="unknown contrastive loss"):
        contrastive_loss("cosface", video, text, 0.1, 0.1)


def test_float64_stays_float64_and_half_precision_is_upcast():
    from mamc.losses import angular_margin_nce

    g = torch.Generator().manual_seed(0)
    v, t = torch.randn(6, 8, generator=g, dtype=torch.float64), torch.randn(6, 8, generator=g, dtype=torch.float64)
    exact = angular_margin_nce(v, t, 0.2, 0.05)
    assert exact.dtype == torch.float64
    assert angular_margin_nce(v.half(), t.half(), 0.2, 0.05).dtype == torch.float32
    torch.testing.assert_close(angular_margin_nce(v.float(), t.float(), 0.2, 0.05), exact.float(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kind", ["infonce", "subtractive", "additive"])
def test_bfloat16_autocast_leaves_the_loss_in_float32(kind):
    """Under the trainer's autocast the similarity matmul would run in bfloat16; the loss switches it off."""
    g = torch.Generator().manual_seed(2)
    video, text = torch.randn(8, 16, generator=g), torch.randn(8, 16, generator=g)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = contrastive_loss(kind, video, text, 0.01, 0.01)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, contrastive_loss(kind, video, text, 0.01, 0.01), rtol=0, atol=0)


def test_the_margin_survives_autocast_at_the_papers_temperature():
    """At τ = 0.01 bfloat16's spacing near a logit of 30 is 0.125, while m = 0.005 adds about half a logit: on the
    encoder's bfloat16 embeddings, the margin's effect under autocast equals float32's within 1e-3 (computed in
    bfloat16 it would be off by about 0.2)."""
    g = torch.Generator().manual_seed(3)
    shared = F.normalize(torch.randn(1, 256, generator=g), dim=-1)
    own, other = F.normalize(torch.randn(2, 16, 256, generator=g), dim=-1)
    # As a pretrained CLIP starts: positives at cos θ ≈ 0.36, negatives at ≈ 0.32 (a few logits apart at τ = 0.01).
    video = (0.55 * shared + 0.835 * own).bfloat16()
    text = (0.55 * shared + 0.05 * own + 0.83 * other).bfloat16()

    def effect():
        return angular_margin_nce(video, text, 0.005, 0.01) - info_nce(video, text, 0.01)

    exact = effect()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = effect()
    assert exact.abs().mean() > 0.2  # an effect there to lose
    assert (mixed - exact).abs().max() < 1e-3
