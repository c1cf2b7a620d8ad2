"""ceph (status, orch, osd, auth, mon) and rbd: one Ceph cluster shared by the lab in D/state/ceph.json."""

from __future__ import annotations

import base64
import json
import re
import time
from pathlib import Path
from typing import Any

from installer.lab.shims import base, render
from installer.lab.shims.base import die, err, out

CEPH = "ceph"
VERSION = "19.2.3"
PEERS = base.LAB / "peers"


def _key() -> str:
    raw = b"\x01\x00" + bytes.fromhex(base.rand_hex(24)) + bytes(16)
    return base64.b64encode(raw[:28]).decode()


def _need_cluster() -> dict[str, Any]:
    conf = base.read_node_file("/etc/ceph/ceph.conf")
    st = base.peek_cluster(CEPH)
    if conf is None:
        die(
            "Error initializing cluster client: ObjectNotFound('RADOS object not found (error calling conf_read_file)')",
            1,
        )
    if (
        base.read_node_file("/etc/ceph/ceph.client.admin.keyring") is None
        or not st.get("fsid")
        or st["fsid"] not in conf
    ):
        die("[errno 2] RADOS object not found (error connecting to the cluster)", 1)
    return st  # type: ignore[no-any-return]


def _health(st: dict[str, Any]) -> tuple[str, list[str]]:
    checks = []
    osds = len(st.get("osds", []))
    size = 3
    if osds < size:
        checks.append(f"OSD count {osds} < osd_pool_default_size {size}")
    for p in st.get("pools", {}).values():
        if not p.get("application"):
            checks.append("1 pool(s) do not have an application enabled")
            break
    return ("HEALTH_OK" if not checks else "HEALTH_WARN"), checks


def _status(st: dict[str, Any], fmt: str | None) -> None:
    health, checks = _health(st)
    osds = st.get("osds", [])
    total = sum(o["size"] for o in osds)
    pools = st.get("pools", {})
    pgs = sum(int(p.get("pg_num", 1)) for p in pools.values())
    if fmt and fmt.startswith("json"):
        out(
            json.dumps(
                {
                    "fsid": st["fsid"],
                    "health": {
                        "status": health,
                        "checks": {
                            f"CHECK{i}": {"summary": {"message": c}} for i, c in enumerate(checks)
                        },
                    },
                    "quorum_names": st.get("mons", []),
                    "osdmap": {
                        "num_osds": len(osds),
                        "num_up_osds": len(osds),
                        "num_in_osds": len(osds),
                    },
                    "pgmap": {"num_pools": len(pools), "num_pgs": pgs, "bytes_total": total},
                    "monmap": {"num_mons": len(st.get("mons", []))},
                }
            )
        )
        return
    mgrs = st.get("mgrs", [])
    out("  cluster:")
    out(f"    id:     {st['fsid']}")
    out(f"    health: {health}")
    for c in checks:
        out(f"            {c}")
    out("\n  services:")
    out(
        f"    mon: {len(st.get('mons', []))} daemons, quorum {','.join(st.get('mons', []))} (age 5m)"
    )
    out(
        f"    mgr: {mgrs[0]}.{base.rand_alnum(6)}(active, since 4m)"
        + (f", standbys: {', '.join(mgrs[1:])}" if len(mgrs) > 1 else "")
    )
    out(f"    osd: {len(osds)} osds: {len(osds)} up (since 2m), {len(osds)} in (since 2m)")
    out("\n  data:")
    out(f"    pools:   {len(pools)} pools, {pgs} pgs")
    out("    objects: 0 objects, 0 B")
    used = len(osds) * 27 * 1024**2
    out(
        f"    usage:   {used // 1024**2} MiB used, {(total - used) / 1024**3:.0f} GiB / {total / 1024**3:.0f} GiB avail"
    )
    out(f"    pgs:     {pgs} active+clean" if pgs else "    pgs:")


def _peer_disks(host: str) -> Path:
    return PEERS / host / "lab" / "disks.json"


def ceph(args: list[str]) -> int:
    valued = {
        "--cluster",
        "-c",
        "--conf",
        "-k",
        "--keyring",
        "-f",
        "--format",
        "--name",
        "-n",
        "--id",
        "--placement",
    }
    words: list[str] = []
    i = 0
    while i < len(args):
        if args[i] in valued:
            i += 2
            continue
        if not args[i].startswith("-") or args[i] in ("-s",):
            words.append(args[i])
        i += 1
    fmt = next(
        (args[j + 1] for j, a in enumerate(args) if a in ("-f", "--format") and j + 1 < len(args)),
        None,
    )
    fmt = fmt or next((a.split("=", 1)[1] for a in args if a.startswith("--format=")), None)
    if words[:1] == ["--version"] or "--version" in args or words[:1] == ["-v"]:
        out(f"ceph version {VERSION} (c92aebb279828e9c3c1f5d24613efca272649e62) squid (stable)")
        return 0
    st = _need_cluster()
    cmd = words
    if cmd[:1] in (["-s"], ["status"]):
        _status(st, fmt)
        return 0
    if cmd[:1] == ["health"]:
        health, checks = _health(st)
        out(health + ("; " + "; ".join(checks) if checks else ""))
        return 0
    if cmd[:1] == ["fsid"]:
        out(st["fsid"])
        return 0
    if cmd[:1] in (["version"], ["versions"]):
        out(f"ceph version {VERSION} (c92aebb279828e9c3c1f5d24613efca272649e62) squid (stable)")
        return 0
    if cmd[:1] == ["orch"]:
        return _orch(cmd[1:], args, fmt)
    if cmd[:1] == ["osd"]:
        return _osd(cmd[1:], fmt)
    if cmd[:1] == ["auth"]:
        return _auth(cmd[1:])
    if cmd[:1] == ["mon"]:
        mons = st.get("mons", [])
        hosts = st.get("hosts", {})
        maps = ",".join(
            f"{m}=[v2:{hosts.get(m, {}).get('addr')}:3300/0,v1:{hosts.get(m, {}).get('addr')}:6789/0]"
            for m in mons
        )
        if cmd[1:2] == ["dump"]:
            out(f"epoch {len(mons)}\nfsid {st['fsid']}")
            for i2, m in enumerate(mons):
                out(
                    f"{i2}: [v2:{hosts.get(m, {}).get('addr')}:3300/0,v1:{hosts.get(m, {}).get('addr')}:6789/0] mon.{m}"
                )
        else:
            out(
                f"e{len(mons)}: {len(mons)} mons at {{{maps}}} removed_ranks: {{}} disallowed_leaders: {{}}, election epoch 10, leader 0 {mons[0] if mons else ''}, quorum {','.join(str(k) for k in range(len(mons)))} {','.join(mons)}"
            )
        return 0
    if cmd[:1] == ["df"]:
        total = sum(o["size"] for o in st.get("osds", []))
        out(
            f"--- RAW STORAGE ---\nCLASS     SIZE    AVAIL    USED  RAW USED  %RAW USED\nssd    {total // 1024**3} GiB  {total // 1024**3} GiB  0 B   0 B       0"
        )
        return 0
    if cmd[:1] in (["config"], ["mgr"], ["dashboard"], ["crash"], ["tell"]):
        return 0
    die(
        f"no valid command found; 10 closest matches:\n{' '.join(cmd)}\nError EINVAL: invalid command",
        22,
    )


def _orch(cmd: list[str], args: list[str], fmt: str | None) -> int:
    if cmd[:2] == ["host", "add"] and len(cmd) >= 3:
        host = cmd[2]
        addr = cmd[3] if len(cmd) > 3 and not cmd[3].startswith("--") else None
        peer = base.node_by_address(host)
        if peer is None:
            die(
                f"Error EINVAL: Failed to connect to {host} ({addr or host}). [Errno -2] Name or service not known",
                22,
            )
        addr = addr or peer["address"]
        st = base.peek_cluster(CEPH)
        authorized = PEERS / peer["name"] / "root" / ".ssh" / "authorized_keys"
        keys = authorized.read_text(encoding="utf-8") if authorized.exists() else ""
        if st["pubkey"] not in keys:
            die(
                f"Error EINVAL: Failed to connect to {host} ({addr}). Permission denied\nLog: Opening SSH connection to {addr}, port 22\n[conn=1] Connected to SSH server at {addr}\n[conn=1] Auth for user root failed\n\nPlease make sure that the host is reachable and accepts connections using the cephadm SSH key\n\nTo add the cephadm SSH key to the host:\n> ceph cephadm get-pub-key > ~/ceph.pub\n> ssh-copy-id -f -i ~/ceph.pub root@{addr}",
                22,
            )
        labels = [a.split("=", 1)[1] for a in args if a.startswith("--labels=")] + (
            [args[args.index("--labels") + 1]] if "--labels" in args else []
        )
        with base.cluster_state(CEPH) as s:
            s["hosts"][host] = {"addr": addr, "labels": [lb for x in labels for lb in x.split(",")]}
        out(f"Added host '{host}' with addr '{addr}'")
        return 0
    if cmd[:2] == ["host", "ls"]:
        hosts = base.peek_cluster(CEPH).get("hosts", {})
        if fmt and fmt.startswith("json"):
            out(
                json.dumps(
                    [
                        {"hostname": h, "addr": v["addr"], "labels": v["labels"], "status": ""}
                        for h, v in hosts.items()
                    ]
                )
            )
            return 0
        out("HOST  ADDR         LABELS  STATUS")
        for h, v in hosts.items():
            out(f"{h}  {v['addr']}  {','.join(v['labels'])}")
        out(f"{len(hosts)} hosts in cluster")
        return 0
    if cmd[:3] == ["host", "label", "add"] and len(cmd) >= 5:
        with base.cluster_state(CEPH) as s:
            if cmd[3] not in s["hosts"]:
                die(f"Error EINVAL: host {cmd[3]} does not exist", 22)
            s["hosts"][cmd[3]]["labels"].append(cmd[4])
        out(f"Added label {cmd[4]} to host {cmd[3]}")
        return 0
    if cmd[:1] == ["apply"] and len(cmd) >= 2:
        service = cmd[1]
        placement = next((a.split("=", 1)[1] for a in args if a.startswith("--placement=")), None)
        if placement is None and "--placement" in args:
            placement = args[args.index("--placement") + 1]
        if placement is None and len(cmd) > 2:
            placement = cmd[2]
        with base.cluster_state(CEPH) as s:
            hosts = list(s["hosts"])
            if service in ("mon", "mgr"):
                chosen = _placement(placement, s["hosts"]) or hosts[: 3 if service == "mon" else 2]
                missing = [h for h in chosen if h not in s["hosts"]]
                if missing:
                    die(
                        f"Error EINVAL: Cannot place <ServiceSpec for service_name={service}> on {missing[0]}: Unknown hosts",
                        22,
                    )
                s["mons" if service == "mon" else "mgrs"] = chosen
            elif service == "osd" and "--all-available-devices" in args:
                for host in hosts:
                    _add_osds(s, host, None)
        out(f"Scheduled {service} update...")
        return 0
    if cmd[:3] == ["daemon", "add", "osd"] and len(cmd) >= 4:
        host, _, devs = cmd[3].partition(":")
        with base.cluster_state(CEPH) as s:
            if host not in s["hosts"]:
                die(f"Error EINVAL: Cannot find host {host} in inventory", 22)
            created = _add_osds(s, host, devs.split(",") if devs else None)
        out(f"Created osd(s) {','.join(str(c) for c in created)} on host '{host}'")
        return 0
    if cmd[:2] == ["device", "ls"]:
        st = base.peek_cluster(CEPH)
        rows = []
        for host in [cmd[2]] if len(cmd) > 2 else list(st.get("hosts", {})):
            disks = base.read_json(_peer_disks(host), {}) or {"disks": []}
            from installer.lab.shims import disks as d

            for disk in disks.get("disks", []):
                reason = d.in_use(disks, disk["name"])
                rows.append(
                    (host, f"/dev/{disk['name']}", disk["size"], reason is None, reason or "")
                )
        if fmt and fmt.startswith("json"):
            out(
                json.dumps(
                    [
                        {
                            "name": h,
                            "devices": [
                                {"path": p, "available": a, "rejected_reasons": [r] if r else []}
                                for hh, p, _, a, r in rows
                                if hh == h
                            ],
                        }
                        for h in dict.fromkeys(r[0] for r in rows)
                    ]
                )
            )
            return 0
        out("HOST  PATH      TYPE  DEVICE ID  SIZE  AVAILABLE  REFRESHED  REJECT REASONS")
        for h, p, size, avail, reason in rows:
            out(
                f"{h}  {p}  ssd   -          {size // 1024**3}G  {'Yes' if avail else 'No'}        2m ago     {reason}"
            )
        return 0
    if cmd[:2] == ["device", "zap"] and len(cmd) >= 4:
        host, dev = cmd[2], cmd[3]
        if "--force" not in args:
            die("Error EINVAL: must pass --force to PERMANENTLY ERASE DEVICE DATA", 22)
        with base.locked(_peer_disks(host), {"disks": [], "vgs": {}}) as disks:
            from installer.lab.shims import disks as d

            found = d.find(disks, dev)
            if found is None:
                die(f"Error EINVAL: Device path '{dev}' not found on host '{host}'", 22)
            disk, _ = found
            for vg in [n for n, v in disks["vgs"].items() if f"/dev/{disk['name']}" in v["pvs"]]:
                del disks["vgs"][vg]
            disk.update({"parts": [], "pttype": None, "fstype": None})
            disk.pop("ceph_osd", None)
        with base.cluster_state(CEPH) as s:
            s["osds"] = [o for o in s["osds"] if not (o["host"] == host and o["device"] == dev)]
        out(f"zap successful for {dev} on {host}")
        return 0
    if cmd[:1] in (["ps"], ["ls"], ["status"]):
        st = base.peek_cluster(CEPH)
        if cmd[:1] == ["status"]:
            out("Backend: cephadm\nAvailable: Yes\nPaused: No")
            return 0
        out("NAME  HOST  STATUS")
        for m in st.get("mons", []):
            out(f"mon.{m}  {m}  running")
        for o in st.get("osds", []):
            out(f"osd.{o['id']}  {o['host']}  running")
        return 0
    return 0


def _placement(spec: str | None, hosts: dict[str, Any]) -> list[str]:
    if not spec:
        return []
    spec = spec.strip("'\"")
    if spec.startswith("label:"):
        label = spec.split(":", 1)[1]
        return [h for h, v in hosts.items() if label in v["labels"]]
    words = [w for w in re.split(r"[ ,;]", spec) if w]
    if words and words[0].isdigit():
        n = int(words[0])
        named = words[1:] or list(hosts)
        return named[:n]
    return words


def _add_osds(s: dict[str, Any], host: str, devs: list[str] | None) -> list[int]:
    from installer.lab.shims import disks as d

    created = []
    with base.locked(_peer_disks(host), {"disks": [], "vgs": {}}) as disks:
        candidates = devs or [
            f"/dev/{x['name']}" for x in disks["disks"] if d.in_use(disks, x["name"]) is None
        ]
        for dev in candidates:
            reason = d.in_use(disks, dev)
            if reason is not None:
                if devs is None:
                    continue
                die(
                    f'Error EINVAL: Traceback (most recent call last):\n  File "/usr/share/ceph/mgr/cephadm/serve.py", line 1105, in _check_daemons\nRuntimeError: cephadm exited with an error code: 1, stderr: --> RuntimeError: Device {dev} is unavailable: {reason}',
                    22,
                )
            found = d.find(disks, dev)
            assert found is not None
            disk, _ = found
            osd_id = len(s["osds"])
            vg = f"ceph-{render.fake_uuid(host, dev, str(osd_id))}"
            disk["fstype"] = "LVM2_member"
            disk["ceph_osd"] = osd_id
            disks["vgs"][vg] = {"pvs": [f"/dev/{disk['name']}"], "size": disk["size"],
                                "lvs": {f"osd-block-{render.fake_uuid(vg)}": {"size": disk["size"], "fstype": "ceph_bluestore"}}}  # fmt: skip
            s["osds"].append(
                {"id": osd_id, "host": host, "device": f"/dev/{disk['name']}", "size": disk["size"]}
            )
            created.append(osd_id)
    return created


def _osd(cmd: list[str], fmt: str | None) -> int:
    if cmd[:1] == ["tree"]:
        st = base.peek_cluster(CEPH)
        out("ID  CLASS  WEIGHT   TYPE NAME      STATUS  REWEIGHT  PRI-AFF")
        total = sum(o["size"] for o in st.get("osds", [])) / 1024**4
        out(f"-1         {total:.5f}  root default")
        for host in dict.fromkeys(o["host"] for o in st.get("osds", [])):
            out(
                f"-{len(host)}         {sum(o['size'] for o in st['osds'] if o['host'] == host) / 1024**4:.5f}      host {host}"
            )
            for o in st["osds"]:
                if o["host"] == host:
                    out(
                        f" {o['id']}    ssd  {o['size'] / 1024**4:.5f}          osd.{o['id']}      up   1.00000  1.00000"
                    )
        return 0
    if cmd[:1] in (["stat"], ["ls"]):
        osds = base.peek_cluster(CEPH).get("osds", [])
        if cmd[:1] == ["ls"]:
            for o in osds:
                out(str(o["id"]))
        else:
            out(
                f"{len(osds)} osds: {len(osds)} up (since 2m), {len(osds)} in (since 2m); epoch: e{10 + len(osds)}"
            )
        return 0
    if cmd[:1] == ["pool"]:
        sub = cmd[1] if len(cmd) > 1 else ""
        with base.cluster_state(CEPH) as s:
            pools = s.setdefault("pools", {})
            if sub == "create" and len(cmd) > 2:
                name = cmd[2]
                if name in pools:
                    err(f"pool '{name}' already exists")
                    return 0
                pools[name] = {
                    "pg_num": int(cmd[3]) if len(cmd) > 3 and cmd[3].isdigit() else 32,
                    "size": 3,
                    "application": None,
                }
                err(f"pool '{name}' created")
                return 0
            if sub in ("ls", "lspools"):
                for n in pools:
                    out(n)
                return 0
            if sub == "get" and len(cmd) > 3:
                p = pools.get(cmd[2])
                if p is None:
                    die(f"Error ENOENT: unrecognized pool '{cmd[2]}'", 2)
                out(f"{cmd[3]}: {p.get(cmd[3], p.get('pg_num') if cmd[3] == 'pgp_num' else '')}")
                return 0
            if sub == "set" and len(cmd) > 4:
                p = pools.get(cmd[2])
                if p is None:
                    die(f"Error ENOENT: unrecognized pool '{cmd[2]}'", 2)
                p[cmd[3]] = int(cmd[4]) if cmd[4].isdigit() else cmd[4]
                err(f"set pool {list(pools).index(cmd[2]) + 1} {cmd[3]} to {cmd[4]}")
                return 0
            if sub == "application" and len(cmd) > 4 and cmd[2] == "enable":
                p = pools.get(cmd[3])
                if p is None:
                    die(f"Error ENOENT: unrecognized pool '{cmd[3]}'", 2)
                p["application"] = cmd[4]
                err(f"enabled application '{cmd[4]}' on pool '{cmd[3]}'")
                return 0
            if sub in ("delete", "rm") and len(cmd) > 2:
                pools.pop(cmd[2], None)
                err(f"pool '{cmd[2]}' removed")
                return 0
    return 0


def _auth(cmd: list[str]) -> int:
    sub = cmd[0] if cmd else ""
    with base.cluster_state(CEPH) as s:
        auth = s.setdefault("auth", {})
        if sub in ("get-or-create", "get-or-create-key") and len(cmd) > 1:
            entity = cmd[1]
            caps = dict(zip(cmd[2::2], cmd[3::2], strict=False))
            if entity not in auth:
                auth[entity] = {"key": _key(), "caps": caps}
            if sub == "get-or-create-key":
                out(auth[entity]["key"])
            else:
                out(f"[{entity}]\n\tkey = {auth[entity]['key']}")
            return 0
        if sub in ("get-key", "print-key") and len(cmd) > 1:
            if cmd[1] not in auth:
                die(f"Error ENOENT: failed to find {cmd[1]} in keyring", 2)
            out(auth[cmd[1]]["key"], end="")
            return 0
        if sub == "get" and len(cmd) > 1:
            if cmd[1] not in auth:
                die(f"Error ENOENT: failed to find {cmd[1]} in keyring", 2)
            a = auth[cmd[1]]
            out(f"[{cmd[1]}]\n\tkey = {a['key']}")
            for k, v in a["caps"].items():
                out(f'\tcaps {k} = "{v}"')
            return 0
        if sub == "ls":
            for e, a in auth.items():
                out(f"{e}\n\tkey: {a['key']}")
            return 0
        if sub in ("del", "rm") and len(cmd) > 1:
            auth.pop(cmd[1], None)
            return 0
        if sub == "caps" and len(cmd) > 1:
            auth.setdefault(cmd[1], {"key": _key(), "caps": {}})["caps"] = dict(
                zip(cmd[2::2], cmd[3::2], strict=False)
            )
            err(f"updated caps for {cmd[1]}")
            return 0
    return 0


def rbd(args: list[str]) -> int:
    st = _need_cluster()
    words = [a for a in args if not a.startswith("-")]
    pool_opt = next(
        (args[i + 1] for i, a in enumerate(args) if a in ("-p", "--pool") and i + 1 < len(args)),
        None,
    )
    size = next(
        (args[i + 1] for i, a in enumerate(args) if a in ("-s", "--size") and i + 1 < len(args)),
        None,
    )
    words = [w for w in words if w not in (pool_opt, size)]
    verb = words[0] if words else ""
    if verb == "pool" and words[1:2] == ["init"]:
        pool = words[2] if len(words) > 2 else pool_opt or "rbd"
        if pool not in st.get("pools", {}):
            die(f"rbd: error opening pool '{pool}': (2) No such file or directory", 2)
        with base.cluster_state(CEPH) as s:
            s["pools"][pool]["application"] = "rbd"
        return 0
    if verb in ("create", "rm", "remove", "info") and len(words) > 1:
        spec = words[1]
        pool, _, image = spec.rpartition("/")
        pool = pool or pool_opt or "rbd"
        if pool not in st.get("pools", {}):
            die(f"rbd: error opening pool '{pool}': (2) No such file or directory", 2)
        with base.cluster_state(CEPH) as s:
            images = s.setdefault("images", {})
            key = f"{pool}/{image}"
            if verb == "create":
                if key in images:
                    die(
                        f"rbd: create error: (17) File exists\n{time.strftime('%Y-%m-%dT%H:%M:%S')}.000+0000 7f librbd: error adding image to directory: (17) File exists",
                        17,
                    )
                images[key] = {"size": size or "1G"}
            elif verb == "info":
                if key not in images:
                    die(f"rbd: error opening image {image}: (2) No such file or directory", 2)
                out(
                    f"rbd image '{image}':\n\tsize {images[key]['size']} in 256 objects\n\torder 22 (4 MiB objects)\n\tformat: 2"
                )
            else:
                if images.pop(key, None) is None:
                    die("rbd: delete error: (2) No such file or directory", 2)
                out("Removing image: 100% complete...done.")
        return 0
    if verb in ("ls", "list"):
        pool = words[1] if len(words) > 1 else pool_opt or "rbd"
        for key in st.get("images", {}):
            if key.startswith(pool + "/"):
                out(key.split("/", 1)[1])
        return 0
    if verb == "map":
        die("rbd: sysfs write failed\nrbd: map failed: (1) Operation not permitted", 1)
    return 0
