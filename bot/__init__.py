"""k8snet: a Slack ChatOps bot and CLI for bare-metal Kubernetes networking."""

__version__ = "0.1.0"
