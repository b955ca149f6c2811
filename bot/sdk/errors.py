"""The error tree runbooks and probes may use (re-exported from ``bot.errors``, the lowest layer,
so that ``bot.settings`` can raise ``SettingsError`` too). See ``bot.errors`` for the tree."""

from bot.errors import (
    InputError,
    K8snetError,
    KubeApiError,
    KubeError,
    KubeForbidden,
    KubeNotFound,
    KubeTimeout,
    KubeUnreachable,
    Refused,
    SettingsError,
)

__all__ = [
    "InputError",
    "K8snetError",
    "KubeApiError",
    "KubeError",
    "KubeForbidden",
    "KubeNotFound",
    "KubeTimeout",
    "KubeUnreachable",
    "Refused",
    "SettingsError",
]
