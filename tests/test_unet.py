"""The U-Net's shapes, its errors on bad sizes, its up block, and where its parameters are."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from helpers.unet import UNet, UpBlock, center_crop, parameters_by_module_type, up_block_forward


@pytest.mark.parametrize("depth,size", [(1, 6), (2, 8), (3, 16), (3, 24), (4, 32)])
@pytest.mark.parametrize("skips", [True, False])
def test_output_has_the_input_size_and_one_score_per_class(depth, size, skips):
    model = UNet(in_channels=3, num_classes=5, base_channels=4, depth=depth, skips=skips).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, size, size + 2**depth))
    assert out.shape == (2, 5, size, size + 2**depth)


@pytest.mark.parametrize("shape", [(1, 3, 20, 16), (1, 3, 16, 12), (1, 3, 7, 7)])
def test_sizes_not_divisible_by_two_to_the_depth_are_refused(shape):
    with pytest.raises(ValueError, match=r"divisible by 2\*\*depth = 8"):
        UNet(3, 4, base_channels=4, depth=3)(torch.zeros(shape))


def test_wrong_channels_and_ranks_are_refused():
    model = UNet(3, 4, base_channels=4, depth=2)
    with pytest.raises(ValueError, match="3 channels"):
        model(torch.zeros(1, 1, 8, 8))
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        model(torch.zeros(3, 8, 8))


@pytest.mark.parametrize("kwargs", [dict(depth=0), dict(num_classes=1), dict(base_channels=2.5), dict(in_channels=True)])
def test_bad_constructor_arguments(kwargs):
    with pytest.raises(ValueError):
        UNet(**kwargs)


def test_feature_maps_halve_then_double():
    model = UNet(3, 4, base_channels=4, depth=3).eval()
    with torch.no_grad():
        maps = model.feature_maps(torch.randn(1, 3, 32, 32))
    sizes = {name: tuple(t.shape[1:]) for name, t in maps.items()}
    assert sizes == {
        "down1": (4, 32, 32), "down2": (8, 16, 16), "down3": (16, 8, 8), "bottleneck": (32, 4, 4),
        "up3": (16, 8, 8), "up2": (8, 16, 16), "up1": (4, 32, 32), "scores": (4, 32, 32),
    }


def test_skips_change_the_channels_read_by_the_up_blocks():
    with_skips, without = UNet(3, 4, 8, 2), UNet(3, 4, 8, 2, skips=False)
    assert with_skips.up[0].conv[0].in_channels == 16 + 16  # upsampled 16 + skip 16
    assert without.up[0].conv[0].in_channels == 16
    assert sum(p.numel() for p in without.parameters()) < sum(p.numel() for p in with_skips.parameters())


def test_up_block_concatenates_upsampled_first_and_crops_the_centre():
    up = nn.ConvTranspose2d(2, 1, 2, stride=2)
    conv = nn.Identity()
    x = torch.randn(1, 2, 3, 3)
    skip = torch.arange(2 * 10 * 10.0).reshape(1, 2, 10, 10)
    out = up_block_forward(x, skip, up, conv)
    assert out.shape == (1, 3, 6, 6)
    assert torch.equal(out[:, :1], up(x))
    assert torch.equal(out[:, 1:], skip[:, :, 2:8, 2:8])
    block = UpBlock(8, 4, 5)
    assert block(torch.randn(1, 8, 4, 4), torch.randn(1, 4, 8, 8)).shape == (1, 5, 8, 8)
    with pytest.raises(ValueError, match="larger"):
        center_crop(torch.zeros(1, 1, 4, 4), 5, 5)


def test_only_convolutions_and_norms_learn():
    counts = parameters_by_module_type(UNet(3, 4, base_channels=8, depth=3))
    assert counts["MaxPool2d"] == 0 and counts["ReLU"] == 0
    assert counts["Conv2d"] > 0 and counts["ConvTranspose2d"] > 0 and counts["BatchNorm2d"] > 0
    assert sum(counts.values()) == sum(p.numel() for p in UNet(3, 4, base_channels=8, depth=3).parameters())
    # three 2x2 transposed convolutions 64->32, 32->16, 16->8 (weights and biases)
    assert counts["ConvTranspose2d"] == sum(c * (c // 2) * 4 + c // 2 for c in (64, 32, 16))


@pytest.mark.parametrize("skips", [True, False])
def test_the_diagram_is_read_from_the_model(skips):
    from helpers.unet import unet_diagram

    model = UNet(3, 5, base_channels=4, depth=2, skips=skips).train()
    diagram = unet_diagram(model, 16, 24)
    assert model.training  # the forward pass in eval mode leaves the mode as it was
    bars, arrows = diagram["bars"], diagram["arrows"]
    kinds = [kind for kind, _, _ in arrows]
    assert {k: kinds.count(k) for k in ("conv", "pool", "up", "copy", "head")} == {
        "conv": 4 * 2 + 2, "pool": 2, "up": 2, "copy": 2 if skips else 0, "head": 1}
    with torch.no_grad():
        maps = model.eval().feature_maps(torch.zeros(1, 3, 16, 24))
    # the bar before each pool is the encoder's output at that depth; the last bar is the scores
    before_pool = [bars[i] for kind, i, _ in arrows if kind == "pool"]
    for bar, name in zip(before_pool, ("down1", "down2")):
        assert (bar["channels"], bar["height"], bar["width"]) == tuple(maps[name].shape[1:])
    assert (bars[-1]["channels"], bars[-1]["height"], bars[-1]["width"]) == (5, 16, 24)
    assert [b["level"] for b in bars if b["height"] == 4] and all(b["level"] == 2 for b in bars if b["height"] == 4)
    for kind, i, j in arrows:
        if kind == "copy":  # from the encoder's map to the decoder's bar of the same level and size
            assert bars[i]["level"] == bars[j]["level"] and bars[j]["parts"][1] == (bars[i]["channels"], "copy")
            assert bars[j]["channels"] == sum(c for c, _ in bars[j]["parts"])
        if kind in ("conv", "head", "copy"):
            assert bars[j]["column"] > bars[i]["column"]
        else:  # pool and up arrows are vertical
            assert bars[j]["column"] == bars[i]["column"] and abs(bars[j]["level"] - bars[i]["level"]) == 1
    concat_channels = [b["channels"] for b in bars if len(b["parts"]) == 2]
    assert concat_channels == ([block.conv[0].in_channels for block in model.up] if skips else [])


def test_draw_unet_draws_every_arrow_with_a_legend():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from helpers.plot import draw_unet

    fig, ax = plt.subplots()
    drawn = draw_unet(ax, UNet(3, 4, base_channels=8, depth=3))
    assert drawn == {"conv": 14, "pool": 3, "up": 3, "copy": 3, "head": 1}
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["conv 3x3, batch norm, ReLU", "max pool 2x2", "up-conv 2x2", "copy and crop", "conv 1x1"]
    texts = {t.get_text() for t in ax.texts}
    assert {"8", "64", "8+8", "32x32", "4x4"} <= texts
    plt.close(fig)


def test_notebook_05_lists_the_answer_options_in_its_text():
    # Problem 3's options must be readable before any cell runs, so they stand in a markdown cell
    import json
    from pathlib import Path

    from helpers.exercises.nb05 import OPERATIONS

    cells = json.loads((Path(__file__).parents[1] / "notebooks" / "solutions" / "05_unet.ipynb").read_text())["cells"]
    text = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    for letter, operation in OPERATIONS.items():
        assert f"- **{letter}**: {operation}" in text


def test_assembled_unet_runs_the_given_forward_and_matches_unet():
    from helpers.exercises import nb05
    from helpers.unet import AssembledUNet, UNet

    namespace = {}
    exec(nb05.unet_forward.solution_source, namespace)  # the forward pass a student writes in notebook 05
    assemble = namespace["unet_forward"]

    torch.manual_seed(0)
    reference = UNet(3, 4, base_channels=4, depth=2).eval()
    torch.manual_seed(0)
    assembled = AssembledUNet(assemble, 3, 4, base_channels=4, depth=2).eval()
    x = torch.rand(2, 3, 8, 8)
    assert torch.allclose(assembled(x), reference(x))
    with pytest.raises(TypeError, match="assemble"):
        AssembledUNet("not a function", 3, 4)
