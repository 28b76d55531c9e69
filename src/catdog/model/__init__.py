"""Models: the backbone registry, the head, the classifier and the feature cache."""

from catdog.model.registry import get_backbone, list_backbones, register_backbone  # noqa: F401
