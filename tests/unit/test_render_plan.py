"""Rendering of runbook runs: the unified YAML diff, the plan message within Slack's limits
(50 blocks, 3,000 characters a section, header <= 150), long diffs continued in the thread
with an explicit marker, buttons carrying only the run id, escaping, the parameter modal, and
the terminal text/JSON forms."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.render.blocks import (
    ACTION_APPROVE,
    ACTION_REJECT,
    MAX_BLOCKS,
    MAX_HEADER_TEXT,
    MAX_SECTION_TEXT,
    PARAM_BLOCK_PREFIX,
    param_fields,
    render_history,
    render_params_modal,
    render_result,
    render_run,
    render_runbooks,
    render_show,
    slack_date,
)
from bot.render.diff import change_diff, plan_diff_text, plan_diffs, to_yaml
from bot.render.text import history_json, history_text, run_json, run_text, runbooks_text
from bot.sdk.runbook import Change, Params, Plan
from bot.sdk.runs import ApprovalRecord, RunEvent, RunRecord, RunState
from tests.lab.slack_standin import validate_message

NOW = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)


@dataclass(frozen=True)
class View:
    run: RunRecord
    plan: Plan
    approvals: tuple[ApprovalRecord, ...] = ()
    approvals_needed: int = 1
    runbook_summary: str = "Default-deny plus DNS-allow NetworkPolicies for namespaces."


@dataclass(frozen=True)
class Info:
    name: str
    versions: tuple[str, ...]
    summary: str
    risk: str


def netpol(ns: str, name: str, *, egress: list[Any] | None = None,
           label: str = "k8snet") -> dict[str, Any]:
    spec: dict[str, Any] = {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    if egress is not None:
        spec["egress"] = egress
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": ns, "labels": {"app.kubernetes.io/managed-by":
                                                                   label}},
            "spec": spec}


def create(ns: str, name: str = "default-deny", **kw: Any) -> Change:
    return Change(api_version="networking.k8s.io/v1", plural="networkpolicies",
                  kind="NetworkPolicy", namespace=ns, name=name, action="create",
                  after=netpol(ns, name, **kw), summary=f"deny all traffic in {ns}")


def make_run(state: RunState = RunState.AWAITING_APPROVAL, plan: Plan | None = None,
             **kw: Any) -> RunRecord:
    plan = plan or Plan(changes=(create("shop"),))
    values: dict[str, Any] = dict(
        id="r-k3v9q2m7xw", cluster="lab", runbook="netpol-dns-allow", version="1.0.0",
        source_sha256="ab" * 32, params={"namespaces": ["shop"], "default_deny": True},
        requester="U0ALICE001", channel="C0LAB00001", state=state, created_at=NOW,
        updated_at=NOW, plan=plan.model_dump(mode="json"), plan_hash=plan.digest(),
        risk="disruptive", expires_at=NOW + timedelta(minutes=30), approvals_required=1)
    values.update(kw)
    return RunRecord(**values)


def make_view(state: RunState = RunState.AWAITING_APPROVAL, plan: Plan | None = None,
              **kw: Any) -> View:
    plan = plan or Plan(changes=(create("shop"),), warnings=("Calico <enforces> & logs",))
    return View(run=make_run(state, plan, **kw), plan=plan)


def assert_valid(message: dict[str, Any]) -> None:
    """What the Slack stand-in (and Slack) would accept, plus our own limits."""
    assert validate_message(message) is None, validate_message(message)
    blocks = message["blocks"]
    assert len(blocks) <= MAX_BLOCKS
    for b in blocks:
        if b["type"] == "section":
            assert len(b["text"]["text"]) <= MAX_SECTION_TEXT
        if b["type"] == "header":
            assert len(b["text"]["text"]) <= MAX_HEADER_TEXT


def texts(blocks: list[dict[str, Any]]) -> str:
    return json.dumps(blocks, ensure_ascii=False)


# ----------------------------------------------------------------------------- diff


def test_create_diff_adds_every_line() -> None:
    ch = create("shop")
    d = change_diff(ch)
    assert d.startswith("--- /dev/null\n+++ b/networkpolicy/shop/default-deny\n")
    body = [ln for ln in d.splitlines()[3:]]
    assert body and all(ln.startswith("+") for ln in body)
    assert "+kind: NetworkPolicy" in d and "+  namespace: shop" in d
    # keys in the order the runbook built them, not sorted
    assert d.index("+apiVersion") < d.index("+kind") < d.index("+metadata") < d.index("+spec")


def test_replace_diff_shows_only_the_difference_with_context() -> None:
    before = netpol("shop", "dns", egress=[{"ports": [{"port": 53, "protocol": "UDP"}]}])
    after = netpol("shop", "dns", egress=[{"ports": [{"port": 53, "protocol": "UDP"},
                                                     {"port": 53, "protocol": "TCP"}]}])
    ch = Change(api_version="networking.k8s.io/v1", plural="networkpolicies",
                kind="NetworkPolicy", namespace="shop", name="dns", action="replace",
                before=before, after=after)
    d = change_diff(ch)
    assert d.startswith("--- a/networkpolicy/shop/dns\n+++ b/networkpolicy/shop/dns\n")
    added = [ln for ln in d.splitlines() if ln.startswith("+") and not ln.startswith("+++")]
    removed = [ln for ln in d.splitlines() if ln.startswith("-") and not ln.startswith("---")]
    assert added == ["+    - port: 53", "+      protocol: TCP"]
    assert removed == []
    assert "kind: NetworkPolicy" not in d  # far from the change: not in the context
    [cd] = plan_diffs(Plan(changes=(ch,)))
    assert (cd.added, cd.removed) == (2, 0)


def test_delete_and_patch_diffs() -> None:
    gone = Change(api_version="v1", plural="configmaps", kind="ConfigMap", namespace="x",
                  name="old", action="delete", before={"data": {"a": "1"}}, reversible=False)
    d = change_diff(gone)
    assert "+++ /dev/null" in d and "-data:" in d and "-  a: '1'" in d
    patch = Change(api_version="v1", plural="configmaps", kind="ConfigMap", namespace="kube-system",
                   name="kube-proxy", action="patch", before={"data": {"mode": ""}},
                   patch={"data": {"mode": "ipvs"}})
    pd = change_diff(patch)
    assert pd.startswith("# merge patch of configmap/kube-system/kube-proxy")
    assert "+  mode: ipvs" in pd
    text = plan_diff_text(Plan(changes=(gone, patch)))
    assert "# 1. delete configmap/x/old (cannot be rolled back automatically)" in text
    assert "# 2. patch configmap/kube-system/kube-proxy" in text


def test_multiline_strings_stay_readable() -> None:
    assert to_yaml({"config": "mode: ipvs\nipvs:\n  strictARP: true\n"}) == (
        "config: |\n  mode: ipvs\n  ipvs:\n    strictARP: true\n")
    assert to_yaml(None) == ""


# ----------------------------------------------------------------------------- plan message


def test_plan_message_has_everything_and_buttons_carry_only_the_run_id() -> None:
    view = make_view()
    r = render_run(view)
    assert not r.thread
    msg = {"text": r.message.text, "blocks": r.message.blocks}
    assert_valid(msg)
    body = texts(r.message.blocks)
    header = r.message.blocks[0]["text"]["text"]
    assert "netpol-dns-allow@1.0.0 on lab" in header
    assert "<@U0ALICE001>" in body  # requester
    assert "risk *disruptive*" in body and "`r-k3v9q2m7xw`" in body
    assert "awaiting approval" in body
    assert "*1. create* `networkpolicy/shop/default-deny`" in body
    assert "```" in body and "+kind: NetworkPolicy" in body
    assert "Calico &lt;enforces&gt; &amp; logs" in body  # warnings escaped
    assert "Approvals: 0 of 1" in body
    epoch = int((NOW + timedelta(minutes=30)).timestamp())
    assert f"<!date^{epoch}^{{date_short_pretty}} at {{time}}|2026-11-30 03:30 UTC>" in body
    [actions] = [b for b in r.message.blocks if b["type"] == "actions"]
    by_action = {e["action_id"]: e for e in actions["elements"]}
    assert set(by_action) == {ACTION_APPROVE, ACTION_REJECT}
    assert all(e["value"] == "r-k3v9q2m7xw" for e in by_action.values())
    assert "netpol-dns-allow" in r.message.text and "awaiting approval" in r.message.text


@pytest.mark.parametrize("state", [s for s in RunState if s is not RunState.AWAITING_APPROVAL])
def test_no_buttons_unless_awaiting_approval(state: RunState) -> None:
    r = render_run(make_view(state))
    assert not [b for b in r.message.blocks if b["type"] == "actions"]
    assert "<!date^" not in texts(r.message.blocks)  # expiry only while approvable
    assert_valid({"text": r.message.text, "blocks": r.message.blocks})


def test_empty_plan_says_nothing_to_do_without_buttons() -> None:
    view = make_view(RunState.NOTHING_TO_DO, Plan(), approvals_required=0)
    r = render_run(view)
    body = texts(r.message.blocks)
    assert "Nothing to do" in body
    assert not [b for b in r.message.blocks if b["type"] == "actions"]
    # even if a caller renders an empty plan in awaiting_approval, no buttons
    r2 = render_run(make_view(RunState.AWAITING_APPROVAL, Plan()))
    assert not [b for b in r2.message.blocks if b["type"] == "actions"]


def test_progress_and_detail_are_shown_escaped() -> None:
    view = make_view(RunState.RUNNING)
    r = render_run(view, progress="create networkpolicy/shop/<default-deny>")
    assert "create networkpolicy/shop/&lt;default-deny&gt;" in texts(r.message.blocks)
    failed = make_view(RunState.FAILED, detail="409 <!channel> Conflict")
    assert "409 &lt;!channel&gt; Conflict" in texts(render_run(failed).message.blocks)


def test_person_text_is_escaped_everywhere() -> None:
    view = make_view(params={"namespaces": ["<!channel>", "a`b`c"]},
                     requester="cli:<!here>")
    r = render_run(view)
    body = texts(r.message.blocks)
    assert "<!channel>" not in body and "<!here>" not in body
    assert "&lt;!channel&gt;" in body
    assert "a`b`c" not in body  # backticks cannot close the code span


def test_long_diff_continues_in_the_thread_with_the_marker() -> None:
    changes = tuple(create(f"ns-{i:03d}", egress=[{"to": [{"ipBlock": {"cidr": f"10.{i}.0.0/16"}}]}
                                                  for _ in range(30)]) for i in range(40))
    view = make_view(plan=Plan(changes=changes))
    r = render_run(view)
    assert_valid({"text": r.message.text, "blocks": r.message.blocks})
    body = texts(r.message.blocks)
    assert "The diff continues in the thread" in body
    assert r.thread
    for m in r.thread:
        assert_valid({"text": m.text, "blocks": m.blocks})
    everything = body + "".join(texts(m.blocks) for m in r.thread)
    for i in range(40):  # nothing silently cut: every change appears somewhere
        assert f"networkpolicy/ns-{i:03d}/default-deny" in everything
    assert "10.39.0.0/16" in everything
    # buttons still in the channel message
    assert [b for b in r.message.blocks if b["type"] == "actions"]
    # deterministic: a progress edit keeps the same split
    again = render_run(replace(view, run=replace(view.run, state=RunState.RUNNING)),
                       progress="applying")
    assert len([b for b in again.message.blocks if b["type"] == "section"]) >= len(
        [b for b in r.message.blocks if b["type"] == "section"]) - 1
    assert again.thread == r.thread


def test_one_huge_object_is_split_into_valid_sections() -> None:
    big = create("shop")
    big = big.model_copy(update={"after": {**big.after, "data": {"blob": "x" * 20000}}})
    r = render_run(make_view(plan=Plan(changes=(big,))))
    for m in (r.message, *r.thread):
        assert_valid({"text": m.text, "blocks": m.blocks})
    total = sum(texts(m.blocks).count("x" * 100) for m in (r.message, *r.thread))
    assert total >= 190  # all 20,000 characters are somewhere


def test_thread_overflow_is_announced_not_silent() -> None:
    changes = tuple(create(f"ns-{i:03d}", egress=[{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}
                                                  for _ in range(60)]) for i in range(200))
    r = render_run(make_view(plan=Plan(changes=changes)), max_thread_messages=2)
    assert len(r.thread) == 2
    last = texts(r.thread[-1].blocks)
    assert "k8snet show r-k3v9q2m7xw" in last and "not shown here" in last
    for m in r.thread:
        assert_valid({"text": m.text, "blocks": m.blocks})


def test_very_long_names_keep_the_header_within_150() -> None:
    view = make_view(cluster="c" * 200, runbook="r" * 60)
    r = render_run(view)
    assert len(r.message.blocks[0]["text"]["text"]) <= MAX_HEADER_TEXT
    assert_valid({"text": r.message.text, "blocks": r.message.blocks})


def test_many_warnings_fit() -> None:
    plan = Plan(changes=(create("shop"),), warnings=tuple("w <x> " * 100 for _ in range(200)))
    r = render_run(make_view(plan=plan))
    assert_valid({"text": r.message.text, "blocks": r.message.blocks})


def test_approvals_and_rejections_are_listed() -> None:
    view = make_view(RunState.REJECTED)
    view = replace(view, approvals=(
        ApprovalRecord("r-k3v9q2m7xw", "U0BOB00001", "reject", NOW, "h", "not <now>"),))
    body = texts(render_run(view).message.blocks)
    assert "rejected by <@U0BOB00001> (not &lt;now&gt;)" in body
    ok = replace(make_view(RunState.SUCCEEDED), approvals=(
        ApprovalRecord("r-k3v9q2m7xw", "U0BOB00001", "approve", NOW, "h"),))
    assert "approved by <@U0BOB00001>" in texts(render_run(ok).message.blocks)


def test_result_names_run_id_and_rollback() -> None:
    view = make_view(RunState.ROLLED_BACK, detail="verification failed: DNS <blocked>; rolled back",
                     applied=[{"index": 0, "target": "networkpolicy/shop/default-deny",
                               "action": "create", "ok": True, "message": "created"}])
    msg = render_result(view)
    assert_valid({"text": msg.text, "blocks": msg.blocks})
    body = texts(msg.blocks)
    assert "`r-k3v9q2m7xw`" in body and "rolled back" in body
    assert "DNS &lt;blocked&gt;" in body and "k8snet show r-k3v9q2m7xw" in body
    assert "r-k3v9q2m7xw" in msg.text


def test_runbooks_history_and_show() -> None:
    infos = [Info("netpol-dns-allow", ("1.0.0",), "Default-deny <and> DNS", "disruptive"),
             Info("kube-proxy-mode", ("2.0.0", "1.1.0"), "Switch kube-proxy mode", "disruptive")]
    m = render_runbooks(infos)
    assert_valid({"text": m.text, "blocks": m.blocks})
    body = texts(m.blocks)
    assert "*netpol-dns-allow* `1.0.0`" in body and "`2.0.0` `1.1.0`" in body
    assert "Default-deny &lt;and&gt; DNS" in body and "risk *disruptive*" in body
    assert "No runbooks" in render_runbooks([]).text

    views = [make_view(RunState.SUCCEEDED, id=f"r-aaaaaaaa{i:02d}") for i in range(50)]
    h = render_history(views)
    assert_valid({"text": h.text, "blocks": h.blocks})
    assert all(f"r-aaaaaaaa{i:02d}" in texts(h.blocks) for i in range(50))
    assert "No runs" in render_history([]).text

    events = [RunEvent(i, "r-k3v9q2m7xw", NOW, "state",
                       {"from": "approved", "to": "running", "actor": "U0BOB"})
              for i in range(40)]
    s = render_show(make_view(), events)
    assert_valid({"text": s.text, "blocks": s.blocks})
    assert not [b for b in s.blocks if b["type"] == "actions"]
    assert "*Steps*" in texts(s.blocks) and "approved -&gt; running by U0BOB" in texts(s.blocks)


def test_slack_date() -> None:
    assert slack_date(None) == ""
    naive = datetime(2026, 1, 2, 3, 4)
    assert slack_date(naive).endswith("|2026-01-02 03:04 UTC>")


# ----------------------------------------------------------------------------- modal


def test_modal_from_params_schema() -> None:
    from typing import Literal

    from pydantic import Field

    class P(Params):
        namespaces: list[str] = Field(description="Namespaces to isolate.", min_length=1)
        default_deny: bool = Field(default=True, title="Default deny",
                                   description="Also deny everything not allowed.")
        extra_egress_cidrs: list[str] = Field(default_factory=list,
                                              json_schema_extra={"format": "ipv4network"})
        mode: Literal["ipvs", "nftables"] = "ipvs"
        note: str | None = None

    schema = P.model_json_schema()
    meta = json.dumps({"ref": "netpol-dns-allow@1", "cluster": "lab", "channel": "C1"})
    view = render_params_modal(runbook="netpol-dns-allow", version="1.0.0", summary="S <x>",
                               risk="disruptive", cluster="lab", schema=schema,
                               private_metadata=meta)
    assert view["type"] == "modal" and view["private_metadata"] == meta
    assert len(view["title"]["text"]) <= 24
    inputs = {b["block_id"]: b for b in view["blocks"] if b["type"] == "input"}
    assert set(inputs) == {PARAM_BLOCK_PREFIX + n for n in
                           ("namespaces", "default_deny", "extra_egress_cidrs", "mode", "note")}
    ns = inputs[PARAM_BLOCK_PREFIX + "namespaces"]
    assert ns["element"]["type"] == "plain_text_input"
    assert ns["element"].get("multiline") is False
    assert ns.get("optional") is False
    hint = ns["hint"]["text"]
    assert "Namespaces to isolate." in hint and "Comma separated" in hint
    dd = inputs[PARAM_BLOCK_PREFIX + "default_deny"]
    assert dd["element"]["type"] == "checkboxes" and dd["label"]["text"] == "Default deny"
    assert dd["element"]["initial_options"][0]["value"] == "true"
    assert dd["optional"] is True
    cidr = inputs[PARAM_BLOCK_PREFIX + "extra_egress_cidrs"]
    assert "CIDRs" in cidr["hint"]["text"] and cidr["optional"] is True
    mode = inputs[PARAM_BLOCK_PREFIX + "mode"]
    assert mode["element"]["type"] == "static_select"
    assert mode["element"]["initial_option"]["value"] == "ipvs"
    assert inputs[PARAM_BLOCK_PREFIX + "note"]["element"]["type"] == "plain_text_input"
    assert "S &lt;x&gt;" in texts(view["blocks"])
    assert dict(param_fields(schema)) == {"namespaces": "list", "default_deny": "bool",
                                          "extra_egress_cidrs": "list", "mode": "enum",
                                          "note": "text"}


# ----------------------------------------------------------------------------- terminal


def test_run_text_and_json() -> None:
    view = make_view()
    events = [RunEvent(1, "r-k3v9q2m7xw", NOW, "planned",
                       {"requester": "U0ALICE001", "changes": 1, "approvals_required": 1})]
    text = run_text(view, events)
    assert text.startswith("Run r-k3v9q2m7xw: netpol-dns-allow@1.0.0 on lab [awaiting approval]")
    assert "Params: namespaces=shop default_deny=true" in text
    assert "Approvals: 0 of 1" in text and "Expires: 2026-11-30 03:30 UTC" in text
    assert "# 1. create networkpolicy/shop/default-deny" in text and "+kind: NetworkPolicy" in text
    assert "Warning: Calico <enforces> & logs" in text  # terminal: not escaped
    assert "Steps:" in text and "03:00:00 planned by U0ALICE001: 1 changes" in text
    doc = json.loads(run_json(view, events))
    assert doc["id"] == "r-k3v9q2m7xw" and doc["state"] == "awaiting_approval"
    assert doc["diff"][0]["target"] == "networkpolicy/shop/default-deny"
    assert doc["events"][0]["kind"] == "planned"
    nothing = run_text(make_view(RunState.NOTHING_TO_DO, Plan()))
    assert "Nothing to do" in nothing


def test_history_and_runbooks_text() -> None:
    views = [make_view(RunState.SUCCEEDED), make_view(RunState.FAILED, id="r-bbbbbbbbbb")]
    out = history_text(views)
    assert "r-k3v9q2m7xw" in out and "r-bbbbbbbbbb" in out and "failed" in out
    assert [d["id"] for d in json.loads(history_json(views))] == ["r-k3v9q2m7xw", "r-bbbbbbbbbb"]
    assert "No runs yet." in history_text([])
    rb = runbooks_text([Info("netpol-dns-allow", ("1.0.0",), "Default-deny", "disruptive")])
    assert "netpol-dns-allow" in rb and "disruptive" in rb
