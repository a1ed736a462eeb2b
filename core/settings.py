"""The one settings object every process builds at start.

Values come, highest priority first, from `LIFTLEDGER_*` environment variables, from a
settings file (`LIFTLEDGER_SETTINGS_FILE`, default `./liftledger.env` when present; dotenv
syntax), and from the defaults below. A URL left unset means "use the service the local
stack runs"; a URL that is set means "an external service is there, do not start one".

Secrets (database password, JWT key, anchorer key, MQTT device secret) come from the
environment, from a file named by `LIFTLEDGER_<NAME>_FILE`, or, outside production, from
development secrets generated into `<data_dir>/secrets/` with mode 0600 at first start.
With `LIFTLEDGER_ENV=production` nothing is generated, and development secrets, the
well-known Anvil/Hardhat keys and low-entropy secrets (`weak_secret_problem`) are refused.
"""

from __future__ import annotations

import math
import os
import secrets
from collections import Counter
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.errors import ConfigError

DEV_SECRET_PREFIX = "dev-"  # noqa: S105 - a marker, not a secret
SECRET_NAMES = ("db_password", "jwt_secret", "anchorer_key", "mqtt_secret")

# Private keys that ship with Anvil and Hardhat (accounts 0-9 derived from the public
# "test test … junk" mnemonic, m/44'/60'/0'/0/i); anyone can sign with them, so production
# must never use them.
WELL_KNOWN_DEV_KEYS = frozenset(
    {
        "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
        "59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
        "5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
        "7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
        "47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
        "8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba",
        "92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e",
        "4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdbf7cbf4356",
        "dbda1821b80551c9d65939329250298aa3472ba22feea921c0cf5d620ea67b97",
        "2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6",
    }
)

# What a production secret must at least have (`weak_secret_problem`): length, distinct
# characters, and bits estimated from its own character frequencies (a random hex or
# base64 string of the minimum length passes; "x" * 48 or a repeated word does not).
MIN_SECRET_LENGTH = {"jwt_secret": 32, "mqtt_secret": 32, "db_password": 16}
MIN_SECRET_BITS = {"jwt_secret": 96.0, "mqtt_secret": 96.0, "db_password": 48.0}
MIN_SECRET_DISTINCT = 10

LOCAL_HOST = "127.0.0.1"


def checkout_root() -> Path | None:
    """The source checkout this code runs from, if it runs from one (editable install)."""
    root = Path(__file__).resolve().parent.parent
    return root if (root / "pyproject.toml").is_file() else None


def default_data_dir() -> Path:
    """`var/` in the checkout, else a per-user folder."""
    root = checkout_root()
    if root is not None:
        return root / "var"
    return Path.home() / ".local" / "share" / "liftledger"


class Settings(BaseSettings):
    """Validated configuration of every LiftLedger process."""

    model_config = SettingsConfigDict(
        env_prefix="LIFTLEDGER_", extra="ignore", frozen=True, env_file_encoding="utf-8"
    )

    env: Literal["development", "test", "production"] = "development"
    data_dir: Path = Field(default_factory=default_data_dir)
    # Folder with package.json / package-lock.json whose `npm ci` provides Anvil and solc.
    tools_dir: Path | None = Field(default_factory=checkout_root)
    install_missing: bool = True

    database_url: str | None = None
    # Each service's own database role (core/db_roles.py); unset on the local stack, where
    # it is derived from `database_url`. Production needs all four (docs/database.md).
    collector_database_url: str | None = None
    notifier_database_url: str | None = None
    anchorer_database_url: str | None = None
    api_database_url: str | None = None
    mqtt_url: str | None = None
    chain_url: str | None = None
    api_url: str | None = None

    pg_port: int = Field(default=55432, ge=1, le=65535)
    mqtt_port: int = Field(default=51883, ge=1, le=65535)
    chain_port: int = Field(default=58545, ge=1, le=65535)
    api_port: int = Field(default=58000, ge=1, le=65535)
    pg_database: str = "liftledger"
    chain_id: int = Field(default=31337, ge=1)
    # Blocks on top of an anchor's block before the anchorer calls it confirmed (docs/ledger.md);
    # 0 suits chains whose blocks are final when mined (Anvil, QBFT).
    chain_finality_depth: int = Field(default=0, ge=0, le=10_000)

    db_password: SecretStr | None = None
    jwt_secret: SecretStr | None = None
    anchorer_key: SecretStr | None = None
    mqtt_secret: SecretStr | None = None

    telemetry_chunk_hours: int = Field(default=24, ge=1, le=24 * 28)

    # The anchor contract the audit trusts on the chain of `chain_id` (docs/ledger.md); never
    # taken from the database being audited. Unset in development: `contracts deploy` pins it.
    contract_address: str | None = Field(default=None, pattern=r"^0x[0-9a-fA-F]{40}$")
    # An entry whose record time is this much older than the ledger's time is back-dated.
    audit_backdate_s: float = Field(default=86_400.0, ge=60.0, le=400 * 86_400.0)

    # The API's own defences (docs/api.md, docs/security.md).
    api_max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    api_request_read_timeout_s: float = Field(default=20.0, gt=0, le=300)
    api_keep_alive_s: int = Field(default=5, ge=1, le=300)
    api_sign_in_user_failures: int = Field(default=5, ge=1, le=1000)
    api_sign_in_address_failures: int = Field(default=20, ge=1, le=100_000)
    api_sign_in_user_total_failures: int = Field(default=50, ge=1, le=100_000)
    api_sign_in_backoff_s: float = Field(default=30.0, gt=0, le=86_400)
    api_sign_in_backoff_max_s: float = Field(default=900.0, gt=0, le=86_400)
    # Device times older than this are dead-lettered as `stale_timestamp` (docs/ingest.md).
    stale_timestamp_s: float = Field(default=7 * 86_400.0, ge=3_600.0, le=400 * 86_400.0)
    # Dead letters older than this are deleted by the collectors (docs/ingest.md).
    dead_letter_retention_days: int = Field(default=30, ge=1, le=3_650)
    # The local broker logs ACL denials (its debug level, filtered); off saves it formatting
    # a few log lines per message at fleet rates (docs/security.md).
    mqtt_log_denials: bool = True

    @field_validator(
        "database_url",
        "collector_database_url",
        "notifier_database_url",
        "anchorer_database_url",
        "api_database_url",
    )
    @classmethod
    def _database_url_is_postgres(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in {
            "postgresql",
            "postgres",
            "postgresql+psycopg",
        }:
            raise ValueError("must be a postgresql:// URL")
        return value

    @field_validator("mqtt_url")
    @classmethod
    def _mqtt_url_has_host_and_port(cls, value: str | None) -> str | None:
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme != "mqtt" or not parts.hostname or parts.port is None:
                raise ValueError("must look like mqtt://host:port")
        return value

    @field_validator("chain_url", "api_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in {"http", "https"}:
            raise ValueError("must be an http:// or https:// URL")
        return value

    # -- where things are -------------------------------------------------------------------

    @property
    def secrets_dir(self) -> Path:
        """Folder of the generated development secrets."""
        return self.data_dir / "secrets"

    # A URL that points at the local stack's own port (as `stack env` prints it) still means
    # the local service, so exporting those lines never makes `stack down` skip a service.

    @property
    def local_database(self) -> bool:
        """True when the local stack provides the database."""
        return self.database_url is None or _is_local_url(self.database_url, self.pg_port)

    @property
    def local_mqtt(self) -> bool:
        """True when the local stack provides the MQTT broker."""
        return self.mqtt_url is None or _is_local_url(self.mqtt_url, self.mqtt_port)

    @property
    def local_chain(self) -> bool:
        """True when the local stack provides the chain."""
        return self.chain_url is None or _is_local_url(self.chain_url, self.chain_port)

    def resolved_database_url(self) -> str:
        """`postgresql://` URL of the database, local or external."""
        if self.database_url is not None:
            return self.database_url
        password = quote(self.secret("db_password"), safe="")
        return f"postgresql://liftledger:{password}@{LOCAL_HOST}:{self.pg_port}/{self.pg_database}"

    def resolved_mqtt_url(self) -> str:
        """`mqtt://host:port` of the broker, local or external."""
        return self.mqtt_url or f"mqtt://{LOCAL_HOST}:{self.mqtt_port}"

    def resolved_chain_url(self) -> str:
        """JSON-RPC URL of the chain, local or external."""
        return self.chain_url or f"http://{LOCAL_HOST}:{self.chain_port}"

    def resolved_api_url(self) -> str:
        """Base URL of the API."""
        return self.api_url or f"http://{LOCAL_HOST}:{self.api_port}"

    def secret(self, name: str) -> str:
        """The value of one secret; raises `ConfigError` when it is not configured."""
        value: SecretStr | None = getattr(self, name)
        if value is None:
            raise ConfigError(
                f"secret {name} is not set: export LIFTLEDGER_{name.upper()} "
                f"or LIFTLEDGER_{name.upper()}_FILE"
            )
        return value.get_secret_value()


def _is_local_url(url: str, port: int) -> bool:
    parts = urlsplit(url)
    return parts.hostname in {LOCAL_HOST, "localhost"} and parts.port == port


def _generate_secret(name: str) -> str:
    if name.endswith("_key"):
        # secp256k1 keys must be below the group order; 32 random bytes are, with
        # overwhelming probability, and eth_account rejects the rare exception loudly.
        return secrets.token_hex(32)
    return DEV_SECRET_PREFIX + secrets.token_urlsafe(32)


def _read_secret_file(path: Path, name: str) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(
            f"cannot read LIFTLEDGER_{name.upper()}_FILE={path}: {exc.strerror}"
        ) from exc


def _dev_secret(secrets_dir: Path, name: str) -> str:
    """Read one generated development secret, generating it (0600) at first use."""
    path = secrets_dir / name
    if path.is_file():
        return path.read_text(encoding="utf-8").strip()
    secrets_dir.mkdir(parents=True, exist_ok=True)
    secrets_dir.chmod(0o700)
    value = _generate_secret(name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(value + "\n")
    return value


def development_key(settings: Settings, name: str) -> str:
    """A key generated for the local stack (`<data_dir>/secrets/<name>`, 0600), such as the
    anchor contract's development admin; refused in production, which names its own."""
    if settings.env == "production":
        raise ConfigError(f"{name}: production generates no keys; configure it explicitly")
    return _dev_secret(settings.secrets_dir, name)


def weak_secret_problem(name: str, value: str) -> str | None:
    """Why `value` is too guessable for secret `name` in production; None when it is not."""
    if name not in MIN_SECRET_LENGTH:
        return None
    if len(value) < MIN_SECRET_LENGTH[name]:
        return f"must be at least {MIN_SECRET_LENGTH[name]} characters"
    if len(set(value)) < MIN_SECRET_DISTINCT:
        return f"must use at least {MIN_SECRET_DISTINCT} different characters"
    if value in (value + value)[1:-1]:  # "abcabcabc": a short pattern repeated
        return "repeats a shorter pattern"
    counts = Counter(value)
    bits = -sum(n * math.log2(n / len(value)) for n in counts.values())
    if bits < MIN_SECRET_BITS[name]:
        return f"is too predictable (about {bits:.0f} bits; at least {MIN_SECRET_BITS[name]:.0f})"
    return None


def _refuse_dev_secrets(settings: Settings) -> None:
    for name in SECRET_NAMES:
        value: SecretStr | None = getattr(settings, name)
        if value is None:
            continue
        raw = value.get_secret_value()
        if raw.startswith(DEV_SECRET_PREFIX) or raw.lower().removeprefix("0x") in (
            WELL_KNOWN_DEV_KEYS
        ):
            raise ConfigError(
                f"LIFTLEDGER_{name.upper()} is a development secret and "
                "LIFTLEDGER_ENV=production refuses it: provide a real secret"
            )
        problem = weak_secret_problem(name, raw)
        if problem is not None:
            raise ConfigError(
                f"LIFTLEDGER_{name.upper()} {problem}; LIFTLEDGER_ENV=production refuses it: "
                "generate one with `openssl rand -base64 48`"
            )


def load_settings(**overrides: Any) -> Settings:
    """Build and validate the settings; fill secrets from files or development defaults.

    Raises `ConfigError` with a one-line message when a value is invalid.
    """
    env_file = os.environ.get("LIFTLEDGER_SETTINGS_FILE", "liftledger.env")
    if "LIFTLEDGER_SETTINGS_FILE" in os.environ and not Path(env_file).is_file():
        raise ConfigError(f"LIFTLEDGER_SETTINGS_FILE={env_file} does not exist")
    try:
        settings = Settings(_env_file=env_file, **overrides)  # type: ignore[call-arg]
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        raise ConfigError(f"invalid setting LIFTLEDGER_{field.upper()}: {first['msg']}") from exc

    filled: dict[str, object] = {}
    for name in SECRET_NAMES:
        if getattr(settings, name) is not None:
            continue
        file_var = f"LIFTLEDGER_{name.upper()}_FILE"
        if file_var in os.environ:
            filled[name] = SecretStr(_read_secret_file(Path(os.environ[file_var]), name))
        elif settings.env != "production":
            filled[name] = SecretStr(_dev_secret(settings.secrets_dir, name))
    if filled:
        settings = settings.model_copy(update=filled)
    if settings.env == "production":
        _refuse_dev_secrets(settings)
    return settings
