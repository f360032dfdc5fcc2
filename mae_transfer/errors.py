"""User-facing errors: the tools print these as one line (``error: ...``) and exit with status 2."""


class UserError(Exception):
    """Bad input from the user: a config key, a data folder, a checkpoint. The message names the culprit."""


class ConfigError(UserError):
    """Unknown or ill-typed configuration key / unknown registry name."""


class DataError(UserError):
    """Missing, empty or malformed dataset."""


class CheckpointError(UserError):
    """A checkpoint that cannot be read, or whose keys/shapes do not fit the model."""


class NonFiniteLossError(UserError, FloatingPointError):
    """Loss became NaN/inf; training stops before writing a checkpoint from the broken state."""
