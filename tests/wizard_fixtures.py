"""Fixture facts and answers for the wizard and role tests: six FMP-runbook nodes.

Built from ``installer.hostfacts`` dataclasses, never from a live host.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from installer.answers import Answers, Cluster, Host, SshSettings
from installer.events import (
    Event,
    Failure,
    OutputLine,
    RunFinished,
    RunStarted,
    RunSummary,
    TaskFinished,
    TaskRef,
    TaskStarted,
    TaskStatus,
)
from installer.hostfacts import (
    BlockDevice,
    Cpu,
    HostFacts,
    Memory,
    Mount,
    NetAddress,
    Nic,
    OsRelease,
    TimeSync,
    VolumeGroup,
)
from installer.plan_model import FileSpec, Plan, PlanHost, PlanResult, Task
from installer.profile import ProfileMeta
from screens.engine_adapters import (
    DiscoveryFailed,
    DoneInfo,
    HostKeyPrompt,
    HostKeyQuestion,
    PlanPreview,
    RealEngine,
    RenderedFile,
    ResumeInfo,
    RunRequest,
)

GiB = 2**30
ADDRESSES = [f"10.30.217.{20 + i}" for i in range(6)]
NAMES = [f"kn{i}" for i in range(6)]


def system_disk(size_gib: int = 100) -> BlockDevice:
    return BlockDevice(
        name="sda",
        path="/dev/sda",
        type="disk",
        size_bytes=size_gib * GiB,
        rotational=False,
        model="QEMU HARDDISK",
        serial="SYS0001",
        by_id=("/dev/disk/by-id/scsi-SYS0001",),
        children=(
            BlockDevice(
                name="sda1",
                path="/dev/sda1",
                type="part",
                size_bytes=1 * GiB,
                fstype="vfat",
                mountpoints=("/boot/efi",),
            ),
            BlockDevice(
                name="sda2",
                path="/dev/sda2",
                type="part",
                size_bytes=(size_gib - 1) * GiB,
                fstype="ext4",
                mountpoints=("/",),
            ),
        ),
    )


def data_disk(
    index: int, size_gib: int = 200, *, fstype: str | None = None, name: str = "sdb"
) -> BlockDevice:
    wwn = f"0x5000c500a1b2c3d{index}"
    return BlockDevice(
        name=name,
        path=f"/dev/{name}",
        type="disk",
        size_bytes=size_gib * GiB,
        rotational=True,
        model="ST2000NM",
        serial=f"ZC1{index:05d}",
        wwn=wwn,
        by_id=(f"/dev/disk/by-id/wwn-{wwn}",),
        fstype=fstype,
    )


def node_facts(
    i: int,
    *,
    cpus: int = 8,
    memory_gib: int = 32,
    flags: frozenset[str] = frozenset({"avx", "avx2", "sse4_2"}),
    disks: tuple[BlockDevice, ...] | None = None,
) -> HostFacts:
    address = ADDRESSES[i]
    return HostFacts(
        address=address,
        hostname=NAMES[i],
        fqdn=f"{NAMES[i]}.our.cluster",
        os=OsRelease(id="ubuntu", version_id="24.04", pretty_name="Ubuntu 24.04.2 LTS"),
        kernel="6.8.0-60-generic",
        arch="x86_64",
        cpu=Cpu(count=cpus, model="Intel Xeon Gold 6230", flags=flags),
        memory=Memory(total_bytes=memory_gib * GiB, available_bytes=memory_gib * GiB // 2),
        swaps=(),
        disks=disks if disks is not None else (system_disk(), data_disk(i)),
        mounts=(Mount("/dev/sda2", "/", "ext4"),),
        nics=(
            Nic("lo", loopback=True, state="UNKNOWN"),
            Nic(
                "ens18",
                mac=f"52:54:00:12:34:{i:02x}",
                state="UP",
                addresses=(NetAddress("inet", address, 24),),
            ),
        ),
        default_gateway="10.30.217.1",
        default_interface="ens18",
        dns_servers=("10.30.217.1",),
        volume_groups=(VolumeGroup("ubuntu-vg", 99 * GiB, 60 * GiB, ("/dev/sda2",)),),
        machine_id=f"{i:032x}",
        product_uuid=f"4c4c4544-0000-1000-8000-{i:012x}",
        time_sync=TimeSync("chrony", True),
        clock_epoch=1_760_000_000.0,
        cgroup_version=2,
        systemd=True,
        listening_ports=frozenset({22}),
        virtualization="kvm",
        sudo_ok=True,
        installed=frozenset(),
        kernel_modules={"nvme_tcp": "available"},  # Ubuntu's generic kernel ships it
    )


def six_facts() -> dict[str, HostFacts]:
    return {NAMES[i]: node_facts(i) for i in range(6)}


def six_answers(profile: str = "kubeadm-etcd", *, roles: bool = False) -> Answers:
    hosts = [Host(address=ADDRESSES[i], name=NAMES[i]) for i in range(6)]
    answers = Answers(
        cluster=Cluster(name="fmp"),
        profile=profile,
        ssh=SshSettings(user="fmpadmin", identity_file="~/.ssh/id_ed25519"),
        hosts=hosts,
    )
    if roles:
        from installer.profile import load_profile_meta
        from installer.roles import apply_roles, suggest_roles

        meta = load_profile_meta(profile)
        answers = apply_roles(answers, suggest_roles(answers, meta, six_facts()))
    return answers


# --------------------------------------------------------------------------- a fixture engine

FINGERPRINT = "SHA256:nThbg6kXUpJWGl7E1IGOCspRomTxdCARLviKw6E5SY8"
STATE_DIR = "/home/op/.local/state/fmp-install/fmp"
T0 = 1_760_000_000.0


class FixtureHandle:
    def __init__(self, summary: RunSummary | None) -> None:
        self.summary = summary
        self.stopped = False
        self.done = asyncio.Event()
        if summary is not None:
            self.done.set()

    def stop(self) -> None:
        self.stopped = True
        self.done.set()

    async def wait(self) -> RunSummary | None:
        await self.done.wait()
        return self.summary


class FixtureEngine(RealEngine):
    """The real pure engine (preflight, disks, storage) over fixture facts; I/O is scripted.

    discover() answers from ``facts``, raising ``failures`` and asking about
    ``unknown_keys``; the plan and the run are fixtures, so snapshots stay stable.
    """

    def __init__(
        self,
        facts: Mapping[str, HostFacts] | None = None,
        *,
        failures: Mapping[str, DiscoveryFailed] | None = None,
        unknown_keys: Sequence[str] = (),
        resume: ResumeInfo | None = None,
        run_events: Callable[[RunRequest], list[Event]] | None = None,
        finish: bool = True,
        delay: float = 0.0,
    ) -> None:
        self.facts = dict(facts if facts is not None else six_facts())
        self.failures = dict(failures or {})
        self.unknown_keys = set(unknown_keys)
        self.resume = resume
        self.run_events = run_events
        self.finish = finish
        self.delay = delay
        self.discovered: list[str] = []
        self.requests: list[RunRequest] = []
        self.discarded: list[ResumeInfo] = []
        self.handle: FixtureHandle | None = None

    async def discover(
        self,
        answers: Answers,
        host: Host,
        environ: Mapping[str, str],
        on_unknown_key: HostKeyPrompt,
    ) -> HostFacts:
        self.discovered.append(host.label)
        if self.delay:
            await asyncio.sleep(self.delay)
        if host.label in self.unknown_keys:
            ok = await on_unknown_key(
                HostKeyQuestion(
                    host.label, host.address, "ED25519", FINGERPRINT, "~/.ssh/known_hosts"
                )
            )
            if not ok:
                raise DiscoveryFailed(
                    "host key unknown",
                    f"the host key of {host.address} was not accepted",
                    "compare the fingerprint on the host's console, then retry",
                )
            self.unknown_keys.discard(host.label)
        if host.label in self.failures:
            raise self.failures[host.label]
        for key in (host.label, host.address):
            if key in self.facts:
                return self.facts[key]
        raise DiscoveryFailed(
            "unreachable", f"no route to host {host.address}", "check the address"
        )

    def plan(
        self, answers: Answers, meta: ProfileMeta, facts: Mapping[str, HostFacts]
    ) -> PlanPreview:
        return fixture_preview(answers)

    def state_dir(self, answers: Answers) -> Path:
        return Path(STATE_DIR)

    def unfinished_run(self) -> ResumeInfo | None:
        return self.resume

    def done_info(
        self, answers: Answers, summary: RunSummary | None, plan: Plan | None
    ) -> DoneInfo:
        vip = answers.network.vip
        result = plan.result if plan is not None else PlanResult()
        return DoneInfo(
            kubeconfig=f"{STATE_DIR}/kubeconfig",
            api_endpoint=f"https://{vip}:{answers.network.api_port}" if vip else None,
            storage_classes=result.storage_classes,
            check_commands=(f"export KUBECONFIG={STATE_DIR}/kubeconfig", *result.checks)
            if result.checks
            else (),
            state_dir=STATE_DIR,
        )

    def discard_run(self, info: ResumeInfo) -> None:
        self.discarded.append(info)

    def start_run(self, request: RunRequest) -> FixtureHandle:
        self.requests.append(request)
        events = self.run_events(request) if self.run_events else []
        summary = None
        for event in events:
            request.emit(event)
            if isinstance(event, RunFinished):
                summary = event.summary
        self.handle = FixtureHandle(summary if self.finish else None)
        return self.handle


STEPS = (
    ("prepare", "Prepare the host (swap off, modules, sysctl)"),
    ("containerd", "Install containerd 2.1"),
    ("kubeadm", "Install kubeadm, kubelet, kubectl 1.35"),
    ("join", "Join the cluster"),
)


def fixture_preview(answers: Answers) -> PlanPreview:
    tasks = []
    for h in answers.hosts:
        prev: tuple[str, ...] = ()
        for step, title in STEPS:
            tid = f"{h.label}:{step}"
            files = ()
            if step == "containerd":
                files = (
                    FileSpec(
                        "/etc/containerd/config.toml",
                        'version = 3\n[plugins."io.containerd.cri.v1.runtime"]\n  sandbox = "registry.k8s.io/pause:3.10"\n',
                    ),
                )
            tasks.append(Task(tid, h.label, step, title, prev, f"echo {step}", files=files))
            prev = (tid,)
    plan = Plan(
        answers.cluster.name,
        answers.profile,
        tuple(PlanHost(h.label, h.address, tuple(h.roles)) for h in answers.hosts),
        tuple(tasks),
        PlanResult(
            ("openebs-lvm (default): Local PV LVM on ubuntu-vg",)
            if answers.profile == "microk8s-openebs"
            else (),
            ("kubectl get nodes -o wide", "kubectl get pods -A"),
        ),
    )
    files = [RenderedFile(t.host, f.path, f.content, f.secret) for t in plan.tasks for f in t.files]
    files.append(RenderedFile(answers.hosts[0].label, "/etc/kubernetes/pki/ca.key", "", True))
    wipes = tuple((w.partition(":")[0], w.partition(":")[2]) for w in answers.storage.wipe)
    return PlanPreview(plan, tuple(files), (), wipes)


def run_events(
    request: RunRequest, *, fail: str | None = None, finished: bool = True, progress: int = 4
) -> list[Event]:
    """A scripted run: every host does ``progress`` steps; ``fail`` fails at its 2nd step."""
    plan = request.preview.plan
    refs = tuple(TaskRef(t.id, t.host, t.step, t.title) for t in plan.tasks)
    events: list[Event] = [
        RunStarted(
            "run-1", plan.cluster, plan.profile, tuple(h.label for h in plan.hosts), refs, at=T0
        )
    ]
    failures = []
    t = T0
    for i, host in enumerate(plan.hosts):
        tasks = [x for x in plan.tasks if x.host == host.label][:progress]
        for n, task in enumerate(tasks):
            t = T0 + 10 * i + 20 * n
            events.append(TaskStarted(task.id, task.host, task.step, task.title, 1, task.run, at=t))
            for k in range(3):
                events.append(
                    OutputLine(task.host, task.id, "stdout", f"{task.step}: line {k + 1}", at=t + 1)
                )
            if fail == host.label and n == 1:
                events.append(
                    OutputLine(
                        task.host,
                        task.id,
                        "stderr",
                        "E: Unable to locate package containerd.io",
                        at=t + 2,
                    )
                )
                events.append(
                    TaskFinished(
                        task.id,
                        task.host,
                        task.step,
                        TaskStatus.FAILED,
                        100,
                        12.0,
                        "apt-get install failed",
                        at=t + 12,
                    )
                )
                failures.append(
                    Failure(
                        task.id,
                        task.host,
                        task.step,
                        TaskStatus.FAILED,
                        "apt-get install -y containerd.io",
                        100,
                        "apt-get install failed",
                        ("Reading package lists...", "E: Unable to locate package containerd.io"),
                    )
                )
                break
            if n < progress - 1 or finished:
                events.append(
                    TaskFinished(task.id, task.host, task.step, TaskStatus.DONE, 0, 8.0, at=t + 8)
                )
    if finished:
        done = sum(1 for e in events if isinstance(e, TaskFinished) and e.status == TaskStatus.DONE)
        events.append(
            RunFinished(
                RunSummary(
                    "run-1",
                    1 if failures else 0,
                    754.0,
                    (("done", done), ("failed", len(failures))),
                    done + len(failures),
                    0,
                    tuple(failures),
                    (),
                    (),
                ),
                at=t + 30,
            )
        )
    return events
