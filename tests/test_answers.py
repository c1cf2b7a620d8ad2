"""answers.yaml: the contract, its error messages and their locations."""

from __future__ import annotations

from pathlib import Path

import pytest

from installer.answer_checks import check_answers, check_environment, quorum_text
from installer.answers import Answers, load_answers, parse_answers
from installer.problems import ProblemList

EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "examples").glob("*.yaml"))

BASE = """\
version: 1
cluster: {name: fmp}
profile: kubeadm-etcd
ssh: {user: fmpadmin}
hosts:
  - {address: 10.30.217.20, name: kn0, roles: [control-plane, etcd, lb]}
  - {address: 10.30.217.21, name: kn1, roles: [control-plane, etcd, lb]}
  - {address: 10.30.217.22, name: kn2, roles: [control-plane, etcd, lb]}
  - {address: 10.30.217.23, name: kn3, roles: [worker]}
network:
  vip: 10.30.217.100
"""


def errors(text: str) -> list[str]:
    with pytest.raises(ProblemList) as info:
        parse_answers(text, "answers.yaml")
    return [str(p) for p in info.value.problems]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_validate(path: Path) -> None:
    answers = load_answers(path)
    assert len(answers.hosts) == 6
    assert [h.name for h in answers.hosts] == [f"kn{i}" for i in range(6)]
    assert answers.network.vip is not None


def test_examples_cover_each_profile() -> None:
    assert {load_answers(p).profile for p in EXAMPLES} == {
        "kubeadm-etcd",
        "rke-ceph",
        "microk8s-openebs",
    }


def test_design_md_example_validates() -> None:
    # The answers.yaml from shared/DESIGN.md, verbatim but for the single host
    # (etcd needs an odd count and the profile needs a VIP, which it has).
    text = """\
version: 1
cluster:
  name: fmp                      # lowercase, digits, '-'
  domain: our.cluster            # optional: hosts get <name>.<domain>
profile: kubeadm-etcd            # rke-ceph | kubeadm-etcd | microk8s-openebs
ssh:                             # defaults for every host
  user: fmpadmin
  port: 22
  identity_file: ~/.ssh/id_ed25519   # optional; the ssh agent is tried too
  password_env: FMP_SSH_PASSWORD     # optional: NAME of an env var, never a password
  sudo_password_env: FMP_SUDO_PASSWORD
  jump_host: null                    # optional: user@host:port
  known_hosts: ~/.ssh/known_hosts
  accept_new_host_keys: false        # true = trust on first use, like OpenSSH accept-new
hosts:
  - address: 10.30.217.20
    name: kn0
    roles: [control-plane, etcd]
    ssh: {port: 2222}                # optional per-host override of any ssh key
    storage_disk: /dev/disk/by-id/wwn-0x5000c500a1b2c3d4   # or /dev/sdb
network:
  vip: 10.30.217.100             # the shared virtual IP (keepalived / MetalLB)
  api_port: 8443
  pod_subnet: 10.244.0.0/16
  service_subnet: 10.96.0.0/12
storage:
  features: [insights]           # names from assets/workloads.yaml
  volumes:                       # overrides and custom volumes, sizes in GB
    - {name: elasticsearch, size_gb: 10, shared: false}
  wipe: [kn0:/dev/disk/by-id/wwn-0x5000c500a1b2c3d4]
versions:
  kubernetes: "1.35"
"""
    answers = parse_answers(text)
    host = answers.hosts[0]
    assert answers.ssh_for(host).port == 2222
    assert answers.ssh_for(host).user == "fmpadmin"
    assert answers.ssh.password_env == "FMP_SSH_PASSWORD"


def test_base_is_valid() -> None:
    answers = parse_answers(BASE)
    assert isinstance(answers, Answers)
    assert answers.network.api_port == 8443  # the default
    assert len(answers.hosts_with("etcd")) == 3


def test_bad_address_names_line_column_and_key() -> None:
    text = BASE.replace("10.30.217.22,", "10.30.217.300,")
    assert errors(text) == [
        "answers.yaml:8:15: hosts[2].address: '10.30.217.300' is not an IPv4/IPv6 address or hostname"
    ]


def test_all_errors_reported_at_once() -> None:
    text = (
        BASE.replace("{name: fmp}", "{name: FMP}")
        .replace("10.30.217.22,", "10.30.217.300,")
        .replace("user: fmpadmin", "user: fmpadmin, colour: blue")
    )
    found = errors(text)
    assert len(found) == 3
    assert found[0].startswith("answers.yaml:2:17: cluster.name: 'FMP' is not a valid cluster name")
    assert found[1] == "answers.yaml:4:23: ssh.colour: unknown key 'colour'"
    assert found[2].startswith("answers.yaml:8:15: hosts[2].address:")


def test_missing_required_key_points_at_parent() -> None:
    text = BASE.replace("cluster: {name: fmp}\n", "")
    assert errors(text) == ["answers.yaml:1:1: cluster: is required"]


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        ("password: hunter2", "'password' would put a secret in answers.yaml"),
        ("sudo_password: hunter2", "'sudo_password' would put a secret in answers.yaml"),
        ("password_env: hunter2", "must be the NAME of an environment variable"),
        ("password_env: 'p@ss w0rd!'", "must be the NAME of an environment variable"),
    ],
)
def test_literal_password_refused(snippet: str, expected: str) -> None:
    text = BASE.replace("ssh: {user: fmpadmin}", "ssh:\n  user: fmpadmin\n  " + snippet)
    found = errors(text)
    assert len(found) == 1
    assert expected in found[0]
    assert found[0].startswith("answers.yaml:6:")
    # The refused value itself is never echoed back.
    assert "hunter2" not in found[0] and "p@ss" not in found[0]


def test_duplicate_address_and_name() -> None:
    text = BASE.replace("{address: 10.30.217.23, name: kn3", "{address: 10.30.217.21, name: kn1")
    found = errors(text)
    assert "answers.yaml:9:15: hosts[3].address: '10.30.217.21' is already hosts[1]" in found
    assert "answers.yaml:9:35: hosts[3].name: 'kn1' is already hosts[1]" in found


def test_unknown_role_for_profile() -> None:
    text = BASE.replace("roles: [worker]", "roles: [worker, ceph-mon]")
    (found,) = errors(text)
    assert found.startswith(
        "answers.yaml:9:56: hosts[3].roles[1]: role 'ceph-mon' is not used by profile kubeadm-etcd"
    )


def test_even_etcd_states_quorum_arithmetic() -> None:
    text = BASE.replace("roles: [worker]", "roles: [worker, etcd]")
    (found,) = errors(text)
    assert "4 'etcd' hosts is an even number" in found
    assert "4 members: quorum 3, survives 1 failure" in found
    assert "3 members: quorum 2, survives 1 failure" in found
    assert "Use 3 or 5" in found


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (1, "1 member: quorum 1, survives 0 failures"),
        (5, "5 members: quorum 3, survives 2 failures"),
    ],
)
def test_quorum_text(n: int, text: str) -> None:
    assert quorum_text(n) == text


def test_vip_equal_to_host_address() -> None:
    (found,) = errors(BASE.replace("vip: 10.30.217.100", "vip: 10.30.217.21"))
    assert found.startswith(
        "answers.yaml:11:8: network.vip: 10.30.217.21 is the address of hosts[1] (kn1)"
    )


def test_vip_outside_host_subnet() -> None:
    text = BASE + "  host_subnet: 10.30.216.0/24\n"
    found = errors(text)
    assert any("10.30.217.100 is outside host_subnet 10.30.216.0/24" in f for f in found)


def test_vip_required_by_profile() -> None:
    text = BASE.replace("network:\n  vip: 10.30.217.100\n", "")
    found = errors(text)
    assert any("needs network.vip" in f for f in found)


def test_overlapping_subnets() -> None:
    text = BASE + "  pod_subnet: 10.96.0.0/16\n"
    (found,) = errors(text)
    assert "network.service_subnet: 10.96.0.0/12 overlaps pod_subnet 10.96.0.0/16" in found


def test_host_inside_pod_subnet() -> None:
    text = BASE + "  pod_subnet: 10.30.0.0/16\n  host_subnet: 10.30.217.0/24\n"
    found = errors(text)
    assert any("overlaps pod_subnet" in f for f in found)
    assert any("hosts[0].address: 10.30.217.20 lies inside pod_subnet" in f for f in found)


def test_non_cidr_subnet() -> None:
    (found,) = errors(BASE + "  pod_subnet: 10.244.0.1/16\n")
    assert "network.pod_subnet: '10.244.0.1/16' is not a network in CIDR form" in found


def test_storage_role_needs_disk_and_wipe_names_host() -> None:
    text = """\
version: 1
cluster: {name: fmp}
profile: rke-ceph
hosts:
  - {address: 10.0.0.1, name: a, roles: [control-plane, ceph-mon, storage]}
network: {vip: 10.0.0.100}
storage:
  wipe: [zz:/dev/sdb]
"""
    found = errors(text)
    assert any("a has role 'storage' but no storage_disk" in f for f in found)
    assert any(
        f == "answers.yaml:8:10: storage.wipe[0]: 'zz' is not one of the hosts" for f in found
    )


def test_unknown_profile() -> None:
    (found,) = errors(BASE.replace("profile: kubeadm-etcd", "profile: k3s"))
    assert found.startswith(
        "answers.yaml:3:10: profile: unknown profile 'k3s' (expected kubeadm-etcd | microk8s-openebs | rke-ceph)"
    )


def test_yaml_syntax_error_has_location() -> None:
    (found,) = errors("cluster: {name: fmp\nprofile: x\n")
    assert found.startswith("answers.yaml:2:")
    assert "not valid YAML" in found


def test_duplicate_key() -> None:
    (found,) = errors(BASE + "profile: rke-ceph\n")
    assert found == "answers.yaml:12:1: duplicate key 'profile' (first at line 3)"


def test_not_a_mapping() -> None:
    assert errors("- 1\n") == [
        "answers.yaml:1:1: expected a mapping with cluster, profile, hosts, ..."
    ]


def test_version_2_is_refused() -> None:
    (found,) = errors(BASE.replace("version: 1", "version: 2"))
    assert "unsupported version 2" in found


def test_jump_host_form() -> None:
    text = BASE.replace(
        "ssh: {user: fmpadmin}", "ssh: {user: fmpadmin, jump_host: 'ops@bastion:70000'}"
    )
    (found,) = errors(text)
    assert "port 70000 is out of range" in found
    ok = parse_answers(
        BASE.replace("ssh: {user: fmpadmin}", "ssh: {jump_host: 'ops@bastion.example:2222'}")
    )
    assert ok.ssh.jump_host == "ops@bastion.example:2222"


def test_environment_check() -> None:
    text = BASE.replace("ssh: {user: fmpadmin}", "ssh: {user: fmpadmin, password_env: FMP_TEST_PW}")
    answers = parse_answers(text)
    (missing,) = check_environment(answers, {})
    assert missing.severity == "error"
    assert "FMP_TEST_PW (SSH password) is not set" in missing.message
    assert check_environment(answers, {"FMP_TEST_PW": "x"}) == []


def test_load_answers_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ProblemList, match="file not found"):
        load_answers(tmp_path / "nope.yaml")
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ProblemList, match="not UTF-8"):
        load_answers(binary)
    with pytest.raises(ProblemList, match="is a directory"):
        load_answers(tmp_path)


def test_saved_answers_replay(tmp_path: Path) -> None:
    import yaml

    answers = load_answers(EXAMPLES[0])
    data = answers.to_yaml_data()
    again = parse_answers(yaml.safe_dump(data))
    assert again == answers


def test_profile_options_checked() -> None:
    ok = parse_answers(BASE + "options: {cni: flannel}\n")
    assert ok.options == {"cni": "flannel"}
    (found,) = errors(BASE + "options: {cni: weave}\n")
    assert (
        found == "answers.yaml:12:16: options.cni: option cni='weave' is not one of calico, flannel"
    )
    (found,) = errors(BASE + "options: {colour: blue}\n")
    assert "profile kubeadm-etcd has no option 'colour'" in found


def test_unknown_storage_feature() -> None:
    (found,) = errors(BASE + "storage:\n  features: [insigths]\n")
    assert found.startswith("answers.yaml:13:14: storage.features[0]: unknown feature 'insigths'")


def test_shape_errors_do_not_hide_meaning_errors() -> None:
    # A bad port (line 4) and a bad api_port (line 12) do not hide the
    # duplicate address (line 9); all three come in line order.
    text = (
        BASE.replace("ssh: {user: fmpadmin}", "ssh: {user: fmpadmin, port: 99999}").replace(
            "{address: 10.30.217.23, name: kn3", "{address: 10.30.217.21, name: kn3"
        )
        + "  api_port: 0\n"
    )
    found = errors(text)
    assert [f.split(": ")[0] for f in found] == [
        "answers.yaml:4:29",
        "answers.yaml:9:15",
        "answers.yaml:12:13",
    ]
    assert found[0].startswith("answers.yaml:4:29: ssh.port: ")
    assert found[1] == "answers.yaml:9:15: hosts[3].address: '10.30.217.21' is already hosts[1]"
    assert found[2].startswith("answers.yaml:12:13: network.api_port: ")


def test_meaning_checks_run_on_the_hosts_without_shape_errors() -> None:
    # hosts[1] has a bad port: the other hosts are still checked (a duplicate,
    # an unknown role), but counting roles would miscount, so it is not done.
    text = BASE.replace(
        "name: kn1, roles: [control-plane, etcd, lb]}",
        "name: kn1, roles: [control-plane, etcd, lb], ssh: {port: 0}}",
    ).replace("{address: 10.30.217.23, name: kn3, roles: [worker]}", "{address: kn2, roles: [wat]}")
    text = text.replace("address: 10.30.217.22, name: kn2,", "address: kn2, name: kn2,")
    found = errors(text)
    assert len(found) == 3, found
    assert found[0].startswith("answers.yaml:7:86: hosts[1].ssh.port: ")
    assert found[1] == "answers.yaml:9:15: hosts[3].address: 'kn2' is already hosts[2]"
    assert found[2].startswith("answers.yaml:9:28: hosts[3].roles[0]: role 'wat' is not used")


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        # A host with a bad address: two etcd members are left, not an even-number error.
        (
            "10.30.217.22,",
            "10.30.217.300,",
            "hosts[2].address: '10.30.217.300' is not an IPv4/IPv6",
        ),
        # A bad VIP is not a missing one.
        ("vip: 10.30.217.100", "vip: kn9", "network.vip: 'kn9' is not an IPv4 or IPv6 address"),
        # A bad storage section: its wipe list is not checked against the hosts.
        ("network:", "storage: {wipe: [zz:/dev/sdb], colour: 1}\nnetwork:", "unknown key 'colour'"),
    ],
)
def test_no_meaning_error_restates_a_shape_error(old: str, new: str, expected: str) -> None:
    (found,) = errors(BASE.replace(old, new))
    assert expected in found


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        (
            "options: {cni: [a]}",
            "options.cni: expected a string, whole number or boolean, got a list",
        ),
        (
            "options: {cni: {a: 1}}",
            "options.cni: expected a string, whole number or boolean, got a mapping",
        ),
        (
            "options: {cni: 1.5}",
            "options.cni: expected a string, whole number or boolean, got the number 1.5",
        ),
        ("options: {CNI: [a]}", "options.CNI: expected a string"),
        ("network: {vip: kn9}", "network.vip: 'kn9' is not an IPv4 or IPv6 address"),
        ("network: {vip: [a]}", "network.vip: expected an IPv4 or IPv6 address, got a list"),
        (
            "network: {vip: 10.30.217.100, pod_subnet: [a]}",
            "network.pod_subnet: expected a network in CIDR form (e.g. 10.244.0.0/16), got a list",
        ),
        (
            "network: {vip: 10.30.217.100, service_subnet: null}",
            "network.service_subnet: expected a network in CIDR form (e.g. 10.244.0.0/16), got null",
        ),
        (
            "network: {vip: 10.30.217.100, host_subnet: 10.30.217.1/24}",
            "network.host_subnet: '10.30.217.1/24' is not a network in CIDR form",
        ),
    ],
)
def test_one_message_per_bad_value_without_type_names(snippet: str, expected: str) -> None:
    if snippet.startswith("network:"):
        text, line = BASE.replace("network:\n  vip: 10.30.217.100\n", snippet + "\n"), 10
    else:
        text, line = BASE + snippet + "\n", 12
    (found,) = errors(text)
    assert found.startswith(f"answers.yaml:{line}:")
    assert expected in found


def test_capitalised_keys_keep_their_place_in_the_path() -> None:
    (found,) = errors(BASE.replace("cluster: {name: fmp}", "cluster: {name: fmp, Name: x}"))
    assert found == "answers.yaml:2:22: cluster.Name: unknown key 'Name'"


def test_load_for_run_reports_missing_env_in_line_order(tmp_path: Path) -> None:
    from installer.pipeline import load_for_run

    # The top-level ssh section comes after the hosts, and is checked first.
    path = tmp_path / "answers.yaml"
    path.write_text(
        BASE.replace("ssh: {user: fmpadmin}\n", "").replace(
            "roles: [worker]}", "roles: [worker], ssh: {password_env: FMP_T_HOST}}"
        )
        + "ssh: {user: fmpadmin, sudo_password_env: FMP_T_SUDO}\n"
    )
    with pytest.raises(ProblemList) as info:
        load_for_run(path, {})
    found = [(p.line, p.path) for p in info.value.problems]
    assert found == [(8, "hosts[3].ssh.password_env"), (11, "ssh.sudo_password_env")]


def test_wipe_consent_under_another_name_is_a_warning_that_says_when_it_counts() -> None:
    text = (
        BASE.replace("roles: [worker]}", "roles: [worker], storage_disk: /dev/sdb}")
        + "storage: {wipe: ['kn3:serial:S3Z8NB0K123456A']}\n"
    )
    warnings = [p for p in check_answers(parse_answers(text)) if p.severity == "warning"]
    assert [p.message for p in warnings] == [
        "kn3's storage_disk is /dev/sdb, not serial:S3Z8NB0K123456A: the consent counts only "
        "if discovery finds that both name the same disk (a by-id link, WWN or serial of it); "
        "name /dev/sdb to be sure"
    ]
