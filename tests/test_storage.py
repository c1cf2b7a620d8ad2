"""The storage core: disk eligibility, stable ids, the catalogue and the estimate arithmetic.

Every hand-worked example writes its arithmetic out; sizes are GiB (2^30 bytes).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from installer.answers import Answers, Storage, Volume, parse_answers
from installer.discovery import DONE_MARKER, SCRIPT_MARKER, parse_discovery, render_section
from installer.facts import parse_lsblk
from installer.hostfacts import BlockDevice, HostFacts, Mount, SwapArea, VolumeGroup
from installer.problems import ProblemList
from installer.storage import (
    UnknownVolumeGroup,
    choose_vg,
    estimate_for_answers,
    facts_by_label,
    format_estimate,
    format_host_storage,
    resolve_storage_disks,
    stable_disk_ids,
)
from installer.storage_disks import (
    MIN_DISK_BYTES,
    classify_disk,
    device_path,
    device_path_for,
    disk_candidates,
    disk_id,
    resolve_disk,
    wipe_key_matches,
)
from installer.storage_estimate import (
    EstimateInput,
    estimate,
    pg_count,
    replicated_fit,
)
from installer.workloads import CatalogueError, load_catalogue, parse_catalogue, resolve_volumes
from tests.storage_helpers import GiB, blank, dev, host, node, part, pool, system_disk, vol

FIXTURES = Path(__file__).parent / "fixtures" / "lsblk-json"


def codes(reasons: tuple[object, ...]) -> set[str]:
    return {r.code for r in reasons}  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- eligibility


def judge(device, **facts_kw):  # type: ignore[no-untyped-def]
    return classify_disk("kn3", device, host(disks=(device,), **facts_kw))


def test_blank_disk_is_allowed_with_its_wwn_link() -> None:
    c = judge(blank("sdb", 200, 4))
    assert c.status == "allowed"
    assert c.reasons == () and c.wipe_reasons == ()
    assert c.disk_id.answer_path == "/dev/disk/by-id/wwn-0x5000c500a1b2c3d4"
    assert c.disk_id.stable


def test_system_disk_from_lsblk_mountpoints() -> None:
    c = judge(system_disk())
    assert c.status == "disallowed"
    assert "system-disk" in codes(c.reasons)
    assert "holds /, /boot/efi" in c.explain()


def test_system_disk_from_proc_mounts_when_lsblk_has_no_mountpoints() -> None:
    d = dev("sda", 100, children=(part("sda1", 100, fstype="ext4"),))
    c = judge(d, mounts=(Mount("/dev/sda1", "/", "ext4"),))
    assert "system-disk" in codes(c.reasons)


def test_system_disk_through_lvm() -> None:
    # Ubuntu's default layout: / on an LV in ubuntu-vg on sda3.
    lv = dev(
        "ubuntu--vg-ubuntu--lv",
        98,
        type="lvm",
        path="/dev/mapper/ubuntu--vg-ubuntu--lv",
        mountpoints=("/",),
    )
    d = dev("sda", 100, children=(part("sda3", 98, fstype="LVM2_member", children=(lv,)),))
    vg = VolumeGroup("ubuntu-vg", 98 * GiB, 0, ("/dev/sda3",))
    c = judge(d, vgs=(vg,))
    assert {"system-disk", "active-vg", "dm-child"} <= codes(c.reasons)


def test_mounted_data_disk() -> None:
    d = dev("sdb", 200, children=(part("sdb1", 200, fstype="xfs", mountpoints=("/data",)),))
    c = judge(d)
    assert codes(c.reasons) == {"mounted"}
    assert "sdb1 at /data" in c.explain()


def test_removable() -> None:
    assert codes(judge(dev("sdc", 64, removable=True)).reasons) == {"removable"}


def test_read_only() -> None:
    assert codes(judge(dev("sdc", 64, read_only=True)).reasons) == {"read-only"}


def test_under_5_gib_is_too_small_and_5_gib_is_enough() -> None:
    small = replace(dev("sdc", 5), size_bytes=MIN_DISK_BYTES - 1)
    assert codes(judge(small).reasons) == {"too-small"}
    assert judge(replace(small, size_bytes=MIN_DISK_BYTES)).status == "allowed"


def test_physical_volume_of_an_active_volume_group() -> None:
    d = dev("sdb", 200, fstype="LVM2_member")
    vg = VolumeGroup("vg_data", 200 * GiB, 87 * GiB, ("/dev/sdb",))
    c = judge(d, vgs=(vg,))
    assert c.status == "disallowed"
    assert "active-vg" in codes(c.reasons)
    assert "vg_data" in c.explain()


def test_active_swap_by_lsblk_and_by_proc_swaps() -> None:
    d = dev("sdd", 16, children=(part("sdd1", 16, fstype="swap", mountpoints=("[SWAP]",)),))
    assert codes(judge(d).reasons) == {"swap"}
    d2 = dev("sde", 16, children=(part("sde1", 16, fstype="swap"),))
    swap = SwapArea("/dev/sde1", "partition", 16 * GiB, 0)
    assert codes(judge(d2, swaps=(swap,)).reasons) == {"swap"}
    # A swap signature that is not in use is only data to wipe.
    assert judge(d2).status == "needs-wipe"


def test_device_mapper_children_lv_and_multipath_path() -> None:
    osd = dev("ceph--osd--block--1", 512, type="lvm", path="/dev/mapper/ceph--osd--block--1")
    c = judge(dev("sdd", 1024, children=(osd,)))
    assert "dm-child" in codes(c.reasons)
    assert "ceph-label" in codes(c.wipe_reasons)
    mpath = dev("mpatha", 60, type="mpath", path="/dev/mapper/mpatha")
    assert "dm-child" in codes(judge(dev("sdf", 60, children=(mpath,))).reasons)


def test_not_a_whole_disk() -> None:
    assert "not-a-disk" in codes(judge(dev("sr0", 1, type="rom")).reasons)
    assert "not-a-disk" in codes(judge(dev("loop0", 10, type="loop")).reasons)
    lv = dev("vg-lv", 10, type="lvm", path="/dev/mapper/vg-lv")
    assert "device-mapper" in judge(lv).explain()


@pytest.mark.parametrize(
    ("device", "code"),
    [
        (dev("sdb", 200, children=(part("sdb1", 100), part("sdb2", 100))), "partitions"),
        (dev("sdb", 200, fstype="xfs"), "filesystem"),
        (dev("sdb", 200, fstype="LVM2_member"), "lvm-label"),  # no active VG uses it
        (dev("sdb", 200, fstype="ceph_bluestore"), "ceph-label"),
    ],
)
def test_signatures_need_wipe_consent(device, code) -> None:  # type: ignore[no-untyped-def]
    c = judge(device)
    assert c.status == "needs-wipe"
    assert c.usable
    assert code in codes(c.wipe_reasons)


def test_lsblk_fixture_ceph_volume_tree() -> None:
    devs = parse_lsblk((FIXTURES / "ceph__paths-old-strings-lvm.json").read_text())
    assert devs is not None
    got = {c.device.name: c for c in disk_candidates(host(disks=devs))}
    assert codes(got["sda"].reasons) == {"mounted"}  # sda3 on /etc/hosts (a container)
    assert got["sdb"].status == "needs-wipe"
    assert codes(got["sdb"].wipe_reasons) == {"partitions"}
    assert got["sdc"].status == "allowed"
    assert "dm-child" in codes(got["sdd"].reasons)
    assert "ceph-label" in codes(got["sdd"].wipe_reasons)


def test_lsblk_fixture_small_disks() -> None:
    devs = parse_lsblk((FIXTURES / "ironic__blk-device-template-small.json").read_text())
    assert devs is not None
    got = disk_candidates(host(disks=devs))
    # sda 3116853504 B = 2.9 GiB; sdb 4294967295 B = 4 GiB - 1 byte: both under 5 GiB.
    assert [codes(c.reasons) for c in got] == [{"too-small"}, {"too-small"}]
    # No by-id, no WWN: the serial is the stable id.
    assert got[0].disk_id.kind == "serial" and got[0].disk_id.value == "123"
    assert got[0].disk_id.answer_path == "serial:123" and got[0].disk_id.stable


def test_lsblk_fixture_live_iso_vm() -> None:
    devs = parse_lsblk((FIXTURES / "rescuezilla__vbox-paths-bytes-small.json").read_text())
    assert devs is not None
    got = {c.device.name: c for c in disk_candidates(host(disks=devs))}
    assert {"not-a-disk", "mounted"} <= codes(got["loop0"].reasons)
    assert got["sda"].status == "allowed"  # 32 GiB, blank
    assert codes(got["sdb"].reasons) == {"too-small"}  # 1 GiB
    assert got["sdc"].wipe_reasons and "too-small" in codes(got["sdc"].reasons)
    assert "not-a-disk" in codes(got["sr0"].reasons)


def test_lsblk_fixture_captured_vm() -> None:
    devs = parse_lsblk((FIXTURES / "captured__debian12-vm-lsblk-JbO.json").read_text())
    assert devs is not None
    got = {c.device.name: c for c in disk_candidates(host(disks=devs))}
    assert codes(got["zram0"].reasons) == {"too-small"}  # 0 bytes
    assert "system-disk" in codes(got["vda"].reasons)


# Hand-made `lsblk -J -b -O` outputs (tests/fixtures/lsblk-json/SOURCES.md, "Hand-made"), parsed the way
# discovery parses a host's raw output, together with the other probes the rules read.


def discovered(fixture: str, **probes: str) -> HostFacts:
    raw = f"{SCRIPT_MARKER}\n" + render_section("lsblk", (FIXTURES / fixture).read_text().strip())
    for name, text in probes.items():
        raw += render_section(name, text)
    return parse_discovery("10.0.0.3", raw + f"{DONE_MARKER}\n")


def test_lsblk_fixture_usb_stick_is_removable() -> None:
    facts = discovered("handmade__usb-stick-removable.json")
    got = {c.device.name: c for c in disk_candidates(facts, "kn3")}
    stick = got["sdb"]
    assert stick.device.removable and stick.device.transport == "usb"
    assert stick.status == "disallowed"
    # a blank-looking 14.3 GiB stick: big enough, not mounted, but removable
    assert codes(stick.reasons) == {"removable"}
    assert codes(stick.wipe_reasons) == {"partitions", "filesystem"}  # its vfat partition
    assert "system-disk" in codes(got["sda"].reasons)


def test_lsblk_fixture_read_only_disk() -> None:
    facts = discovered("handmade__read-only-disk.json")
    got = {c.device.name: c for c in disk_candidates(facts, "kn3")}
    assert got["vdb"].device.read_only
    assert codes(got["vdb"].reasons) == {"read-only"}  # 100 GiB, blank, but ro=1
    assert got["vdb"].explain() == "disallowed: read-only device"


SWAPS = """\
Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority
/dev/sdb1                               partition\t16777212\t0\t\t-2
"""


def test_lsblk_fixture_swap_partition() -> None:
    facts = discovered("handmade__swap-partition.json", swaps=SWAPS)
    assert facts.swaps is not None and facts.swaps[0].path == "/dev/sdb1"
    got = {c.device.name: c for c in disk_candidates(facts, "kn3")}
    # sdb1 is active swap ([SWAP] in lsblk, and in /proc/swaps); sdb2 is an unmounted xfs
    assert codes(got["sdb"].reasons) == {"swap"}
    assert got["sdb"].explain() == "disallowed: active swap on sdb1"


VGS = """\
  {
      "report": [
          {
              "vg": [
                  {"vg_name":"ubuntu-vg", "vg_size":"252779757568", "vg_free":"145405575168", "pv_name":"/dev/sda3"},
                  {"vg_name":"vg_data", "vg_size":"429488340992", "vg_free":"418750922752", "pv_name":"/dev/sdb"},
                  {"vg_name":"vg_data", "vg_size":"429488340992", "vg_free":"418750922752", "pv_name":"/dev/sdc"}
              ]
          }
      ]
  }
"""


def test_lsblk_fixture_physical_volumes_of_an_active_vg() -> None:
    facts = discovered("handmade__lvm-pv-active-vg.json", vgs=VGS)
    assert facts.volume_groups is not None
    assert {vg.name: vg.pvs for vg in facts.volume_groups}["vg_data"] == ("/dev/sdb", "/dev/sdc")
    got = {c.device.name: c for c in disk_candidates(facts, "kn3")}
    # sdc: a whole-disk PV of vg_data that no LV uses yet; only the VG facts tell it is in use
    assert codes(got["sdc"].reasons) == {"active-vg"}
    # vg_data: 429488340992 B = 400.0 GiB, 418750922752 B = 390.0 GiB free
    assert "in volume group vg_data (/dev/sdc; 400.0 GiB, 390.0 GiB free)" in got["sdc"].explain()
    # sdb holds an LV of vg_data too
    assert codes(got["sdb"].reasons) == {"active-vg", "dm-child"}
    # Without the VG facts the label alone only asks for wipe consent.
    blind = discovered("handmade__lvm-pv-active-vg.json")
    assert blind.volume_groups is None
    sdc = {c.device.name: c for c in disk_candidates(blind, "kn3")}["sdc"]
    assert sdc.status == "needs-wipe" and codes(sdc.wipe_reasons) == {"lvm-label"}


# --------------------------------------------------------------------------- stable ids


def test_stable_id_prefers_wwn_link_then_wwn_then_serial() -> None:
    d = blank("sdb", 200, 4)
    assert disk_id(d).answer_path == "/dev/disk/by-id/wwn-0x5000c500a1b2c3d4"
    only_ata = replace(d, by_id=("/dev/disk/by-id/ata-ST2000NM_ZC100004",))
    assert disk_id(only_ata).answer_path == "/dev/disk/by-id/ata-ST2000NM_ZC100004"
    no_links = replace(d, by_id=())
    assert disk_id(no_links).kind == "wwn"
    assert disk_id(no_links).answer_path == "/dev/disk/by-id/wwn-0x5000c500a1b2c3d4"
    nvme = replace(no_links, wwn="eui.0025388b71b0f5a1")
    assert disk_id(nvme).answer_path == "/dev/disk/by-id/nvme-eui.0025388b71b0f5a1"
    serial_only = replace(no_links, wwn=None)
    assert (disk_id(serial_only).kind, disk_id(serial_only).answer_path) == (
        "serial",
        "serial:ZC100004",
    )
    assert disk_id(replace(serial_only, serial="  ")).kind == "kernel"


def serial_disk(name: str = "sdb", serial: str = "S3Z8NB0K123456A") -> BlockDevice:
    """A disk known only by its serial: no /dev/disk/by-id link, no WWN."""
    return dev(name, 200, serial=serial)


def test_serial_is_the_stable_id_of_a_disk_with_no_link_or_wwn() -> None:
    cands = disk_candidates(host(disks=(system_disk(), serial_disk())), "kn3")
    cand = cands[1]
    assert cand.disk_id.answer_path == "serial:S3Z8NB0K123456A" and cand.disk_id.stable
    assert "serial:S3Z8NB0K123456A" in cand.aliases()
    m = resolve_disk(cands, "serial:S3Z8NB0K123456A")
    assert m.candidate is cand and m.warning is None and m.error is None
    # /dev/sdb still works, with the serial as the better name
    m = resolve_disk(cands, "/dev/sdb")
    assert m.candidate is cand
    assert m.warning is not None and "use serial:S3Z8NB0K123456A instead" in m.warning
    m = resolve_disk(cands, "serial:NOPE")
    assert m.candidate is None and m.error is not None
    assert m.error.startswith("no disk with serial NOPE on this host")
    assert "serial:S3Z8NB0K123456A" in m.error  # the usable choice, by its id
    assert wipe_key_matches("kn3:serial:S3Z8NB0K123456A", {"kn3"}, cand)
    # commands get a device path, never the serial: form
    assert device_path(cand) == "/dev/sdb"
    assert device_path_for(host(disks=(serial_disk(),)), "serial:S3Z8NB0K123456A") == "/dev/sdb"
    assert device_path(disk_candidates(host(disks=(blank("sdc", 200, 4),)))[0]) == (
        "/dev/disk/by-id/wwn-0x5000c500a1b2c3d4"
    )


def test_a_serial_two_disks_share_names_neither() -> None:
    # e.g. two disks behind a USB bridge that reports its own serial
    cands = disk_candidates(
        host(disks=(serial_disk("sdb", "BRIDGE1"), serial_disk("sdc", "BRIDGE1")))
    )
    assert [c.disk_id.kind for c in cands] == ["kernel", "kernel"]
    m = resolve_disk(cands, "serial:BRIDGE1")
    assert m.candidate is None and m.error is not None
    assert "names 2 disks (/dev/sdb, /dev/sdc)" in m.error


def test_answers_accept_a_serial_storage_disk() -> None:
    base = "version: 1\ncluster: {name: k}\nprofile: microk8s-openebs\nhosts:\n"
    ok = parse_answers(
        base + "  - {address: 10.0.0.3, storage_disk: 'serial:S3Z8NB0K123456A'}\n", semantic=False
    )
    assert ok.hosts[0].storage_disk == "serial:S3Z8NB0K123456A"
    for bad in ("sdb", "'serial:'", "'serial: '"):
        with pytest.raises(ProblemList, match="serial:<SERIAL>"):
            parse_answers(
                base + f"  - {{address: 10.0.0.3, storage_disk: {bad}}}\n", semantic=False
            )


def test_estimate_with_a_disk_named_by_its_serial() -> None:
    answers = openebs_answers(disk="serial:SN-d0", features=["hybrid"])
    facts = {
        f"kn{i}": kloudspot_facts(i, data=dev("sdb", 200, serial=f"SN-d{i}")) for i in range(3)
    }
    est = estimate_for_answers(
        answers, facts, resolve_volumes(load_catalogue(), answers.storage)[0]
    )
    assert est.verdict == "ok", est.problems
    assert est.openebs is not None
    assert [(p.path, p.stable_id) for p in est.openebs.pools] == [
        ("/dev/sdb", f"serial:SN-d{i}") for i in range(3)
    ]
    assert stable_disk_ids(answers, facts) == {}  # already the stable id
    # given as /dev/sdb, --write records the serial
    sdx = openebs_answers(disk="/dev/sdb", features=["hybrid"])
    assert stable_disk_ids(sdx, facts) == {f"kn{i}": f"serial:SN-d{i}" for i in range(3)}


def test_resolve_by_id_sdx_partition_and_unknown() -> None:
    d = dev("sdb", 200, children=(part("sdb1", 200),), wwn="0x5000c500a1b2c3d4")
    cands = disk_candidates(host(disks=(system_disk(), d)))
    m = resolve_disk(cands, "/dev/disk/by-id/wwn-0x5000c500a1b2c3d4")
    assert m.candidate is not None and m.candidate.path == "/dev/sdb" and m.warning is None
    m = resolve_disk(cands, "/dev/sdb")
    assert m.candidate is not None
    assert m.warning is not None and "can change across reboots" in m.warning
    assert "/dev/disk/by-id/wwn-0x5000c500a1b2c3d4" in m.warning
    m = resolve_disk(cands, "/dev/sdb1")
    assert m.candidate is None and m.error is not None and "not a whole disk" in m.error
    m = resolve_disk(cands, "/dev/sdz")
    assert m.candidate is None and m.error is not None
    assert "/dev/disk/by-id/wwn-0x5000c500a1b2c3d4" in m.error  # the usable choice
    assert "/dev/sda " not in m.error  # the system disk is not offered


# --------------------------------------------------------------------------- catalogue


def test_catalogue_has_the_runbook_features() -> None:
    cat = load_catalogue()
    assert list(cat.features) == ["insights", "manage", "hybrid", "fmp"]
    assert cat.features["insights"].volumes == (
        "elasticsearch",
        "stream-state",
        "insights-db",
        "kafka",
        "zookeeper",
    )
    assert set(cat.features["fmp"].volumes) == {"fmp-data", "container-runtime"}


def test_kloudhybrid_transcript_literally_and_kloudinsights_with_labels_swapped() -> None:
    """The catalogue's shared/unshared split against the Kloudspot runbook's transcripts.

    `kloudspot init` with Kloudhybrid is reproduced literally ("Shared 0 GB,
    Unshared 20 GB"). `kloudspot storage estimate` with KloudInsights prints
    "Shared 20 GB, Unshared 14 GB": the catalogue gives shared 14 and unshared
    20 instead, because the only split of 10+10+10+2+2 consistent with the
    Kloudhybrid transcript puts elasticsearch and the insights database (20)
    on each node, so that transcript's labels are taken as swapped (see the
    comment at the top of assets/workloads.yaml).
    """
    cat = load_catalogue()
    vols, problems = resolve_volumes(cat, Storage(features=["insights"]))
    assert problems == []
    shared = sum(v.size_gib for v in vols if v.shared)
    local = sum(v.size_gib for v in vols if not v.shared)
    # state storage 10 + Kafka 2 + Zookeeper 2 = 14 shared;
    # elasticsearch 10 + insights database 10 = 20 on each node.
    assert (shared, local) == (14, 20)
    vols, _ = resolve_volumes(cat, Storage(features=["hybrid"]))
    # "Required: Shared 0 GB, Unshared 20 GB"
    assert sum(v.size_gib for v in vols if v.shared) == 0
    assert sum(v.size_gib for v in vols if not v.shared) == 20


def test_overrides_custom_volumes_and_shared_volumes_counted_once() -> None:
    cat = load_catalogue()
    storage = Storage(
        features=["insights", "hybrid"],
        volumes=[
            Volume(name="elasticsearch", size_gb=25),
            Volume(name="kafka", size_gb=4, replicas=2),
            Volume(name="reports", size_gb=5, shared=True),
            Volume(name="scratch", size_gb=1),
        ],
    )
    vols, problems = resolve_volumes(cat, storage)
    assert problems == []
    by = {v.name: v for v in vols}
    assert [v.name for v in vols].count("elasticsearch") == 1  # in both features
    assert (by["elasticsearch"].size_gib, by["elasticsearch"].source) == (25, "answers")
    assert (by["kafka"].size_gib, by["kafka"].replicas, by["kafka"].shared) == (4, 2, True)
    assert (by["reports"].shared, by["reports"].replicas, by["reports"].source) == (
        True,
        3,
        "custom",
    )
    assert (by["scratch"].shared, by["scratch"].replicas) == (False, 1)


def test_unknown_feature_and_override_of_a_disabled_feature() -> None:
    cat = load_catalogue()
    storage = Storage(features=["insight"], volumes=[Volume(name="mongodb", size_gb=3)])
    vols, problems = resolve_volumes(cat, storage)
    assert vols == []
    err = [p for p in problems if p.severity == "error"]
    assert len(err) == 1 and err[0].loc == ("storage", "features", 0)
    assert "did you mean 'insights'" in err[0].message
    warn = [p for p in problems if p.severity == "warning"]
    assert len(warn) == 1 and "'manage'" in warn[0].message


def test_catalogue_errors_name_the_line() -> None:
    text = "version: 1\nvolumes:\n  a: {title: A, size_gb: 1, shared: false}\nfeatures:\n  f:\n    title: F\n    volumes: [a, b]\n"
    with pytest.raises(CatalogueError, match=r"workloads.yaml:7: feature 'f' uses volume 'b'"):
        parse_catalogue(text)
    orphan = text.replace("[a, b]", "[a]").replace(
        "  a: {", "  z: {title: Z, size_gb: 1, shared: true}\n  a: {"
    )
    with pytest.raises(CatalogueError, match="volume 'z' belongs to no feature"):
        parse_catalogue(orphan)
    with pytest.raises(CatalogueError, match="size_gb"):
        parse_catalogue(text.replace("size_gb: 1", "size_gb: -1").replace("[a, b]", "[a]"))


def test_catalogue_says_which_nodes_keep_a_local_volume() -> None:
    cat = load_catalogue()
    # FMP runbook: /var/lib/docker (now containerd) on every node, control plane included
    assert cat.volumes["container-runtime"].placement == "all"
    assert cat.volumes["elasticsearch"].placement == "workers"  # the default
    vols, _ = resolve_volumes(cat, Storage(features=["fmp"]))
    assert {v.name: v.nodes for v in vols}["container-runtime"] == "all"
    one = "version: 1\nvolumes:\n  a: {title: A, size_gb: 1, shared: SHARED, nodes: NODES}\nfeatures:\n  f: {title: F, volumes: [a]}\n"
    assert (
        parse_catalogue(one.replace("SHARED", "false").replace("NODES", "all"))
        .volumes["a"]
        .placement
        == "all"
    )
    with pytest.raises(CatalogueError, match=r"workloads.yaml:3:.*nodes is for unshared volumes"):
        parse_catalogue(one.replace("SHARED", "true").replace("NODES", "all"))
    with pytest.raises(CatalogueError, match=r"volumes.a.nodes"):
        parse_catalogue(one.replace("SHARED", "false").replace("NODES", "everywhere"))


# --------------------------------------------------------------------------- Ceph, by hand


def ceph(disks, volumes, replicas=3, nodes=()):  # type: ignore[no-untyped-def]
    return estimate(
        EstimateInput("ceph", tuple(volumes), tuple(disks), tuple(nodes), replicas=replicas)
    )


THREE_OSDS = [pool("kn3", 200), pool("kn4", 200), pool("kn5", 200)]


def test_three_200_gib_osds_with_3_replicas() -> None:
    est = ceph(THREE_OSDS, [vol("fmp-data", 100, True)])
    c = est.ceph
    assert c is not None
    # raw = 3 x 200 = 600 GiB; usable = 600 x 0.85 / 3 = 170 GiB
    assert (c.osds, c.osd_hosts, c.raw_gib) == (3, 3, 600)
    assert c.usable_gib == pytest.approx(170)
    # PGs: 3 OSDs x 100 / 3 replicas = 100; powers 64 and 128: 100 - 64 = 36 > 128 - 100 = 28
    assert c.pg_num == 128
    # 100 shared x 3 = 300 raw; 100 / 170 = 58.8%: ok
    assert est.shared.required_raw_gib == 300
    assert est.shared.utilization == pytest.approx(100 / 170)
    assert est.verdict == "ok"
    # losing a 200 GiB host: (600 - 200) x 0.85 / 3 = 113.3 usable, but with 3 hosts for 3
    # replicas there is nowhere to re-replicate: degraded, not full.
    hl = c.host_loss
    assert hl is not None
    assert hl.usable_gib_after == pytest.approx(400 * 0.85 / 3)
    assert not hl.can_recover
    assert [p.code for p in est.problems] == ["host-loss-degraded"]
    d = est.to_dict()["ceph"]
    assert (d["osds"], d["raw_gib"], d["usable_gib"], d["replicas"], d["pg_num"]) == (
        3,
        600,
        170,
        3,
        128,
    )


def test_three_200_gib_osds_tight_and_insufficient() -> None:
    # 150 / 170 = 88.2% > 85%: tight
    est = ceph(THREE_OSDS, [vol("fmp-data", 150, True)])
    assert est.verdict == "tight"
    tight = next(p for p in est.problems if p.code == "ceph-tight")
    assert tight.severity == "warning"
    # 171 > 170: insufficient; raw needed = 171 x 3 / 0.85 = 603.53, so 3.53 GiB more
    est = ceph(THREE_OSDS, [vol("fmp-data", 171, True)])
    assert est.verdict == "insufficient"
    p = next(p for p in est.problems if p.code == "ceph-capacity")
    assert p.fix is not None and "add 3.5 GiB of OSD disks" in p.fix
    assert "shrink the shared volumes by 1.0 GiB" in p.fix
    assert "fmp-data 171 GiB" in p.fix


def test_ceph_host_loss_with_a_spare_host() -> None:
    four = [*THREE_OSDS, pool("kn6", 200)]
    # raw 800, usable 800 x 0.85 / 3 = 226.7; after losing one: 600 x 0.85 / 3 = 170
    est = ceph(four, [vol("fmp-data", 150, True)])
    assert est.verdict == "ok"  # 150 / 226.7 = 66%, and 150 <= 170 after a loss
    assert est.ceph is not None and est.ceph.host_loss is not None
    assert est.ceph.host_loss.can_recover and est.ceph.host_loss.fits
    # 180 / 226.7 = 79% would be ok, but after a loss 180 > 170: tight, with the numbers
    est = ceph(four, [vol("fmp-data", 180, True)])
    assert est.verdict == "tight"
    p = next(p for p in est.problems if p.code == "host-loss")
    assert "170.0 GiB" in p.message
    # 4 OSDs x 100 / 3 = 133.3 -> 128 (4% below)
    assert est.ceph is not None and est.ceph.pg_num == 128


def test_ceph_needs_as_many_osd_hosts_as_replicas() -> None:
    two_hosts = [pool("kn3", 500), pool("kn3", 500, "/dev/sdc"), pool("kn4", 500)]
    est = ceph(two_hosts, [vol("fmp-data", 1, True)])
    assert est.ceph is not None and (est.ceph.osds, est.ceph.osd_hosts) == (3, 2)
    assert est.verdict == "insufficient"
    p = next(p for p in est.problems if p.code == "osd-hosts-below-replicas")
    assert "only 2 hosts have an OSD disk" in p.message
    assert p.fix is not None and "1 more host" in p.fix
    # Two replicas fit two hosts.
    assert ceph(two_hosts, [vol("fmp-data", 1, True)], replicas=2).verdict == "ok"


@pytest.mark.parametrize(
    ("osds", "replicas", "pg"),
    [
        (3, 3, 128),  # 100: 128 is nearer than 64
        (4, 3, 128),  # 133.3: 128 is nearer and 4% below
        (6, 3, 256),  # 200: 256 is nearer (56 < 72)
        (9, 5, 256),  # 180: 128 is nearer but 28.9% below, so round up
        (5, 3, 128),  # 166.7: 128 is 23.2% below, keep it
        (32, 25, 128),  # exactly 128
        (1, 3, 32),  # 33.3
    ],
)
def test_pg_count_rule(osds: int, replicas: int, pg: int) -> None:
    got = pg_count(osds, replicas)
    assert got is not None and got[0] == pg
    assert pg_count(0, 3) is None


# --------------------------------------------------------------------------- OpenEBS, by hand


def openebs(pools, volumes, nodes=()):  # type: ignore[no-untyped-def]
    return estimate(EstimateInput("openebs", tuple(volumes), tuple(pools), tuple(nodes)))


KLOUDSPOT_NODES = [node("kn0", 87.1), node("kn1", 87.1), node("kn2", 87.1)]
INSIGHTS = [
    vol("elasticsearch", 10, False),
    vol("stream-state", 10, True),
    vol("insights-db", 10, False),
    vol("kafka", 2, True),
    vol("zookeeper", 2, True),
]


def test_kloudspot_layout_fits() -> None:
    pools = [pool("kn0", 106.9), pool("kn1", 106.9), pool("kn2", 106.9)]
    est = openebs(pools, INSIGHTS, KLOUDSPOT_NODES)
    # shared 10 + 2 + 2 = 14, x 3 replicas = 42 raw over 3 pools = 14 per pool of 106.9
    assert est.shared.required_gib == 14
    assert est.shared.required_raw_gib == 42
    assert est.openebs is not None and est.openebs.per_pool_required_gib == 14
    assert est.shared.available_gib == pytest.approx(106.9)
    # unshared 10 + 10 = 20 on each node; the tightest VG has 87.1 free: 23%
    assert est.unshared.required_gib_per_node == 20
    assert est.unshared.available_gib_tightest_node == pytest.approx(87.1)
    assert est.verdict == "ok"
    assert est.problems == ()


def test_node_whose_volume_group_is_too_small() -> None:
    pools = [pool("kn0", 100), pool("kn1", 100), pool("kn2", 100)]
    nodes = [node("kn0", 87.1), node("kn1", 87.1), node("kn2", 12)]
    est = openebs(pools, INSIGHTS, nodes)
    # each node needs 10 + 10 = 20; kn2's vg_data has 12 free: 20 > 12
    assert est.unshared.tightest_node == "kn2"
    assert est.unshared.available_gib_tightest_node == 12
    assert est.unshared.verdict == "insufficient"
    assert est.verdict == "insufficient"
    (p,) = [p for p in est.problems if p.code == "node-vg-too-small"]
    assert p.host == "kn2"
    # grow by 20 - 12 = 8 GiB, or shrink the local volumes by the same 8
    assert p.fix is not None and "grow vg_data on kn2 by 8.0 GiB" in p.fix
    assert "shrink the local volumes by 8.0 GiB" in p.fix
    # 18 free: 20 / 18 > 1 still; 23 free: 20 / 23 = 87% -> tight, 24 free: 83% -> ok
    assert openebs(pools, INSIGHTS, [*nodes[:2], node("kn2", 23)]).verdict == "tight"
    assert openebs(pools, INSIGHTS, [*nodes[:2], node("kn2", 24)]).verdict == "ok"


def test_node_without_a_volume_group() -> None:
    est = openebs([], [vol("db", 5, False)], [node("kn0", 50), node("kn1", 0, vg=None)])
    assert est.verdict == "insufficient"
    assert any(p.code == "no-volume-group" and p.host == "kn1" for p in est.problems)


def test_shared_volumes_with_more_replicas_than_pools() -> None:
    two = [pool("kn0", 100), pool("kn1", 100)]
    est = openebs(two, [vol("stream-state", 10, True, replicas=3)], KLOUDSPOT_NODES)
    # 3 replicas, each on its own pool, but only 2 pools
    assert est.verdict == "insufficient"
    p = next(p for p in est.problems if p.code == "replicas-exceed-pools")
    assert "wants 3 replicas" in p.message and "are 2 pools" in p.message
    assert p.fix is not None and "replicas: 2 for stream-state" in p.fix
    # the required raw is still 10 x 3 = 30
    assert est.shared.required_raw_gib == 30
    assert openebs(two, [vol("stream-state", 10, True, replicas=2)]).verdict == "ok"


def test_openebs_compares_per_pool_with_whole_replicas() -> None:
    # pools 300, 100, 100; one volume of 150 with 2 replicas.
    # total: 150 x 2 = 300 raw <= 500; the largest pool holds one copy, so the other two
    # must hold the second: 150 <= 100 + 100 (75%). But a copy is a whole volume: only one
    # pool is >= 150 GiB, and 2 are needed.
    pools = [pool("kn0", 300), pool("kn1", 100), pool("kn2", 100)]
    assert replicated_fit([300, 100, 100], [(150, 2)]) == pytest.approx(0.75)
    est = openebs(pools, [vol("big", 150, True, replicas=2)])
    assert est.verdict == "insufficient"
    assert any(p.code == "volume-exceeds-pools" for p in est.problems)
    # 90 fits: 90 x 2 = 180 <= 500, 90 <= 200, and pools of >= 90: three.
    assert openebs(pools, [vol("big", 90, True, replicas=2)]).verdict == "ok"


def test_kubeadm_has_local_volumes_only() -> None:
    est = estimate(
        EstimateInput(
            "none",
            (vol("db", 10, False), vol("state", 5, True)),
            (),
            (node("kn3", 40), node("kn4", 40)),
        )
    )
    # no cluster storage: both become local, 10 + 5 = 15 on each node
    assert est.shared.required_gib == 0
    assert est.unshared.required_gib_per_node == 15
    assert est.verdict == "ok"
    assert [p.code for p in est.problems] == ["no-shared-backend"]
    assert est.ceph is None and est.openebs is None


def test_invalid_replicas_are_rejected() -> None:
    with pytest.raises(ValueError, match="min_size"):
        estimate(EstimateInput("ceph", (), replicas=2, min_size=3))


# --------------------------------------------------------------------------- properties

sizes = st.floats(min_value=0.5, max_value=2000, allow_nan=False, allow_infinity=False)
disk_sizes = st.integers(min_value=5, max_value=4000)
hosts_ = st.sampled_from(["kn0", "kn1", "kn2", "kn3", "kn4"])
volumes_ = st.lists(
    st.builds(
        vol,
        st.sampled_from(["a", "b", "c", "d"]),
        sizes,
        st.booleans(),
        st.integers(1, 4),
        st.sampled_from(["workers", "all"]),
    ),
    max_size=5,
    unique_by=lambda v: v.name,
)
pools_ = st.lists(st.builds(pool, hosts_, disk_sizes), max_size=6)
nodes_ = st.lists(
    st.builds(node, hosts_, st.integers(0, 3000).map(float), workload=st.booleans()),
    max_size=4,
    unique_by=lambda n: n.host,
)
inputs = st.builds(
    EstimateInput,
    st.sampled_from(["ceph", "openebs", "none"]),
    volumes_.map(tuple),
    pools_.map(tuple),
    nodes_.map(tuple),
    st.integers(1, 4),
    st.just(1),
)
RANK = {"ok": 0, "tight": 1, "insufficient": 2}


@settings(max_examples=300, deadline=None)
@given(inputs, st.builds(pool, hosts_, disk_sizes))
def test_adding_a_disk_never_lowers_usable(inp: EstimateInput, extra) -> None:  # type: ignore[no-untyped-def]
    before = estimate(inp)
    after = estimate(replace(inp, disks=(*inp.disks, extra)))
    assert after.shared.available_gib >= before.shared.available_gib - 1e-9
    if before.ceph is not None and after.ceph is not None:
        assert after.ceph.usable_gib >= before.ceph.usable_gib


@settings(max_examples=300, deadline=None)
@given(inputs, st.integers(0, 4), st.floats(min_value=0.01, max_value=5000))
def test_raising_a_size_never_turns_insufficient_into_ok(
    inp: EstimateInput, i: int, more: float
) -> None:
    if not inp.volumes:
        return
    i %= len(inp.volumes)
    bigger = list(inp.volumes)
    bigger[i] = replace(bigger[i], size_gib=bigger[i].size_gib + more)
    before = estimate(inp).verdict
    after = estimate(replace(inp, volumes=tuple(bigger))).verdict
    assert not (before == "insufficient" and after == "ok")
    assert RANK[after] >= RANK[before]  # the verdict never improves at all


@settings(max_examples=300, deadline=None)
@given(inputs, st.integers(0, 4))
def test_more_replicas_never_lowers_required_raw(inp: EstimateInput, i: int) -> None:
    before = estimate(inp).shared.required_raw_gib
    assert estimate(replace(inp, replicas=inp.replicas + 1)).shared.required_raw_gib >= before
    if inp.volumes:
        i %= len(inp.volumes)
        vols = list(inp.volumes)
        vols[i] = replace(vols[i], replicas=vols[i].replicas + 1)
        assert estimate(replace(inp, volumes=tuple(vols))).shared.required_raw_gib >= before


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(1, 1000).map(float), max_size=6),
    st.lists(st.tuples(sizes, st.integers(1, 4)), max_size=4),
    st.integers(1, 1000).map(float),
)
def test_replicated_fit_never_worsens_with_another_pool(caps, vols, extra) -> None:  # type: ignore[no-untyped-def]
    assert replicated_fit([*caps, extra], vols) <= replicated_fit(caps, vols) + 1e-12


# --------------------------------------------------------------------------- from answers


def openebs_answers(disk: str = "/dev/disk/by-id/wwn-0x5000c500a1b2c3d0", **storage) -> Answers:  # type: ignore[no-untyped-def]
    hosts = [
        {
            "address": f"10.0.0.{i}",
            "name": f"kn{i}",
            "roles": ["control-plane", "storage"],
            "storage_disk": disk.replace("d0", f"d{i}"),
        }
        for i in range(3)
    ]
    return Answers.model_validate(
        {
            "cluster": {"name": "k"},
            "profile": "microk8s-openebs",
            "hosts": hosts,
            "network": {"vip": "10.0.0.100"},
            "storage": storage,
        }
    )


def kloudspot_facts(i: int, *, vg_free: float = 87.1, data: object = None):  # type: ignore[no-untyped-def]
    vg = VolumeGroup("vg_data", int(93.1 * GiB), int(vg_free * GiB), ("/dev/sda3",))
    sda = dev(
        "sda",
        100,
        children=(
            part("sda2", 6, fstype="ext4", mountpoints=("/",)),
            part("sda3", 93.1, fstype="LVM2_member"),
        ),
    )
    return host(
        f"10.0.0.{i}",
        hostname=f"kn{i}",
        disks=(sda, data if data is not None else blank("sdb", 200, i)),
        vgs=(vg,),
    )


def test_estimate_for_answers_resolves_disks_and_nodes() -> None:
    answers = openebs_answers(features=["insights"])
    facts = {f"kn{i}": kloudspot_facts(i) for i in range(3)}
    vols, _ = resolve_volumes(load_catalogue(), answers.storage)
    est = estimate_for_answers(answers, facts, vols)
    assert est.backend == "openebs"
    assert est.openebs is not None
    assert [(p.host, p.path, p.size_bytes) for p in est.openebs.pools] == [
        (f"kn{i}", "/dev/sdb", 200 * GiB) for i in range(3)
    ]
    # the VG on sda3 is used for local volumes; 20 of 87.1 per node
    assert {n.vg for n in est.unshared.nodes} == {"vg_data"}
    assert est.verdict == "ok", est.problems
    text = "\n".join(format_estimate(est))
    assert "Required: Shared 14.0 GiB, Unshared 20.0 GiB per node" in text
    assert "Verdict: ok - The configuration looks OK" in text
    assert "Remember each node needs this amount of storage" in text


def test_answers_problems_disallowed_unstable_and_unconsented_disks() -> None:
    answers = openebs_answers(disk="/dev/sdb", features=["insights"])
    mounted = dev("sdb", 200, children=(part("sdb1", 200, mountpoints=("/srv",)),))
    used = dev("sdb", 200, wwn="0x5000c500a1b2c3d2", fstype="xfs")
    facts = {
        "kn0": kloudspot_facts(0),
        "kn1": kloudspot_facts(1, data=mounted),
        "kn2": kloudspot_facts(2, data=used),
    }
    est = estimate_for_answers(
        answers, facts, resolve_volumes(load_catalogue(), answers.storage)[0]
    )
    by = {(p.code, p.host) for p in est.problems}
    assert ("unstable-disk-name", "kn0") in by
    assert ("disk-disallowed", "kn1") in by
    assert ("wipe-consent-missing", "kn2") in by
    assert est.verdict == "insufficient"  # 2 pools left for 3 replicas
    assert est.openebs is not None and len(est.openebs.pools) == 2
    consent = answers.model_copy(
        update={"storage": answers.storage.model_copy(update={"wipe": ["kn2:/dev/sdb"]})}
    )
    est2 = estimate_for_answers(consent, facts, [])
    assert ("wipe-consent-missing", "kn2") not in {(p.code, p.host) for p in est2.problems}
    assert stable_disk_ids(answers, facts) == {
        "kn0": "/dev/disk/by-id/wwn-0x5000c500a1b2c3d0",
        "kn2": "/dev/disk/by-id/wwn-0x5000c500a1b2c3d2",
    }


def test_missing_facts_are_reported_not_guessed() -> None:
    answers = openebs_answers(features=["insights"])
    facts = {"kn0": kloudspot_facts(0), "kn1": kloudspot_facts(1)}
    est = estimate_for_answers(
        answers, facts, resolve_volumes(load_catalogue(), answers.storage)[0]
    )
    assert est.verdict == "insufficient"
    assert {(p.code, p.host) for p in est.problems} >= {
        ("disks-unknown", "kn2"),
        ("vgs-unknown", "kn2"),
    }


def test_no_facts_says_so_and_what_to_do() -> None:
    answers = openebs_answers(features=["insights"])
    facts = {"kn0": kloudspot_facts(0), "kn1": kloudspot_facts(1)}
    host_disks, _, problems = resolve_storage_disks(answers, facts)
    kn2 = host_disks[2]
    assert kn2.match is None and kn2.problem is not None
    p = kn2.problem
    assert p.code == "disks-unknown" and p in problems
    assert p.message == (
        "kn2: cannot check /dev/disk/by-id/wwn-0x5000c500a1b2c3d2: its disks are unknown "
        "(no facts were found for kn2)"
    )
    assert p.fix is not None
    assert "with --from-raw DIR, DIR needs 10.0.0.2.txt or kn2.txt" in p.fix


def test_disk_not_found_lists_the_hosts_usable_disks() -> None:
    answers = openebs_answers(disk="/dev/disk/by-id/wwn-0xnothere-d0", features=["hybrid"])
    facts = {f"kn{i}": kloudspot_facts(i) for i in range(3)}
    est = estimate_for_answers(answers, facts, [])
    p = next(p for p in est.problems if p.code == "disk-not-found" and p.host == "kn0")
    assert p.fix == (
        "choose one of kn0's usable disks: /dev/disk/by-id/wwn-0x5000c500a1b2c3d0 (200.0 GiB)"
    )


def test_a_vg_named_on_no_host_is_bad_input() -> None:
    answers = openebs_answers(features=["hybrid"])
    facts = {f"kn{i}": kloudspot_facts(i) for i in range(3)}
    vols = resolve_volumes(load_catalogue(), answers.storage)[0]
    with pytest.raises(UnknownVolumeGroup) as info:
        estimate_for_answers(answers, facts, vols, vg="nosuch")
    assert (
        info.value.message == "no host has a volume group nosuch; found: vg_data on kn0, kn1, kn2"
    )
    assert info.value.exit_code == 2
    # a host whose VGs are unknown is said to be unknown, not to lack it
    with pytest.raises(UnknownVolumeGroup, match=r"the volume groups of kn2 are unknown"):
        estimate_for_answers(answers, {"kn0": facts["kn0"], "kn1": facts["kn1"]}, vols, vg="x")
    # no host's VGs known: nothing to tell; each node reports its unknown VGs
    est = estimate_for_answers(answers, {}, vols, vg="nosuch")
    assert {p.code for p in est.problems if p.host == "kn0"} == {"disks-unknown", "vgs-unknown"}


def test_a_vg_missing_on_some_hosts_is_one_problem_per_node() -> None:
    answers = openebs_answers(features=["hybrid"])
    other = VolumeGroup("vg_other", 100 * GiB, 90 * GiB, ("/dev/sda3",))
    facts = {f"kn{i}": kloudspot_facts(i) for i in range(3)}
    facts["kn2"] = replace(facts["kn2"], volume_groups=(other,))
    vols = resolve_volumes(load_catalogue(), answers.storage)[0]
    est = estimate_for_answers(answers, facts, vols, vg="vg_data")
    assert est.verdict == "insufficient"
    kn2 = [p for p in est.problems if p.host == "kn2"]
    assert [p.code for p in kn2] == ["vg-not-found"]  # not also "no-volume-group"
    assert kn2[0].message == "kn2 has no volume group vg_data (it has: vg_other)"
    assert kn2[0].fix == (
        "create vg_data on kn2 (vgcreate vg_data <disk>), or leave out --vg to use each node's largest"
    )
    # without --vg, kn2 has no volume group at all: that problem, once
    facts["kn2"] = replace(facts["kn2"], volume_groups=())
    est = estimate_for_answers(answers, facts, vols)
    assert [p.code for p in est.problems if p.host == "kn2"] == ["no-volume-group"]


def rke_answers(features: list[str]) -> Answers:
    roles = [["control-plane", "ceph-mon"]] * 3 + [["worker", "storage"]] * 3
    return Answers.model_validate(
        {
            "cluster": {"name": "fmp"},
            "profile": "rke-ceph",
            "hosts": [
                {
                    "address": f"10.0.0.{i}",
                    "name": f"kn{i}",
                    "roles": r,
                    **(
                        {"storage_disk": f"/dev/disk/by-id/wwn-0x5000c500a1b2c3d{i}"}
                        if i > 2
                        else {}
                    ),
                }
                for i, r in enumerate(roles)
            ],
            "network": {"vip": "10.0.0.100"},
            "storage": {"features": features},
        }
    )


def test_local_volumes_on_every_node_or_on_the_workers() -> None:
    # rke-ceph: kn0-kn2 control plane, kn3-kn5 workers. container-runtime (30) is on every
    # node; elasticsearch and insights-db (10 + 10, Kloudhybrid) only on the workers.
    answers = rke_answers(["fmp", "hybrid"])
    facts = {f"kn{i}": kloudspot_facts(i, vg_free=40 if i == 1 else 87.1) for i in range(6)}
    vols = resolve_volumes(load_catalogue(), answers.storage)[0]
    est = estimate_for_answers(answers, facts, vols)
    u = est.unshared
    assert [(n.host, n.workload) for n in u.nodes] == [
        ("kn0", False),
        ("kn1", False),
        ("kn2", False),
        ("kn3", True),
        ("kn4", True),
        ("kn5", True),
    ]
    # a worker needs 30 + 10 + 10 = 50; a control-plane node 30
    assert u.required_gib_per_node == 50
    assert u.required_gib_by_node == (30, 30, 30, 50, 50, 50)
    # kn1: 30 of 40 = 75% is the tightest; a worker: 50 of 87.1 = 57%
    assert (u.tightest_node, u.required_gib_tightest_node) == ("kn1", 30)
    assert u.utilization == pytest.approx(30 / 40)
    assert u.verdict == "ok"
    d = est.to_dict()["unshared"]
    assert [(n["host"], n["required_gib"]) for n in d["nodes"]][:4] == [
        ("kn0", 30.0),
        ("kn1", 30.0),
        ("kn2", 30.0),
        ("kn3", 50.0),
    ]
    text = "\n".join(format_estimate(est))
    assert "container-runtime     30.0 GiB  local, on every node  (fmp)" in text
    assert "elasticsearch         10.0 GiB  local, on each workload node  (hybrid)" in text
    assert "Unshared (each node): 30.0 GiB of 40.0 GiB on kn1 = 75% -> ok" in text
    assert "  kn1: vg_data, 40.0 GiB free, needs 30.0 GiB" in text
    # kn1 with 25 free: 30 > 25, and the problem gives kn1's own need
    facts["kn1"] = kloudspot_facts(1, vg_free=25)
    est = estimate_for_answers(answers, facts, vols)
    (p,) = [p for p in est.problems if p.code == "node-vg-too-small"]
    assert p.host == "kn1"
    assert p.message == (
        "kn1: volume group vg_data has 25.0 GiB free; it needs 30.0 GiB for the local volumes "
        "every node keeps (container-runtime 30 GiB)"
    )
    # Before: only the workers were checked, so kn1 was never looked at.
    only_workers = [replace(v, nodes="workers") for v in vols]
    assert estimate_for_answers(answers, facts, only_workers).verdict == "ok"


def test_facts_by_label_matches_address_then_hostname() -> None:
    answers = openebs_answers()
    facts = [host("10.0.0.0"), host("192.168.9.9", hostname="kn1")]
    got = facts_by_label(answers, facts)
    assert set(got) == {"kn0", "kn1"}


def test_choose_vg_skips_the_pool_disk() -> None:
    f = host(
        vgs=(
            VolumeGroup("big", 500 * GiB, 400 * GiB, ("/dev/sdb",)),
            VolumeGroup("small", 50 * GiB, 30 * GiB, ("/dev/sda3",)),
        )
    )
    assert choose_vg(f).name == "big"  # type: ignore[union-attr]
    assert choose_vg(f, exclude_paths={"/dev/sdb"}).name == "small"  # type: ignore[union-attr]
    assert choose_vg(f, name="nope") is None


def test_host_storage_text_shows_vgs_and_tree() -> None:
    f = kloudspot_facts(0)
    lines = format_host_storage("kn0", f, disk_candidates(f, "kn0"))
    text = "\n".join(lines)
    assert "-  vg_data (93.1 GiB - 87.1 GiB free)" in text
    assert "   on /dev/sda3" in text
    assert "Total Free space: 87.1 GiB" in text
    assert "/dev/sda (100G)  [disallowed: system disk (holds /)" in text
    assert "  /dev/sda2 (6G) mounted as /" in text
    assert "/dev/sdb (200G)  [usable as /dev/disk/by-id/wwn-0x5000c500a1b2c3d0]" in text


# --------------------------------------------------------------------------- write-back


def test_update_answers_keeps_comments_layout_and_block_entries() -> None:
    from installer.storage_answers import update_answers_text

    text = """\
version: 1
hosts:
    - address: 10.0.0.3   # a worker
      name: kn3
      storage_disk: /dev/sdb    # was sdb at install time
storage:
    # which features
    features:
        - manage
    volumes:
        - name: mongodb     # the database
          size_gb: 10
    wipe:
        - kn3:/dev/sdb
"""
    out = update_answers_text(
        text,
        features=["insights", "manage"],
        sizes={"mongodb": 15, "kafka": 2, "elasticsearch": 20},
        defaults={"mongodb": 10, "kafka": 2, "elasticsearch": 10},
        disk_ids={"kn3": "/dev/disk/by-id/wwn-0x1"},
    )
    assert (
        out
        == """\
version: 1
hosts:
    - address: 10.0.0.3   # a worker
      name: kn3
      storage_disk: /dev/disk/by-id/wwn-0x1 # was sdb at install time
storage:
    # which features
    features:
        - insights
        - manage
    volumes:
        - name: mongodb     # the database
          size_gb: 15
        - name: elasticsearch
          size_gb: 20
    wipe:
        - kn3:/dev/disk/by-id/wwn-0x1
"""
    )


def test_update_answers_drops_overrides_and_keeps_custom_volumes() -> None:
    from installer.storage_answers import update_answers_text

    text = """\
storage:
  features: [insights, manage]
  volumes:
    - {name: mongodb, size_gb: 15}     # KloudManage's database
    - {name: reports, size_gb: 5, shared: true}   # our own
    - {name: elasticsearch, size_gb: 20}
"""
    out = update_answers_text(text, features=["insights"], drop=["mongodb"])
    assert (
        out
        == """\
storage:
  features: [insights]
  volumes:
    - {name: reports, size_gb: 5, shared: true}   # our own
    - {name: elasticsearch, size_gb: 20}
"""
    )
    out = update_answers_text(text, features=[], drop=["mongodb", "elasticsearch"])
    assert "mongodb" not in out and "elasticsearch" not in out and "reports" in out
    only = "storage:\n  features: [manage]\n  volumes:\n    - name: mongodb\n      size_gb: 15\n"
    assert update_answers_text(only, features=[], drop=["mongodb"]) == (
        "storage:\n  features: []\n  volumes: []\n"
    )


def test_ceph_volumes_take_the_pool_size() -> None:
    est = ceph(THREE_OSDS, [vol("a", 10, True, replicas=2), vol("b", 5, False)], replicas=3)
    assert [v.replicas for v in est.volumes] == [3, 1]
    # 10 x 3 (the pool size, not the volume's 2) = 30 raw
    assert est.shared.required_raw_gib == 30
    assert any(p.code == "ceph-pool-replicas" for p in est.problems)
