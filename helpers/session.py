"""Start a notebook session: seed, device, versions; and the set-up cell every notebook opens with.

The course's repository address lives here and nowhere else (`REPO_URL`). On Colab, the first cell
of each notebook clones it and installs the course when `helpers` cannot be imported.

Environment variables (all optional; unset means "decide from the machine"):

- `SEEING_NETWORKS_DEVICE`: the device to use (`cpu`, `cuda`, `cuda:1`, `mps`), overriding `pick_device`.
- `SEEING_NETWORKS_SCALE`: `gpu` makes `scaled()` return its `gpu=` value even on a CPU, `cpu` its
  `cpu=` value even on a GPU; `auto` (or unset) picks by device. Tests use `gpu` to run the settings
  a Colab GPU session gets on a CPU, so a size or setting only the GPU path uses cannot break unseen.
- `SEEING_NETWORKS_MAX_STEPS`: a positive int; every training and optimisation loop of the course
  (`helpers.train.fit`, which also trains the detector, `helpers.dream.deepdream`,
  `helpers.style.style_transfer`) then runs at most that many steps (`capped_steps`). For smoke tests
  of a whole notebook: its quality asserts will fail, everything else should run.
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


#: Names of the environment variables described in the module's docstring.
DEVICE_ENV = "SEEING_NETWORKS_DEVICE"
SCALE_ENV = "SEEING_NETWORKS_SCALE"
MAX_STEPS_ENV = "SEEING_NETWORKS_MAX_STEPS"


def _mps_available() -> bool:
    """Whether Apple's Metal (MPS) backend can be used (False on builds without it)."""
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def pick_device() -> torch.device:
    """The best device here: CUDA, then Apple's MPS, then the CPU. `SEEING_NETWORKS_DEVICE` overrides."""
    forced = os.environ.get(DEVICE_ENV)
    if forced:
        return torch.device(forced)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    """Seed Python's and torch's random generators (torch's seed covers CPU, CUDA and MPS)."""
    if not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    random.seed(seed)
    torch.manual_seed(seed)


def start(seed: int = 0, quiet: bool = False) -> torch.device:
    """Seed everything, pick the device and print one line of versions. Returns the device."""
    import torchvision

    seed_everything(seed)
    device = pick_device()
    if device.type == "cuda":
        where = torch.cuda.get_device_name(device)
    elif device.type == "mps":
        where = "Apple GPU via Metal"
    else:
        where = f"{torch.get_num_threads()} CPU threads"
    overrides = []
    if scale_override() is not None:
        overrides.append(f"{scale_override()} settings ({SCALE_ENV})")
    if step_cap() is not None:
        overrides.append(f"at most {step_cap()} steps per loop ({MAX_STEPS_ENV})")
    if not quiet:
        print(
            f"Seeing Networks · torch {torch.__version__} · torchvision {torchvision.__version__}"
            f" · device {device} ({where}) · seed {seed}" + "".join(f" · {o}" for o in overrides)
        )
    return device


def on_gpu(device: torch.device | str | None = None) -> bool:
    """True when the work will run on a GPU (the given device, or the one `pick_device` chooses)."""
    device = torch.device(device) if device is not None else pick_device()
    return device.type != "cpu"


def scale_override() -> str | None:
    """"gpu" or "cpu" when `SEEING_NETWORKS_SCALE` forces `scaled()`'s choice; None for "auto" or unset."""
    value = os.environ.get(SCALE_ENV, "").strip().lower()
    if value in ("", "auto"):
        return None
    if value not in ("cpu", "gpu"):
        raise ValueError(f"{SCALE_ENV} must be 'cpu', 'gpu' or 'auto', got {os.environ[SCALE_ENV]!r}")
    return value


def scaled(cpu, gpu, device: torch.device | str | None = None):
    """Pick the amount of work for this device: `cpu` on a CPU, `gpu` on anything faster.

    `device` defaults to the one `pick_device` chooses. `SEEING_NETWORKS_SCALE=gpu` (or `cpu`)
    forces the choice whatever the device, e.g. to run the GPU settings on a CPU in a test.

    >>> steps = scaled(cpu=300, gpu=2000)
    """
    forced = scale_override()
    if forced is not None:
        return gpu if forced == "gpu" else cpu
    return gpu if on_gpu(device) else cpu


def step_cap() -> int | None:
    """The positive int in `SEEING_NETWORKS_MAX_STEPS`, or None when it is unset or empty."""
    value = os.environ.get(MAX_STEPS_ENV, "").strip()
    if not value:
        return None
    try:
        cap = int(value)
    except ValueError:
        cap = 0
    if cap < 1:
        raise ValueError(f"{MAX_STEPS_ENV} must be a positive int, got {os.environ[MAX_STEPS_ENV]!r}")
    return cap


def capped_steps(steps: int) -> int:
    """`steps`, or fewer when `SEEING_NETWORKS_MAX_STEPS` sets a smaller cap (for smoke tests)."""
    cap = step_cap()
    return steps if cap is None else min(steps, cap)


def progress_bar(iterable=None, **kwargs):
    """A `tqdm.auto` progress bar that redraws at most once a second (`mininterval`).

    Long loops would otherwise send thousands of widget updates, more than a kernel's output
    channel buffers for a reader that waits until the cell ends (nbval does): messages get dropped
    and the cell looks hung.
    """
    kwargs.setdefault("mininterval", 1.0)
    return tqdm(iterable, **kwargs)
