"""A pod's volumes as the kubelet sets them up, as host directories bind-mounted into the container.

- ``configMap`` and ``secret``: the keys (or ``items``) written as files with ``defaultMode`` or
  the item's ``mode``; a missing object that is not ``optional`` keeps the pod waiting
  (``ContainerCreating``), as MountVolume.SetUp does.
- ``emptyDir``: a fresh directory (mode 0777), or a tmpfs for ``medium: Memory`` (sized by
  ``sizeLimit``); a disk-backed one that grows past ``sizeLimit`` evicts the pod, as the kubelet's
  eviction manager does.
- ``persistentVolumeClaim``: the claim must exist in the pod's namespace (else the pod waits);
  its data is the host directory ``<pvc_root>/<namespace>/<claim>``, shared by every pod that
  mounts it; ``readOnly`` (of the source or the mount) mounts it read-only.
- the service account's token (unless ``automountServiceAccountToken: false`` on the pod or its
  ServiceAccount): ``token``, ``ca.crt`` and ``namespace`` at
  ``/var/run/secrets/kubernetes.io/serviceaccount``, the token authenticating as the
  ServiceAccount in the emulator.

With ``fsGroup``, each volume is group-owned by it and group-readable (read-only volumes) or
group-writable (others), directories set-gid, as the kubelet's volume ownership management does.
``subPath`` mounts a path inside the volume.
"""

from __future__ import annotations

import base64
import os
import shutil
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from containerkubelet import podspec
from containerkubelet.podspec import NotReadyError, UnsupportedFieldError

if TYPE_CHECKING:
    from containerkubelet.kubelet import Kubelet, PodWorker

SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def _own(path: Path, group: int | None, *, read_only: bool) -> None:
    """The kubelet's SetVolumeOwnership: group ``group``, group read (and write) bits, set-gid dirs."""
    if group is None:
        return
    mask = 0o440 if read_only else 0o660
    for root, dirs, files in os.walk(path):
        here = Path(root)
        entries = [(here, True)] + [(here / d, True) for d in dirs] + [(here / f, False) for f in files]
        for entry, is_dir in entries:
            if entry.is_symlink():
                continue
            try:
                os.chown(entry, -1, group)
            except PermissionError as error:
                raise UnsupportedFieldError("spec.securityContext.fsGroup", "the stand-in runs without root and cannot "
                                                                  "change a volume's group") from error  # fmt: skip
            mode = stat.S_IMODE(entry.stat().st_mode) | mask
            if is_dir:
                mode |= stat.S_ISGID | 0o110
            entry.chmod(mode)


class Volumes:
    """Sets up the volumes of the pods of one node; see the module docstring."""

    def __init__(self, kubelet: Kubelet) -> None:
        self.kubelet = kubelet

    def _files(self, target: Path, source: Mapping[str, Any], data: Mapping[str, bytes], what: str) -> None:
        target.mkdir(parents=True, exist_ok=True)
        default_mode = int(source.get("defaultMode", 0o644))
        items = source.get("items")
        chosen = [(i["key"], i["path"], i.get("mode")) for i in items] if items else [(k, k, None) for k in data]
        for key, relative, mode in chosen:
            if key not in data:
                if source.get("optional"):
                    continue
                raise NotReadyError("ContainerCreating", f"MountVolume.SetUp failed: {what} has no key {key!r}")
            path = target / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data[key])
            path.chmod(int(mode) if mode is not None else default_mode)

    def _volume(self, worker: PodWorker, volume: Mapping[str, Any]) -> tuple[Path | None, bool, list[str]]:
        """(host directory or None for a tmpfs, read-only by source, extra docker args)."""
        ns, spec = worker.namespace, worker.pod["spec"]
        fs_group = (spec.get("securityContext") or {}).get("fsGroup")
        path = worker.dir / "volumes" / volume["name"]
        if "configMap" in volume or "secret" in volume:
            kind = "ConfigMap" if "configMap" in volume else "Secret"
            source = volume["configMap"] if kind == "ConfigMap" else volume["secret"]
            name = source["name"] if kind == "ConfigMap" else source["secretName"]
            found = self.kubelet.get(kind, ns, name)
            if found is None:
                if not source.get("optional"):
                    raise NotReadyError("ContainerCreating", f'MountVolume.SetUp failed for volume '
                                        f'"{volume["name"]}" : {kind.lower()} "{name}" not found')
                found = {}
            if kind == "ConfigMap":
                data = {k: str(v).encode() for k, v in (found.get("data") or {}).items()}
                data |= {k: base64.b64decode(v) for k, v in (found.get("binaryData") or {}).items()}
            else:
                data = {k: base64.b64decode(v) for k, v in (found.get("data") or {}).items()}
                data |= {k: str(v).encode() for k, v in (found.get("stringData") or {}).items()}
            if path.exists():
                shutil.rmtree(path)
            self._files(path, source, data, f'{kind.lower()} "{name}"')
            path.chmod(0o755)
            _own(path, fs_group, read_only=True)
            return path, True, []
        if "emptyDir" in volume:
            source = volume["emptyDir"] or {}
            if source.get("medium") == "Memory":
                limit = source.get("sizeLimit")
                return None, False, [f"tmpfs-mode=1777{f',tmpfs-size={int(podspec.quantity(limit))}' if limit else ''}"]
            path.mkdir(parents=True, exist_ok=True)
            path.chmod(0o777)
            _own(path, fs_group, read_only=False)
            return path, False, []
        claim = volume["persistentVolumeClaim"]
        if self.kubelet.get("PersistentVolumeClaim", ns, claim["claimName"]) is None:
            raise NotReadyError("ContainerCreating", f'persistentvolumeclaim "{claim["claimName"]}" not found')
        data = self.kubelet.pvc_root / ns / claim["claimName"]
        data.mkdir(parents=True, exist_ok=True)
        data.chmod(0o777 if fs_group is None else 0o775)
        _own(data, fs_group, read_only=False)
        return data, bool(claim.get("readOnly")), []

    def _service_account(self, worker: PodWorker) -> Path | None:
        spec = worker.pod["spec"]
        account = spec["serviceAccountName"]
        found = self.kubelet.get("ServiceAccount", worker.namespace, account)
        if found is None and account != "default":  # the ServiceAccount admission plugin would have refused it
            raise NotReadyError("CreateContainerConfigError", f'serviceaccount "{account}" not found')
        automount = spec.get("automountServiceAccountToken")
        if automount is None:
            automount = (found or {}).get("automountServiceAccountToken", True)
        if not automount:
            return None
        path = worker.dir / "volumes" / "kube-api-access"
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
        token = self.kubelet.emulator.service_account_token(worker.namespace, account)
        files = {"token": token.encode(), "ca.crt": self.kubelet.api.ca_pem, "namespace": worker.namespace.encode()}
        self._files(path, {"defaultMode": 0o644}, files, "the service account token")
        path.chmod(0o755)
        _own(path, (spec.get("securityContext") or {}).get("fsGroup"), read_only=True)
        return path

    def mounts(self, worker: PodWorker) -> list[str]:
        """The docker arguments that mount the container's volumes (setting the volumes up first)."""
        spec, container = worker.pod["spec"], worker.pod["spec"]["containers"][0]
        volumes = {v["name"]: v for v in spec.get("volumes") or []}
        prepared: dict[str, tuple[Path | None, bool, list[str]]] = {}
        args: list[str] = []
        for j, mount in enumerate(container.get("volumeMounts") or []):
            where = f"spec.containers[0].volumeMounts[{j}]"
            if mount["name"] not in volumes:
                raise UnsupportedFieldError(f"{where}.name", f"no volume named {mount['name']!r}")
            if mount["name"] not in prepared:
                prepared[mount["name"]] = self._volume(worker, volumes[mount["name"]])
            host, source_ro, options = prepared[mount["name"]]
            read_only = source_ro or bool(mount.get("readOnly"))
            if host is None:
                if mount.get("subPath"):
                    raise UnsupportedFieldError(f"{where}.subPath", "on a memory-backed emptyDir")
                args += ["--mount", ",".join([f"type=tmpfs,dst={mount['mountPath']}", *options])]
                continue
            if mount.get("subPath"):
                host = host / mount["subPath"]
                if not host.exists():
                    host.mkdir(parents=True)
            args += ["-v", f"{host}:{mount['mountPath']}{':ro' if read_only else ''}"]
        token = self._service_account(worker)
        if token is not None and not any(m.get("mountPath") == SA_DIR for m in container.get("volumeMounts") or []):
            args += ["-v", f"{token}:{SA_DIR}:ro"]
        worker.empty_dirs = [
            (host, podspec.quantity(v["emptyDir"]["sizeLimit"]))
            for name, (host, _, _) in prepared.items()
            for v in [volumes[name]]
            if host is not None and "emptyDir" in v and (v["emptyDir"] or {}).get("sizeLimit")
        ]
        return args

    def check_limits(self, workers: Iterable[PodWorker]) -> None:
        """The eviction manager: a disk-backed emptyDir past its sizeLimit evicts its pod."""
        for worker in workers:
            for path, limit in worker.empty_dirs:
                used = sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())
                if used > limit and not worker.evicted:
                    worker.evicted = (f"Usage of EmptyDir volume {path.name!r} exceeds the limit "
                                      f"\"{int(limit)}\".")  # fmt: skip
