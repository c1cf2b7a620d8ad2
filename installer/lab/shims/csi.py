"""Dynamic provisioning in a lab cluster: what a CSI driver's external-provisioner does.

A PersistentVolumeClaim is Pending until the driver named by its StorageClass can
create a volume; then a PersistentVolume is made and bound to it, and deleting the
claim deletes both (``reclaimPolicy: Delete``). For ceph-csi RBD
(``rbd.csi.ceph.com``) that takes what the real driver needs: its CSIDriver
(the Helm chart), the ``ceph-csi-config`` ConfigMap listing the StorageClass's
clusterID with the monitors, the cephx user of the provisioner secret with its
real key, and the pool in the lab's Ceph cluster. The image appears in the pool
(``rbd ls``) and goes away with the claim. Failures leave the claim Pending with
the provisioner's message as an event, as in ``kubectl describe pvc``.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from installer.lab.shims import base, render

RBD = "rbd.csi.ceph.com"
CEPH = "ceph"


def _default_class(objects: dict[str, Any]) -> str | None:
    for key, sc in objects.items():
        if key.startswith("StorageClass/"):
            ann = (sc.get("metadata") or {}).get("annotations") or {}
            if str(ann.get("storageclass.kubernetes.io/is-default-class")) == "true":
                return str(sc["metadata"]["name"])
    return None


def _secret_data(secret: dict[str, Any]) -> dict[str, str]:
    data = {
        k: base64.b64decode(str(v)).decode(errors="replace")
        for k, v in (secret.get("data") or {}).items()
    }
    data.update({k: str(v) for k, v in (secret.get("stringData") or {}).items()})
    return data


def _bytes(quantity: str) -> int:
    units = {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4, "K": 1000, "M": 1000**2,
             "G": 1000**3, "T": 1000**4}  # fmt: skip
    for suffix, mult in units.items():
        if quantity.endswith(suffix):
            return int(float(quantity[: -len(suffix)]) * mult)
    return int(quantity or 0)


def _rbd_check(objects: dict[str, Any], sc: dict[str, Any]) -> str | None:
    """Why ceph-csi cannot provision from this class now (None: it can)."""
    driver = objects.get(f"CSIDriver//{RBD}")
    if driver is None:
        return f'waiting for a volume to be created, either by external provisioner "{RBD}" or manually created by system administrator'
    params = sc.get("parameters") or {}
    cluster_id = str(params.get("clusterID", ""))
    pool = str(params.get("pool", ""))
    fail = 'failed to provision volume with StorageClass "{}": rpc error: code = {}'.format
    name = sc["metadata"]["name"]
    release_ns = ((driver.get("metadata") or {}).get("annotations") or {}).get(
        "meta.helm.sh/release-namespace", "default"
    )
    cm = objects.get(f"ConfigMap/{release_ns}/ceph-csi-config") or {}
    try:
        clusters = json.loads(((cm.get("data") or {}).get("config.json")) or "[]")
    except ValueError:
        clusters = []
    entry = next((c for c in clusters if str(c.get("clusterID")) == cluster_id), None)
    if entry is None:
        return fail(
            name,
            f'InvalidArgument desc = failed to fetch monitor list using clusterID ({cluster_id}): missing configuration for cluster ID "{cluster_id}"',
        )
    ceph = base.peek_cluster(CEPH)
    mons = {ceph.get("hosts", {}).get(m, {}).get("addr") for m in ceph.get("mons", [])}
    monitors = {str(m).rsplit(":", 1)[0] for m in entry.get("monitors") or []}
    if not ceph.get("fsid") or ceph.get("fsid") != cluster_id or not (mons & monitors):
        return fail(
            name,
            "Internal desc = failed to get connection: connecting failed: rados: ret=-110, Connection timed out",
        )
    sname = params.get("csi.storage.k8s.io/provisioner-secret-name")
    sns = params.get("csi.storage.k8s.io/provisioner-secret-namespace")
    secret = objects.get(f"Secret/{sns}/{sname}")
    if secret is None:
        return fail(
            name, f'Internal desc = failed to get secret {sns}/{sname}: secrets "{sname}" not found'
        )
    creds = _secret_data(secret)
    user = creds.get("userID", "")
    auth = ceph.get("auth", {}).get(f"client.{user}")
    if not user or auth is None or auth.get("key") != creds.get("userKey"):
        return fail(
            name,
            "Internal desc = failed to get connection: connecting failed: rados: ret=-1, Operation not permitted",
        )
    osd_caps = str((auth.get("caps") or {}).get("osd", ""))
    if pool not in ceph.get("pools", {}):
        return fail(
            name, f"NotFound desc = pool not found: pool ({pool}) not found in Ceph cluster"
        )
    if (
        "allow *" not in osd_caps
        and f"pool={pool}" not in osd_caps
        and osd_caps.strip() not in ("profile rbd", "allow rwx")
    ):
        return fail(name, "Internal desc = rados: ret=-1, Operation not permitted")
    return None


def reconcile(cluster: dict[str, Any]) -> None:
    """Provision the claims that can be, release the volumes whose claims are gone."""
    objects = cluster.setdefault("objects", {})
    for key in [k for k in objects if k.startswith("PersistentVolumeClaim/")]:
        pvc = objects[key]
        status = pvc.setdefault("status", {})
        if status.get("phase") == "Bound":
            continue
        status["phase"] = "Pending"
        spec = pvc.setdefault("spec", {})
        sc_name = spec.get("storageClassName") or _default_class(objects)
        sc = objects.get(f"StorageClass//{sc_name}") if sc_name else None
        if sc is None:
            pvc["_events"] = (
                [f'storageclass.storage.k8s.io "{sc_name}" not found']
                if sc_name
                else ["no persistent volumes available for this claim and no storage class is set"]
            )
            continue
        if sc.get("provisioner") != RBD:
            pvc["_events"] = [
                f'waiting for a volume to be created, either by external provisioner "{sc.get("provisioner")}" or manually created by system administrator'
            ]
            continue
        why = _rbd_check(objects, sc)
        if why is not None:
            pvc["_events"] = [why]
            continue
        _bind(cluster, key, pvc, sc)
    for key in [k for k in objects if k.startswith("PersistentVolume//")]:
        pv = objects[key]
        ref = (pv.get("spec") or {}).get("claimRef") or {}
        claim = f"PersistentVolumeClaim/{ref.get('namespace')}/{ref.get('name')}"
        if claim in objects and objects[claim].get("metadata", {}).get("uid") == ref.get("uid"):
            continue
        if (pv.get("spec") or {}).get("persistentVolumeReclaimPolicy") == "Delete":
            _release(pv)
            del objects[key]


def _bind(cluster: dict[str, Any], key: str, pvc: dict[str, Any], sc: dict[str, Any]) -> None:
    meta = pvc.setdefault("metadata", {})
    uid = meta.setdefault("uid", render.fake_uuid(key, str(time.time())))
    params = sc.get("parameters") or {}
    pool = str(params["pool"])
    image = f"csi-vol-{render.fake_uuid(uid, 'image')}"
    size = str(((pvc["spec"].get("resources") or {}).get("requests") or {}).get("storage", "1Gi"))
    with base.cluster_state(CEPH) as ceph:
        ceph.setdefault("images", {})[f"{pool}/{image}"] = {"size": f"{_bytes(size) // 1024**3 or 1} GiB", "bytes": _bytes(size),
                                                             "features": params.get("imageFeatures", "layering")}  # fmt: skip
    pv_name = f"pvc-{uid}"
    cluster["objects"][f"PersistentVolume//{pv_name}"] = {
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": pv_name, "annotations": {"pv.kubernetes.io/provisioned-by": RBD}},
        "spec": {"accessModes": pvc["spec"].get("accessModes", ["ReadWriteOnce"]), "capacity": {"storage": size},
                 "claimRef": {"kind": "PersistentVolumeClaim", "namespace": meta.get("namespace"),
                              "name": meta.get("name"), "uid": uid},
                 "csi": {"driver": RBD, "fsType": params.get("csi.storage.k8s.io/fstype", "ext4"),
                         "volumeHandle": f"0001-0024-{params['clusterID']}-0000000000000002-{image.removeprefix('csi-vol-')}",
                         "volumeAttributes": {"clusterID": params["clusterID"], "pool": pool, "imageName": image,
                                              "imageFeatures": params.get("imageFeatures", "layering")}},
                 "persistentVolumeReclaimPolicy": sc.get("reclaimPolicy", "Delete"),
                 "storageClassName": sc["metadata"]["name"], "volumeMode": "Filesystem"},
        "status": {"phase": "Bound"},
    }  # fmt: skip
    pvc["spec"]["volumeName"] = pv_name
    pvc["spec"].setdefault("storageClassName", sc["metadata"]["name"])
    pvc["status"] = {"phase": "Bound", "accessModes": pvc["spec"].get("accessModes", ["ReadWriteOnce"]),
                     "capacity": {"storage": size}}  # fmt: skip
    pvc.pop("_events", None)


def _release(pv: dict[str, Any]) -> None:
    attrs = ((pv.get("spec") or {}).get("csi") or {}).get("volumeAttributes") or {}
    if not attrs.get("imageName"):
        return
    with base.cluster_state(CEPH) as ceph:
        ceph.setdefault("images", {}).pop(f"{attrs.get('pool')}/{attrs['imageName']}", None)
