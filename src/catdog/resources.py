"""Resource checks done BEFORE expensive work starts, so an impossible request fails in a second, with one
line, and leaves nothing behind (no half-made run folder after a minute of graph building).
"""

from __future__ import annotations

import os

from catdog.errors import ConfigError

# One training image costs its float32 input plus the activations a backbone keeps for the backward pass;
# 8x the input is well below what real CNNs keep (EfficientNet keeps ~30x), so this only refuses sizes that
# cannot possibly fit, never a run that would.
ACTIVATION_FACTOR = 8


def total_memory() -> int:
    """Physical memory in bytes (0 when the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def _gb(n: float) -> str:
    return f"{n / 2**30:,.1f} GB"


def check_training_memory(image_size, batch_size: int, *, memory: int | None = None) -> None:
    """ConfigError when one batch at `image_size` cannot fit in this machine's memory."""
    if image_size is None:
        return
    height, width = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    need = batch_size * height * width * 3 * 4 * ACTIVATION_FACTOR
    memory = total_memory() if memory is None else memory
    if memory and need > memory:
        raise ConfigError(f"--image-size {height}x{width}: one batch of {batch_size} images needs about {_gb(need)} "
                          f"(inputs + activations), more than this machine's {_gb(memory)}; use a smaller "
                          "--image-size or --batch-size")
