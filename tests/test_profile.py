"""The profile loader: every kind of mistake is reported with the file and line."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from installer.profile import (
    ProfileError,
    available_profiles,
    load_profile,
    load_profile_from,
    load_profile_meta,
    parse_duration,
    parse_host_selector,
)

HEAD = """\
name: t
title: test
description: a test profile
versions: {kubernetes: "1.35"}
storage_backend: none
roles:
  control-plane: {min: 1}
  worker: {}
"""


def write(
    tmp_path: Path, steps: str, templates: dict[str, str] | None = None, extra: str = ""
) -> Path:
    d = tmp_path / "prof"
    (d / "templates").mkdir(parents=True)
    (d / "profile.yaml").write_text(HEAD + extra + "steps:\n" + textwrap.indent(steps, "  "))
    for name, text in (templates or {}).items():
        (d / "templates" / name).write_text(text)
    return d


def error_of(d: Path) -> str:
    with pytest.raises(ProfileError) as exc:
        load_profile_from(d)
    return str(exc.value)


def line_of(text: str, needle: str) -> int:
    for i, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            return i
    raise AssertionError(needle)


def test_a_valid_profile_loads(tmp_path: Path) -> None:
    d = write(
        tmp_path,
        """\
- id: a
  title: first
  on: all
  run: echo {{ host.name }}
- id: b
  title: second
  on: first(control-plane)
  needs: [a, a@all]
  files:
    - {template: f.j2, path: "/etc/{{ cluster.name }}.conf", mode: "0600", secret: true}
  run: cat /etc/x
  capture:
    - {name: x.token, regex: 'token (?P<value>\\S+)', secret: true}
""",
        {"f.j2": "{{ host.address }}\n"},
    )
    p = load_profile_from(d)
    assert [s.id for s in p.spec.steps] == ["a", "b"]
    assert p.step("b").on == "first(control-plane)"  # unquoted `on:` is not YAML's `true`
    assert p.step("b").files[0].mode_int == 0o600
    assert "x.token" in p.capture_names()


def test_unknown_key_names_file_and_line(tmp_path: Path) -> None:
    d = write(tmp_path, "- id: a\n  title: t\n  on: all\n  run: 'true'\n  retires: 3\n")
    msg = error_of(d)
    text = (d / "profile.yaml").read_text()
    assert f"profile.yaml:{line_of(text, 'retires')}:" in msg
    assert "unknown key 'retires'" in msg


def test_unknown_top_level_key(tmp_path: Path) -> None:
    d = write(tmp_path, "- {id: a, title: t, on: all, run: 'true'}\n", extra="stepz: []\n")
    msg = error_of(d)
    assert f"profile.yaml:{line_of((d / 'profile.yaml').read_text(), 'stepz')}:" in msg
    assert "unknown key 'stepz'" in msg


def test_unknown_role_in_on(tmp_path: Path) -> None:
    d = write(tmp_path, "- id: a\n  title: t\n  on: first(etcd)\n  run: 'true'\n")
    msg = error_of(d)
    assert f"profile.yaml:{line_of((d / 'profile.yaml').read_text(), 'first(etcd)')}:" in msg
    assert "unknown role 'etcd'" in msg


def test_bad_selector(tmp_path: Path) -> None:
    d = write(tmp_path, "- id: a\n  title: t\n  on: first[worker]\n  run: 'true'\n")
    assert "is not a host selector" in error_of(d)


def test_unknown_step_in_needs(tmp_path: Path) -> None:
    d = write(
        tmp_path,
        "- id: a\n  title: t\n  on: all\n  needs:\n    - b\n    - nope@all\n  run: 'true'\n"
        "- id: b\n  title: t\n  on: all\n  run: 'true'\n",
    )
    msg = error_of(d)
    text = (d / "profile.yaml").read_text()
    assert f"profile.yaml:{line_of(text, 'nope@all')}:" in msg
    assert "unknown step 'nope'" in msg


def test_bad_need_scope(tmp_path: Path) -> None:
    d = write(
        tmp_path,
        "- {id: a, title: t, on: all, run: 'true'}\n- {id: b, title: t, on: all, needs: [a@first], run: 'true'}\n",
    )
    assert "the only scope is @all" in error_of(d)


def test_cycle(tmp_path: Path) -> None:
    d = write(
        tmp_path,
        "- {id: a, title: t, on: all, needs: [c], run: 'true'}\n"
        "- {id: b, title: t, on: all, needs: [a@all], run: 'true'}\n"
        "- {id: c, title: t, on: all, needs: [b], run: 'true'}\n",
    )
    msg = error_of(d)
    assert "cycle" in msg
    assert "a -> c -> b -> a" in msg
    assert f"profile.yaml:{line_of((d / 'profile.yaml').read_text(), 'id: a,')}:" in msg


def test_unknown_variable_in_run_names_its_line(tmp_path: Path) -> None:
    d = write(
        tmp_path,
        "- id: a\n  title: t\n  on: all\n  run: |\n    echo one\n    echo {{ hostt.name }}\n",
    )
    msg = error_of(d)
    assert f"profile.yaml:{line_of((d / 'profile.yaml').read_text(), 'hostt')}:" in msg
    assert "unknown template variable 'hostt'" in msg


def test_unknown_variable_in_template_file(tmp_path: Path) -> None:
    d = write(
        tmp_path,
        "- id: a\n  title: t\n  on: all\n  files: [{template: x.conf.j2, path: /etc/x}]\n  run: 'true'\n",
        {
            "x.conf.j2": "line one\n{% for h in hosts %}{{ h.name }}{% endfor %}\nvip {{ netwrk.vip }}\n"
        },
    )
    msg = error_of(d)
    assert "templates/x.conf.j2:3:" in msg
    assert "unknown template variable 'netwrk'" in msg


def test_missing_template_file(tmp_path: Path) -> None:
    d = write(
        tmp_path,
        "- id: a\n  title: t\n  on: all\n  files: [{template: nope.j2, path: /etc/x}]\n  run: 'true'\n",
    )
    msg = error_of(d)
    assert "no template 'nope.j2'" in msg
    assert f"profile.yaml:{line_of((d / 'profile.yaml').read_text(), 'nope.j2')}:" in msg


def test_template_syntax_error(tmp_path: Path) -> None:
    d = write(
        tmp_path,
        "- id: a\n  title: t\n  on: all\n  files: [{template: x.j2, path: /etc/x}]\n  run: 'true'\n",
        {"x.j2": "ok\n{% if host.name %}\nunclosed\n"},
    )
    msg = error_of(d)
    assert "templates/x.j2:" in msg
    assert "syntax error" in msg


def test_unknown_capture(tmp_path: Path) -> None:
    d = write(
        tmp_path, "- id: a\n  title: t\n  on: all\n  run: |\n    echo {{ capture('no.such') }}\n"
    )
    msg = error_of(d)
    assert f"profile.yaml:{line_of((d / 'profile.yaml').read_text(), 'no.such')}:" in msg
    assert "capture 'no.such' is not captured by any step" in msg


def test_capture_regex_needs_a_group(tmp_path: Path) -> None:
    d = write(
        tmp_path,
        "- id: a\n  title: t\n  on: all\n  run: 'true'\n  capture:\n    - {name: x, regex: 'token \\S+'}\n",
    )
    msg = error_of(d)
    assert "needs a group" in msg
    assert f"profile.yaml:{line_of((d / 'profile.yaml').read_text(), 'regex')}:" in msg


def test_duplicate_step_id(tmp_path: Path) -> None:
    d = write(
        tmp_path,
        "- {id: a, title: t, on: all, run: 'true'}\n- {id: a, title: u, on: all, run: 'true'}\n",
    )
    assert "step id 'a' is already steps[0]" in error_of(d)


def test_yaml_error_has_a_line(tmp_path: Path) -> None:
    d = write(tmp_path, "- id: a\n  title: t\n  on: all\n  run: [unclosed\n")
    assert re.search(r"profile\.yaml:\d+: not valid YAML", error_of(d))


def test_bad_timeout_and_mode(tmp_path: Path) -> None:
    d = write(tmp_path, "- {id: a, title: t, on: all, run: 'true', timeout: soon}\n")
    assert "is not a duration" in error_of(d)
    d2 = write(
        tmp_path / "2",
        "- {id: a, title: t, on: all, run: 'true', files: [{template: x.j2, path: /x, mode: '999'}]}\n",
        {"x.j2": ""},
    )
    assert "octal file mode" in error_of(d2)


def test_bad_fresh_for(tmp_path: Path) -> None:
    d = write(tmp_path, "- {id: a, title: t, on: all, run: 'true', fresh_for: later}\n")
    assert "is not a duration" in error_of(d)


def test_option_default_must_be_a_choice(tmp_path: Path) -> None:
    d = write(
        tmp_path,
        "- {id: a, title: t, on: all, run: 'true'}\n",
        extra="options:\n  cni: {default: weave, choices: [calico, flannel]}\n",
    )
    assert "default 'weave' is not one of" in error_of(d)


def test_selectors() -> None:
    roles = [
        ("control-plane", "etcd"),
        ("control-plane",),
        ("control-plane",),
        ("worker",),
        ("worker", "lb"),
    ]
    assert parse_host_selector("all").select(roles) == [0, 1, 2, 3, 4]
    assert parse_host_selector("worker").select(roles) == [3, 4]
    assert parse_host_selector("first(control-plane)").select(roles) == [0]
    assert parse_host_selector("rest(control-plane)").select(roles) == [1, 2]
    assert parse_host_selector("worker & !lb").select(roles) == [3]
    assert parse_host_selector("etcd | worker").select(roles) == [0, 3, 4]
    assert parse_host_selector("first(storage)").select(roles) == []
    assert parse_host_selector("rest(control-plane) | first(worker)").roles == {
        "control-plane",
        "worker",
    }


def test_durations() -> None:
    assert parse_duration(600) == 600
    assert parse_duration("90s") == 90
    assert parse_duration("10m") == 600
    assert parse_duration("1h") == 3600
    with pytest.raises(ValueError):
        parse_duration("0")
    assert parse_duration("0s", zero=True) == 0  # fresh_for: 0 = stale at once
    with pytest.raises(ValueError, match="fresh_for must be 0 or more"):
        parse_duration(-5, what="fresh_for", zero=True)


@pytest.mark.parametrize("name", available_profiles())
def test_shipped_profiles_metadata_loads(name: str) -> None:
    assert load_profile_meta(name).name == name


def test_kubeadm_profile_loads_whole() -> None:
    p = load_profile("kubeadm-etcd")
    assert p.meta == load_profile_meta("kubeadm-etcd")
    assert {s.kind for s in p.spec.secrets} == {"ca", "password"}


def test_requirements_hugepages_and_kernel_modules(tmp_path: Path) -> None:
    extra_roles = HEAD.replace(
        "  worker: {}\n",
        "  worker:\n    requires: {hugepages_mib: 2048, kernel_modules: [nvme-tcp]}\n",
    )
    d = tmp_path / "ok"
    (d / "templates").mkdir(parents=True)
    (d / "profile.yaml").write_text(extra_roles + "steps: []\n")
    req = load_profile_from(d).meta.roles["worker"].requires
    assert (req.hugepages_mib, req.kernel_modules) == (2048, ("nvme_tcp",))  # '-' as modprobe
    for bad, message in (
        ("{kernel_modules: [zfs]}", "discovery does not probe kernel module zfs"),
        ("{hugepages_mib: 1025}", "not a whole number of 2 MiB huge pages"),
        ("{hugepages_mib: -2}", "greater than or equal to 0"),
    ):
        (d / "profile.yaml").write_text(
            HEAD.replace("  worker: {}\n", f"  worker:\n    requires: {bad}\n") + "steps: []\n"
        )
        text = error_of(d)
        assert message in text and "profile.yaml:9" in text, text


def test_microk8s_storage_role_asks_for_what_its_steps_set_up() -> None:
    """requires.hugepages_mib is the hugepages step's vm.nr_hugepages (2 MiB pages), and
    every node that loads nvme_tcp (the kernel-modules step, on all) requires it."""
    p = load_profile("microk8s-openebs")
    sysctl = (p.directory / "templates" / "sysctl-hugepages.conf.j2").read_text()
    pages = int(re.search(r"^vm\.nr_hugepages = (\d+)$", sysctl, re.MULTILINE).group(1))  # type: ignore[union-attr]
    assert p.meta.roles["storage"].requires.hugepages_mib == pages * 2
    assert {
        r for r, rule in p.meta.roles.items() if "nvme_tcp" in rule.requires.kernel_modules
    } == set(p.meta.roles)
