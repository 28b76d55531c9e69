"""What catdog accepts as an image, defined once for pack, predict and serve: formats, file endings, pixel limit.

A module with no imports, so the CLI can show these as option defaults without importing TensorFlow
(importing anything under `catdog.data` does). The checks themselves are in `catdog.data.imagecheck`
(pack, predict) and `catdog.serve.images` (serve, which maps each problem to an HTTP status).
"""

DEFAULT_MAX_PIXELS = 40_000_000  # 40 MP: above any phone photo, far below a decompression bomb

# Pillow's format name -> the name users see. MPO = the multi-picture JPEGs many cameras write (first frame = JPEG).
# HEIF (iPhones' HEIC) needs the pillow-heif plugin and is converted to JPEG in Python (catdog.data.heif).
IMAGE_FORMATS = {"JPEG": "JPEG", "MPO": "JPEG", "PNG": "PNG", "GIF": "GIF", "BMP": "BMP", "WEBP": "WebP",
                 "HEIF": "HEIC"}
IMAGE_FORMATS_TEXT = "JPEG, PNG, GIF, BMP, WebP, HEIC"

# File name endings of those formats: how predict picks images out of a folder or a zip (`.jfif`: JPEGs that
# browsers on Windows save). Pack checks every file by content, documents and data files aside.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".gif", ".bmp", ".webp", ".heic", ".heif")
