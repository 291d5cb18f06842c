"""Plausible wrong answers to notebook 00's exercises."""

WRONG = {
    "to_grayscale": [
        lambda image: image.mean(dim=0),  # plain average of the channels
        lambda image: (0.299 * image[0] + 0.587 * image[1] + 0.114 * image[2])[None],  # keeps a channel dim
        lambda image: 0.114 * image[0] + 0.587 * image[1] + 0.299 * image[2],  # BGR order
    ],
    "values_per_image": [64 * 64, 3 * 64, 3 * 64 * 64 * 8],
}
