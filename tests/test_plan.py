"""The planner: DAG order, selectors, needs@all, input hashes, placeholders, masked secrets."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from installer.answers import Answers, parse_answers
from installer.hostfacts import BlockDevice, HostFacts, NetAddress, Nic
from installer.plan import PlanError, facts_by_label, make_plan, plan_json, plan_text
from installer.plan_model import capture_placeholder
from installer.problems import ProblemList
from installer.profile import Profile, load_profile_from
from installer.redact import Redactor
from installer.secrets import (
    SecretStore,
    ensure_secrets,
    load_secrets,
    redactor_for,
    save_secrets,
)
from tests.storage_helpers import blank, dev, system_disk

ANSWERS = """\
version: 1
cluster: {name: t}
profile: kubeadm-etcd
hosts:
  - {address: 10.0.0.1, name: a, roles: [control-plane, etcd, lb]}
  - {address: 10.0.0.2, name: b, roles: [control-plane, etcd, lb]}
  - {address: 10.0.0.3, name: c, roles: [control-plane, etcd, lb]}
  - {address: 10.0.0.4, name: d, roles: [worker]}
  - {address: 10.0.0.5, name: e, roles: [worker], storage_disk: /dev/sdb}
network: {vip: 10.0.0.100}
storage: {wipe: ["e:/dev/sdb"]}
"""

PROFILE = """\
name: t
title: test
description: a test profile
versions: {kubernetes: "1.35"}
storage_backend: none
roles:
  control-plane: {min: 1}
  etcd: {}
  worker: {}
  lb: {}
options:
  flavour: {default: plain, choices: [plain, fancy]}
secrets:
  - {name: pw, kind: password, length: 12}
result:
  storage_classes:
    - "local-{{ options.flavour }}"
    - "{% if options.flavour == 'fancy' %}fancy-rbd{% endif %}"
  checks: ["kubectl get nodes", "ssh {{ roles['control-plane'][0].address }} true"]
steps:
  - id: prep
    title: prep on {{ host.name }}
    on: all
    files:
      - {template: conf.j2, path: /etc/t.conf}
    run: echo prep
    check: "{{ files_ok }}"
  - id: init
    title: init
    on: first(control-plane)
    needs: [prep]
    run: |
      echo init --password {{ secrets.pw }}
    capture:
      - {name: join.token, regex: 'token (?P<value>\\S+)', secret: true}
  - id: join
    title: join
    on: rest(control-plane)
    serial: true
    needs: [prep, init@all]
    files:
      - {template: join.j2, path: /etc/join.yaml, mode: "0600", secret: true}
    run: kubeadm join --token {{ capture('join.token') }}
  - id: work
    title: worker join
    on: worker & !control-plane
    needs: [prep, join@all, init@all]
    run: echo join
  - id: fancy
    title: only when fancy
    on: worker
    when: options.flavour == 'fancy'
    run: echo fancy
  - id: wipe
    title: wipe the data disk
    on: worker
    when: host.storage_disk is not none
    destructive: true
    wipes: ["{{ host.storage_disk or '' }}"]
    run: wipefs -a {{ host.storage_disk }}
"""


def answers(text: str = ANSWERS) -> Answers:
    return parse_answers(text, semantic=False)


def profile(tmp_path: Path, text: str = PROFILE) -> Profile:
    d = tmp_path / "p"
    (d / "templates").mkdir(parents=True, exist_ok=True)
    (d / "profile.yaml").write_text(text)
    (d / "templates" / "conf.j2").write_text(
        "{% for h in hosts %}{{ h.address }} {{ h.name }}\n{% endfor %}pw={{ secrets.pw }}\n"
    )
    (d / "templates" / "join.j2").write_text("token: {{ capture('join.token') }}\n")
    return load_profile_from(d)


SECRETS = {"pw": "S3cretPassw0rd"}


def ids(plan: object) -> list[str]:
    return [t.id for t in plan.tasks]  # type: ignore[attr-defined]


def test_selectors_and_order(tmp_path: Path) -> None:
    plan = make_plan(answers(), profile(tmp_path), secrets=SECRETS)
    order = ids(plan)
    assert [t for t in order if t.endswith(":prep")] == [f"{h}:prep" for h in "abcde"]
    assert [t for t in order if t.endswith(":init")] == ["a:init"]
    assert [t for t in order if t.endswith(":join")] == ["b:join", "c:join"]
    assert [t for t in order if t.endswith(":work")] == ["d:work", "e:work"]
    assert not [t for t in order if t.endswith(":fancy")]  # when: false
    assert [t for t in order if t.endswith(":wipe")] == ["e:wipe"]
    pos = {t: i for i, t in enumerate(order)}
    for t in plan.tasks:
        for dep in t.needs:
            assert pos[dep] < pos[t.id], (dep, t.id)


def test_needs_same_host_and_at_all(tmp_path: Path) -> None:
    plan = make_plan(answers(), profile(tmp_path), secrets=SECRETS)
    assert plan.task("b:join").needs == ("b:prep", "a:init")
    assert plan.task("d:work").needs == ("d:prep", "a:init", "b:join", "c:join")
    assert plan.task("b:join").serial
    assert plan.task("a:prep").title == "prep on a"


def test_options_select_steps(tmp_path: Path) -> None:
    plan = make_plan(answers(), profile(tmp_path), secrets=SECRETS, options={"flavour": "fancy"})
    assert {"d:fancy", "e:fancy"} <= set(ids(plan))
    with pytest.raises(PlanError, match="no option 'colour'"):
        make_plan(answers(), profile(tmp_path), secrets=SECRETS, options={"colour": "x"})
    with pytest.raises(PlanError, match="is not one of"):
        make_plan(answers(), profile(tmp_path), secrets=SECRETS, options={"flavour": "odd"})


def test_placeholders(tmp_path: Path) -> None:
    plan = make_plan(answers(), profile(tmp_path), secrets=SECRETS)
    join = plan.task("b:join")
    ph = capture_placeholder("join.token")
    assert ph in join.run and ph in join.files[0].content
    assert join.uses == {"join.token"}
    assert plan.task("a:init").captures[0].name == "join.token"


def test_capture_without_need_is_refused(tmp_path: Path) -> None:
    text = PROFILE.replace("needs: [prep, init@all]", "needs: [prep]")
    with pytest.raises(PlanError, match=r"uses capture 'join\.token' but does not need step init"):
        make_plan(answers(), profile(tmp_path, text), secrets=SECRETS)


def test_input_hashes_are_stable_and_follow_inputs(tmp_path: Path) -> None:
    p = profile(tmp_path)
    one = make_plan(answers(), p, secrets=SECRETS)
    two = make_plan(answers(), p, secrets=SECRETS)
    assert [t.input_hash for t in one.tasks] == [t.input_hash for t in two.tasks]
    assert len({t.input_hash for t in one.tasks}) == len(one.tasks)
    # A new secret changes the tasks that render it, and everything after them.
    three = make_plan(answers(), p, secrets={"pw": "An0therPassword"})
    h1 = {t.id: t.input_hash for t in one.tasks}
    h3 = {t.id: t.input_hash for t in three.tasks}
    assert h1["a:init"] != h3["a:init"]
    assert h1["b:join"] != h3["b:join"]  # needs a:init
    # A new host address changes every prep (the conf lists all hosts) but not a's title.
    changed = answers(ANSWERS.replace("10.0.0.5", "10.0.0.6"))
    four = make_plan(changed, p, secrets=SECRETS)
    h4 = {t.id: t.input_hash for t in four.tasks}
    assert all(h1[f"{h}:prep"] != h4[f"{h}:prep"] for h in "abcde")


def test_hash_ignores_nothing_rendered(tmp_path: Path) -> None:
    text = PROFILE.replace("serial: true", "serial: false")
    a = make_plan(answers(), profile(tmp_path), secrets=SECRETS)
    b = make_plan(answers(), profile(tmp_path / "2", text), secrets=SECRETS)
    assert a.task("b:join").input_hash != b.task("b:join").input_hash
    assert a.task("a:prep").input_hash == b.task("a:prep").input_hash


def test_missing_secret(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="secrets not generated yet: pw"):
        make_plan(answers(), profile(tmp_path), secrets={})


def test_render_error_names_template_line(tmp_path: Path) -> None:
    p = profile(tmp_path)
    (p.templates_dir / "conf.j2").write_text("ok\n{{ host.nosuch }}\n")
    with pytest.raises(PlanError) as exc:
        make_plan(answers(), p, secrets=SECRETS)
    assert "templates/conf.j2:2:" in str(exc.value)
    assert "task a:prep" in str(exc.value)


def test_fail_helper(tmp_path: Path) -> None:
    p = profile(tmp_path)
    (p.templates_dir / "conf.j2").write_text(
        "{{ host.interface or fail('no interface for ' ~ host.name) }}\n"
    )
    with pytest.raises(PlanError, match="no interface for a"):
        make_plan(answers(), p, secrets=SECRETS)
    facts = {
        h: HostFacts(address=a, nics=(Nic("eth0", addresses=(NetAddress("inet", a, 24),)),))
        for h, a in zip("abcde", [f"10.0.0.{i}" for i in range(1, 6)], strict=True)
    }
    plan = make_plan(answers(), p, secrets=SECRETS, facts=facts)
    assert plan.task("a:prep").files[0].content == "eth0\n"


def test_secrets_masked_in_text_and_json(tmp_path: Path) -> None:
    p = profile(tmp_path)
    plan = make_plan(answers(), p, secrets=SECRETS)
    r = redactor_for(p.spec.secrets, SECRETS)
    text = plan_text(plan, r, answers())
    doc = json.dumps(plan_json(plan, r))
    assert SECRETS["pw"] not in text and SECRETS["pw"] not in doc
    assert "init --password ****" in text
    assert "pw=****" in doc
    # The secret file itself is never shown, even without its secret.
    assert plan_json(plan, r)["tasks"][ids(plan).index("b:join")]["files"][0]["content"] == "****"
    assert "WIPES /dev/sdb" in text
    assert "- e:/dev/sdb by step wipe (consent in storage.wipe)" in text


def test_plan_json_is_the_dag(tmp_path: Path) -> None:
    plan = make_plan(answers(), profile(tmp_path), secrets=SECRETS)
    doc = plan_json(plan, Redactor())
    tasks = {t["id"]: t for t in doc["tasks"]}
    assert tasks["d:work"]["needs"] == ["d:prep", "a:init", "b:join", "c:join"]
    assert tasks["b:join"]["uses"] == ["join.token"]
    assert tasks["e:wipe"]["destructive"] and tasks["e:wipe"]["wipes"] == ["/dev/sdb"]


# --------------------------------------------------------------------------- storage disks

SERIAL = "S3Z8NB0K123456A"
# The wipe step as a real profile writes it: the command on host.storage_device.
DEVICE_PROFILE = PROFILE.replace(
    "wipefs -a {{ host.storage_disk }}", "wipefs -a {{ host.storage_device }}"
)


def disk_answers(disk: str, consent: str | None = None) -> Answers:
    """The answers with e's storage_disk ``disk``, consent ``consent`` (default e:<disk>)."""
    text = ANSWERS.replace("storage_disk: /dev/sdb", f"storage_disk: {disk}")
    return answers(text.replace('"e:/dev/sdb"', f'"{consent or "e:" + disk}"'))


def disk_facts(*disks: BlockDevice) -> dict[str, HostFacts]:
    """Facts of host e: its system disk and ``disks``."""
    return {"e": HostFacts(address="10.0.0.5", disks=(system_disk(), *disks))}


def test_storage_device_is_the_path_commands_use(tmp_path: Path) -> None:
    p = profile(tmp_path, DEVICE_PROFILE)

    def run(disk: str, facts: dict[str, HostFacts] | None) -> str:
        return make_plan(disk_answers(disk), p, secrets=SECRETS, facts=facts).task("e:wipe").run

    # serial: -> the kernel path the facts give (the disk has no by-id link or WWN)
    assert run(f"serial:{SERIAL}", disk_facts(dev("sdc", 500, serial=SERIAL))) == (
        "wipefs -a /dev/sdc"
    )
    # /dev/sdX -> the disk's by-id link (WWN first) when the facts know one
    assert run("/dev/sdb", disk_facts(blank("sdb", 500))) == (
        "wipefs -a /dev/disk/by-id/wwn-0x5000c500a1b2c3d0"
    )
    # a by-id link stays as the answers give it; /dev paths without facts stay too
    link = "/dev/disk/by-id/ata-ST2000NM_ZC100000"
    assert run(link, disk_facts(blank("sdb", 500))) == f"wipefs -a {link}"
    assert run(link, None) == f"wipefs -a {link}"
    assert run("/dev/sdb", None) == "wipefs -a /dev/sdb"
    assert run("/dev/sdz", disk_facts(blank("sdb", 500))) == "wipefs -a /dev/sdz"  # preflight's
    # The wipe (and so the consent) names the disk as the answers do.
    plan = make_plan(
        disk_answers(f"serial:{SERIAL}"),
        p,
        secrets=SECRETS,
        facts=disk_facts(dev("sdc", 500, serial=SERIAL)),
    )
    assert plan.task("e:wipe").wipes == (f"serial:{SERIAL}",)
    assert not [t.id for t in plan.tasks if "serial:" in t.run + (t.check or "")]


def test_a_serial_the_facts_do_not_resolve_is_a_plan_error(tmp_path: Path) -> None:
    p = profile(tmp_path, DEVICE_PROFILE)
    a = disk_answers(f"serial:{SERIAL}")
    with pytest.raises(PlanError) as exc:
        make_plan(a, p, secrets=SECRETS)
    msg = str(exc.value)
    assert "profile.yaml" in msg and "(task e:wipe)" in msg
    assert f"e: storage_disk serial:{SERIAL} names a disk by its serial" in msg
    assert "there are no discovery facts for this host" in msg
    assert "--facts FILE" in msg and "/dev/disk/by-id/" in msg  # what to do
    no_disks = {"e": HostFacts(address="10.0.0.5")}
    with pytest.raises(PlanError, match="the discovery facts do not list this host's disks"):
        make_plan(a, p, secrets=SECRETS, facts=no_disks)
    other = disk_facts(dev("sdc", 500, serial="OTHER"))
    with pytest.raises(PlanError, match=f"no disk with serial {SERIAL} on this host"):
        make_plan(a, p, secrets=SECRETS, facts=other)
    twins = disk_facts(dev("sdc", 500, serial=SERIAL), dev("sdd", 500, serial=SERIAL))
    with pytest.raises(PlanError, match=f"serial:{SERIAL} names 2 disks"):
        make_plan(a, p, secrets=SECRETS, facts=twins)
    # Only a command that needs the device asks for it: the storage_disk text plans anyway.
    assert make_plan(a, profile(tmp_path), secrets=SECRETS).task("e:wipe").wipes == (
        f"serial:{SERIAL}",
    )


def test_wipe_consent_names_the_disk_by_any_of_its_names(tmp_path: Path) -> None:
    from installer.headless import unconsented_wipes

    p = profile(tmp_path, DEVICE_PROFILE)
    serial_only = disk_facts(dev("sdb", 500, serial=SERIAL))
    linked = disk_facts(blank("sdb", 500))  # by-id links, WWN and serial ZC100000
    for disk, consent, facts in [
        (f"serial:{SERIAL}", f"e:serial:{SERIAL}", serial_only),
        (f"serial:{SERIAL}", "e:/dev/sdb", serial_only),
        ("/dev/sdb", f"e:serial:{SERIAL}", serial_only),
        (f"serial:{SERIAL}", f"10.0.0.5:serial:{SERIAL}", serial_only),  # the host's address
        ("/dev/sdb", "e:/dev/disk/by-id/wwn-0x5000c500a1b2c3d0", linked),
        ("/dev/disk/by-id/ata-ST2000NM_ZC100000", "e:serial:ZC100000", linked),
    ]:
        a = disk_answers(disk, consent)
        assert a.storage.wipe == [consent]  # storage.wipe takes host:serial:SERIAL
        plan = make_plan(a, p, secrets=SECRETS, facts=facts)
        assert unconsented_wipes(plan, a.storage.wipe) == [], (disk, consent)
        as_named = "" if consent == f"e:{disk}" else f" as {consent}"
        assert f"- e:{disk} by step wipe (consent in storage.wipe{as_named})" in plan_text(
            plan, None, a
        )
    # Another disk, another host, or no facts to tell that two names are one disk: no consent.
    for consent, facts in [
        ("e:/dev/sdc", serial_only),
        (f"d:serial:{SERIAL}", serial_only),
        ("e:/dev/sdb", {}),
    ]:
        a = disk_answers(f"serial:{SERIAL}", consent)
        plan = make_plan(a, profile(tmp_path), secrets=SECRETS, facts=facts)
        assert unconsented_wipes(plan, a.storage.wipe) == [(f"e:serial:{SERIAL}", "e:wipe")]
        assert f"- e:serial:{SERIAL} by step wipe (NOT in storage.wipe)" in plan_text(plan, None, a)
    for bad in ("e:serial:", "e:serial: ", "e:sdb", "e"):
        with pytest.raises(ProblemList, match="host:/dev/path or host:serial:SERIAL"):
            answers(ANSWERS.replace('"e:/dev/sdb"', f'"{bad}"'))


def test_result_is_rendered_and_reported(tmp_path: Path) -> None:
    plan = make_plan(answers(), profile(tmp_path), secrets=SECRETS)
    assert plan.result.storage_classes == ("local-plain",)  # an empty rendering is dropped
    assert plan.result.checks == ("kubectl get nodes", "ssh 10.0.0.1 true")
    fancy = make_plan(answers(), profile(tmp_path), secrets=SECRETS, options={"flavour": "fancy"})
    assert fancy.result.storage_classes == ("local-fancy", "fancy-rbd")
    assert plan_json(plan, Redactor())["result"] == {
        "storage_classes": ["local-plain"],
        "checks": ["kubectl get nodes", "ssh 10.0.0.1 true"],
    }
    text = plan_text(plan)
    assert "## When it is done" in text and "storage classes: local-plain" in text
    assert "check: ssh 10.0.0.1 true" in text


def test_facts_by_label() -> None:
    a = answers()
    facts = [HostFacts(address="10.0.0.9", hostname="b"), HostFacts(address="10.0.0.1")]
    assert set(facts_by_label(a, facts)) == {"a", "b"}


def test_secret_store_roundtrip(tmp_path: Path) -> None:
    p = profile(tmp_path)
    values, made = ensure_secrets(p.spec.secrets)
    assert made == ["pw"] and len(values["pw"]) == 12
    again, made2 = ensure_secrets(p.spec.secrets, values)
    assert again == values and made2 == []
    path = tmp_path / "state" / "secrets.yaml"
    save_secrets(
        path, SecretStore(generated=values, captured={"join.token": "abcdef.0123456789abcdef"})
    )
    assert path.stat().st_mode & 0o777 == 0o600
    back = load_secrets(path)
    assert back.generated == values and back.captured["join.token"] == "abcdef.0123456789abcdef"


def test_ca_secret(tmp_path: Path) -> None:
    from cryptography import x509

    text = PROFILE.replace(
        "  - {name: pw, kind: password, length: 12}",
        "  - {name: pw, kind: password, length: 12}\n  - {name: ca, kind: ca, subject: test-ca}",
    )
    p = profile(tmp_path, text)
    values, made = ensure_secrets(p.spec.secrets)
    assert set(made) == {"pw", "ca.crt", "ca.key"}
    cert = x509.load_pem_x509_certificate(values["ca.crt"].encode())
    assert cert.subject.rfc4514_string() == "CN=test-ca"
    r = redactor_for(p.spec.secrets, values)
    key_line = values["ca.key"].splitlines()[3]
    assert r.redact(f"x {key_line} y") == "x **** y"
    assert r.redact(values["ca.crt"]) == values["ca.crt"]  # a certificate is public


def test_stream_redaction_across_chunks(tmp_path: Path) -> None:
    r = redactor_for(profile(tmp_path).spec.secrets, SECRETS)
    s = r.stream()
    # installer.redact (the runner's) masks each line's part of a secret cut by a line break.
    out = "\n".join(s.feed("password S3cret") + s.feed("Passw0rd done") + s.flush())
    assert "S3cret" not in out and "Passw0rd" not in out
    assert out.startswith("password ****") and out.endswith(" done")


def test_profile_text_dedent() -> None:
    # The test profile above is what docs/PROFILES.md describes; keep it loadable as written.
    assert textwrap.dedent(PROFILE) == PROFILE


# --------------------------------------------------------------------------- version formats

FORMATS = """\
version_formats:
  kubernetes: {pattern: '\\d+\\.\\d+\\.\\d+', example: "1.35.9", means: an exact patch release}
"""


def test_version_formats_refuse_an_override_of_the_wrong_form(tmp_path: Path) -> None:
    text = PROFILE.replace(
        'versions: {kubernetes: "1.35"}\n', 'versions: {kubernetes: "1.35.9"}\n' + FORMATS
    )
    p = profile(tmp_path, text)
    assert p.spec.versions == {"kubernetes": "1.35.9"}
    make_plan(answers(), p, secrets=SECRETS)  # the default fits
    bare = answers(ANSWERS + 'versions: {kubernetes: "1.34"}\n')
    with pytest.raises(PlanError) as exc:
        make_plan(bare, p, secrets=SECRETS)
    assert str(exc.value) == (
        "versions.kubernetes: '1.34' does not fit: it must be an exact patch release, e.g. 1.35.9"
    )
    # The minor of the pinned release names that release.
    assert p.spec.version_errors({"kubernetes": "1.35"}) == {}
    assert p.spec.effective_versions({"kubernetes": "1.35"}) == {"kubernetes": "1.35.9"}
    assert p.spec.version_errors({"kubernetes": "1.36.0", "etcd": "x"}) == {}  # no format: any


def test_version_formats_hold_for_the_profiles_own_default(tmp_path: Path) -> None:
    from installer.profile import ProfileError

    with pytest.raises(
        ProfileError, match=r"the profile's own default versions\.kubernetes: '1\.35' does not fit"
    ):
        profile(
            tmp_path,
            PROFILE.replace("storage_backend: none\n", FORMATS + "storage_backend: none\n"),
        )
    unknown = FORMATS.replace("  kubernetes:", "  etcd:")
    with pytest.raises(
        ProfileError, match=r"version_formats\.etcd: the profile pins no version 'etcd'"
    ):
        profile(
            tmp_path,
            PROFILE.replace("storage_backend: none\n", unknown + "storage_backend: none\n"),
        )
