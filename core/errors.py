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
    ├── Refused               a request a domain function refuses; `code` says why, `field`
    │   │                     names the input at fault (the API answers it by `code`,
    │   │                     `api.errors.REFUSALS`)
    │   ├── accounts.users.AccountError
    │   ├── alerts.store.WorkflowError
    │   ├── maintenance.signing.MaintenanceRecordError
    │   └── core.fleet.FleetError   (also a RegistryError)
    └── simulators.mqtt_device.PublisherError
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


class Refused(LiftLedgerError):  # noqa: N818 - reads as what happened to the request
    """A request a domain function refuses: `code` is stable and says why (clients branch on
    it), `field` names the input at fault when one is."""

    def __init__(self, message: str, *, code: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.field = field
