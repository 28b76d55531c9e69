"""Optional parts of catdog live in pip extras; using one without it is a one-line error naming the extra.

    serve        fastapi, uvicorn, python-multipart, fastapi-swagger   (`catdog serve`)
    onnx         tf2onnx, onnxruntime                                   (`catdog export --format onnx`, .onnx models)
    tensorboard  tensorboard, tensorboard-plugin-profile                (viewing runs/*/tensorboard, --profile)
"""

from __future__ import annotations

import importlib.util

from catdog.errors import ConfigError

EXTRAS = {
    "serve": ("fastapi", "uvicorn", "multipart", "fastapi_swagger"),
    "onnx": ("tf2onnx", "onnxruntime"),
    "tensorboard": ("tensorboard",),
}


def missing(extra: str) -> list[str]:
    """The import names of `extra` that are not installed."""
    return [name for name in EXTRAS[extra] if importlib.util.find_spec(name) is None]


def require(extra: str, what: str) -> None:
    """Raise ConfigError "<what> needs X, which is not installed: pip install 'catdog[extra]'" if anything is missing."""
    absent = missing(extra)
    if absent:
        verb = "is" if len(absent) == 1 else "are"
        raise ConfigError(f"{what} needs {' and '.join(absent)}, which {verb} not installed: "
                          f"pip install 'catdog[{extra}]'")
