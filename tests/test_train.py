"""The training loop (helpers.train): its schedule, its batches and its input checks."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.optim.optimizer import register_optimizer_step_pre_hook

from helpers.train import adamw, cross_entropy_step, fit, forward_in_batches, random_batches, random_flips, warmup_cosine


def test_warmup_cosine_rises_then_falls_to_zero():
    factors = [warmup_cosine(step, steps=100, warmup=0.1) for step in range(100)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert factors[10] == pytest.approx(1.0)
    assert all(a <= b for a, b in zip(factors[:10], factors[1:10]))
    assert all(a >= b for a, b in zip(factors[10:], factors[11:]))
    assert warmup_cosine(100, steps=100, warmup=0.1) == pytest.approx(0.0, abs=1e-12)


def test_no_warmup_is_torchs_cosine_annealing():
    steps, lr = 50, 0.3
    optimiser = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=steps)
    for step in range(steps):
        assert optimiser.param_groups[0]["lr"] == pytest.approx(lr * warmup_cosine(step, steps), abs=1e-12)
        optimiser.step()
        cosine.step()


def test_random_batches_cover_each_pass_without_repeats():
    x = torch.arange(10)
    batches = random_batches(x, 2 * x, batch_size=5)
    first, second = next(batches), next(batches)
    assert torch.equal(first[1], 2 * first[0])
    assert sorted(torch.cat([first[0], second[0]]).tolist()) == list(range(10))


def test_random_flips_mirror_images_and_masks_together():
    images, masks = torch.rand(4, 3, 8, 8), torch.randint(4, (4, 8, 8))
    seen = set()
    batches = random_flips(random_batches(images, masks, batch_size=4), seed=3)
    for _ in range(12):
        x, y = next(batches)
        assert x.shape == (4, 3, 8, 8) and y.shape == (4, 8, 8)
        # every image of the batch is a scene under the same flip as its mask
        for k in range(4):
            matches = [(i, f) for i in range(4) for f in ((), (-1,), (-2,), (-2, -1))
                       if torch.equal(x[k], images[i].flip(f) if f else images[i])]
            assert len(matches) == 1
            i, f = matches[0]
            assert torch.equal(y[k], masks[i].flip(f) if f else masks[i])
            seen.add(f)
    assert len(seen) >= 3  # the flips do happen


def test_random_flips_leave_labels_alone_and_can_skip_vertical():
    images, labels = torch.rand(6, 1, 4, 4), torch.arange(6)
    seen = set()
    for x, y in (next(random_flips(iter([(images, labels)]), vertical=False, seed=s)) for s in range(20)):
        assert torch.equal(y, labels)
        assert torch.equal(x, images) or torch.equal(x, images.flip(-1))
        seen.add(torch.equal(x, images))
    assert seen == {True, False}


def test_fit_lowers_the_loss_and_records_every_term():
    torch.manual_seed(0)
    x = torch.randn(256, 2)
    y = (x[:, 0] > x[:, 1]).long()
    model = torch.nn.Linear(2, 2)

    def step(model, batch):
        inputs, classes = batch
        return {"cross-entropy": F.cross_entropy(model(inputs), classes), "weights": 1e-3 * model.weight.square().sum()}

    history = fit(model, random_batches(x, y, batch_size=32), step, steps=60, lr=0.05, warmup=0.1, desc="test")
    assert set(history) == {"cross-entropy", "weights", "loss"} and all(len(v) == 60 for v in history.values())
    assert math.isclose(history["loss"][0], history["cross-entropy"][0] + history["weights"][0], rel_tol=1e-6)
    assert sum(history["loss"][-10:]) < 0.5 * sum(history["loss"][:10])
    assert not model.training
    assert (forward_in_batches(model, x).argmax(1) == y).float().mean() > 0.9


@pytest.mark.parametrize("kwargs,name", [({"steps": 0}, "steps"), ({"steps": 2.5}, "steps"), ({"steps": 5, "warmup": 1.0}, "warmup")])
def test_fit_rejects_bad_arguments(kwargs, name):
    model = torch.nn.Linear(2, 2)
    with pytest.raises(ValueError, match=name):
        fit(model, iter([]), lambda m, b: {}, **kwargs)


def test_cross_entropy_step_works_per_image_and_per_pixel():
    scores = torch.nn.Conv2d(3, 4, 1)
    images, masks = torch.rand(2, 3, 5, 5), torch.randint(4, (2, 5, 5))
    loss = cross_entropy_step(scores, (images, masks))["cross-entropy"]
    assert torch.isclose(loss, F.cross_entropy(scores(images), masks))
    linear = torch.nn.Linear(3, 4)
    x, y = torch.rand(7, 3), torch.randint(4, (7,))
    assert torch.isclose(cross_entropy_step(linear, (x, y))["cross-entropy"], F.cross_entropy(linear(x), y))


def test_fit_stops_at_a_non_finite_loss_and_names_the_step():
    model = torch.nn.Linear(2, 1)

    def blows_up_at_step_3(model, batch, calls=[]):
        calls.append(1)
        loss = model(batch).pow(2).mean()
        return {"loss_a": loss * (float("inf") if len(calls) == 4 else 1.0)}

    batches = iter(lambda: torch.ones(4, 2), None)
    with pytest.raises(FloatingPointError, match=r"step 3 of 10 \(loss_a inf\)"):
        fit(model, batches, blows_up_at_step_3, steps=10, progress=False)


def test_fit_clips_the_gradient_norm():
    """One step of plain Adam moves each weight by about lr whatever the gradient's size, so compare
    the gradient itself: with clipping, the gradient the optimiser saw has norm at most the limit."""
    seen = []
    model = torch.nn.Linear(3, 1)
    batches = iter(lambda: 1000 * torch.ones(8, 3), None)

    def step(model, batch):
        return {"loss": model(batch).pow(2).mean()}

    hook = register_optimizer_step_pre_hook(
        lambda opt, args, kwargs: seen.append(math.sqrt(sum(float(p.grad.pow(2).sum()) for g in opt.param_groups for p in g["params"]))))
    try:
        history = fit(model, batches, step, steps=3, clip_grad_norm=0.5, progress=False)
        clipped = list(seen)
        seen.clear()
        unclipped_history = fit(torch.nn.Linear(3, 1), batches, step, steps=3, progress=False)
    finally:
        hook.remove()
    assert max(clipped) <= 0.5 + 1e-6
    assert len(history["grad_norm"]) == 3 and min(history["grad_norm"]) > 10  # recorded before clipping
    assert "grad_norm" not in unclipped_history
    assert min(seen) > 10  # without clipping the same batches give far larger gradients
    with pytest.raises(ValueError, match="clip_grad_norm"):
        fit(model, batches, step, steps=1, clip_grad_norm=0, progress=False)


def test_adamw_is_fused_where_torch_can_and_equals_the_plain_loop():
    torch.manual_seed(0)
    fused_model, loop_model = torch.nn.Linear(4, 3), torch.nn.Linear(4, 3)
    loop_model.load_state_dict(fused_model.state_dict())
    fused = adamw(list(fused_model.parameters()), lr=0.01, weight_decay=0.1)
    loop = torch.optim.AdamW(loop_model.parameters(), lr=0.01, weight_decay=0.1)
    assert fused.defaults["fused"] is True  # CPU tensors: torch has a fused kernel for them
    x = torch.randn(16, 4)
    for _ in range(5):
        for model, optimiser in ((fused_model, fused), (loop_model, loop)):
            optimiser.zero_grad()
            model(x).pow(2).sum().backward()
            optimiser.step()
    for a, b in zip(fused_model.parameters(), loop_model.parameters()):
        assert torch.allclose(a, b, atol=1e-6)


def test_adamw_falls_back_to_the_loop_where_torch_has_no_fused_kernel(monkeypatch):
    real = torch.optim.AdamW

    def no_fused_kernel(*args, fused=None, **kwargs):
        if fused:
            raise RuntimeError("`fused=True` requires all the params to be floating point Tensors of supported devices")
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.optim, "AdamW", no_fused_kernel)
    optimiser = adamw([torch.zeros(2, requires_grad=True)], lr=0.1, weight_decay=0.0)
    assert isinstance(optimiser, real) and not optimiser.defaults["fused"]
