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


# Defaults of the options the lab's clients read back (ceph config get WHO OPTION).
CONFIG_DEFAULTS = {"osd_pool_default_size": "3", "osd_pool_default_min_size": "0",
                   "mon_allow_pool_size_one": "false", "osd_pool_default_pg_autoscale_mode": "on",
                   "mon_allow_pool_delete": "false", "osd_pool_default_pg_num": "32"}  # fmt: skip


def _config_get(st: dict[str, Any], who: str, option: str) -> str | None:
    conf = st.get("config", {})
    for section in (who, who.split(".")[0], "global"):
        if option in conf.get(section, {}):
            return str(conf[section][option])
    return CONFIG_DEFAULTS.get(option)


def _pool_size(st: dict[str, Any]) -> int:
    return int(_config_get(st, "mon", "osd_pool_default_size") or 3)


def _health_checks(st: dict[str, Any]) -> list[tuple[str, str]]:
    checks = []
    osds = len(st.get("osds", []))
    size = _pool_size(st)
    if osds < size:
        checks.append(("TOO_FEW_OSDS", f"OSD count {osds} < osd_pool_default_size {size}"))
    bare = [n for n, p in st.get("pools", {}).items() if not p.get("application")]
    if bare:
        checks.append(
            ("POOL_APP_NOT_ENABLED", f"{len(bare)} pool(s) do not have an application enabled")
        )
    return checks


def _health(st: dict[str, Any]) -> tuple[str, list[str]]:
    checks = [m for _, m in _health_checks(st)]
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
                            code: {
                                "severity": "HEALTH_WARN",
                                "summary": {"message": m, "count": 1},
                                "muted": False,
                            }
                            for code, m in _health_checks(st)
                        },
                        "mutes": [],
                    },
                    "quorum_names": st.get("mons", []),
                    "osdmap": {
                        "epoch": 10 + len(osds),
                        "num_osds": len(osds),
                        "num_up_osds": len(osds),
                        "osd_up_since": int(st.get("created", 0)) if osds else 0,
                        "num_in_osds": len(osds),
                        "osd_in_since": int(st.get("created", 0)) if osds else 0,
                        "num_remapped_pgs": 0,
                    },
                    "pgmap": {
                        "pgs_by_state": [{"state_name": "active+clean", "count": pgs}]
                        if pgs
                        else [],
                        "num_pgs": pgs,
                        "num_pools": len(pools),
                        "num_objects": 0,
                        "data_bytes": 0,
                        "bytes_used": len(osds) * 27 * 1024**2,
                        "bytes_avail": total - len(osds) * 27 * 1024**2,
                        "bytes_total": total,
                    },
                    "monmap": {
                        "epoch": len(st.get("mons", [])),
                        "min_mon_release_name": _release(st),
                        "num_mons": len(st.get("mons", [])),
                    },
                    "fsmap": {"epoch": 1, "by_rank": [], "up:standby": 0},
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
    fs = st.get("filesystems", {})
    if fs:
        mds = st.get("mds", {})
        hosts = sum(len(v) for v in mds.values())
        out(f"    mds: {len(fs)}/{len(fs)} daemons up, {max(0, hosts - len(fs))} standby")
    out(f"    osd: {_osd_summary(len(osds))}")
    out("\n  data:")
    out(f"    pools:   {len(pools)} pools, {pgs} pgs")
    out("    objects: 0 objects, 0 B")
    used = len(osds) * 27 * 1024**2
    out(
        f"    usage:   {used // 1024**2} MiB used, {(total - used) / 1024**3:.0f} GiB / {total / 1024**3:.0f} GiB avail"
    )
    out(f"    pgs:     {pgs} active+clean" if pgs else "    pgs:")


def _osd_summary(count: int) -> str:
    """OSDMap's summary line: "(since ...)" only once the up and in sets have changed."""
    if not count:
        return "0 osds: 0 up, 0 in"
    return f"{count} osds: {count} up (since 2m), {count} in (since 2m)"


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
        return _versions(st, cmd[0])
    if cmd[:1] == ["quorum_status"]:
        out(json.dumps(_quorum(st)))
        return 0
    if cmd[:1] == ["cephadm"]:
        if cmd[1:2] == ["get-pub-key"]:
            out(st["pubkey"])
        return 0
    if cmd[:1] == ["config"]:
        return _config(cmd[1:])
    if cmd[:1] == ["fs"]:
        return _fs(cmd[1:], args, fmt)
    if cmd[:1] == ["orch"]:
        return _orch(cmd[1:], args, fmt)
    if cmd[:1] == ["osd"]:
        return _osd(cmd[1:], fmt, args)
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
    if cmd[:1] in (["mgr"], ["dashboard"], ["crash"], ["tell"]):
        return 0
    die(
        f"no valid command found; 10 closest matches:\n{' '.join(cmd)}\nError EINVAL: invalid command",
        22,
    )


def _release(st: dict[str, Any]) -> str:
    from installer.lab.shims.cephadm import release_name

    return release_name(str(st.get("version") or VERSION))


def _ceph_version_line(st: dict[str, Any]) -> str:
    from installer.lab.shims.cephadm import release_name

    v = str(st.get("version") or VERSION)
    return f"ceph version {v} (c92aebb279828e9c3c1f5d24613efca272649e62) {release_name(v)} (stable)"


def _versions(st: dict[str, Any], verb: str) -> int:
    line = _ceph_version_line(st)
    if verb == "version":
        out(line)
        return 0
    counts = {"mon": len(st.get("mons", [])), "mgr": len(st.get("mgrs", [])),
              "osd": len(st.get("osds", [])), "mds": sum(len(v) for v in st.get("mds", {}).values())}  # fmt: skip
    body: dict[str, Any] = {k: {line: n} for k, n in counts.items() if n}
    body["overall"] = {line: sum(counts.values())}
    out(json.dumps(body, indent=4))
    return 0


def _quorum(st: dict[str, Any]) -> dict[str, Any]:
    mons = st.get("mons", [])
    hosts = st.get("hosts", {})
    from installer.lab.shims.cephadm import release_name

    v = str(st.get("version") or VERSION)
    monmap = [
        {"rank": i, "name": m,
         "public_addrs": {"addrvec": [{"type": "v2", "addr": f"{hosts.get(m, {}).get('addr')}:3300", "nonce": 0},
                                      {"type": "v1", "addr": f"{hosts.get(m, {}).get('addr')}:6789", "nonce": 0}]},
         "addr": f"{hosts.get(m, {}).get('addr')}:6789/0", "public_addr": f"{hosts.get(m, {}).get('addr')}:6789/0",
         "priority": 0, "weight": 0, "crush_location": "{}"}
        for i, m in enumerate(mons)
    ]  # fmt: skip
    return {
        "election_epoch": 2 * len(mons) + 6, "quorum": list(range(len(mons))), "quorum_names": list(mons),
        "quorum_leader_name": mons[0] if mons else "", "quorum_age": int(time.time() - st.get("created", time.time())),
        "features": {"quorum_con": "4541880224203014143", "quorum_mon": ["kraken", "luminous", "mimic", "osdmap-prune",
                                                                        "nautilus", "octopus", "pacific", "elector-pinging",
                                                                        "quincy", "reef", "squid"]},
        "monmap": {"epoch": len(mons), "fsid": st["fsid"], "min_mon_release": int(v.split(".")[0]),
                   "min_mon_release_name": release_name(v), "election_strategy": 1, "disallowed_leaders": "",
                   "stretch_mode": False, "tiebreaker_mon": "", "removed_ranks": "", "mons": monmap},
    }  # fmt: skip


def _config(cmd: list[str]) -> int:
    sub = cmd[0] if cmd else ""
    if sub == "set" and len(cmd) >= 4:
        who, option, value = cmd[1], cmd[2], cmd[3]
        with base.cluster_state(CEPH) as s:
            s.setdefault("config", {}).setdefault(who, {})[option] = value
        return 0
    if sub == "get" and len(cmd) >= 3:
        found = _config_get(base.peek_cluster(CEPH), cmd[1], cmd[2])
        if found is None:
            die(f"Error ENOENT: unrecognized key '{cmd[2]}'", 2)
        out(found)
        return 0
    if sub in ("rm", "remove") and len(cmd) >= 3:
        with base.cluster_state(CEPH) as s:
            s.setdefault("config", {}).get(cmd[1], {}).pop(cmd[2], None)
        return 0
    if sub == "dump":
        out("WHO     MASK  LEVEL     OPTION                   VALUE  RO")
        for who, opts in base.peek_cluster(CEPH).get("config", {}).items():
            for k, v in opts.items():
                out(f"{who:<7}       advanced  {k:<24} {v:<6} ")
        return 0
    return 0


def _fs(cmd: list[str], args: list[str], fmt: str | None) -> int:
    sub = cmd[0] if cmd else ""
    if sub == "volume" and cmd[1:2] == ["create"] and len(cmd) > 2:
        name = cmd[2]
        placement = base.opt(args, "--placement")
        with base.cluster_state(CEPH) as s:
            fss = s.setdefault("filesystems", {})
            if name not in fss:
                pools = s.setdefault("pools", {})
                meta, data = f"cephfs.{name}.meta", f"cephfs.{name}.data"
                for pool in (meta, data):
                    pools.setdefault(pool, _new_pool(s, 16, "cephfs"))
                fss[name] = {"metadata_pool": meta, "data_pools": [data]}
                s.setdefault("services", {})[f"mds.{name}"] = {
                    "placement": _placement_spec(placement) if placement else {"count": 2}
                }
                _reconcile(s)
        return 0
    if sub in ("ls", "volume") and (sub == "ls" or cmd[1:2] == ["ls"]):
        st = base.peek_cluster(CEPH)
        pools = list(st.get("pools", {}))
        rows = [
            {"name": n, "metadata_pool": f["metadata_pool"],
             "metadata_pool_id": pools.index(f["metadata_pool"]) + 1 if f["metadata_pool"] in pools else 0,
             "data_pool_ids": [pools.index(d) + 1 for d in f["data_pools"] if d in pools],
             "data_pools": f["data_pools"]}
            for n, f in st.get("filesystems", {}).items()
        ]  # fmt: skip
        if sub == "volume":
            out(json.dumps([{"name": r["name"]} for r in rows], indent=4))
        elif fmt and fmt.startswith("json"):
            out(json.dumps(rows))
        elif not rows:
            out("No filesystems enabled")
        else:
            for r in rows:
                out(
                    f"name: {r['name']}, metadata pool: {r['metadata_pool']}, data pools: [{' '.join(r['data_pools'])} ]"
                )
        return 0
    return 0


def _placement_spec(spec: str | None) -> dict[str, Any]:
    """A --placement string as the service spec's placement (label:mon, "3 a b c", count:2, a,b)."""
    if not spec:
        return {}
    spec = spec.strip("'\"")
    if spec.startswith("label:"):
        return {"label": spec.split(":", 1)[1]}
    if spec.startswith("count:"):
        return {"count": int(spec.split(":", 1)[1])}
    words = [w for w in re.split(r"[ ,;]", spec) if w]
    placement: dict[str, Any] = {}
    if words and words[0].isdigit():
        placement["count"] = int(words.pop(0))
    if words == ["*"]:
        return {**placement, "host_pattern": "*"}
    if words:
        placement["hosts"] = words
    return placement


def _placed(placement: dict[str, Any], hosts: dict[str, Any]) -> list[str]:
    """The hosts a placement puts daemons on, as cephadm's scheduler picks them."""
    if "label" in placement:
        chosen = [h for h, v in hosts.items() if placement["label"] in v["labels"]]
    elif "hosts" in placement:
        chosen = [h for h in placement["hosts"] if h in hosts]
    else:
        chosen = list(hosts)
    if "count" in placement:
        chosen = chosen[: int(placement["count"])]
    return chosen


def _reconcile(s: dict[str, Any]) -> None:
    """What the cephadm mgr module does in the background: daemons where the specs place them,
    and ceph.conf with the admin keyring on the hosts labelled _admin."""
    services = s.setdefault("services", {})
    hosts = s.get("hosts", {})
    if "mon" in services:
        s["mons"] = _placed(services["mon"].get("placement", {}), hosts) or s.get("mons", [])
    if "mgr" in services:
        s["mgrs"] = _placed(services["mgr"].get("placement", {}), hosts) or s.get("mgrs", [])
    s["mds"] = {
        name.split(".", 1)[1]: _placed(spec.get("placement", {}), hosts)
        for name, spec in services.items()
        if name.startswith("mds.")
    }
    mon_host = ",".join(
        f"[v2:{hosts[m]['addr']}:3300/0,v1:{hosts[m]['addr']}:6789/0]"
        for m in s["mons"]
        if m in hosts
    )
    conf = f"# minimal ceph.conf for {s['fsid']}\n[global]\n\tfsid = {s['fsid']}\n\tmon_host = {mon_host}\n"
    keyring = f"[client.admin]\n\tkey = {s['auth']['client.admin']['key']}\n"
    for host, v in hosts.items():
        if "_admin" not in v["labels"]:
            continue
        etc = PEERS / host / "etc" / "ceph"
        try:
            etc.mkdir(parents=True, exist_ok=True)
            (etc / "ceph.conf").write_text(conf, encoding="utf-8")
            kr = etc / "ceph.client.admin.keyring"
            kr.write_text(keyring, encoding="utf-8")
            kr.chmod(0o600)
        except OSError:
            continue


def _new_pool(s: dict[str, Any], pg_num: int, application: str | None = None) -> dict[str, Any]:
    size = _pool_size(s)
    return {"pg_num": pg_num, "pgp_num": pg_num, "size": size, "min_size": max(1, size - size // 2),
            "pg_autoscale_mode": _config_get(s, "mon", "osd_pool_default_pg_autoscale_mode") or "on",
            "bulk": "false", "application": application,
            "id": max([int(p.get("id", 0)) for p in s.get("pools", {}).values()] + [0]) + 1}  # fmt: skip


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
        from installer.lab.shims.cephadm import user_home

        user = st.get("ssh_user", "root")
        authorized = user_home(user, PEERS / peer["name"]) / ".ssh" / "authorized_keys"
        keys = authorized.read_text(encoding="utf-8") if authorized.exists() else ""
        # sshd matches the key type and blob of each authorized_keys line (options before
        # them allowed); the comment does not count.
        blob = st["pubkey"].split()[1]
        if not any(blob in line.split()[1:] for line in keys.splitlines() if line.strip()):
            die(
                f"Error EINVAL: Failed to connect to {host} ({addr}). Permission denied\nLog: Opening SSH connection to {addr}, port 22\n[conn=1] Connected to SSH server at {addr}\n[conn=1] Auth for user {user} failed\n\nPlease make sure that the host is reachable and accepts connections using the cephadm SSH key\n\nTo add the cephadm SSH key to the host:\n> ceph cephadm get-pub-key > ~/ceph.pub\n> ssh-copy-id -f -i ~/ceph.pub {user}@{addr}",
                22,
            )
        labels = [a.split("=", 1)[1] for a in args if a.startswith("--labels=")] + (
            [args[args.index("--labels") + 1]] if "--labels" in args else []
        )
        with base.cluster_state(CEPH) as s:
            s["hosts"][host] = {"addr": addr, "labels": [lb for x in labels for lb in x.split(",")]}
            _reconcile(s)
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
            if cmd[4] not in s["hosts"][cmd[3]]["labels"]:
                s["hosts"][cmd[3]]["labels"].append(cmd[4])
            _reconcile(s)
        out(f"Added label {cmd[4]} to host {cmd[3]}")
        return 0
    if cmd[:1] == ["apply"] and len(cmd) >= 2:
        service = cmd[1]
        placement = next((a.split("=", 1)[1] for a in args if a.startswith("--placement=")), None)
        if placement is None and "--placement" in args:
            placement = args[args.index("--placement") + 1]
        if placement is None and len(cmd) > 2:
            placement = cmd[2]
        name = (
            service
            if service in ("mon", "mgr", "osd", "crash") or len(cmd) < 3
            else f"{service}.{cmd[2]}"
        )
        if service != "mon" and service != "mgr" and len(cmd) > 2 and placement == cmd[2]:
            placement = None
        with base.cluster_state(CEPH) as s:
            hosts = list(s["hosts"])
            spec: dict[str, Any] = (
                _placement_spec(placement)
                if placement
                else {"count": {"mon": 5, "mgr": 2}.get(service, 2)}
            )
            missing = [h for h in spec.get("hosts", []) if h not in s["hosts"]]
            if missing:
                die(
                    f"Error EINVAL: Cannot place <ServiceSpec for service_name={name}> on {missing[0]}: Unknown hosts",
                    22,
                )
            if service == "osd" and "--all-available-devices" in args:
                name = "osd.all-available-devices"
                spec = {"host_pattern": "*"}
                for host in hosts:
                    _add_osds(s, host, None)
            s.setdefault("services", {})[name] = {"placement": spec}
            _reconcile(s)
        out(f"Scheduled {name} update...")
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
        hostname = base.opt(args, "--hostname")
        wanted = cmd[2:] or ([hostname] if hostname else [])
        for host in wanted or list(st.get("hosts", {})):
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
            active = [o for o in base.peek_cluster(CEPH).get("osds", [])
                      if o["host"] == host and o["device"] == f"/dev/{disk['name']}"]  # fmt: skip
            if active:
                die(
                    f"Error EINVAL: Unable to zap: device '{dev}' on {host} has {len(active)} active OSD (osd.{active[0]['id']}). Use 'ceph orch osd rm' first.",
                    22,
                )
            for vg in [n for n, v in disks["vgs"].items() if f"/dev/{disk['name']}" in v["pvs"]]:
                del disks["vgs"][vg]
            disk.update({"parts": [], "pttype": None, "fstype": None})
            disk.pop("ceph_osd", None)
        with base.cluster_state(CEPH) as s:
            s["osds"] = [o for o in s["osds"] if not (o["host"] == host and o["device"] == dev)]
        out(f"zap successful for {dev} on {host}")
        return 0
    if cmd[:1] == ["ls"]:
        return _orch_ls(
            base.peek_cluster(CEPH), fmt, base.opt(args, "--service_type", "--service-type")
        )
    if cmd[:1] in (["ps"], ["status"]):
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


def _orch_ls(st: dict[str, Any], fmt: str | None, service_type: str | None) -> int:
    created = time.strftime(
        "%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(st.get("created", time.time()))
    )
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
    hosts = st.get("hosts", {})
    rows = []
    for name, spec in sorted(st.get("services", {}).items()):
        stype, _, sid = name.partition(".")
        placement = spec.get("placement", {})
        if stype == "mon":
            running = len(st.get("mons", []))
        elif stype == "mgr":
            running = len(st.get("mgrs", []))
        elif stype == "mds":
            running = len(st.get("mds", {}).get(sid, []))
        elif stype == "osd":
            running = len(st.get("osds", []))
        else:
            running = len(_placed(placement, hosts))
        entry: dict[str, Any] = {"placement": placement, "service_name": name, "service_type": stype,
                                 "status": {"created": created, "last_refresh": now, "running": running,
                                            "size": running if stype == "osd" else len(_placed(placement, hosts))}}  # fmt: skip
        if sid:
            entry["service_id"] = sid
        rows.append(entry)
    if st.get("osds") and not any(r["service_type"] == "osd" for r in rows):
        n = len(st["osds"])
        rows.append({"placement": {}, "service_name": "osd", "service_type": "osd", "unmanaged": True,
                     "status": {"created": created, "last_refresh": now, "running": n, "size": n}})  # fmt: skip
    rows = [r for r in rows if not service_type or r["service_type"] == service_type]
    if fmt and fmt.startswith("json"):
        out(json.dumps(rows))
        return 0

    def where(p: dict[str, Any]) -> str:
        parts = [str(p["count"])] if "count" in p else []
        parts += [f"label:{p['label']}"] if "label" in p else []
        parts += p.get("hosts", []) + ([p["host_pattern"]] if "host_pattern" in p else [])
        return ";".join(parts) or "<unmanaged>"

    out("NAME                       PORTS  RUNNING  REFRESHED  AGE  PLACEMENT")
    for r in rows:
        stat = r["status"]
        out(
            f"{r['service_name']:<27}        {stat['running']}/{stat['size']:<6} 2m ago     10m  {where(r['placement'])}"
        )
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
            taken = {o["id"] for o in s["osds"]}
            osd_id = next(i for i in range(len(taken) + 1) if i not in taken)  # the lowest free id
            vg = f"ceph-{render.fake_uuid(host, dev, str(osd_id))}"
            osd_fsid = render.fake_uuid(vg, "osd")
            lv = f"osd-block-{osd_fsid}"
            # ceph-volume's tags on the OSD's logical volume (lvs -o lv_tags).
            tags = ",".join([
                f"ceph.block_device=/dev/{vg}/{lv}", f"ceph.block_uuid={render.fake_uuid(lv)}",
                "ceph.cephx_lockbox_secret=", f"ceph.cluster_fsid={s['fsid']}", "ceph.cluster_name=ceph",
                "ceph.crush_device_class=", "ceph.encrypted=0", f"ceph.osd_fsid={osd_fsid}",
                f"ceph.osd_id={osd_id}", "ceph.osdspec_affinity=", "ceph.type=block", "ceph.vdo=0",
                "ceph.with_tpm=0",
            ])  # fmt: skip
            disk["fstype"] = "LVM2_member"
            disk["ceph_osd"] = osd_id
            disks["vgs"][vg] = {"pvs": [f"/dev/{disk['name']}"], "size": disk["size"],
                                "lvs": {lv: {"size": disk["size"], "fstype": "ceph_bluestore", "tags": tags}}}  # fmt: skip
            s["osds"].append(
                {"id": osd_id, "host": host, "device": f"/dev/{disk['name']}", "size": disk["size"]}
            )
            created.append(osd_id)
    return created


def _osd(cmd: list[str], fmt: str | None, args: list[str] | None = None) -> int:
    as_json = bool(fmt and fmt.startswith("json"))
    if cmd[:1] == ["tree"]:
        st = base.peek_cluster(CEPH)
        osds = st.get("osds", [])
        hosts = list(dict.fromkeys(o["host"] for o in osds))
        # CRUSH bucket ids: the root is -1, each host bucket takes the next odd negative id
        # (its shadow bucket for the device class takes the even one).
        bucket = {h: -3 - 2 * i for i, h in enumerate(hosts)}
        if as_json:
            nodes: list[dict[str, Any]] = [{"id": -1, "name": "default", "type": "root", "type_id": 11,
                                            "children": [bucket[h] for h in reversed(hosts)]}]  # fmt: skip
            for h in hosts:
                mine = [o for o in osds if o["host"] == h]
                nodes.append({"id": bucket[h], "name": h, "type": "host", "type_id": 1, "pool_weights": {},
                              "children": [o["id"] for o in reversed(mine)]})  # fmt: skip
                nodes += [{"id": o["id"], "device_class": "ssd", "name": f"osd.{o['id']}", "type": "osd",
                           "type_id": 0, "crush_weight": round(o["size"] / 1024**4, 5), "depth": 2,
                           "pool_weights": {}, "exists": 1, "status": "up", "reweight": 1,
                           "primary_affinity": 1} for o in mine]  # fmt: skip
            out(json.dumps({"nodes": nodes, "stray": []}))
            return 0
        out("ID  CLASS  WEIGHT   TYPE NAME      STATUS  REWEIGHT  PRI-AFF")
        total = sum(o["size"] for o in osds) / 1024**4
        out(f"-1         {total:.5f}  root default")
        for host in hosts:
            out(
                f"{bucket[host]}         {sum(o['size'] for o in osds if o['host'] == host) / 1024**4:.5f}      host {host}"
            )
            for o in osds:
                if o["host"] == host:
                    out(
                        f" {o['id']}    ssd  {o['size'] / 1024**4:.5f}          osd.{o['id']}      up   1.00000  1.00000"
                    )
        return 0
    if cmd[:1] == ["metadata"]:
        st = base.peek_cluster(CEPH)
        rows = [
            {"id": o["id"], "arch": "x86_64", "back_addr": f"[v2:{st['hosts'].get(o['host'], {}).get('addr')}:6802/0]",
             "bluestore_bdev_devices": o["device"].removeprefix("/dev/"), "ceph_version": _ceph_version_line(st),
             "container_image": st.get("image", ""), "device_ids": "", "devices": o["device"].removeprefix("/dev/"),
             "hostname": o["host"], "osd_objectstore": "bluestore", "osd_data": f"/var/lib/ceph/osd/ceph-{o['id']}",
             "rotational": "0"}
            for o in st.get("osds", [])
        ]  # fmt: skip
        if len(cmd) > 1:
            rows = [r for r in rows if str(r["id"]) == cmd[1].removeprefix("osd.")]
            if not rows:
                die(f"Error ENOENT: osd.{cmd[1].removeprefix('osd.')} does not exist", 2)
            out(json.dumps(rows[0], indent=4))
            return 0
        out(json.dumps(rows, indent=4))
        return 0
    if cmd[:1] in (["stat"], ["ls"]):
        st = base.peek_cluster(CEPH)
        osds = st.get("osds", [])
        if cmd[:1] == ["ls"]:
            if as_json:
                out(json.dumps([o["id"] for o in osds]))
                return 0
            for o in osds:
                out(str(o["id"]))
        elif as_json:
            since = int(st.get("created", time.time())) if osds else 0
            out(json.dumps({"epoch": 10 + len(osds), "num_osds": len(osds), "num_up_osds": len(osds),
                            "osd_up_since": since, "num_in_osds": len(osds), "osd_in_since": since,
                            "num_remapped_pgs": 0}))  # fmt: skip
        else:
            out(f"{_osd_summary(len(osds))}; epoch: e{10 + len(osds)}")
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
                pools[name] = _new_pool(s, int(cmd[3]) if len(cmd) > 3 and cmd[3].isdigit() else 32)
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
                if cmd[3] not in p or cmd[3] == "application":
                    die(f"Error EINVAL: invalid choice: '{cmd[3]}'", 22)
                out(f"{cmd[3]}: {p[cmd[3]]}")
                return 0
            if sub == "autoscale-status":
                out(
                    "POOL          SIZE  TARGET SIZE  RATE  RAW CAPACITY   RATIO  TARGET RATIO  EFFECTIVE RATIO  BIAS  PG_NUM  NEW PG_NUM  AUTOSCALE  BULK"
                )
                raw = sum(o["size"] for o in s.get("osds", []))
                for n, p in pools.items():
                    out(f"{n:<13} 0                  {float(p.get('size', 3)):.1f}  {raw / 1024**3:>8.1f}G  0.0000                                  1.0  "
                        f"{p.get('pg_num', 32):>6}              {p.get('pg_autoscale_mode', 'on'):<9}  {str(p.get('bulk', 'false')).capitalize()}")  # fmt: skip
                return 0
            if sub == "application" and len(cmd) > 3 and cmd[2] == "get":
                p = pools.get(cmd[3])
                if p is None:
                    die(f"Error ENOENT: unrecognized pool '{cmd[3]}'", 2)
                out(json.dumps({p["application"]: {}} if p.get("application") else {}, indent=4))
                return 0
            if sub == "set" and len(cmd) > 4:
                p = pools.get(cmd[2])
                if p is None:
                    die(f"Error ENOENT: unrecognized pool '{cmd[2]}'", 2)
                p[cmd[3]] = int(cmd[4]) if cmd[4].isdigit() else cmd[4]
                err(f"set pool {p.get('id', list(pools).index(cmd[2]) + 1)} {cmd[3]} to {cmd[4]}")
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
            else:
                for kind in sorted(set(caps) | set(auth[entity]["caps"])):
                    if caps and caps.get(kind) != auth[entity]["caps"].get(kind):
                        die(
                            f"Error EINVAL: key for {entity} exists but cap {kind} does not match",
                            22,
                        )
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


def _rbd_need_cluster(verb: str) -> dict[str, Any]:
    """What rbd (librados, not the ceph CLI) says when it cannot reach the cluster.

    librados' log lines, then ``rbd: couldn't connect to the cluster!``; rbd exits with the
    errno of rados connect(): ENOENT (2) without a ceph.conf (no monitors to contact), EACCES
    (13) without a keyring (cephx refused), ETIMEDOUT (110) when the monitors of its ceph.conf
    do not answer (after 300 s; the lab does not wait).
    """
    conf = base.read_node_file("/etc/ceph/ceph.conf")
    st: dict[str, Any] = base.peek_cluster(CEPH)
    log = time.strftime("%Y-%m-%dT%H:%M:%S.000+0000", time.gmtime()) + " 7f3a2c1e4c00 -1"
    keyrings = "/etc/ceph/ceph.client.admin.keyring,/etc/ceph/ceph.keyring,/etc/ceph/keyring,/etc/ceph/keyring.bin"
    if conf is None:
        code = 2
        lines = [f"{log} monclient: get_monmap_and_config cannot identify monitors to contact"]
    elif base.read_node_file("/etc/ceph/ceph.client.admin.keyring") is None:
        code = 13
        lines = [
            f"{log} auth: unable to find a keyring on {keyrings}: (2) No such file or directory",
            f"{log} AuthRegistry(0x55d0c8a3e2c0) no keyring found at {keyrings}, disabling cephx",
            f"{log} monclient(hunting): handle_auth_bad_method server allowed_methods [2] but i only support [1]",
            f"{log} monclient: authenticate NOTE: no keyring found; disabled cephx authentication",
        ]
    elif not st.get("fsid") or st["fsid"] not in conf:
        code = 110
        lines = [f"{log} monclient(hunting): authenticate timed out after 300"]
    else:
        return st
    lines.append("rbd: couldn't connect to the cluster!")
    if verb in ("ls", "list"):
        reason = {2: "(2) No such file or directory", 13: "(13) Permission denied",
                  110: "(110) Connection timed out"}[code]  # fmt: skip
        lines.append(f"rbd: listing images failed: {reason}")
    die("\n".join(lines), code)


def rbd(args: list[str]) -> int:
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
    st = _rbd_need_cluster(verb)
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
