"""The classification head: Dropout -> Dense with L2 (named "logits") -> sigmoid/softmax (named "probs").

Kept as its own small model so phase 1 can train it on cached backbone features; the classifier then
reuses the very same layer objects, so what the head learned IS the classifier's head.
"""

from __future__ import annotations

from catdog.classes import is_binary


def head_units(num_classes: int) -> int:
    """Two classes -> one sigmoid unit = P(classes[1]); more -> one softmax unit per class."""
    if num_classes < 2:
        raise ValueError(f"need at least 2 classes, got {num_classes}")
    return 1 if is_binary(num_classes) else num_classes


def build_head(feature_dim: int, num_classes: int, *, dropout: float = 0.2, l2: float = 1e-4,
               seed: int | None = None):
    """Pooled features (N, feature_dim) -> probabilities (N, 1) sigmoid or (N, C) softmax.

    Args:
        feature_dim: width of the pooled backbone features.
        num_classes: number of classes (label order = manifest "classes").
        dropout: dropout rate before the dense layer. Defaults to `0.2`.
        l2: L2 penalty on the dense kernel (0 = none). Defaults to `1e-4`.
        seed: seeds the kernel initialiser and dropout, for reproducible runs. Defaults to `None`.

    Returns:
        A `keras.Model` whose layers after the input are applied in order by `build_classifier`.
    """
    import keras

    units = head_units(num_classes)
    inputs = keras.Input((feature_dim,), name="features")
    x = keras.layers.Dropout(dropout, seed=seed, name="dropout")(inputs)
    x = keras.layers.Dense(
        units,
        kernel_initializer=keras.initializers.GlorotUniform(seed=seed),
        kernel_regularizer=keras.regularizers.L2(l2) if l2 > 0 else None,
        name="logits",
    )(x)
    # float32 output even under mixed precision: probabilities and the loss need the full range.
    probs = keras.layers.Activation("sigmoid" if units == 1 else "softmax", dtype="float32", name="probs")(x)
    return keras.Model(inputs, probs, name="head")
