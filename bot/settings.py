"""Settings: environment variables (``K8SNET_*``) over a YAML file over defaults.

The YAML file is the one ``K8SNET_CONFIG`` names (or ``--config`` on the CLI). Every key is
documented below on its field; an unknown key, a missing required value or a bad URL raises
:class:`bot.sdk.errors.SettingsError` naming the key, before anything else happens.

Example file::

    default_cluster: prod
    clusters:
      prod: {kubeconfig: /etc/k8snet/prod.kubeconfig, context: admin@prod}
      lab:  {in_cluster: true}
    allowed_channels: [C0123456789]
    database_url: postgresql+psycopg://k8snet@db/k8snet

With no ``clusters`` the clusters are the contexts of the kubeconfig (``$KUBECONFIG``, which
may list several files separated by ``:``, else ``~/.kube/config``) and the default cluster
is its ``current-context``, as with kubectl.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any

import platformdirs
import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings import SettingsError as PydanticSettingsError

from bot.errors import SettingsError

ENV_CONFIG = "K8SNET_CONFIG"
DEFAULT_SLACK_API_URL = "https://slack.com/api/"
_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9_.]{0,61}[a-z0-9])?$")


def default_database_url() -> str:
    """``sqlite:///<user data dir>/k8snet.sqlite3`` (e.g. ``~/.local/share/k8snet`` on Linux)."""
    data_dir = Path(platformdirs.user_data_dir("k8snet", appauthor=False))
    return f"sqlite:///{data_dir / 'k8snet.sqlite3'}"


class ClusterSettings(BaseModel):
    """How to reach one cluster. Either ``in_cluster: true`` (the bot runs in that cluster and
    uses its ServiceAccount) or a ``kubeconfig`` path with an optional ``context``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kubeconfig: Path | None = Field(
        default=None,
        description="Path of the kubeconfig file for this cluster. Default: $KUBECONFIG or "
        "~/.kube/config.",
    )
    context: str | None = Field(
        default=None,
        description="Context inside the kubeconfig. Default: its current-context.",
    )
    in_cluster: bool = Field(
        default=False,
        description="Use the in-cluster ServiceAccount instead of a kubeconfig.",
    )
    request_timeout_seconds: float = Field(
        default=10.0, gt=0, le=300,
        description="Seconds to wait for one API request before reporting a timeout.",
    )


ROLES = ("viewer", "operator", "approver", "admin")


class RoleMembers(BaseModel):
    """Who holds each role on a cluster. Entries are Slack user ids (``U0123ABC``, ``W...``),
    Slack user group ids (``S0123ABC``: every member of the group), CLI users
    (``cli:<os user>``) or ``*`` (everyone). Roles are cumulative: an admin is also an approver,
    an approver also an operator, an operator also a viewer.

    viewer: status, history, show; operator: also plan runbooks (``run``) and execute
    approved runs; approver: also approve or reject other people's runs and roll back
    interrupted runs; admin: everything."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    viewer: list[str] = Field(default_factory=list)
    operator: list[str] = Field(default_factory=list)
    approver: list[str] = Field(default_factory=list)
    admin: list[str] = Field(default_factory=list)

    @field_validator("viewer", "operator", "approver", "admin")
    @classmethod
    def _ids(cls, v: list[str]) -> list[str]:
        for m in v:
            if m != "*" and not re.fullmatch(r"[UWS][A-Z0-9]{2,}|cli:[A-Za-z0-9._-]{1,64}|cli:\*",
                                             m):
                raise ValueError(f"{m!r} is not a Slack user id (U...), user group id (S...), "
                                 "cli:<user> or *")
        return v


class Policy(BaseModel):
    """Approval policy (DESIGN.md §5). With no ``roles`` at all, everyone is an operator and an
    approver (four eyes still apply: nobody approves their own disruptive run)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    roles: dict[str, RoleMembers] = Field(
        default_factory=dict,
        description="Role members per cluster name; the key '*' applies to every cluster.",
    )
    approvals_required: int = Field(
        default=1, ge=1, le=5,
        description="Approvals a disruptive run needs, from approvers other than the requester.",
    )
    approval_ttl_minutes: int = Field(
        default=30, ge=1, le=24 * 60,
        description="Minutes a plan stays approvable; after that it expires and must be "
        "planned again.",
    )
    lock_lease_seconds: int = Field(
        default=600, ge=30, le=6 * 3600,
        description="Seconds a cluster's run lock is held without renewal before another "
        "process may take it over (a crashed holder).",
    )


class Settings(BaseSettings):
    """All settings of k8snet. Environment variables are ``K8SNET_`` + the upper-case field
    name (e.g. ``K8SNET_DATABASE_URL``); the YAML file uses the field names as keys."""

    model_config = SettingsConfigDict(
        env_prefix="K8SNET_", extra="forbid", frozen=True, env_nested_delimiter=None
    )

    clusters: dict[str, ClusterSettings] = Field(
        default_factory=dict,
        description="Clusters by name. Empty: the contexts of the kubeconfig, as with kubectl.",
    )
    default_cluster: str | None = Field(
        default=None,
        description="Cluster used when a command names none. Default: the only configured "
        "cluster, or the kubeconfig's current-context.",
    )
    database_url: str = Field(
        default_factory=default_database_url,
        description="SQLAlchemy URL of the audit database: sqlite:///PATH (default, a file in "
        "the user's data directory, migrated on first start) or "
        "postgresql+psycopg://USER@HOST/DB (run `k8snet db upgrade` first).",
    )
    slack_bot_token: SecretStr | None = Field(
        default=None, description="Slack bot token (xoxb-...). Required by `k8snet serve`."
    )
    slack_signing_secret: SecretStr | None = Field(
        default=None,
        description="Slack signing secret; every HTTP request's signature is checked with it. "
        "Required by `k8snet serve` in HTTP mode.",
    )
    slack_app_token: SecretStr | None = Field(
        default=None,
        description="Slack app-level token (xapp-...) with connections:write. Required by "
        "`k8snet serve --socket-mode`.",
    )
    slack_api_url: str = Field(
        default=DEFAULT_SLACK_API_URL,
        description="Base URL of the Slack Web API (GovSlack: https://slack-gov.com/api/).",
    )
    allowed_channels: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Slack channel ids commands are accepted from. Empty: every channel. "
        "In the environment: comma-separated (C0123,C0456) or a JSON list.",
    )
    request_timeout_seconds: float = Field(
        default=10.0, gt=0, le=300,
        description="Default seconds to wait for one Kubernetes API request.",
    )
    policy: Policy = Field(default_factory=Policy,
                           description="Roles, approvals and locks for runbook runs.")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Order of precedence: explicit arguments, environment, then the YAML file (given to
        :func:`load_settings` as init data)."""
        return (env_settings, init_settings)

    @field_validator("clusters")
    @classmethod
    def _cluster_names(cls, v: dict[str, ClusterSettings]) -> dict[str, ClusterSettings]:
        for name in v:
            if not _NAME_RE.match(name):
                raise ValueError(
                    f"cluster name {name!r} must be lower-case letters, digits, '-', '_' or "
                    "'.', at most 63 characters"
                )
        return v

    @field_validator("database_url")
    @classmethod
    def _db_url(cls, v: str) -> str:
        if not re.match(r"^(sqlite|postgresql)(\+[a-z0-9]+)?://", v):
            raise ValueError(
                "must be an SQLAlchemy URL starting with sqlite:/// or postgresql+psycopg://"
            )
        m = re.match(r"^sqlite(\+[a-z0-9]+)?:///(?P<path>.*)$", v)
        if m and m.group("path") not in ("", ":memory:") and not m.group("path").startswith("/"):
            raise ValueError("an SQLite path must be absolute (sqlite:////var/lib/k8snet/"
                             "audit.sqlite3): a relative one depends on the current directory")
        if v.startswith("postgresql://"):
            v = "postgresql+psycopg://" + v[len("postgresql://"):]
        return v

    @field_validator("slack_api_url")
    @classmethod
    def _api_url(cls, v: str) -> str:
        if not re.match(r"^https?://[^/\s]+(/\S*)?$", v):
            raise ValueError("must be an http(s) URL such as https://slack.com/api/")
        return v if v.endswith("/") else v + "/"

    @field_validator("allowed_channels", mode="before")
    @classmethod
    def _channels_from_text(cls, v: Any) -> Any:
        if isinstance(v, str):
            text = v.strip()
            if text.startswith("["):
                import json

                try:
                    return json.loads(text)
                except ValueError as e:
                    raise ValueError(f"not a JSON list: {e}") from e
            return [c.strip() for c in text.split(",") if c.strip()]
        return v

    @field_validator("allowed_channels")
    @classmethod
    def _channels(cls, v: list[str]) -> list[str]:
        for c in v:
            if not re.fullmatch(r"[CGD][A-Z0-9]{2,}", c):
                raise ValueError(f"{c!r} is not a Slack channel id (like C0123456789)")
        return v


def _format_validation_error(err: ValidationError, source: str) -> str:
    parts = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        if e["type"] == "extra_forbidden":
            parts.append(f"unknown key {key!r}")
        elif e["type"] == "missing":
            parts.append(f"missing required value {key!r}")
        else:
            parts.append(f"{key!r}: {e['msg']}")
    return f"Invalid settings in {source}: " + "; ".join(parts)


def load_settings(config_path: str | os.PathLike[str] | None = None) -> Settings:
    """Load settings from the YAML file (``config_path``, else ``$K8SNET_CONFIG``, else none)
    and ``K8SNET_*`` environment variables.

    Raises SettingsError naming the file and key for: a missing or unreadable file, YAML that
    is not a mapping, unknown keys, missing values and bad values.
    """
    path = config_path or os.environ.get(ENV_CONFIG) or None
    data: dict[str, Any] = {}
    source = "environment"
    if path:
        p = Path(path).expanduser()
        source = str(p)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as e:
            raise SettingsError(f"Cannot read settings file {p}: {e.strerror}", key=None) from e
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise SettingsError(f"Settings file {p} is not valid YAML: {e}") from e
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise SettingsError(f"Settings file {p} must be a YAML mapping of keys to values")
        data = loaded
    try:
        return Settings(**data)
    except PydanticSettingsError as e:
        # a K8SNET_* variable that should hold JSON (K8SNET_POLICY) does not
        field = re.search(r'field "([^"]+)"', str(e))
        key = field.group(1) if field else None
        env = f"K8SNET_{key.upper()}" if key else "a K8SNET_* variable"
        raise SettingsError(f"Invalid settings in the environment: {env} must be JSON "
                            f"(e.g. K8SNET_POLICY='{{\"approvals_required\": 2}}')", key=key) from e
    except ValidationError as e:
        first = e.errors()[0]["loc"] if e.errors() else ()
        raise SettingsError(
            _format_validation_error(e, source), key=".".join(str(p) for p in first) or None
        ) from e


# ---------------------------------------------------------------------------- kubeconfig view


def kubeconfig_paths(explicit: str | os.PathLike[str] | None = None) -> list[Path]:
    """The kubeconfig files kubectl would read: ``explicit``, else each entry of $KUBECONFIG
    (``:``-separated), else ``~/.kube/config``."""
    if explicit:
        return [Path(explicit).expanduser()]
    env = os.environ.get("KUBECONFIG", "")
    if env:
        return [Path(p).expanduser() for p in env.split(os.pathsep) if p]
    return [Path("~/.kube/config").expanduser()]


def kubeconfig_contexts(paths: list[Path], *, strict: bool = False
                        ) -> tuple[list[str], str | None]:
    """Context names and the current-context of merged kubeconfig files (first file wins, as
    with kubectl). Missing files are skipped (as kubectl does for $KUBECONFIG entries) unless
    ``strict`` (a file named explicitly): then SettingsError. A file that is not a kubeconfig
    raises SettingsError naming it."""
    names: list[str] = []
    current: str | None = None
    for p in paths:
        if not p.exists():
            if strict:
                raise SettingsError(f"Kubeconfig {p} does not exist", key="kubeconfig")
            continue
        try:
            doc = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as e:
            raise SettingsError(f"Cannot read kubeconfig {p}: {e}") from e
        if not isinstance(doc, dict):
            raise SettingsError(f"Kubeconfig {p} is not a YAML mapping")
        for c in doc.get("contexts") or []:
            if isinstance(c, dict) and c.get("name") and c["name"] not in names:
                names.append(str(c["name"]))
        if current is None and doc.get("current-context"):
            current = str(doc["current-context"])
    return names, current


def resolve_clusters(
    settings: Settings, kubeconfig: str | os.PathLike[str] | None = None
) -> tuple[dict[str, ClusterSettings], str | None]:
    """The clusters k8snet knows and the default one.

    With ``kubeconfig`` given (CLI ``--kubeconfig``) or no clusters configured: one cluster per
    context of the kubeconfig, default = its current-context (or the settings'
    ``default_cluster``). Otherwise the configured clusters, default = ``default_cluster`` or the
    only one. Raises SettingsError when ``default_cluster`` names no known cluster.
    """
    if kubeconfig is not None or not settings.clusters:
        paths = kubeconfig_paths(kubeconfig)
        names, current = kubeconfig_contexts(paths, strict=kubeconfig is not None)
        path = paths[0] if (kubeconfig is not None or len(paths) == 1) else None
        clusters = {
            n: ClusterSettings(kubeconfig=path, context=n,
                               request_timeout_seconds=settings.request_timeout_seconds)
            for n in names
        }
        default = settings.default_cluster or current
    else:
        clusters = dict(settings.clusters)
        for name, c in clusters.items():
            if c.kubeconfig is not None and not c.kubeconfig.expanduser().exists():
                raise SettingsError(
                    f"Invalid settings: 'clusters.{name}.kubeconfig' is {str(c.kubeconfig)!r}, "
                    "which does not exist", key=f"clusters.{name}.kubeconfig")
        default = settings.default_cluster or (next(iter(clusters)) if len(clusters) == 1 else None)
    if settings.default_cluster and settings.default_cluster not in clusters and clusters:
        raise SettingsError(
            f"Invalid settings: 'default_cluster' is {settings.default_cluster!r}, which is not "
            f"one of the clusters ({', '.join(sorted(clusters))})",
            key="default_cluster",
        )
    return clusters, default
