"""Install what the local stack needs and is missing: Debian packages, TimescaleDB, npm tools.

Every step checks first and does nothing when its result is already there. Debian packages
are installed only as root and only when `LIFTLEDGER_INSTALL_MISSING` is true; otherwise
the error says which command to run.

TimescaleDB (SPEC §2): Debian 12 ships no binary package, so when
`postgresql-NN-timescaledb` has no candidate the Debian 13 source package is fetched through
a private apt source list (the system's sources stay untouched) and built against the
installed PostgreSQL, Apache-2 edition.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from core.errors import InstallError
from core.settings import Settings
from liftledger.stack.process import run

TIMESCALEDB_SOURCE_SUITE = "trixie"
_apt_updated = False


def _is_root() -> bool:
    return os.geteuid() == 0


def _apt_get(settings: Settings, packages: list[str], *, why: str) -> None:
    """Install Debian packages, or explain how to when this process may not."""
    command = "apt-get install -y " + " ".join(packages)
    if not settings.install_missing:
        raise InstallError(f"{why}: install it with `{command}` (as root)")
    if not _is_root() or shutil.which("apt-get") is None:
        raise InstallError(f"{why} and this user cannot install packages: run `{command}` as root")
    global _apt_updated  # noqa: PLW0603 - one `apt-get update` per process is enough
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if not _apt_updated:
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=False, capture_output=True)
        _apt_updated = True
    proc = subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"]
        raise InstallError(f"`{command}` failed ({lines[-1]}): {why}")


def require_command(settings: Settings, name: str, package: str, *, why: str) -> str:
    """Path of the command `name`, installing Debian `package` when it is missing."""
    found = shutil.which(name) or _sbin(name)
    if found is None:
        _apt_get(settings, [package], why=f"{name} not found ({why})")
        found = shutil.which(name) or _sbin(name)
    if found is None:
        raise InstallError(f"{name} not found after installing {package}: check PATH")
    return found


def _sbin(name: str) -> str | None:
    for folder in ("/usr/sbin", "/sbin", "/usr/local/sbin"):
        candidate = Path(folder) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


# -- PostgreSQL and TimescaleDB ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PostgresInstall:
    """Where one installed PostgreSQL major version keeps its programs and extensions."""

    major: int
    bindir: Path

    @property
    def pg_config(self) -> Path:
        """The pg_config of this version."""
        return self.bindir / "pg_config"

    def sharedir(self) -> Path:
        """Folder that holds `extension/*.control`."""
        return Path(run([str(self.pg_config), "--sharedir"], what="pg_config").strip())

    def has_timescaledb(self) -> bool:
        """True when the TimescaleDB extension is installed for this version."""
        return (self.sharedir() / "extension" / "timescaledb.control").is_file()


def find_postgres() -> PostgresInstall | None:
    """The newest PostgreSQL server installed under /usr/lib/postgresql."""
    root = Path("/usr/lib/postgresql")
    versions = (
        sorted(
            (
                int(p.name)
                for p in root.glob("*")
                if p.name.isdigit() and (p / "bin/postgres").is_file()
            ),
            reverse=True,
        )
        if root.is_dir()
        else []
    )
    if not versions:
        return None
    return PostgresInstall(major=versions[0], bindir=root / str(versions[0]) / "bin")


def ensure_postgres(settings: Settings) -> PostgresInstall:
    """An installed PostgreSQL server with TimescaleDB, installing both when missing."""
    install = find_postgres()
    if install is None:
        _apt_get(settings, ["postgresql"], why="PostgreSQL server not found")
        install = find_postgres()
        if install is None:
            raise InstallError("PostgreSQL server still missing after `apt-get install postgresql`")
    if not install.pg_config.is_file():
        _apt_get(
            settings,
            [f"postgresql-server-dev-{install.major}"],
            why="pg_config not found (needed to locate extensions)",
        )
    if not install.has_timescaledb():
        _install_timescaledb(settings, install)
    return install


def _apt_candidate(package: str) -> bool:
    if shutil.which("apt-cache") is None:
        return False
    proc = subprocess.run(
        ["apt-cache", "policy", package], capture_output=True, text=True, check=False
    )
    return "Candidate:" in proc.stdout and "Candidate: (none)" not in proc.stdout


def _install_timescaledb(settings: Settings, install: PostgresInstall) -> None:
    binary = f"postgresql-{install.major}-timescaledb"
    if _apt_candidate(binary):
        _apt_get(settings, [binary], why="TimescaleDB extension not installed")
        if install.has_timescaledb():
            return
    build_dir = settings.data_dir / "build" / "timescaledb"
    if _missing_build_tools(install):
        _apt_get(
            settings,
            [
                f"postgresql-server-dev-{install.major}",
                "cmake",
                "gcc",
                "make",
                "dpkg-dev",
                "libssl-dev",
                "xz-utils",
            ],
            why="TimescaleDB must be built from source for this PostgreSQL",
        )
    source = _fetch_timescaledb_source(build_dir)
    run(
        [
            "./bootstrap",
            "-DAPACHE_ONLY=1",
            "-DREGRESS_CHECKS=OFF",
            "-DTAP_CHECKS=OFF",
            "-DWARNINGS_AS_ERRORS=OFF",
            f"-DPG_CONFIG={install.pg_config}",
        ],
        cwd=source,
        what="configuring the TimescaleDB build",
    )
    run(
        ["make", "-C", "build", f"-j{os.cpu_count() or 2}"], cwd=source, what="building TimescaleDB"
    )
    if not _is_root():
        raise InstallError(
            f"TimescaleDB is built in {source} but installing it needs root: "
            f"run `make -C {source}/build install` as root"
        )
    run(["make", "-C", "build", "install"], cwd=source, what="installing TimescaleDB")
    if not install.has_timescaledb():
        raise InstallError("TimescaleDB build finished but timescaledb.control is missing")


def _missing_build_tools(install: PostgresInstall) -> bool:
    headers = Path(f"/usr/include/postgresql/{install.major}/server/postgres.h")
    tools = ("cmake", "gcc", "make", "dpkg-source", "xz")
    openssl = Path("/usr/include/openssl/ssl.h")
    return (
        not headers.is_file()
        or not openssl.is_file()
        or any(shutil.which(tool) is None for tool in tools)
    )


def _fetch_timescaledb_source(build_dir: Path) -> Path:
    """Download and unpack Debian's timescaledb source package into `build_dir`."""
    existing = sorted(p for p in build_dir.glob("timescaledb-*") if p.is_dir())
    if existing and (existing[-1] / "bootstrap").is_file():
        return existing[-1]
    lists = build_dir / "apt-lists"
    (lists / "partial").mkdir(parents=True, exist_ok=True)
    sources = build_dir / "sources.list"
    sources.write_text(
        f"deb-src http://deb.debian.org/debian {TIMESCALEDB_SOURCE_SUITE} main\n", encoding="utf-8"
    )
    apt_options = [
        "-o",
        f"Dir::Etc::SourceList={sources}",
        "-o",
        "Dir::Etc::SourceParts=/dev/null",
        "-o",
        f"Dir::State::Lists={lists}",
        "-o",
        "APT::Sandbox::User=root",
    ]
    run(["apt-get", *apt_options, "update"], what="fetching the TimescaleDB source index")
    run(
        ["apt-get", *apt_options, "source", "timescaledb"],
        cwd=build_dir,
        what="downloading the TimescaleDB source package",
    )
    unpacked = sorted(p for p in build_dir.glob("timescaledb-*") if p.is_dir())
    if not unpacked:
        raise InstallError(f"TimescaleDB source package did not unpack in {build_dir}")
    return unpacked[-1]


# -- npm tools (Anvil, solc, OpenZeppelin) ----------------------------------------------------


def _anvil_platform() -> str:
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine)
    if arch is None:
        raise InstallError(f"no Anvil build for CPU {machine}: set LIFTLEDGER_CHAIN_URL")
    return f"linux-{arch}"


def anvil_binary(project_dir: Path) -> Path:
    """Where `npm ci` puts the Anvil binary for this machine."""
    return (
        project_dir
        / "node_modules"
        / "@foundry-rs"
        / f"anvil-{_anvil_platform()}"
        / "bin"
        / "anvil"
    )


def ensure_npm_tools(settings: Settings, project_dir: Path) -> Path:
    """Install the pinned npm tools (package-lock.json) when Anvil is missing; return Anvil."""
    binary = anvil_binary(project_dir)
    if binary.is_file():
        return binary
    if not (project_dir / "package-lock.json").is_file():
        raise InstallError(f"{project_dir}/package-lock.json is missing: cannot install Anvil")
    npm = shutil.which("npm")
    if npm is None:
        if not settings.install_missing or not _is_root():
            raise InstallError(
                "npm not found, needed to install the pinned Anvil: install Node.js and npm "
                "(`apt-get install npm` as root) or set LIFTLEDGER_CHAIN_URL to an existing chain"
            )
        _apt_get(settings, ["npm"], why="npm not found (needed to install Anvil)")
        npm = shutil.which("npm")
        if npm is None:
            raise InstallError("npm still not found after `apt-get install npm`: check PATH")
    run(
        [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
        cwd=project_dir,
        what="`npm ci` (installing Anvil, solc and OpenZeppelin)",
    )
    if not binary.is_file():
        raise InstallError(f"`npm ci` finished but {binary} is missing")
    return binary
