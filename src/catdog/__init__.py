"""catdog: turn a folder of labeled photos into a trained, exported image classifier.

The library API mirrors the CLI so it can be driven from a notebook:

    import catdog
    catdog.pack(["train.zip"], "packed/")                 # -> manifest dict
    ds = catdog.data.load("packed/", "train", image_size=224)
"""

__version__ = "0.1.0"


def pack(*args, **kwargs):
    """catdog.data.pack.pack, imported on first use (TensorFlow takes seconds to import)."""
    from catdog.data.pack import pack as _pack

    return _pack(*args, **kwargs)
