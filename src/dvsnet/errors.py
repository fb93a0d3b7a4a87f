"""The one exception type for user mistakes: the CLI prints its message on one line and exits non-zero."""


class DvsnetError(Exception):
    """A problem the user can fix (bad path, bad option, mismatched weights); message is one clear line."""
