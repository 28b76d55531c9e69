"""Decode + resize of encoded image bytes, in-graph. ONE function serves training, evaluation, predict,
the exported SavedModel and the web server, so their preprocessing cannot drift apart.

A JPEG's EXIF Orientation is applied after decoding (catdog.data.exif): from the record feature
`image/orientation` for packed data (the stored bytes stay original), else read from the bytes in-graph;
the mirror on the decoded uint8 pixels, the transpose of orientations 5-8 on the small resized output.

JPEGs are decoded with libjpeg's accurate integer DCT, at reduced scale (DCT scaling, `ratio` 2/4/8) when the
photo is at least 3x the target size in both dimensions: a 1000x800 photo bound for 224x224 is decoded at
500x400, about 4x less work, and then resized (bilinear; antialiased only when still shrinking by more than 3x).

Up to a 3x shrink this is what MediaPipe's ImageClassifier does on a CPU (full decode, OpenCV bilinear warp
that maps corner to corner, no antialias), so an exported `.tflite` sees the same pixels there up to
decoder rounding: the bilinear resize samples at `x * in / out` (TF1's `half_pixel_centers=False`, as
MediaPipe, TFLite and OpenCV's warps do) rather than at half-pixel centres. Its sampling phase, the DCT
method and reduced-scale decoding each moved P by up to 0.2-0.4 on borderline photos (README, export).
"""

from __future__ import annotations

from catdog._tf import tf

from catdog.data import exif

RESIZE_MODES = ("squash", "crop", "pad")
_RATIOS = (1, 2, 4, 8)
_REDUCED_FROM = 3  # reduced-scale JPEG decode only when the photo is >= 3x the target (where antialiasing starts)


def as_size(image_size) -> tuple[int, int]:
    """224 -> (224, 224); (h, w) stays."""
    if isinstance(image_size, int):
        return int(image_size), int(image_size)
    height, width = image_size
    return int(height), int(width)


def _jpeg_ratio_index(height: tf.Tensor, width: tf.Tensor, target: tuple[int, int], transposed=False) -> tf.Tensor:
    """Index into _RATIOS of the largest ratio that still leaves >= target pixels in both dimensions, 0 below
    a 3x shrink (of the upright image: a stored image that will be transposed is compared with the swapped
    target)."""
    th, tw = target
    index = tf.constant(0)
    for i, r in enumerate(_RATIOS[1:], start=1):
        m = max(r, _REDUCED_FROM)
        fits = tf.logical_and(height >= m * th, width >= m * tw)
        fits_turned = tf.logical_and(height >= m * tw, width >= m * th)
        index = tf.where(tf.where(transposed, fits_turned, fits), i, index)
    return index


def decode_jpeg_reduced(encoded: tf.Tensor, target: tuple[int, int], transposed=False) -> tf.Tensor:
    """Decode JPEG bytes to uint8 RGB at the smallest DCT scale that is still >= target."""
    shape = tf.image.extract_jpeg_shape(encoded)
    index = _jpeg_ratio_index(tf.cast(shape[0], tf.int32), tf.cast(shape[1], tf.int32), target, transposed)
    branches = [
        (lambda r=r: tf.io.decode_jpeg(encoded, channels=3, ratio=r, dct_method="INTEGER_ACCURATE"))
        for r in _RATIOS
    ]
    return tf.switch_case(index, branches)


def decode_any(encoded: tf.Tensor, target: tuple[int, int], orientation=1) -> tuple[tf.Tensor, tf.Tensor]:
    """(uint8 pixels as stored, mirrored per `orientation`; whether they still need a transpose to be upright).

    JPEG via the reduced-scale path, PNG/GIF/BMP/WebP via tf.io.decode_image (first frame); either turned by its
    EXIF orientation (PNG and WebP carry one too, which pack applies when it converts them). The transpose of
    orientations 5-8 is left to `resize`, which does it on its small output (see catdog.data.exif.mirror).
    """
    is_jpeg = tf.io.is_jpeg(encoded)
    orientation = exif.upright(orientation)
    turned = orientation >= 5  # stored transposed (after the mirror)
    pixels = tf.cond(
        is_jpeg,
        lambda: decode_jpeg_reduced(encoded, target, turned),
        lambda: tf.ensure_shape(
            tf.io.decode_image(encoded, channels=3, expand_animations=False, dtype=tf.uint8), [None, None, 3]),
    )
    return exif.mirror(pixels, orientation), turned


def _bilinear_corner_aligned(image: tf.Tensor, size) -> tf.Tensor:
    """Bilinear resize sampling output pixel x at input x * in / out, as MediaPipe's CPU ImageToTensor does."""
    return tf.raw_ops.ResizeBilinear(images=image[None], size=size, align_corners=False,
                                     half_pixel_centers=False)[0]


def resize(image: tf.Tensor, target: tuple[int, int], mode: str = "squash", turned=False) -> tf.Tensor:
    """uint8/float image (h, w, 3) -> float32 (th, tw, 3) in 0..255.

    squash: stretch to the target; crop: centre-crop to the target's aspect ratio, then resize;
    pad: fit inside the target keeping the aspect ratio, pad with black.
    turned: the image is stored transposed (EXIF orientations 5-8): it is resized to the transposed target and
    the result transposed, which is the same as transposing first (every mode treats rows and columns alike).
    """
    if mode not in RESIZE_MODES:
        raise ValueError(f"resize mode must be one of {RESIZE_MODES}, got {mode!r}")
    th, tw = target
    turned = tf.convert_to_tensor(turned, tf.bool)
    size = tf.where(turned, tf.constant([tw, th]), tf.constant([th, tw]))
    shape = tf.shape(image)[:2]
    if mode == "crop":
        scale = tf.reduce_min(tf.cast(shape, tf.float32) / tf.cast(size, tf.float32))
        crop = tf.cast(tf.round(tf.cast(size, tf.float32) * scale), tf.int32)
        top, left = (shape[0] - crop[0]) // 2, (shape[1] - crop[1]) // 2
        image = image[top : top + crop[0], left : left + crop[1], :]
        shape = crop
    # Antialiasing triples the cost of this function; bilinear alone is fine up to a 3x shrink, which the
    # reduced-scale JPEG decode above guarantees for all but extreme aspect ratios.
    # Both filters average neighbouring pixels, so the result stays within 0..255 without clipping.
    shrink = tf.reduce_max(tf.cast(shape, tf.float32) / tf.cast(size, tf.float32))
    if mode == "pad":
        image = tf.cast(image, tf.float32)
        image = tf.cond(shrink > 3.0,
                        lambda: tf.image.resize_with_pad(image, size[0], size[1], antialias=True),
                        lambda: tf.image.resize_with_pad(image, size[0], size[1], antialias=False))
    else:
        image = tf.cond(shrink > 3.0,
                        lambda: tf.image.resize(image, size, antialias=True),
                        lambda: _bilinear_corner_aligned(image, size))
    image = tf.cond(turned, lambda: tf.transpose(image, [1, 0, 2]), lambda: image)
    return tf.ensure_shape(image, [th, tw, 3])


def decode_and_resize(encoded: tf.Tensor, image_size, mode: str = "squash", orientation=None) -> tf.Tensor:
    """Encoded image bytes (scalar tf.string) -> float32 (H, W, 3) in 0..255, upright.

    orientation: the EXIF orientation to apply (a packed record's `image/orientation`); None reads it
    from the bytes (catdog.data.exif.orientation_status; a damaged block counts as 1).
    """
    target = as_size(image_size)
    if orientation is None:
        orientation = exif.orientation_status(encoded)
    image, turned = decode_any(encoded, target, orientation)
    return resize(image, target, mode, turned)
