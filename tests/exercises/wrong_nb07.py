"""Plausible wrong answers to notebook 07's exercises."""


def gram_unnormalised(features):
    b, c, h, w = features.shape
    f = features.reshape(b, c, h * w)
    return f @ f.transpose(1, 2)


def gram_over_positions_only(features):
    b, c, h, w = features.shape
    f = features.reshape(b, c, h * w)
    return f @ f.transpose(1, 2) / (h * w)


def gram_of_positions(features):
    b, c, h, w = features.shape
    f = features.reshape(b, c, h * w)
    return f.transpose(1, 2) @ f / (c * h * w)


def style_loss_summed(grams, target_grams, weights):
    return sum(w * ((g - a) ** 2).sum() for g, a, w in zip(grams, target_grams, weights))


def style_loss_unweighted(grams, target_grams, weights):
    return sum(((g - a) ** 2).mean() for g, a in zip(grams, target_grams))


def style_loss_norm(grams, target_grams, weights):
    return sum(w * (g - a).norm() for g, a, w in zip(grams, target_grams, weights))


def style_loss_summed_over_batch(grams, target_grams, weights):
    return sum(w * ((g - a) ** 2).mean(dim=(1, 2)).sum() for g, a, w in zip(grams, target_grams, weights))


def style_loss_first_image_only(grams, target_grams, weights):
    return sum(w * ((g[0] - a[0]) ** 2).mean() for g, a, w in zip(grams, target_grams, weights))


def total_k_on_content(content_features, content_target, grams, target_grams, weights, k):
    content = ((content_features - content_target) ** 2).mean()
    style = sum(w * ((g - a) ** 2).mean() for g, a, w in zip(grams, target_grams, weights))
    return k * content + style


def total_handout_norms(content_features, content_target, grams, target_grams, weights, k):
    content = (content_features - content_target).norm()
    style = sum(w * (g - a).norm() for g, a, w in zip(grams, target_grams, weights))
    return content + k * style


def total_without_content(content_features, content_target, grams, target_grams, weights, k):
    return k * sum(w * ((g - a) ** 2).mean() for g, a, w in zip(grams, target_grams, weights))


WRONG = {
    "gram_matrix": [gram_unnormalised, gram_over_positions_only, gram_of_positions],
    "style_loss": [style_loss_summed, style_loss_unweighted, style_loss_norm, style_loss_summed_over_batch,
                   style_loss_first_image_only],
    "total_loss": [total_k_on_content, total_handout_norms, total_without_content],
}
