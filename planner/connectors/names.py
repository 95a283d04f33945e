"""Names shared beyond the connectors, kept apart so importing them loads no connector."""

# An HTTP source's secret headers are stored among its secrets under this prefix.
SECRET_HEADER_PREFIX = "header:"  # noqa: S105 - a key prefix, not a secret


class ConnectorError(Exception):
    """A failure whose ``message`` is safe to show to the user (no secrets, no stack)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
