"""The one error type checkpoint code raises; its message is a one-line sentence for users."""


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit; the message names the file."""
