"""The only exceptions the CLI turns into one-line messages; anything else is a bug and keeps its traceback."""


class CatdogError(Exception):
    """Base class: an expected failure caused by input, config or environment."""


class DataError(CatdogError):
    """A source folder, image, shard or manifest is missing, malformed or inconsistent."""


class ConfigError(CatdogError):
    """An option or combination of options cannot work."""


class ModelError(CatdogError):
    """A run folder, model file or backbone cannot be loaded or used."""
