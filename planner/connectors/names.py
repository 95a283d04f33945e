"""Names shared beyond the connectors, kept apart so importing them loads no connector."""

# An HTTP source's secret headers are stored among its secrets under this prefix.
SECRET_HEADER_PREFIX = "header:"  # noqa: S105 - a key prefix, not a secret

# The SSL settings each database connector accepts (the settings form offers these).
POSTGRES_SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
MYSQL_SSL_MODES = ("disable", "require")


def secret_header_key(name: str) -> str:
    """The secrets key holding the value of the credential header ``name``."""
    return SECRET_HEADER_PREFIX + name.strip().lower()


class ConnectorError(Exception):
    """A failure whose ``message`` is safe to show to the user (no secrets, no stack)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
