"""Specification of the weighting MLP and the bi-level meta step."""
import torch
from torch import nn

from mamc.meta import WeightNet, call_with, meta_step, sample_weights, select_params, virtual_meta_loss


def test_weight_net_maps_losses_to_unit_interval():
    net = WeightNet(hidden=100)
    assert net.net[0].out_features == 100
    w = net(torch.linspace(0, 10, 50))
    assert w.shape == (50,) and ((w > 0) & (w < 1)).all()


def test_normalised_weights_have_mean_one_and_no_gradient_to_losses():
    losses = torch.rand(8, requires_grad=True)
    w = sample_weights(WeightNet(8), losses, normalize=True)
    torch.testing.assert_close(w.mean(), torch.tensor(1.0))
    w.sum().backward()
    assert losses.grad is None


def _tiny_problem():
    torch.manual_seed(0)
    model = nn.Linear(3, 1).double()
    x, y = torch.randn(6, 3).double(), torch.randn(6, 1).double()
    xm, ym = torch.randn(4, 3).double(), torch.randn(4, 1).double()
    train = lambda m, p: ((call_with(m, p, x) - y) ** 2).squeeze(1)  # noqa: E731
    meta = lambda m, p: ((call_with(m, p, xm) - ym) ** 2).squeeze(1)  # noqa: E731
    return model, train, meta


def test_meta_gradient_matches_finite_differences():
    model, train, meta = _tiny_problem()
    net = WeightNet(4).double()
    params = dict(model.named_parameters())
    loss, _ = virtual_meta_loss(model, net, train(model, None), meta, 0.3, params, normalize=True)
    grads = torch.autograd.grad(loss, list(net.parameters()))
    eps = 1e-6
    for p, g in zip(net.parameters(), grads):
        flat = p.data.view(-1)
        for i in range(flat.numel()):
            old = flat[i].item()
            flat[i] = old + eps
            up = virtual_meta_loss(model, net, train(model, None), meta, 0.3, params)[0].item()
            flat[i] = old - eps
            down = virtual_meta_loss(model, net, train(model, None), meta, 0.3, params)[0].item()
            flat[i] = old
            assert abs((up - down) / (2 * eps) - g.view(-1)[i].item()) < 1e-6


def test_meta_step_changes_only_the_mlp_and_lowers_meta_loss_direction():
    model, train, meta = _tiny_problem()
    net = WeightNet(4).double()
    before_model = [p.clone() for p in model.parameters()]
    before_net = [p.clone() for p in net.parameters()]
    opt = torch.optim.SGD(net.parameters(), lr=1e-2)
    out = meta_step(model, net, opt, train(model, None), meta, 0.3, dict(model.named_parameters()))
    assert set(out) == {"meta_loss", "virtual_loss"}
    assert all(torch.equal(a, b) for a, b in zip(before_model, model.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(before_net, net.parameters()))
    assert all(p.grad is None for p in model.parameters())


def test_the_real_step_reuses_the_training_forward_exactly():
    """After the meta step, backpropagating the same training losses with the new weights gives the gradient
    that a fresh forward would: sharing the forward saves its cost and changes nothing."""
    model, train, meta = _tiny_problem()
    net = WeightNet(4).double()
    losses = train(model, None)
    meta_step(model, net, torch.optim.SGD(net.parameters(), lr=1.0), losses, meta, 0.3, dict(model.named_parameters()))
    with torch.no_grad():
        w = sample_weights(net, losses)
    shared = torch.autograd.grad((w * losses).mean(), list(model.parameters()))
    fresh = torch.autograd.grad((w * train(model, None)).mean(), list(model.parameters()))
    for a, b in zip(shared, fresh):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_select_params_restricts_the_virtual_step():
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    assert set(select_params(model, "all")) == {"0.weight", "0.bias", "1.weight", "1.bias"}
    assert set(select_params(model, "1.")) == {"1.weight", "1.bias"}
    model.head_prefixes = ("0.",)
    assert set(select_params(model, "head")) == {"0.weight", "0.bias"}
    try:
        select_params(model, "nothing")
    except ValueError as err:
        assert "selects no trainable parameter" in str(err)
    else:
        raise AssertionError("an empty selection must be an error")
