"""helpers.style: Gram matrices, the losses on hand-made tensors, the optimisation, image loading."""

from __future__ import annotations

import pytest
import torch

from helpers import features, style
from helpers.data import DATA_DIR


def test_gram_matrix_against_a_direct_computation():
    f = torch.rand(2, 4, 3, 5)
    b, c, h, w = f.shape
    direct = torch.zeros(b, c, c)
    for n in range(b):
        for i in range(c):
            for j in range(c):
                direct[n, i, j] = (f[n, i] * f[n, j]).sum() / (c * h * w)
    assert torch.allclose(style.gram_matrix(f), direct, atol=1e-6)
    assert torch.allclose(style.gram_matrix(f), torch.einsum("bihw,bjhw->bij", f, f) / (c * h * w), atol=1e-6)


def test_gram_matrix_ignores_positions():
    f = torch.rand(1, 3, 4, 4)
    shuffled = f.flatten(2)[:, :, torch.randperm(16)].reshape(f.shape)
    assert torch.allclose(style.gram_matrix(f), style.gram_matrix(shuffled), atol=1e-6)
    with pytest.raises(ValueError, match="features"):
        style.gram_matrix(torch.rand(3, 4, 4))


def test_content_loss_by_hand():
    assert float(style.content_loss(torch.zeros(1, 2, 2, 2), torch.ones(1, 2, 2, 2))) == pytest.approx(1.0)
    assert float(style.content_loss(torch.tensor([[[[1.0, 3.0]]]]), torch.tensor([[[[0.0, 0.0]]]]))) == pytest.approx(5.0)
    with pytest.raises(ValueError, match="target"):
        style.content_loss(torch.zeros(1, 2, 2, 2), torch.zeros(1, 2, 2, 3))


def test_style_loss_by_hand():
    g1, a1 = torch.zeros(1, 2, 2), torch.ones(1, 2, 2)  # mean squared difference 1
    g2, a2 = torch.tensor([[[2.0]]]), torch.tensor([[[0.0]]])  # 4
    assert float(style.style_loss([g1], [a1], [0.5])) == pytest.approx(0.5)
    assert float(style.style_loss([g1, g2], [a1, a2], [0.5, 0.25])) == pytest.approx(0.5 + 1.0)
    with pytest.raises(ValueError, match="equally long"):
        style.style_loss([g1, g2], [a1], [1.0])


def test_total_loss_is_content_plus_k_style():
    c, p = torch.zeros(1, 1, 2, 2), torch.full((1, 1, 2, 2), 2.0)  # content 4
    g, a = torch.zeros(1, 2, 2), torch.ones(1, 2, 2)  # style 1
    assert float(style.total_loss(c, p, [g], [a], [1.0], k=10.0)) == pytest.approx(14.0)


def test_total_variation_by_hand():
    image = torch.zeros(1, 3, 4, 4)
    image[..., 2:] = 1.0  # one vertical edge: right differences are 1 in a third of the places
    assert float(style.total_variation(image)) == pytest.approx(1 / 3)
    assert float(style.total_variation(torch.ones(1, 3, 5, 5))) == 0.0


@pytest.fixture(scope="module")
def vgg():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(features.OFFLINE_ENV, "1")
        return features.load_vgg19(quiet=True)


LAYERS = dict(content_layer="relu2_1", style_layers=("relu1_1", "relu2_1"))


def test_style_transfer_lowers_the_style_loss(vgg):
    content, style_image = torch.rand(3, 32, 32), torch.rand(3, 32, 32) ** 3
    out, history = style.style_transfer(vgg, content, style_image, k=1e6, steps=30, lr=0.05, progress=False, **LAYERS)
    assert out.shape == (3, 32, 32) and float(out.min()) >= 0 and float(out.max()) <= 1
    before, after = style.loss_change(history, "style")
    assert after < 0.5 * before
    assert history["content"][0][0] == pytest.approx(0.0)  # started from the content image


def test_several_k_run_as_independent_images(vgg):
    content, style_image = torch.rand(3, 24, 24), torch.rand(3, 24, 24)
    batch, history = style.style_transfer(vgg, content, style_image, k=[1e3, 1e6], steps=5, progress=False, **LAYERS)
    single, _ = style.style_transfer(vgg, content, style_image, k=1e6, steps=5, progress=False, **LAYERS)
    assert batch.shape == (2, 3, 24, 24) and len(history["style"][0]) == 2
    assert torch.allclose(batch[1], single, atol=1e-4)


def test_lbfgs_texture_and_content_only_modes(vgg):
    content, style_image = torch.rand(3, 24, 24), torch.rand(3, 24, 24)
    _, history = style.style_transfer(vgg, content, style_image, k=1e6, steps=5, optimiser="lbfgs", progress=False, **LAYERS)
    assert style.loss_change(history, "style")[1] < style.loss_change(history, "style")[0]
    _, texture = style.style_transfer(vgg, None, style_image, k=1e6, steps=10, init="noise", lr=0.05, progress=False,
                                      style_layers=("relu1_1",))
    assert style.loss_change(texture, "style")[1] < style.loss_change(texture, "style")[0]
    _, recon = style.style_transfer(vgg, content, None, content_layer="relu1_1", steps=10, init="noise", lr=0.05, progress=False)
    assert style.loss_change(recon, "content")[1] < style.loss_change(recon, "content")[0]


def test_style_transfer_validates_its_inputs(vgg):
    image = torch.rand(3, 16, 16)
    with pytest.raises(ValueError, match="both be None"):
        style.style_transfer(vgg, None, None, progress=False)
    with pytest.raises(ValueError, match="optimiser"):
        style.style_transfer(vgg, image, image, optimiser="sgd", progress=False)
    with pytest.raises(ValueError, match="init"):
        style.style_transfer(vgg, None, image, init="content", progress=False)
    with pytest.raises(ValueError, match="style_weights"):
        style.style_transfer(vgg, image, image, style_weights=[1.0], progress=False, **LAYERS)


def test_with_padding_changes_only_the_border_handling(vgg):
    padded = style.with_padding(vgg, "replicate")
    convs = [m for m in padded.model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(m.padding_mode == "replicate" for m in convs)
    assert all(m.padding_mode == "zeros" for m in vgg.model.modules() if isinstance(m, torch.nn.Conv2d))
    x = vgg.normalise(torch.rand(3, 20, 20))[None]
    a, b = (net.truncated("relu1_1").activations(x, ["relu1_1"])["relu1_1"] for net in (vgg, padded))
    assert torch.allclose(a[..., 1:-1, 1:-1], b[..., 1:-1, 1:-1], atol=1e-5)  # same weights inside
    assert not torch.allclose(a, b, atol=1e-5)  # different at the border
    with pytest.raises(ValueError, match="mode"):
        style.with_padding(vgg, "mirror")


def test_clamped_share_counts_the_frame_and_the_inside():
    image = torch.full((3, 10, 10), 0.5)
    image[0, 0, :] = 1.0  # the top row of the frame at the limit
    image[2, 5, 5] = 0.0  # one inner pixel at the limit
    border, inside = style.clamped_share(image, width=2)
    assert border == pytest.approx(10 / 64) and inside == pytest.approx(1 / 36)
    assert style.clamped_share(torch.stack([image, image])) == style.clamped_share(image)
    with pytest.raises(ValueError, match="width"):
        style.clamped_share(image, width=5)


def test_shipped_images_are_small_and_documented():
    readme = (DATA_DIR / "README.md").read_text()
    for name in ("chelsea.jpg", "astronaut.jpg", "coffee.jpg", "hubble.jpg", "waves.jpg"):
        assert (DATA_DIR / name).stat().st_size < 100_000
        assert name in readme
