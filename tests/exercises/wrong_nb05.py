"""Plausible wrong answers to notebook 05's exercises."""

import torch


def adds_instead_of_concatenating(x, skip, up, conv):
    u = up(x)
    return conv(torch.cat([u + skip[:, : u.shape[1], : u.shape[2], : u.shape[3]], skip[:, : u.shape[1], : u.shape[2], : u.shape[3]]], dim=1))


def skip_first(x, skip, up, conv):
    u = up(x)
    h, w = u.shape[-2:]
    top, left = (skip.shape[-2] - h) // 2, (skip.shape[-1] - w) // 2
    return conv(torch.cat([skip[..., top : top + h, left : left + w], u], dim=1))


def crops_the_corner(x, skip, up, conv):
    u = up(x)
    return conv(torch.cat([u, skip[..., : u.shape[-2], : u.shape[-1]]], dim=1))


def interpolates_instead_of_up(x, skip, up, conv):
    u = torch.nn.functional.interpolate(x[:, : x.shape[1] // 2], scale_factor=2)
    h, w = u.shape[-2:]
    top, left = (skip.shape[-2] - h) // 2, (skip.shape[-1] - w) // 2
    return conv(torch.cat([u, skip[..., top : top + h, left : left + w]], dim=1))


def recall_not_iou(confusion):
    c = confusion.double()
    return c.diagonal() / c.sum(dim=1)


def dice_not_iou(confusion):
    c = confusion.double()
    return 2 * c.diagonal() / (c.sum(dim=0) + c.sum(dim=1))


def zero_for_absent_classes(confusion):
    c = confusion.double()
    union = c.sum(dim=0) + c.sum(dim=1) - c.diagonal()
    return c.diagonal() / union.clamp(min=1)


WRONG = {
    "up_arrows": ["B", "G", "max-pool", "A", ["C", "G"]],
    "long_arrows": ["E", "e", "(E)", "residual", "C"],
    "learned_parameters": [{"A", "C"}, {"A", "B", "C", "F"}, "A, C, F, G", ["C"], {"A", "C", "D", "F"}, {"A", "C", "F", "Z"}],
    "up_block": [adds_instead_of_concatenating, skip_first, crops_the_corner, interpolates_instead_of_up],
    "iou_per_class": [recall_not_iou, dice_not_iou, zero_for_absent_classes],
}


# --- unet_forward --------------------------------------------------------------------------


def _wired(model, x, skip_order=reversed, keep_after_pooling=False, bottleneck=True, softmax=False):
    """The U-Net forward pass of exercise 5 with one wiring choice made wrong (the defaults are right)."""
    skips = []
    for block in model.down:
        x = block(x)
        if keep_after_pooling:
            x = model.pool(x)
        skips.append(x)
        if not keep_after_pooling:
            x = model.pool(x)
    if bottleneck:
        x = model.bottleneck(x)
    for block, skip in zip(model.up, skip_order(skips)):
        x = block(x, skip)
    scores = model.head(x)
    return scores.softmax(dim=1) if softmax else scores


def skips_in_encoder_order(model, x):
    # hands the first up block the shallowest skip: the sizes then disagree
    return _wired(model, x, skip_order=list)


def keeps_the_pooled_map(model, x):
    # keeps each level's map after pooling instead of before
    return _wired(model, x, keep_after_pooling=True)


def probabilities_not_scores(model, x):
    # a softmax at the end: cross-entropy wants the raw scores
    return _wired(model, x, softmax=True)


def no_bottleneck(model, x):
    # goes straight from the last pooling to the decoder
    return _wired(model, x, bottleneck=False)


WRONG["unet_forward"] = [skips_in_encoder_order, keeps_the_pooled_map, probabilities_not_scores, no_bottleneck]
