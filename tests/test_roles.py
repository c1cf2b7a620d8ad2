"""Role suggestion and validation (installer.roles): pure, over fixture facts."""

from __future__ import annotations

import ipaddress
from dataclasses import replace

import pytest

from installer.answer_checks import check_roles
from installer.answers import Answers
from installer.profile import load_profile_meta
from installer.roles import (
    Selector,
    apply_roles,
    assignment_summary,
    has_blank_disk,
    host_networks_from_facts,
    parse_selector,
    rank_hosts,
    suggest_roles,
    validate_assignment,
)
from tests.wizard_fixtures import data_disk, node_facts, six_answers, six_facts, system_disk


def subset(answers: Answers, n: int) -> Answers:
    return answers.model_copy(update={"hosts": answers.hosts[:n]})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("first(3)", Selector("first", 3)),
        (" rest( 3 ) ", Selector("rest", 3)),
        ("all", Selector("all")),
        ("none", Selector("none")),
        ("disk", Selector("disk")),
    ],
)
def test_parse_selector(text: str, expected: Selector) -> None:
    assert parse_selector(text) == expected


@pytest.mark.parametrize("text", ["first", "first(x)", "last(2)", "", "disks"])
def test_parse_selector_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="expected first"):
        parse_selector(text)


def test_kubeadm_suggestion_matches_the_runbook_layout() -> None:
    answers = six_answers("kubeadm-etcd")
    meta = load_profile_meta("kubeadm-etcd")
    got = suggest_roles(answers, meta, six_facts())
    assert got == {
        "kn0": ["control-plane", "etcd", "lb"],
        "kn1": ["control-plane", "etcd", "lb"],
        "kn2": ["control-plane", "etcd", "lb"],
        "kn3": ["worker"],
        "kn4": ["worker"],
        "kn5": ["worker"],
    }
    assert validate_assignment(apply_roles(answers, got), meta) == [
        p for p in check_roles(apply_roles(answers, got), meta)
    ]


def test_storage_role_goes_to_hosts_with_a_blank_disk() -> None:
    facts = six_facts()
    facts["kn1"] = node_facts(1, disks=(system_disk(),))  # no data disk
    facts["kn4"] = node_facts(4, disks=(system_disk(), data_disk(4, fstype="ext4")))  # used
    answers = six_answers("microk8s-openebs")
    got = suggest_roles(answers, load_profile_meta("microk8s-openebs"), facts)
    storage = [h for h, roles in got.items() if "storage" in roles]
    assert storage == ["kn0", "kn2", "kn3", "kn5"]


def test_disk_hosts_from_the_storage_core_win_over_the_heuristic() -> None:
    answers = six_answers("rke-ceph")
    got = suggest_roles(answers, load_profile_meta("rke-ceph"), six_facts(), disk_hosts={"kn5"})
    assert [h for h, r in got.items() if "storage" in r] == ["kn5"]


def test_strongest_hosts_get_the_control_plane() -> None:
    facts = six_facts()
    # kn0 and kn1 are too small for a MicroK8s manager (8 CPUs / 32 GiB).
    facts["kn0"] = node_facts(0, cpus=4, memory_gib=16)
    facts["kn1"] = node_facts(1, cpus=4, memory_gib=16)
    facts["kn5"] = node_facts(5, cpus=16, memory_gib=64)
    answers = six_answers("microk8s-openebs")
    meta = load_profile_meta("microk8s-openebs")
    assert [h.label for h in rank_hosts(answers, meta, facts)] == [
        "kn5",
        "kn2",
        "kn3",
        "kn4",
        "kn0",
        "kn1",
    ]
    got = suggest_roles(answers, meta, facts)
    assert [h for h, r in got.items() if "control-plane" in r] == ["kn2", "kn3", "kn5"]
    assert [h for h, r in got.items() if "worker" in r] == ["kn0", "kn1", "kn4"]


def test_missing_avx_ranks_a_host_below_those_that_meet_the_profile() -> None:
    facts = six_facts()
    facts["kn0"] = node_facts(0, flags=frozenset({"sse4_2"}))
    meta = load_profile_meta("microk8s-openebs")
    ranked = rank_hosts(six_answers("microk8s-openebs"), meta, facts)
    assert ranked[-1].label == "kn0"


def test_unknown_facts_rank_last_and_keep_order() -> None:
    facts = six_facts()
    del facts["kn1"]
    ranked = rank_hosts(six_answers(), load_profile_meta("kubeadm-etcd"), facts)
    assert [h.label for h in ranked] == ["kn0", "kn2", "kn3", "kn4", "kn5", "kn1"]


def test_two_hosts_keep_quorum_odd() -> None:
    answers = subset(six_answers("rke-ceph"), 2)
    meta = load_profile_meta("rke-ceph")
    got = suggest_roles(answers, meta, six_facts())
    # One RKE2 server and monitor (2 would not survive more failures than 1);
    # the VIP stays on the API host; the other host becomes a worker.
    assert got["kn0"] == ["control-plane", "lb", "ceph-mon", "storage"]
    assert got["kn1"] == ["worker", "storage"]
    assert [
        p for p in validate_assignment(apply_roles(answers, got), meta) if p.severity == "error"
    ] == [p for p in check_roles(apply_roles(answers, got), meta)]


def test_two_hosts_kubeadm_both_control_planes_one_etcd() -> None:
    answers = subset(six_answers("kubeadm-etcd"), 2)
    got = suggest_roles(answers, load_profile_meta("kubeadm-etcd"), six_facts())
    assert got == {"kn0": ["control-plane", "etcd", "lb"], "kn1": ["control-plane", "lb"]}


def test_single_host() -> None:
    answers = subset(six_answers("microk8s-openebs"), 1)
    got = suggest_roles(answers, load_profile_meta("microk8s-openebs"), six_facts())
    assert got == {"kn0": ["control-plane", "storage"]}


def test_apply_roles_keeps_hosts_not_in_the_assignment() -> None:
    answers = six_answers(roles=True)
    changed = apply_roles(answers, {"kn3": ["worker", "lb"]})
    assert changed.hosts[3].roles == ["worker", "lb"]
    assert changed.hosts[0].roles == answers.hosts[0].roles
    assert answers.hosts[3].roles == ["worker"]  # the original is untouched


def test_even_etcd_is_reported_with_quorum_arithmetic() -> None:
    meta = load_profile_meta("kubeadm-etcd")
    answers = six_answers(roles=True)
    answers = apply_roles(answers, {"kn3": ["worker", "etcd"]})
    answers = answers.model_copy(
        update={
            "network": answers.network.model_copy(
                update={"vip": ipaddress.ip_address("10.30.217.100")}
            )
        }
    )
    errors = [p.message for p in validate_assignment(answers, meta) if p.severity == "error"]
    assert len(errors) == 1
    assert "4 'etcd' hosts is an even number" in errors[0]
    assert "Use 3 or 5" in errors[0]


def test_host_without_role_is_a_warning() -> None:
    meta = load_profile_meta("kubeadm-etcd")
    answers = apply_roles(six_answers(roles=True), {"kn5": []})
    problems = validate_assignment(answers, meta)
    assert [(p.severity, p.message) for p in problems if p.severity == "warning"] == [
        ("warning", "kn5 has no role: it will not be part of the cluster")
    ]


def test_vip_is_checked_against_the_discovered_subnet() -> None:
    meta = load_profile_meta("kubeadm-etcd")
    answers = six_answers(roles=True)
    facts = six_facts()
    nets = host_networks_from_facts(answers, facts)
    assert nets["kn0"] == ipaddress.ip_network("10.30.217.0/24")
    answers.network.vip = ipaddress.ip_address("10.30.218.100")
    problems = validate_assignment(answers, meta, nets)
    assert any("outside kn0 10.30.217.0/24" in p.message for p in problems)
    answers.network.vip = ipaddress.ip_address("10.30.217.21")
    problems = validate_assignment(answers, meta, nets)
    assert any("is the address of hosts[1] (kn1)" in p.message for p in problems)
    answers.network.vip = ipaddress.ip_address("10.30.217.100")
    assert validate_assignment(answers, meta, nets) == []


def test_missing_vip_is_an_error_first() -> None:
    meta = load_profile_meta("kubeadm-etcd")
    answers = apply_roles(six_answers(roles=True), {"kn5": []})
    problems = validate_assignment(answers, meta)
    assert problems[0].severity == "error"
    assert problems[-1].severity == "warning"
    assert any("set network.vip" in p.message for p in problems)


def test_disks_chosen_later_are_not_reported_missing() -> None:
    meta = load_profile_meta("microk8s-openebs")
    answers = six_answers("microk8s-openebs", roles=True)
    answers.network.vip = ipaddress.ip_address("10.30.217.100")
    missing = [p for p in validate_assignment(answers, meta) if "storage_disk" in p.message]
    assert len(missing) == 6
    assert validate_assignment(answers, meta, disks_chosen_later=True) == []
    assert answers.hosts[0].storage_disk is None  # nothing was written


def test_summary() -> None:
    meta = load_profile_meta("kubeadm-etcd")
    answers = six_answers(roles=True)
    answers.network.vip = ipaddress.ip_address("10.30.217.100")
    assert assignment_summary(answers, meta) == [
        "3 control-plane hosts: kn0, kn1, kn2",
        "3 etcd members: quorum 2, survives 1 failure",
        "3 worker hosts: kn3, kn4, kn5",
        "3 lb hosts hold the VIP 10.30.217.100: kn0, kn1, kn2",
    ]
    one = apply_roles(answers, {"kn1": ["control-plane", "lb"], "kn2": ["control-plane", "lb"]})
    assert "1 etcd member: quorum 1, survives 0 failures" in assignment_summary(one, meta)


def test_has_blank_disk() -> None:
    assert has_blank_disk(node_facts(0))
    assert not has_blank_disk(node_facts(0, disks=(system_disk(),)))
    tiny = replace(data_disk(0), size_bytes=2**30)
    assert not has_blank_disk(node_facts(0, disks=(system_disk(), tiny)))
    assert not has_blank_disk(None)


def test_roles_module_is_pure() -> None:
    import subprocess
    import sys

    code = "import installer.roles, sys; print(sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'screens', 'asyncssh')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_profile_fit_and_best_profile() -> None:
    from installer.roles import best_profile, profile_fit

    answers = six_answers()
    metas = {n: load_profile_meta(n) for n in ("kubeadm-etcd", "microk8s-openebs", "rke-ceph")}
    facts = six_facts()
    fits = [profile_fit(answers, m, facts) for m in metas.values()]
    assert all(f.usable for f in fits)
    # Every profile fits: the one with storage that uses the machines most wins.
    assert best_profile(fits, metas) == "microk8s-openebs"

    weak = six_facts()
    weak["kn1"] = node_facts(1, flags=frozenset({"sse4_2"}))  # no AVX: MicroK8s + OpenEBS is out
    fits = [profile_fit(answers, m, weak) for m in metas.values()]
    by_name = {f.profile: f for f in fits}
    # kn1 ranks last (it lacks what the control plane needs), so it would be a worker.
    assert by_name["microk8s-openebs"].short == {"kn1": "needs CPU avx for worker"}
    assert best_profile(fits, metas) == "rke-ceph"

    no_disks = {k: node_facts(i, disks=(system_disk(),)) for i, k in enumerate(six_facts())}
    fits = [profile_fit(answers, m, no_disks) for m in metas.values()]
    by_name = {f.profile: f for f in fits}
    assert by_name["rke-ceph"].problems == ("needs 1 host(s) with a data disk; 0 available",)
    assert best_profile(fits, metas) == "microk8s-openebs"
    small = {k: node_facts(i, cpus=2, memory_gib=4) for i, k in enumerate(six_facts())}
    fits = [profile_fit(answers, m, small) for m in metas.values()]
    assert best_profile(fits, metas) == "kubeadm-etcd"
    assert best_profile([], metas) is None
