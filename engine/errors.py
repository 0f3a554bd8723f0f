"""Exceptions the engine raises on bad model files and bad inputs."""


class ModelFileError(ValueError):
    """A model file (or a graph) is truncated, corrupted or malformed; the
    message names the problem."""


class UnsupportedModelError(ValueError):
    """The converter met operations the engine cannot run; the message lists
    every one with the module it came from."""
