"""Registry (name@version, discovery, validation) and parameter parsing."""

from __future__ import annotations

import hashlib
import inspect
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.engine.registry import Registry, RunbookInfo, parse_params, source_sha256
from bot.sdk.errors import InputError
from bot.sdk.runbook import Params, Risk, Runbook
from tests.lab import fake_runbooks as fr

# ------------------------------------------------------------------------------ resolve


def test_resolve_name_gives_newest_version() -> None:
    reg = fr.make_registry()
    assert reg.resolve("test-configmap") is fr.TestConfigMapV2
    assert reg.versions("test-configmap") == ["2.0.0", "1.1.0", "1.0.0"]


def test_resolve_major_gives_newest_of_that_major() -> None:
    reg = fr.make_registry()
    assert reg.resolve("test-configmap@1") is fr.TestConfigMapV11
    assert reg.resolve("test-configmap@2") is fr.TestConfigMapV2
    assert reg.resolve(" test-configmap@1 ") is fr.TestConfigMapV11


def test_resolve_exact_version() -> None:
    reg = fr.make_registry()
    assert reg.resolve("test-configmap@1.0.0") is fr.TestConfigMap
    assert reg.get("test-configmap", "1.1.0") is fr.TestConfigMapV11
    assert reg.get("test-configmap", "9.9.9") is None
    assert reg.get("nope", "1.0.0") is None


@pytest.mark.parametrize("ref, needle", [
    ("nope", "Unknown runbook 'nope'"),
    ("", "is not a runbook reference"),
    ("a@b@c", "is not a runbook reference"),
    ("test-configmap@3", "has no major version 3. Versions: 2.0.0, 1.1.0, 1.0.0"),
    ("test-configmap@1.2", "is not a version"),
    ("test-configmap@1.0.9", "has no version 1.0.9"),
])
def test_resolve_errors_name_the_field_and_the_valid_choices(ref: str, needle: str) -> None:
    reg = fr.make_registry()
    with pytest.raises(InputError) as ei:
        reg.resolve(ref)
    assert ei.value.field == "runbook"
    assert needle in str(ei.value)
    if "Unknown" in needle or "reference" in needle:
        assert "test-configmap" in str(ei.value) and "test-slow" in str(ei.value)


def test_unknown_runbook_in_empty_registry() -> None:
    with pytest.raises(InputError, match=r"\(none registered\)"):
        Registry().resolve("x")


# ------------------------------------------------------------------------------ register


def _rb(**attrs: Any) -> type[Runbook]:
    base: dict[str, Any] = {"name": "ok-name", "version": "1.0.0", "__doc__": "Doc."}
    base.update(attrs)
    return type("Dyn", (Runbook,), base)


@pytest.mark.parametrize("attrs, needle", [
    ({"name": "Bad_Name"}, "RFC 1123"),
    ({"name": "-x"}, "RFC 1123"),
    ({"name": "a" * 64}, "RFC 1123"),
    ({"version": "1.0"}, "SemVer"),
    ({"version": "v1.0.0"}, "SemVer"),
    ({"version": 1}, "SemVer"),
    ({"Params": dict}, "Params must be a subclass"),
    ({"risk": "low"}, "risk must be"),
])
def test_register_validates(attrs: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        Registry().register(_rb(**attrs))


def test_register_refuses_non_runbooks_and_duplicates() -> None:
    reg = Registry()
    with pytest.raises(ValueError, match="not a Runbook subclass"):
        reg.register(int)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not a Runbook subclass"):
        reg.register(Runbook)
    reg.register(_rb())
    with pytest.raises(ValueError, match=r"ok-name@1\.0\.0 is already registered"):
        reg.register(_rb())
    reg.register(_rb(version="1.0.1"))
    assert reg.versions("ok-name") == ["1.0.1", "1.0.0"]


def test_registries_are_independent_instances() -> None:
    a, b = Registry(), Registry()
    a.register(_rb())
    assert a.names() == ["ok-name"] and b.names() == []


def test_infos() -> None:
    infos = {i.name: i for i in fr.make_registry().infos()}
    info = infos["test-configmap"]
    assert isinstance(info, RunbookInfo)
    assert info.versions == ("2.0.0", "1.1.0", "1.0.0") and info.latest == "2.0.0"
    assert info.summary == "Write one labelled test ConfigMap per namespace."
    assert info.risk is Risk.LOW
    props = info.params_schema["properties"]
    assert {"namespaces", "name", "value", "label"} <= set(props)
    assert props["namespaces"]["description"] == "Namespaces to write the ConfigMap in."
    assert infos["test-disruptive"].risk is Risk.DISRUPTIVE
    assert list(infos) == sorted(infos)


def test_source_sha256_is_the_hash_of_the_source_file() -> None:
    path = inspect.getsourcefile(fr.TestConfigMap)
    assert path
    want = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    assert source_sha256(fr.TestConfigMap) == want
    assert fr.make_registry().source_sha256(fr.TestSlow) == want


# ------------------------------------------------------------------------------ discover


@pytest.fixture
def pkg(tmp_path: Path) -> Iterator[str]:
    name = "k8snet_test_rbpkg"
    root = tmp_path / name
    (root / "probes").mkdir(parents=True)
    (root / "big").mkdir()
    (root / "_lib").mkdir()
    (root / "__init__.py").write_text("")
    common = "from bot.sdk.runbook import Runbook, Plan\n"
    (root / "alpha.py").write_text(common + textwrap.dedent('''
        class _Base(Runbook):
            """Shared base: not registered."""
            def plan(self, ctx, params, inspection):
                return Plan()

        class AlphaV1(_Base):
            """Alpha one."""
            name = "alpha"
            version = "1.0.0"

        class AlphaV2(_Base):
            """Alpha two."""
            name = "alpha"
            version = "2.1.0"
    '''))
    (root / "beta.py").write_text(common + textwrap.dedent(f'''
        from {name}.alpha import AlphaV1   # imported: not registered again

        class Beta(Runbook):
            """Beta."""
            name = "beta"
            version = "0.1.0"
    '''))
    (root / "_private.py").write_text(common + textwrap.dedent('''
        class Hidden(Runbook):
            name = "hidden"
            version = "1.0.0"
    '''))
    (root / "probes" / "__init__.py").write_text(common + textwrap.dedent('''
        class ProbeRb(Runbook):
            name = "probe-rb"
            version = "1.0.0"
    '''))
    (root / "_lib" / "__init__.py").write_text("raise RuntimeError('never imported')\n")
    (root / "big" / "__init__.py").write_text("")
    (root / "big" / "core.py").write_text(common + textwrap.dedent('''
        class Big(Runbook):
            """A runbook in a package."""
            name = "big"
            version = "3.0.0"
    '''))
    sys.path.insert(0, str(tmp_path))
    try:
        yield name
    finally:
        sys.path.remove(str(tmp_path))
        for mod in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            del sys.modules[mod]


def test_discover_registers_runbooks_of_every_module(pkg: str) -> None:
    reg = Registry()
    found = reg.discover(pkg)
    assert sorted(c.__name__ for c in found) == ["AlphaV1", "AlphaV2", "Beta", "Big"]
    assert reg.names() == ["alpha", "beta", "big"]
    assert reg.resolve("alpha").summary() == "Alpha two."
    assert reg.resolve("alpha@1").version == "1.0.0"
    assert reg.discover(pkg) == []  # idempotent: same classes are not registered twice


def test_discover_the_shipped_runbooks_package() -> None:
    reg = Registry()
    reg.discover("runbooks")
    for name in reg.names():
        cls = reg.resolve(name)
        assert cls.__doc__ and cls.summary()
        assert issubclass(cls.Params, Params) and isinstance(cls.risk, Risk)
        assert len(source_sha256(cls)) == 64


# ------------------------------------------------------------------------------ params


def test_parse_params_from_text() -> None:
    p = parse_params(fr.TestConfigMap, {"namespaces": "shop, web,", "value": "x",
                                        "replicas": "3", "enabled": "no"})
    assert isinstance(p, fr.ConfigMapParams)
    assert p.namespaces == ("shop", "web") and p.value == "x" and p.replicas == 3
    assert p.enabled is False


@pytest.mark.parametrize("text, want", [("true", True), ("YES", True), ("1", True),
                                        ("false", False), ("No", False), ("0", False)])
def test_parse_params_booleans(text: str, want: bool) -> None:
    p = parse_params(fr.TestConfigMap, {"namespaces": "a", "enabled": text})
    assert p.enabled is want  # type: ignore[attr-defined]


def test_parse_params_repeated_keys_modal_values_and_blanks() -> None:
    p = parse_params(fr.ConfigMapParams, {"namespaces": ["a", "b,c"], "replicas": 2,
                                          "enabled": True, "value": "  "})
    assert p.namespaces == ("a", "b", "c")  # type: ignore[attr-defined]
    assert p.replicas == 2 and p.enabled is True  # type: ignore[attr-defined]
    assert p.value == "on"  # blank = not given: default  # type: ignore[attr-defined]
    p = parse_params(fr.TestSlow, {"names": ["x"], "hold-seconds": "1.5"})
    assert p.names == ("x",) and p.hold_seconds == 1.5  # type: ignore[attr-defined]


def _input_error(raw: dict[str, Any], cls: Any = fr.TestConfigMap) -> InputError:
    with pytest.raises(InputError) as ei:
        parse_params(cls, raw)
    return ei.value


def test_unknown_param_is_named_with_the_valid_ones() -> None:
    e = _input_error({"namespaces": "a", "colour": "red"})
    assert e.field == "colour"
    assert "Unknown parameter 'colour'" in str(e)
    assert "enabled, name, namespaces, replicas, value" in str(e)


def test_bad_namespace_names_the_field_and_rule() -> None:
    e = _input_error({"namespaces": "ok,Bad_NS"})
    assert e.field == "namespaces"
    assert str(e) == "namespaces: 'Bad_NS' is not a valid namespace name (RFC 1123 label)"


@pytest.mark.parametrize("raw, field, needle", [
    ({"namespaces": "a", "replicas": "many"}, "replicas", "'many': input should be a valid "
                                                          "integer"),
    ({"namespaces": "a", "replicas": "11"}, "replicas", "less than or equal to 10"),
    ({"namespaces": "a", "enabled": "maybe"}, "enabled", "'maybe' is not a boolean"),
    ({"value": "x"}, "namespaces", "namespaces: required, but not given"),
    ({"namespaces": "a", "value": ["x", "y"]}, "value", "given more than once"),
    ({"namespaces": "a", "value": "a\tb"}, "value", "control characters"),
    ({"namespaces": "a", "value": "a\u202eb"}, "value", "control characters"),
])
def test_wrong_values(raw: dict[str, Any], field: str, needle: str) -> None:
    e = _input_error(raw)
    assert e.field == field
    assert needle in str(e)


def test_several_errors_are_all_named() -> None:
    e = _input_error({"namespaces": "a", "replicas": "0", "name": "X"})
    assert e.field in ("name", "replicas")
    assert "replicas:" in str(e) and "name: 'X' is not a valid object name" in str(e)


def test_too_long_value() -> None:
    e = _input_error({"namespaces": "a", "value": "x" * 2001})
    assert e.field == "value" and "too long (2001 characters; at most 2000)" in str(e)
    e = _input_error({"namespaces": ["a" * 1000, "b" * 1001]})
    assert e.field == "namespaces" and "too long" in str(e)


def test_too_many_params() -> None:
    e = _input_error({f"k{i}": "v" for i in range(51)})
    assert e.field == "params" and "Too many parameters (51)" in str(e)


def test_a_huge_unknown_key_is_cut_in_the_message() -> None:
    e = _input_error({"k" * 5000: "v"})
    assert len(str(e)) < 300 and e.field is not None and len(e.field) <= 64
