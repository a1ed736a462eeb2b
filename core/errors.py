"""Errors that reach the operator.

Each one carries a one-line message that names the problem and the fix; the CLI prints that
line and exits non-zero instead of showing a traceback.

    LiftLedgerError
    ├── ConfigError           settings missing, malformed or unsafe for the environment
    ├── StackError            a local service could not be installed, started or stopped
    │   └── InstallError      a tool or package is missing and could not be installed
    ├── ServiceUnreachable    a database, broker or chain URL does not answer
    ├── DatabaseAuthError     the database refused the credentials in the URL
    ├── RegistryError         an elevator registry file or id is invalid
    └── simulators.publisher.PublisherError
                              the simulated fleet cannot reach the broker or is refused
"""


class LiftLedgerError(Exception):
    """Base of every error the CLI reports as a single line."""


class ConfigError(LiftLedgerError):
    """Settings are missing, malformed, or unsafe for the chosen environment."""


class StackError(LiftLedgerError):
    """A local service could not be installed, started or stopped."""


class InstallError(StackError):
    """A required tool or package is missing and could not be installed."""


class ServiceUnreachable(LiftLedgerError):  # noqa: N818 - reads as a state
    """A database, broker or chain endpoint does not answer."""


class DatabaseAuthError(LiftLedgerError):
    """The database refused the credentials given in the URL."""


class RegistryError(LiftLedgerError):
    """An elevator registry file, row or id is invalid."""
