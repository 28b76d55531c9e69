"""Run by tests/test_export_formats.py with the MediaPipe venv's Python (MediaPipe's pins clash with TensorFlow's).

    $ .venv-mediapipe/bin/python tests/mediapipe_classify.py MODEL.tflite IMAGE... > results.json

Classifies each image with MediaPipe Tasks' ImageClassifier, which reads the labels and normalisation
from the model's TFLite metadata, and prints {image: {category_name: score}} as JSON.
"""

import json
import sys

import mediapipe as mp
from mediapipe.tasks import python as tasks
from mediapipe.tasks.python import vision

model, images = sys.argv[1], sys.argv[2:]
options = vision.ImageClassifierOptions(base_options=tasks.BaseOptions(model_asset_path=model), max_results=-1)
results = {}
with vision.ImageClassifier.create_from_options(options) as classifier:
    for path in images:
        categories = classifier.classify(mp.Image.create_from_file(path)).classifications[0].categories
        results[path] = {c.category_name: c.score for c in categories}
print(json.dumps(results))
