"""Model, loss, metrics and optimizer construction, in one place so a tf.distribute strategy scope can wrap it."""

from __future__ import annotations

from catdog.classes import is_binary
from catdog.errors import ModelError
from catdog.training.config import TrainConfig


def compile_model(model, learning_rate, num_classes: int, *, jit_compile: bool = False,
                  label_smoothing: float = 0.0, steps_per_execution: int = 1) -> None:
    """Adam + cross-entropy (optionally label-smoothed); metrics `accuracy` and `log_loss` (unweighted,
    unregularised, on the true labels: the monitor). `steps_per_execution` > 1 runs that many steps per call
    into TensorFlow: for the head on cached features, where Python's per-step overhead is most of a step."""
    import keras

    if is_binary(num_classes):
        loss = keras.losses.BinaryCrossentropy(label_smoothing=label_smoothing)
        metrics = [keras.metrics.BinaryAccuracy(name="accuracy"), keras.metrics.BinaryCrossentropy(name="log_loss")]
    else:
        loss, metrics = smoothed_sparse_loss(num_classes, label_smoothing), [
            keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
            keras.metrics.SparseCategoricalCrossentropy(name="log_loss")]
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss, metrics=metrics,
                  jit_compile=jit_compile, steps_per_execution=steps_per_execution)


def smoothed_sparse_loss(num_classes: int, label_smoothing: float):
    """Sparse categorical cross-entropy; with smoothing, a registered loss that one-hot encodes the labels
    (a named, registered class, so the head saved for --resume loads back with its loss: call this first)."""
    import keras

    if not label_smoothing:
        return keras.losses.SparseCategoricalCrossentropy()

    @keras.saving.register_keras_serializable(package="catdog")
    class SmoothedSparseCrossentropy(keras.losses.Loss):
        def __init__(self, num_classes, label_smoothing, **kwargs):
            super().__init__(**kwargs)
            self.num_classes, self.label_smoothing = num_classes, label_smoothing

        def call(self, y_true, y_pred):
            onehot = keras.ops.one_hot(keras.ops.reshape(keras.ops.cast(y_true, "int32"), (-1,)), self.num_classes)
            return keras.losses.categorical_crossentropy(onehot, y_pred, label_smoothing=self.label_smoothing)

        def get_config(self):
            return {**super().get_config(), "num_classes": self.num_classes, "label_smoothing": self.label_smoothing}

    return SmoothedSparseCrossentropy(num_classes, label_smoothing)


def learning_rate(cfg: TrainConfig, peak: float, total_steps: int):
    import keras

    if cfg.schedule == "constant":
        return peak
    return keras.optimizers.schedules.CosineDecay(peak, decay_steps=max(1, total_steps))


def build_models(cfg: TrainConfig, num_classes: int):
    """backbone, head and the classifier that shares the head's layers (frozen backbone unless from scratch)."""
    from catdog.model.classifier import build_backbone, build_classifier, feature_dim, freeze, pin_inference_mode
    from catdog.model.head import build_head
    from catdog.model.registry import get_backbone

    entry = get_backbone(cfg.backbone)
    backbone = build_backbone(entry, cfg.weights, cfg.image_size)
    if len(backbone.output.shape) not in (2, 4):
        raise ModelError(f"backbone {cfg.backbone}: output shape {backbone.output.shape} is neither a feature map "
                         "(N, h, w, C) nor pooled features (N, C)")
    if not entry.from_scratch:  # a pretrained feature extractor: frozen, and always in inference mode
        freeze(backbone)
        pin_inference_mode(backbone)
    _synchronize_batch_norm(backbone)
    head = build_head(feature_dim(backbone), num_classes, dropout=cfg.dropout, l2=cfg.l2, seed=cfg.seed)
    return backbone, head, build_classifier(backbone, head, cfg.image_size)


def _synchronize_batch_norm(model) -> None:
    """Under several replicas, BatchNormalization that trains uses the statistics of the GLOBAL batch.

    Keras 3 keeps a replica's moving mean/variance unsynchronised (aggregation "none"), so workers would end
    with different moving statistics although their trainable weights agree; with synchronized=True every
    replica computes the same moments (one all-reduce) and updates the same moving statistics. Layers pinned
    to inference mode (frozen pretrained backbones) never update them and are unaffected.
    """
    import keras
    import tensorflow as tf

    if tf.distribute.get_strategy().num_replicas_in_sync == 1:
        return
    stack = list(model.layers)
    while stack:
        layer = stack.pop()
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = True
        stack.extend(getattr(layer, "layers", []))

