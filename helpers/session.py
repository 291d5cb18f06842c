"""Start a notebook session: seed, device, versions; and the set-up cell every notebook opens with.

The course's repository address lives here and nowhere else (`REPO_URL`). On Colab, the first cell
of each notebook clones it and installs the course when `helpers` cannot be imported.
"""

from __future__ import annotations

import os
import random

import torch
from tqdm.auto import tqdm

#: Where Colab fetches the course from. Forks change this one line (see the README).
REPO_URL = "https://github.com/seeing-networks/seeing-networks.git"

#: The first code cell of every notebook, word for word (a test checks it). It must run before
#: `helpers` can be imported, so it uses only the standard library.
SETUP_CELL = f'''\
# Set-up: on Colab, fetch and install the course; everywhere, seed and pick the device.
import importlib.util, os, subprocess, sys
if "google.colab" in sys.modules and importlib.util.find_spec("helpers") is None:
    if not os.path.isdir("/content/seeing-networks"):
        subprocess.run(["git", "clone", "-q", "--depth", "1", "{REPO_URL}", "/content/seeing-networks"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", "/content/seeing-networks"], check=True)
    sys.path.insert(0, "/content/seeing-networks")
from helpers.session import start
device = start(seed=0)'''


def pick_device() -> torch.device:
    """The best device here: CUDA, then Apple's MPS, then the CPU. `SEEING_NETWORKS_DEVICE` overrides."""
    forced = os.environ.get("SEEING_NETWORKS_DEVICE")
    if forced:
        return torch.device(forced)
    if torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    """Seed Python's, torch's (CPU and CUDA) random generators."""
    if not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    random.seed(seed)
    torch.manual_seed(seed)


def start(seed: int = 0, quiet: bool = False) -> torch.device:
    """Seed everything, pick the device and print one line of versions. Returns the device."""
    import torchvision

    seed_everything(seed)
    device = pick_device()
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{torch.get_num_threads()} CPU threads"
    if not quiet:
        print(
            f"Seeing Networks · torch {torch.__version__} · torchvision {torchvision.__version__}"
            f" · device {device} ({where}) · seed {seed}"
        )
    return device


def on_gpu(device: torch.device | str | None = None) -> bool:
    """True when the work will run on a GPU (the given device, or the one `pick_device` chooses)."""
    device = torch.device(device) if device is not None else pick_device()
    return device.type != "cpu"


def scaled(cpu, gpu, device: torch.device | str | None = None):
    """Pick the amount of work for this device: `cpu` on a CPU, `gpu` on anything faster.

    >>> steps = scaled(cpu=300, gpu=2000)
    """
    return gpu if on_gpu(device) else cpu


def progress_bar(iterable=None, **kwargs):
    """A `tqdm.auto` progress bar that redraws at most once a second (`mininterval`).

    Long loops would otherwise send thousands of widget updates, more than a kernel's output
    channel buffers for a reader that waits until the cell ends (nbval does): messages get dropped
    and the cell looks hung.
    """
    kwargs.setdefault("mininterval", 1.0)
    return tqdm(iterable, **kwargs)
