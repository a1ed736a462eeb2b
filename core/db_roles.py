"""Database roles: one owner for the schema, one login role per service, and what each may do.

The owner (`liftledger_owner`) owns the database and every object in it; migrations run as it
(`liftledger db upgrade` switches to it with `SET ROLE` when it connects as an administrator).
Each service — collector, notifier, anchorer, API — logs in as its own role, which is neither
a superuser nor a member of the owner, and holds only the privileges in `GRANTS`. So no
service can switch the ledger's triggers off, replace their functions, truncate or rewrite
`ledger_entries`, or run operating-system commands (docs/database.md).

`GRANTS` is the one place privileges are written down. `apply_grants` makes a database match
it (revoke all, then grant), so applying it again changes nothing; `liftledger db upgrade`
applies it after the migrations. The roles themselves are cluster-wide: the local stack
creates them (`ensure_roles`) with passwords derived from its database secret, the way MQTT
service passwords are derived from the MQTT secret (core/credentials.py).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal, get_args
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
from psycopg import sql

from core.errors import ConfigError, ServiceUnreachable
from core.settings import Settings

log = logging.getLogger(__name__)

Service = Literal["collector", "notifier", "anchorer", "api"]
SERVICES: Final[tuple[Service, ...]] = get_args(Service)

OWNER_ROLE: Final = "liftledger_owner"
SERVICE_ROLES: Final[Mapping[Service, str]] = {
    "collector": "liftledger_collector",
    "notifier": "liftledger_notifier",
    "anchorer": "liftledger_anchorer",
    "api": "liftledger_api",
}

_R: Final = frozenset({"SELECT"})
_RA: Final = frozenset({"SELECT", "INSERT"})
_RAW: Final = frozenset({"SELECT", "INSERT", "UPDATE"})

# Role -> table -> privileges, worked out from the SQL each service runs. SELECT goes with
# every write: UPDATE/DELETE … WHERE and ON CONFLICT read the rows they touch. `ledger_entries`
# is never more than SELECT, INSERT. No role gets TRUNCATE, REFERENCES or TRIGGER.
GRANTS: Final[Mapping[Service, Mapping[str, frozenset[str]]]] = {
    # ingest/, alerts/engine.py and alerts/store.py (detection), ledger/entries.py
    "collector": {
        "sites": _R,
        "elevators": _R,
        "elevator_status": _RAW,
        "telemetry": _RA,
        "device_events": _RA,
        "dead_letters": _RA | {"DELETE"},  # retention (docs/ingest.md)
        "alerts": _RAW,
        "alert_events": _RA,
        "maintenance_records": _R,
        "ledger_entries": _RA,
    },
    # alerts/notifier.py, webhooks.py, feed.py, store.py (escalation), maintenance.py (sweep)
    "notifier": {
        "sites": _R,
        "elevators": _R,
        "alerts": _RAW,
        "alert_events": _RA,
        "maintenance_records": _R,
        "ledger_entries": _RA,
        "notification_cursors": _RAW,
        "webhook_subscriptions": _R,
        "webhook_deliveries": _RAW,
    },
    # ledger/anchorer.py, ledger/deploy.py (the recorded deployment)
    "anchorer": {
        "ledger_entries": _R,
        "anchors": _RAW,
        "contract_deployments": _R,
    },
    # api/, accounts/, maintenance/, reports/, core/fleet.py, ledger/view.py and verify.py
    "api": {
        "sites": _R,
        "elevators": _RAW,
        "elevator_status": _R,
        "users": _RAW,
        "user_sites": _RA | {"DELETE"},
        "telemetry": _R,
        "device_events": _R,
        "dead_letters": _R,
        "alerts": _RAW,
        "alert_events": _RA,
        "maintenance_records": _RA,
        "ledger_entries": _RA,
        "anchors": _R,
        "contract_deployments": _R,
    },
}

# Database-level privileges; PUBLIC keeps none. The collector's batch writer stages
# duplicates in a temporary table (docs/database.md).
DATABASE_GRANTS: Final[Mapping[Service, frozenset[str]]] = {
    "collector": frozenset({"CONNECT", "TEMPORARY"}),
    "notifier": frozenset({"CONNECT"}),
    "anchorer": frozenset({"CONNECT"}),
    "api": frozenset({"CONNECT"}),
}

_ENV_NAMES: Final[Mapping[Service, str]] = {
    service: f"LIFTLEDGER_{service.upper()}_DATABASE_URL" for service in SERVICES
}


def url_setting(service: Service) -> str:
    """The environment variable that names `service`'s database URL."""
    return _ENV_NAMES[service]


def role_password(db_secret: str, role: str) -> str:
    """The local stack's password for `role`, derived from its database secret."""
    digest = hmac.new(db_secret.encode(), f"postgres-role:{role}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(digest.digest()[:24]).decode()


def _with_login(url: str, user: str, password: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port is not None else ""
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}{port}"
    return urlunsplit(parts._replace(netloc=netloc))


def service_database_url(settings: Settings, service: Service) -> str:
    """The URL `service` connects with: `LIFTLEDGER_<SERVICE>_DATABASE_URL` when set; on the
    local stack outside production, its role with the derived password; outside production
    on another database, `LIFTLEDGER_DATABASE_URL` (the start check then warns). Production
    needs the setting."""
    configured: str | None = getattr(settings, f"{service}_database_url")
    if configured is not None:
        return configured
    if settings.env == "production":
        raise ConfigError(
            f"{url_setting(service)} is not set: in production every service connects as its "
            f"own database role ({SERVICE_ROLES[service]}), never as the owner or a superuser "
            "(docs/database.md)"
        )
    admin_url = settings.resolved_database_url()
    if not settings.local_database:
        return admin_url
    role = SERVICE_ROLES[service]
    return _with_login(admin_url, role, role_password(settings.secret("db_password"), role))


def service_settings(settings: Settings, service: Service) -> Settings:
    """`settings` as `service` sees them: the database URL is the service's own, so nothing
    the process runs connects as anyone else."""
    return settings.model_copy(update={"database_url": service_database_url(settings, service)})


# -- the cluster: roles ------------------------------------------------------------------------

_NO_POWERS: Final = "NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"


def _role_exists(conn: psycopg.Connection[Any], role: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is not None


def ensure_roles(conn: psycopg.Connection[Any], db_secret: str) -> None:
    """Create the owner (no login) and the service roles, or bring them back to what they
    should be, with passwords derived from `db_secret`. Needs a superuser connection."""
    if not _role_exists(conn, OWNER_ROLE):
        conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(OWNER_ROLE)))
    conn.execute(sql.SQL("ALTER ROLE {} " + _NO_POWERS).format(sql.Identifier(OWNER_ROLE)))
    for role in SERVICE_ROLES.values():
        # A SCRAM verifier computed here: the password itself never reaches the server.
        verifier = conn.pgconn.encrypt_password(
            role_password(db_secret, role).encode(), role.encode(), b"scram-sha-256"
        ).decode()
        verb = "ALTER" if _role_exists(conn, role) else "CREATE"
        conn.execute(
            sql.SQL(verb + " ROLE {} LOGIN " + _NO_POWERS + " PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(verifier)
            )
        )
        # A service role is nobody else: drop any membership that would lend it rights.
        for (granted,) in conn.execute(
            "SELECT r.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid "
            "JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = %s",
            (role,),
        ).fetchall():
            conn.execute(
                sql.SQL("REVOKE {} FROM {}").format(sql.Identifier(granted), sql.Identifier(role))
            )


# -- one database: owner and grants -------------------------------------------------------------


def take_ownership(conn: psycopg.Connection[Any]) -> bool:
    """As an administrator: make the owner role own the database and every object in its
    public schema, then switch to it for the rest of the transaction. False (and nothing
    done) when the owner role does not exist or the connection cannot do it."""
    row = conn.execute(
        "SELECT current_user = %s, r.rolsuper FROM pg_roles r WHERE r.rolname = current_user",
        (OWNER_ROLE,),
    ).fetchone()
    if row is None or row[0] or not row[1] or not _role_exists(conn, OWNER_ROLE):
        return False
    owner = sql.Identifier(OWNER_ROLE)
    # Extensions need a superuser; the migrations' CREATE EXTENSION IF NOT EXISTS then skips.
    conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    conn.execute(
        sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
            sql.Identifier(_current_database(conn)), owner
        )
    )
    conn.execute(sql.SQL("GRANT USAGE, CREATE ON SCHEMA public TO {}").format(owner))
    # Objects made before the owner role existed (tables carry their indexes, identity
    # sequences and, for a hypertable, its chunks along).
    for kind, name in conn.execute(
        """
        SELECT CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                              WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END, c.oid::regclass::text
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
          AND c.relowner <> (SELECT oid FROM pg_roles WHERE rolname = %s)
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                          AND d.objid = c.oid AND d.deptype IN ('e', 'i', 'a'))
        ORDER BY c.relkind <> 'S'
        """,
        (OWNER_ROLE,),
    ).fetchall():
        conn.execute(sql.SQL(f"ALTER {kind} {{}} OWNER TO {{}}").format(sql.SQL(name), owner))
    for (signature,) in conn.execute(
        """
        SELECT p.oid::regprocedure::text FROM pg_proc p
        JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = 'public' AND p.proowner <> (SELECT oid FROM pg_roles WHERE rolname = %s)
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                          AND d.objid = p.oid AND d.deptype = 'e')
        """,
        (OWNER_ROLE,),
    ).fetchall():
        conn.execute(sql.SQL("ALTER ROUTINE {} OWNER TO {}").format(sql.SQL(signature), owner))
    conn.execute(sql.SQL("SET LOCAL ROLE {}").format(owner))
    return True


def _current_database(conn: psycopg.Connection[Any]) -> str:
    row = conn.execute("SELECT current_database()").fetchone()
    return str(row[0]) if row else ""


def apply_grants(conn: psycopg.Connection[Any]) -> list[str]:
    """Make the database's privileges for the service roles exactly `GRANTS` (as the owner or
    a superuser, in the caller's transaction); returns the roles it granted to. Roles that do
    not exist in the cluster are skipped with a warning."""
    database = sql.Identifier(_current_database(conn))
    tables = [
        name
        for (name,) in conn.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'f')"
        ).fetchall()
    ]
    conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(database))
    done: list[str] = []
    for service, role_name in SERVICE_ROLES.items():
        if not _role_exists(conn, role_name):
            log.warning("database role %s does not exist: %s gets no grants", role_name, service)
            continue
        role = sql.Identifier(role_name)
        conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM {}").format(database, role))
        conn.execute(
            sql.SQL("GRANT {} ON DATABASE {} TO {}").format(
                sql.SQL(", ").join(sql.SQL(p) for p in sorted(DATABASE_GRANTS[service])),
                database,
                role,
            )
        )
        # One statement per table: TimescaleDB passes a hypertable's grants on to its chunks.
        for table in tables:
            conn.execute(sql.SQL("REVOKE ALL ON {} FROM {}").format(sql.Identifier(table), role))
        for table, privileges in GRANTS[service].items():
            if table not in tables:
                continue  # an older revision (upgrade to a given revision)
            conn.execute(
                sql.SQL("GRANT {} ON {} TO {}").format(
                    sql.SQL(", ").join(sql.SQL(p) for p in sorted(privileges)),
                    sql.Identifier(table),
                    role,
                )
            )
        done.append(role_name)
    return done


# -- the start check -----------------------------------------------------------------------------

# Predefined roles that lend a member the database server's own powers.
SERVER_ROLES: Final[Mapping[str, str]] = {
    "pg_execute_server_program": "run operating-system commands as the database server",
    "pg_write_server_files": "write the database server's files",
    "pg_read_server_files": "read the database server's files",
}
# Role attributes a service never needs (pg_roles column -> keyword, what it allows), in the
# order `_ROLES_HELD` reads them.
_ATTRIBUTES: Final[Mapping[str, tuple[str, str]]] = {
    "rolcreaterole": ("CREATEROLE", "grant itself other roles, the owner's among them"),
    "rolbypassrls": ("BYPASSRLS", "read and write past row-level security"),
    "rolreplication": ("REPLICATION", "copy the whole cluster as a replica"),
}
_OWNED_SHOWN: Final = 3
_TRIGGERS_OFF: Final = "switch the ledger's triggers off"
_OWNS: Final = "alter, replace or drop what it owns, the ledger's trigger functions among them"

# Every role the connected one is or may SET ROLE to, with its attributes.
_ROLES_HELD: Final = (
    "SELECT r.rolname, r.rolname = current_user, r.rolsuper, r.rolcreaterole, r.rolbypassrls, "
    "r.rolreplication FROM pg_roles r WHERE pg_has_role(current_user, r.oid, 'MEMBER') "
    "ORDER BY r.rolname <> current_user, r.rolname"
)
# What of the schema the connected role owns (or may act as the owner of); the ledger first.
_OWNED: Final = """
SELECT what, owner FROM (
    SELECT 0 AS ord, c.relname::text AS what, pg_get_userbyid(c.relowner) AS owner
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
      AND pg_has_role(current_user, c.relowner, 'MEMBER')
    UNION ALL
    SELECT 1, p.oid::regprocedure::text, pg_get_userbyid(p.proowner)
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname = 'public' AND pg_has_role(current_user, p.proowner, 'MEMBER')
    UNION ALL
    SELECT 2, 'the schema public', pg_get_userbyid(nspowner) FROM pg_namespace
    WHERE nspname = 'public' AND pg_has_role(current_user, nspowner, 'MEMBER')
    UNION ALL
    SELECT 3, 'the database ' || datname, pg_get_userbyid(datdba) FROM pg_database
    WHERE datname = current_database() AND pg_has_role(current_user, datdba, 'MEMBER')
) owned
ORDER BY what <> 'ledger_entries', ord, what
"""

Finding = tuple[str, str]  # (what the role is, holds or owns; what that would let it do)


def role_findings(conn: psycopg.Connection[Any]) -> tuple[str, list[Finding]]:
    """(the connected role, what it is, holds or owns that no service role may): a superuser;
    a member of a server role (`SERVER_ROLES`); CREATEROLE, BYPASSRLS or REPLICATION, its
    own or a role's it may switch to; an owner of a table, function, the schema or the
    database. Empty for a role made as docs/database.md says."""
    roles = conn.execute(_ROLES_HELD).fetchall()
    user = next((str(row[0]) for row in roles if row[1]), "?")
    if any(row[2] for row in roles if row[1]):
        return user, [("a superuser", _TRIGGERS_OFF)]
    findings: list[Finding] = []
    for name, itself, superuser, *attributes in roles:
        role = "a role" if itself else f"a member of {name}, a role"
        if superuser:  # not itself: a role it may SET ROLE to
            findings.append((f"a member of {name}, a superuser", _TRIGGERS_OFF))
        if name in SERVER_ROLES:
            findings.append((f"a member of {name}", SERVER_ROLES[name]))
        for (keyword, could), held in zip(_ATTRIBUTES.values(), attributes, strict=True):
            if held:
                findings.append((f"{role} with {keyword}", could))
    owned = [(str(what), str(owner)) for what, owner in conn.execute(_OWNED).fetchall()]
    if owned and owned[0][0] == "ledger_entries":
        more = f" and {len(owned) - 1} more of the schema" if len(owned) > 1 else ""
        found = f"which owns ledger_entries (owner {owned[0][1]}){more}"
        findings.insert(0, (found, _TRIGGERS_OFF))
    elif owned:
        names = [what for what, _ in owned]
        shown = ", ".join(names[:_OWNED_SHOWN])
        if len(names) > _OWNED_SHOWN:
            shown += f" and {len(names) - _OWNED_SHOWN} more"
        findings.append((f"which owns {shown}", _OWNS))
    return user, findings


def refusal(service: Service, user: str, findings: Sequence[Finding]) -> str:
    """The start check's message for `service` connecting as `user` with `findings`."""
    what = "; ".join(found for found, _ in findings)
    could = ", ".join(dict.fromkeys(consequence for _, consequence in findings))
    return (
        f"the {service} connects as {user}, {what}: it could {could}; set "
        f"{url_setting(service)} to the {SERVICE_ROLES[service]} role (docs/database.md)"
    )


def check_service_connection(
    url: str,
    service: Service,
    *,
    production: bool,
    stop: threading.Event | None = None,
    retry_s: float = 2.0,
) -> None:
    """Connect once as `service` does and judge its role (`role_findings`): a superuser, the
    owner of `ledger_entries` or of anything else in the schema, a member of a server role,
    or a role with CREATEROLE, BYPASSRLS or REPLICATION could get around the ledger's
    triggers or the grants. Refused with `ConfigError` in production, a warning otherwise.
    A role that lacks one of its grants is refused everywhere, with the fix. While the
    database cannot be reached, waits for it until `stop` is set; without `stop`, logs that
    the check was not made and returns."""
    from core.db import libpq_url, translate_connect_errors  # noqa: PLC0415 - no cycle at import

    while True:
        try:
            with (
                translate_connect_errors(url),
                psycopg.connect(libpq_url(url), connect_timeout=5, autocommit=True) as conn,
            ):
                user, findings = role_findings(conn)
                missing = _missing_grants(conn, service)
            break
        except ServiceUnreachable as exc:
            if stop is None:
                log.warning("the %s's database role was not checked: %s", service, exc)
                return
            log.warning("waiting for the database to check the %s's role: %s", service, exc)
            if stop.wait(retry_s):
                return
    if findings:
        message = refusal(service, user, findings)
        if production:
            raise ConfigError(message + "; LIFTLEDGER_ENV=production refuses it")
        log.warning("%s", message)
    if missing:
        raise ConfigError(
            f"the {service}'s database role {user} lacks {', '.join(missing)}: run "
            "`liftledger db upgrade`, which applies the grants (docs/database.md)"
        )


def _missing_grants(conn: psycopg.Connection[Any], service: Service) -> list[str]:
    missing = []
    for table, privileges in GRANTS[service].items():
        for privilege in sorted(privileges):
            row = conn.execute(
                "SELECT to_regclass(%s) IS NULL OR has_table_privilege(%s, %s)",
                (f"public.{table}", f"public.{table}", privilege),
            ).fetchone()
            if row is None or not row[0]:
                missing.append(f"{privilege} on {table}")
    return missing
