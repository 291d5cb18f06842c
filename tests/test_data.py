"""ShapesScenes: conventions, determinism, and agreement between the targets of the four tasks;
rendering a dataset to tensors, and loading the shipped images."""

import functools
import http.server
import threading

import pytest
import torch
from torchvision.ops import masks_to_boxes

from helpers.data import (
    CLASSES,
    DATA_DIR,
    NUM_CLASSES,
    RENDER_FIELDS,
    ShapesScenes,
    boxes_from_masks,
    load_image,
    render,
    semantic_from_instances,
)


@pytest.fixture(scope="module")
def scenes():
    ds = ShapesScenes(40, size=64, seed=3)
    return [ds[i] for i in range(len(ds))]


def test_item_follows_torchvision_conventions(scenes):
    for image, t in scenes:
        n = len(t["labels"])
        assert image.dtype == torch.float32 and image.shape == (3, 64, 64)
        assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0
        assert t["boxes"].dtype == torch.float32 and t["boxes"].shape == (n, 4)
        assert t["labels"].dtype == torch.int64 and 1 <= int(t["labels"].min()) and int(t["labels"].max()) <= NUM_CLASSES
        assert t["masks"].dtype == torch.uint8 and t["masks"].shape == (n, 64, 64)
        assert t["semantic"].dtype == torch.int64 and t["semantic"].shape == (64, 64)
        assert t["label"].dtype == torch.int64 and t["label"].dim() == 0
        assert t["box"].shape == (4,) and t["area"].shape == (n,)


def test_boxes_are_tight_around_visible_pixels(scenes):
    for _, t in scenes:
        expected = masks_to_boxes(t["masks"]) + torch.tensor([0.0, 0.0, 1.0, 1.0])  # pixel edges
        assert torch.equal(t["boxes"], expected)
        assert bool((t["boxes"][:, 2:] > t["boxes"][:, :2]).all())


def test_masks_are_disjoint_visible_and_match_the_semantic_map(scenes):
    for _, t in scenes:
        assert int(t["masks"].sum(0).max()) <= 1
        assert bool((t["area"] > 0).all())
        assert torch.equal(t["semantic"], semantic_from_instances(t["masks"], t["labels"]))
        assert torch.equal(t["semantic"] > 0, t["masks"].sum(0) > 0)


def test_main_object_is_the_largest(scenes):
    for _, t in scenes:
        k = int(t["area"].argmax())
        assert int(t["label"]) == int(t["labels"][k]) and torch.equal(t["box"], t["boxes"][k])


def test_scenes_are_fixed_by_seed_and_index():
    a, b, c = ShapesScenes(5, seed=1), ShapesScenes(5, seed=1), ShapesScenes(5, seed=2)
    for i in range(5):
        assert torch.equal(a[i][0], b[i][0])
        assert not torch.equal(a[i][0], c[i][0])
    assert torch.equal(ShapesScenes(100, seed=1)[3][0], a[3][0])  # n does not change scene i
    assert not torch.equal(a[0][0], a[1][0])


def test_all_classes_and_object_counts_appear():
    ds = ShapesScenes(200, size=48, seed=0, num_objects=(1, 4))
    labels = torch.cat([ds[i][1]["labels"] for i in range(len(ds))])
    counts = {len(ds[i][1]["labels"]) for i in range(len(ds))}
    assert set(labels.tolist()) == set(range(1, NUM_CLASSES + 1))
    assert counts == {1, 2, 3, 4}
    assert CLASSES[0] == "background" and len(CLASSES) == NUM_CLASSES + 1


def test_some_shapes_are_partly_hidden():
    ds = ShapesScenes(100, size=64, seed=0, num_objects=4)
    hidden = 0
    for i in range(len(ds)):
        image, t = ds[i]
        box_area = (t["boxes"][:, 2:] - t["boxes"][:, :2]).prod(1)
        hidden += int((t["area"] < 0.5 * box_area).sum())
    assert hidden > 0


def test_single_object_scenes():
    ds = ShapesScenes(30, seed=0, num_objects=1)
    assert all(len(ds[i][1]["labels"]) == 1 for i in range(len(ds)))


def test_render_stacks_each_field_of_every_scene():
    ds = ShapesScenes(4, size=32, seed=0)
    x, labels, boxes, semantic, targets = render(ds, "label", "box", "semantic", "targets")
    assert x.shape == (4, 3, 32, 32) and x.dtype == torch.float32
    assert labels.shape == (4,) and labels.dtype == torch.int64
    assert boxes.shape == (4, 4) and boxes.dtype == torch.float32
    assert semantic.shape == (4, 32, 32) and semantic.dtype == torch.int64
    assert len(targets) == 4 and set(targets[0]) == {"boxes", "labels"}
    for k in range(4):
        image, target = ds[k]
        assert torch.equal(x[k], image) and torch.equal(semantic[k], target["semantic"])
        assert labels[k] == target["label"] and torch.equal(boxes[k], target["box"])
        assert torch.equal(targets[k]["boxes"], target["boxes"]) and torch.equal(targets[k]["labels"], target["labels"])
    assert set(RENDER_FIELDS) == {"label", "box", "semantic", "targets"}


@pytest.mark.parametrize("fields", [(), ("masks",), ("label", "boxes")])
def test_render_names_the_fields_it_knows(fields):
    with pytest.raises(ValueError, match="fields must be one or more of"):
        render(ShapesScenes(2, size=32), *fields)


def test_render_refuses_an_empty_dataset():
    with pytest.raises(ValueError, match="dataset"):
        render(ShapesScenes(0, size=32), "label")


def test_boxes_from_masks_handles_a_single_pixel():
    mask = torch.zeros(1, 5, 5, dtype=torch.uint8)
    mask[0, 2, 3] = 1
    assert boxes_from_masks(mask).tolist() == [[3.0, 2.0, 4.0, 3.0]]


@pytest.mark.parametrize(
    "kwargs, word",
    [({"n": -1}, "n"), ({"n": 3, "size": 16}, "size"), ({"n": 3, "num_objects": 0}, "num_objects"),
     ({"n": 3, "num_objects": (3, 2)}, "num_objects"), ({"n": 3, "scale": (0.3, 0.1)}, "scale"), ({"n": 3, "seed": 1.5}, "seed")],
)
def test_bad_arguments_are_named(kwargs, word):
    with pytest.raises((ValueError, TypeError), match=word):
        ShapesScenes(**kwargs)


def test_bad_index_and_bad_semantic_inputs():
    with pytest.raises(IndexError, match="index"):
        ShapesScenes(3)[3]
    with pytest.raises(ValueError, match="masks"):
        semantic_from_instances(torch.zeros(4, 4), torch.zeros(0, dtype=torch.int64))
    with pytest.raises(ValueError, match="labels"):
        semantic_from_instances(torch.zeros(2, 4, 4), torch.zeros(3, dtype=torch.int64))


def test_load_image_from_the_data_folder_a_path_and_a_url(tmp_path):
    by_name = load_image("chelsea.jpg", size=64)
    assert by_name.shape == (3, 64, 64) and by_name.dtype == torch.float32
    assert 0 <= float(by_name.min()) and float(by_name.max()) <= 1
    by_path = load_image(DATA_DIR / "chelsea.jpg", size=64)
    assert torch.equal(by_name, by_path)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(DATA_DIR))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        import urllib.request

        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy
        urllib.request.install_opener(opener)
        by_url = load_image(f"http://127.0.0.1:{server.server_address[1]}/chelsea.jpg", size=64)
    finally:
        urllib.request.install_opener(None)
        server.shutdown()
    assert torch.equal(by_name, by_url)
    with pytest.raises(FileNotFoundError):
        load_image("no_such_picture.png")
    with pytest.raises(TypeError, match="source"):
        load_image(42)


def _shapes_digest(dataset) -> str:
    """A short SHA-256 of every scene's masks and labels (integers: the same on every CPU)."""
    import hashlib

    h = hashlib.sha256()
    for i in range(len(dataset)):
        _, t = dataset[i]
        h.update(t["masks"].numpy().tobytes())
        h.update(t["labels"].numpy().tobytes())
    return h.hexdigest()[:16]


@pytest.mark.parametrize("options, digest", [
    (dict(n=200, size=32, seed=1, num_objects=(1, 3), scale=(0.15, 0.3)), "05e388670fe07ee6"),  # 05's training scenes
    (dict(n=100, size=64, seed=0), "83e28d5cf395dd02"),
])  # fmt: skip
def test_the_scenes_stay_the_ones_the_notebooks_were_measured_on(options, digest):
    """Every figure and asserted number in the notebooks was measured on these scenes: a change to the
    renderer (a speed-up, say) must draw exactly the same shapes, or say so and re-measure."""
    n = options.pop("n")
    assert _shapes_digest(ShapesScenes(n, **options)) == digest
