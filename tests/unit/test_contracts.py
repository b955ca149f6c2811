"""Project-wide contracts: every finding code is documented, the sdk's public surface is
complete, probes are discoverable and well-formed."""

from __future__ import annotations

import re
from pathlib import Path

import bot.sdk
from bot.sdk.probe import Probe
from runbooks.probes import all_probes

REPO = Path(__file__).resolve().parents[2]
CODE_RE = re.compile(r"""["']((?:NODE|CNI|KP|CT|MLB|LB|NP|BGP)\d{3})["']""")


def emitted_codes() -> set[str]:
    codes: set[str] = set()
    for p in (REPO / "runbooks").rglob("*.py"):
        codes |= set(CODE_RE.findall(p.read_text(encoding="utf-8")))
    return codes


def test_every_emitted_finding_code_is_documented() -> None:
    doc = (REPO / "docs" / "findings.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^##+ +`?([A-Z]{2,5}\d{3})`?\b", doc, re.M))
    codes = emitted_codes()
    assert codes, "no finding codes found in runbooks/"
    missing = sorted(codes - documented)
    assert not missing, f"finding codes without an entry in docs/findings.md: {missing}"


def test_each_documented_code_says_why_how_and_source() -> None:
    doc = (REPO / "docs" / "findings.md").read_text(encoding="utf-8")
    entries = re.split(r"^##+ +(?=`?[A-Z]{2,5}\d{3})", doc, flags=re.M)[1:]
    assert entries
    for e in entries:
        code = e.split()[0].strip("`")
        low = e.lower()
        for word in ("severity", "fix", "source"):
            assert word in low, f"{code}: entry lacks '{word}'"


def test_sdk_all_is_complete() -> None:
    public = {n for n in dir(bot.sdk) if not n.startswith("_")} - {
        "errors", "ports", "probe", "results", "audit", "annotations", "runbook", "runs"}
    assert public <= set(bot.sdk.__all__), sorted(public - set(bot.sdk.__all__))
    for name in bot.sdk.__all__:
        assert getattr(bot.sdk, name).__doc__, f"{name} has no docstring"


def test_probes_are_discovered_with_unique_sections() -> None:
    probes = all_probes()
    sections = [p.section for p in probes]
    assert len(sections) == len(set(sections))
    assert {"cni", "kube-proxy", "conntrack", "metallb", "networkpolicy", "bgp", "nodes"} <= set(
        sections)
    for p in probes:
        assert isinstance(p, Probe)
        assert p.title and type(p).__doc__, f"{type(p).__name__} lacks a title or docstring"
