"""The backbone entries: each a few declarative lines over `keras.applications` (include_top=False).

Preprocessing is inside every model, so the classifier always takes raw RGB 0..255: EfficientNetV2,
MobileNetV3 and ConvNeXt have `include_preprocessing`; VGG16/ResNet50 expect "caffe" input (BGR minus
the ImageNet mean), built here from a frozen built-in Dense(3) layer so no custom layer is needed.
`weights` is None (random init), "imagenet" (Keras' own download + cache) or a weights file path.
"""

from __future__ import annotations

import numpy as np

from catdog.model.entry import register_backbone

_CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68], np.float32)


def _caffe_input(app, input_shape, weights, name):
    """RGB 0..255 -> BGR - mean (a frozen Dense on the channel axis) -> the application's trunk."""
    import keras

    inputs = keras.Input(input_shape, name="image")
    to_bgr = keras.layers.Dense(3, trainable=False, name="caffe_preprocess")
    x = to_bgr(inputs)
    to_bgr.set_weights([np.eye(3, dtype=np.float32)[::-1], -_CAFFE_MEAN_BGR])  # kernel[i, j]: in i -> out j
    trunk = app(include_top=False, weights=weights, input_shape=input_shape)
    return keras.Model(inputs, trunk(x), name=name)


@register_backbone(default_size=224, min_size=32, feature_dim=512,
                   weights_file="vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5")
def vgg16(input_shape, weights):
    import keras

    return _caffe_input(keras.applications.VGG16, input_shape, weights, "vgg16_backbone")


@register_backbone(default_size=224, min_size=32, feature_dim=2048,
                   weights_file="resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5")
def resnet50(input_shape, weights):
    import keras

    return _caffe_input(keras.applications.ResNet50, input_shape, weights, "resnet50_backbone")


@register_backbone(default_size=224, min_size=32, feature_dim=1280, weights_file="efficientnetv2-b0_notop.h5")
def efficientnetv2b0(input_shape, weights):
    import keras

    return keras.applications.EfficientNetV2B0(include_top=False, weights=weights, input_shape=input_shape,
                                               include_preprocessing=True)


@register_backbone(default_size=384, min_size=32, feature_dim=1280, weights_file="efficientnetv2-s_notop.h5")
def efficientnetv2s(input_shape, weights):
    import keras

    return keras.applications.EfficientNetV2S(include_top=False, weights=weights, input_shape=input_shape,
                                              include_preprocessing=True)


@register_backbone(default_size=224, min_size=32, feature_dim=576,
                   weights_file="weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5")
def mobilenetv3small(input_shape, weights):
    import keras

    return keras.applications.MobileNetV3Small(include_top=False, weights=weights, input_shape=input_shape,
                                               include_preprocessing=True)


@register_backbone(default_size=224, min_size=32, feature_dim=960,
                   weights_file="weights_mobilenet_v3_large_224_1.0_float_no_top_v2.h5")
def mobilenetv3large(input_shape, weights):
    import keras

    return keras.applications.MobileNetV3Large(include_top=False, weights=weights, input_shape=input_shape,
                                               include_preprocessing=True)


@register_backbone(default_size=224, min_size=32, feature_dim=768, weights_file="convnext_tiny_notop.h5")
def convnext_tiny(input_shape, weights):
    import keras

    return keras.applications.ConvNeXtTiny(include_top=False, weights=weights, input_shape=input_shape,
                                           include_preprocessing=True)


@register_backbone(default_size=128, min_size=16, feature_dim=128, from_scratch=True, name="small-cnn")
def small_cnn(input_shape, weights):
    """The original's first attempt: a few conv blocks trained from scratch; the offline baseline."""
    import keras
    from keras import layers

    inputs = keras.Input(input_shape, name="image")
    x = layers.Rescaling(1.0 / 255)(inputs)
    for i, filters in enumerate((32, 64, 128, 128)):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = layers.BatchNormalization(name=f"bn{i}")(x)
        x = layers.ReLU(name=f"relu{i}")(x)
        x = layers.MaxPooling2D(name=f"pool{i}")(x)
    model = keras.Model(inputs, x, name="small_cnn")
    if weights not in (None, "imagenet"):
        model.load_weights(weights)
    return model
