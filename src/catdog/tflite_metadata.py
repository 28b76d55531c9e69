"""Embed TFLite metadata (labels, normalisation, image size) into a .tflite, so MediaPipe and LiteRT tools run it as is.

MediaPipe Tasks' ImageClassifier refuses a float model without NormalizationOptions and names classes
only from a label file packed into the model. `tflite-support`'s MetadataWriter does this, but pins a
protobuf that clashes with TensorFlow 2.21; so this module writes the same bytes itself with the
`flatbuffers` runtime (installed with TensorFlow), following `metadata_schema.fbs` (file identifier
"M001") and what tflite_support's MetadataPopulator does:

1. serialise a ModelMetadata table (one SubGraphMetadata: the image input, the probabilities output);
2. add it to the model flatbuffer as a new Buffer and a Metadata entry named "TFLITE_METADATA";
3. append the associated files (labels.txt) to the model as a zip archive.

Field numbers below are the slot order in metadata_schema.fbs; a union field takes two slots (type, value).
"""

from __future__ import annotations

import io
import zipfile

import flatbuffers
import numpy as np

METADATA_NAME = "TFLITE_METADATA"
METADATA_IDENTIFIER = b"M001"
MODEL_IDENTIFIER = b"TFL3"
LABEL_FILE = "labels.txt"
# Everything written here exists since metadata schema 1.0.0, the oldest parser version.
MIN_PARSER_VERSION = "1.0.0"

# enums of metadata_schema.fbs
_TENSOR_AXIS_LABELS = 2  # AssociatedFileType
_RGB = 1  # ColorSpaceType
_FEATURE_PROPERTIES, _IMAGE_PROPERTIES = 1, 2  # ContentProperties union
_NORMALIZATION_OPTIONS = 1  # ProcessUnitOptions union


def _strings(b: flatbuffers.Builder, values: list[str]) -> list[int]:
    return [b.CreateString(v) for v in values]


def _offset_vector(b: flatbuffers.Builder, offsets: list[int]) -> int:
    b.StartVector(4, len(offsets), 4)
    for off in reversed(offsets):
        b.PrependUOffsetTRelative(off)
    return b.EndVector()


def _float_vector(b: flatbuffers.Builder, values) -> int:
    return b.CreateNumpyVector(np.asarray(values, dtype="<f4"))


def _table(b: flatbuffers.Builder, num_slots: int, fields: list[tuple[str, int, int]]) -> int:
    """fields: (kind, slot, value) with kind "off" (an offset), "i8", "u8" or "u32"; unset slots stay absent."""
    b.StartObject(num_slots)
    for kind, slot, value in fields:
        if kind == "off":
            b.PrependUOffsetTRelativeSlot(slot, value, 0)
        elif kind in ("i8", "u8"):
            (b.PrependInt8Slot if kind == "i8" else b.PrependUint8Slot)(slot, value, 0)
        else:
            b.PrependUint32Slot(slot, value, 0)
    return b.EndObject()


def build_metadata(*, name: str, description: str, version: str, classes: list[str], image_size: tuple[int, int],
                   mean: float = 0.0, std: float = 1.0, author: str = "catdog") -> bytes:
    """The ModelMetadata flatbuffer for an image classifier: input (1, H, W, 3) RGB float = (pixel - mean) / std,
    output (1, C) probabilities whose axis 1 is labelled by labels.txt."""
    h, w = image_size
    b = flatbuffers.Builder(1024)
    # --- input tensor: an RGB image of H x W, normalised by (x - mean) / std
    in_name, in_desc = _strings(b, ["image", f"RGB image {w}x{h}, float32 pixels 0..255 after normalisation"])
    size = _table(b, 2, [("u32", 0, w), ("u32", 1, h)])
    image_props = _table(b, 2, [("i8", 0, _RGB), ("off", 1, size)])
    in_content = _table(b, 3, [("u8", 0, _IMAGE_PROPERTIES), ("off", 1, image_props)])
    norm = _table(b, 2, [("off", 0, _float_vector(b, [mean] * 3)), ("off", 1, _float_vector(b, [std] * 3))])
    unit = _table(b, 2, [("u8", 0, _NORMALIZATION_OPTIONS), ("off", 1, norm)])
    in_units = _offset_vector(b, [unit])
    in_stats = _table(b, 2, [("off", 0, _float_vector(b, [(255.0 - mean) / std])),
                             ("off", 1, _float_vector(b, [(0.0 - mean) / std]))])
    input_meta = _table(b, 7, [("off", 0, in_name), ("off", 1, in_desc), ("off", 3, in_content),
                               ("off", 4, in_units), ("off", 5, in_stats)])
    # --- output tensor: probabilities over the classes, named by the packed label file
    out_name, out_desc = _strings(b, ["probability", "calibrated probabilities of the classes (they sum to 1)"])
    features = _table(b, 0, [])
    out_content = _table(b, 3, [("u8", 0, _FEATURE_PROPERTIES), ("off", 1, features)])
    out_stats = _table(b, 2, [("off", 0, _float_vector(b, [1.0])), ("off", 1, _float_vector(b, [0.0]))])
    label_name, label_desc = _strings(b, [LABEL_FILE, "class names, one a line, in output order"])
    label_file = _table(b, 5, [("off", 0, label_name), ("off", 1, label_desc), ("i8", 2, _TENSOR_AXIS_LABELS)])
    out_files = _offset_vector(b, [label_file])
    output_meta = _table(b, 7, [("off", 0, out_name), ("off", 1, out_desc), ("off", 3, out_content),
                                ("off", 5, out_stats), ("off", 6, out_files)])
    # --- subgraph and model
    sub_name = b.CreateString("image_classifier")
    subgraph = _table(b, 10, [("off", 0, sub_name), ("off", 2, _offset_vector(b, [input_meta])),
                              ("off", 3, _offset_vector(b, [output_meta]))])
    m_name, m_desc, m_version, m_author, m_parser = _strings(
        b, [name, description, version, author, MIN_PARSER_VERSION])
    subgraphs = _offset_vector(b, [subgraph])
    root = _table(b, 8, [("off", 0, m_name), ("off", 1, m_desc), ("off", 2, m_version), ("off", 3, subgraphs),
                         ("off", 4, m_author), ("off", 7, m_parser)])
    b.Finish(root, METADATA_IDENTIFIER)
    return bytes(b.Output())


def populate(model_bytes: bytes, metadata: bytes, classes: list[str]) -> bytes:
    """The model with `metadata` in a "TFLITE_METADATA" buffer and labels.txt appended as a zip archive."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(bytearray(model_bytes), 0))
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(metadata, dtype=np.uint8)
    model.buffers = list(model.buffers or [])
    model.metadata = [m for m in (model.metadata or []) if m.name.decode() != METADATA_NAME]
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(model.buffers) - 1
    model.metadata.append(entry)
    b = flatbuffers.Builder(len(model_bytes) + len(metadata) + 1024)
    b.Finish(model.Pack(b), MODEL_IDENTIFIER)
    out = io.BytesIO(bytes(b.Output()))
    with zipfile.ZipFile(out, "a") as zf:  # appended after the flatbuffer, as tflite_support does
        zf.writestr(LABEL_FILE, "".join(f"{c}\n" for c in classes))
    return out.getvalue()


def read_labels(tflite_bytes: bytes) -> list[str] | None:
    """The packed labels.txt of a model written by `populate`, or None when it has none."""
    try:
        with zipfile.ZipFile(io.BytesIO(tflite_bytes)) as zf:
            return zf.read(LABEL_FILE).decode().splitlines()
    except (zipfile.BadZipFile, KeyError):
        return None
