"""Exceptions shared by every layer (layer 0: imports nothing from kd3d)."""


class ConfigError(ValueError):
    """A config file or an override is invalid (the message names the file/key)."""


class CheckpointError(RuntimeError, ValueError):
    """A checkpoint cannot be read, fails its checksum or does not match the model (the message
    names the file). A ValueError too, as the distiller's loader raised before."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """A checkpoint file (or a work dir's latest checkpoint) does not exist."""
