"""The kubernetes sandbox: each job as a batch/v1 Job through the `kubernetes` client (in-cluster or
kubeconfig): resource limits (`nvidia.com/gpu` included), a deadline, no retries, a non-root read-only
container with every capability dropped, no service-account token, pod logs streamed to the runner.

The job's work dir lives on a volume the runner shares with its jobs (a ReadWriteMany claim mounted at
the runner's work root): the job sees only its own sub-path, so code goes in and outputs come back as
files, with no credentials in the pod."""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path
from typing import Any

from airlab.cpus import SlotCpus, whole_cpus
from airlab_runner.sandbox import (
    WORK_MOUNT,
    LineSink,
    SandboxJob,
    SandboxResult,
    SandboxUnavailable,
    ended,
)

TTL_AFTER_FINISHED = 600
# Time a pod may wait for a node (and its image) beyond the job's own wall limit.
SCHEDULING_GRACE = 600


def job_name(job_id: str) -> str:
    return f"airlab-{job_id}".lower()


def job_manifest(
    job: SandboxJob, *, namespace: str, image: str, runs_claim: str, runs_root: Path
) -> dict[str, Any]:
    """The batch/v1 Job for a sandbox job: its whole security and resource setup."""
    limits = job.limits
    # Whole CPUs, requested as limited: a Guaranteed pod, to which a node's static CPU manager gives cores
    # of its own (so a job never shares cores with an LLM server on the same node), and whose thread pools
    # are sized to that count.
    cpus = whole_cpus(limits.cpu_millis)
    resources: dict[str, Any] = {
        "limits": {"cpu": str(cpus), "memory": f"{limits.memory_mib}Mi"},
        "requests": {"cpu": str(cpus), "memory": f"{limits.memory_mib}Mi"},
    }
    if job.gpu_count:
        resources["limits"]["nvidia.com/gpu"] = str(job.gpu_count)
    env = [
        {"name": k, "value": v}
        for k, v in {
            "HOME": WORK_MOUNT,
            "PYTHONUNBUFFERED": "1",
            **job.env,
            **SlotCpus((), cpus).env(),
        }.items()
    ]
    mounts: list[dict[str, str | bool]] = [
        {"name": "work", "mountPath": WORK_MOUNT, "subPath": job.workdir.relative_to(runs_root).as_posix()},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    volumes: list[dict[str, Any]] = [
        {"name": "work", "persistentVolumeClaim": {"claimName": runs_claim}},
        {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "512Mi"}},
    ]
    # Datasets are the runner's checked copies in the job's run dir (airlab_runner.staging), on the same
    # claim as the work dir: mounted from it, read-only.
    for source, target in job.datasets:
        sub_path = Path(source).relative_to(runs_root).as_posix()
        mounts.append({"name": "work", "mountPath": target, "subPath": sub_path, "readOnly": True})
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            # The runner's uid (10001 in its pod): the work dirs it makes on the shared claim are its own.
            "runAsUser": job.owner()[0],
            "runAsGroup": job.owner()[1],
            "fsGroup": job.owner()[1],
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": "experiment",
                "image": job.image or image,
                "command": ["python3", job.entrypoint],
                "workingDir": WORK_MOUNT,
                "env": env,
                "resources": resources,
                "securityContext": {
                    "runAsNonRoot": True,
                    "readOnlyRootFilesystem": True,
                    "allowPrivilegeEscalation": False,
                    "privileged": False,
                    "capabilities": {"drop": ["ALL"]},
                },
                "volumeMounts": mounts,
            }
        ],
        "volumes": volumes,
    }
    if job.gpu_count:
        pod_spec["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    labels = {
        "app.kubernetes.io/part-of": "airlab",
        "airlab.role": "experiment",
        "airlab.job": job.job_id.lower(),
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": job_name(job.job_id), "namespace": namespace, "labels": labels},
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": limits.wall_seconds,
            "ttlSecondsAfterFinished": TTL_AFTER_FINISHED,
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }


class KubernetesSandbox:
    name = "kubernetes"

    def __init__(
        self,
        *,
        namespace: str,
        image: str,
        runs_claim: str,
        runs_root: Path,
        api_client: Any = None,
        poll_seconds: float = 1.0,
    ) -> None:
        self.namespace = namespace
        self.image = image
        self.runs_claim = runs_claim
        self.runs_root = runs_root
        self._api_client = api_client
        self.poll_seconds = poll_seconds

    @property
    def api_client(self) -> Any:
        if self._api_client is None:
            import kubernetes

            try:
                kubernetes.config.load_incluster_config()
            except kubernetes.config.ConfigException:
                kubernetes.config.load_kube_config()
            self._api_client = kubernetes.client.ApiClient()
        return self._api_client

    def _apis(self) -> tuple[Any, Any]:
        import kubernetes

        return kubernetes.client.BatchV1Api(self.api_client), kubernetes.client.CoreV1Api(self.api_client)

    def check(self) -> None:
        try:
            batch, _ = self._apis()
            batch.list_namespaced_job(self.namespace, limit=1)
        except Exception as exc:
            raise SandboxUnavailable(
                f"cannot manage Jobs in namespace {self.namespace!r} (in-cluster config or kubeconfig): {exc}"
            ) from exc

    def cleanup(self, job_id: str) -> None:
        from kubernetes.client.exceptions import ApiException

        batch, _ = self._apis()
        with contextlib.suppress(ApiException):
            batch.delete_namespaced_job(job_name(job_id), self.namespace, propagation_policy="Background")

    def run(self, job: SandboxJob, on_line: LineSink, cancel: threading.Event) -> SandboxResult:
        from kubernetes.client.exceptions import ApiException

        batch, core = self._apis()
        name = job_name(job.job_id)
        manifest = job_manifest(
            job,
            namespace=self.namespace,
            image=self.image,
            runs_claim=self.runs_claim,
            runs_root=self.runs_root,
        )
        began = time.monotonic()
        try:
            batch.create_namespaced_job(self.namespace, manifest)
        except ApiException as exc:
            return SandboxResult(
                "error", None, f"the cluster refused the Job: {exc.status} {exc.reason}: {exc.body}"
            )
        streaming: threading.Thread | None = None
        try:
            deadline = began + job.limits.wall_seconds + SCHEDULING_GRACE
            while True:
                status = batch.read_namespaced_job_status(name, self.namespace).status
                pod = self._pod(core, job.job_id)
                if (
                    streaming is None
                    and pod is not None
                    and pod.status.phase in ("Running", "Succeeded", "Failed")
                ):
                    streaming = threading.Thread(
                        target=self._stream_logs, args=(core, pod, on_line), daemon=True
                    )
                    streaming.start()
                if status is not None and (status.succeeded or status.failed):
                    break
                if cancel.is_set():
                    return SandboxResult("cancelled", None, "cancelled", time.monotonic() - began)
                if time.monotonic() > deadline:
                    return SandboxResult("timeout", None, "the Job did not finish in time (never scheduled?)",
                                         time.monotonic() - began)  # fmt: skip
                time.sleep(self.poll_seconds)
            if streaming is not None:
                streaming.join(30)
            return self._outcome(job, status, self._pod(core, job.job_id), time.monotonic() - began)
        finally:
            with contextlib.suppress(ApiException):
                batch.delete_namespaced_job(name, self.namespace, propagation_policy="Background")

    def _pod(self, core: Any, job_id: str) -> Any:
        pods = core.list_namespaced_pod(self.namespace, label_selector=f"airlab.job={job_id.lower()}").items
        return pods[0] if pods else None

    def _stream_logs(self, core: Any, pod: Any, on_line: LineSink) -> None:
        with contextlib.suppress(Exception):
            stream = core.read_namespaced_pod_log(
                pod.metadata.name, self.namespace, container="experiment", follow=True, _preload_content=False
            )
            for raw in stream.stream():
                for line in raw.decode("utf-8", errors="replace").splitlines():
                    on_line(line)

    @staticmethod
    def _outcome(job: SandboxJob, status: Any, pod: Any, duration: float) -> SandboxResult:
        for condition in (status.conditions or []) if status else []:
            if condition.type == "Failed" and condition.reason == "DeadlineExceeded":
                return ended("timeout", None, False, job.limits, duration)
        terminated = None
        if pod is not None and pod.status and pod.status.container_statuses:
            terminated = pod.status.container_statuses[0].state.terminated
        if terminated is not None:
            return ended(
                "exited", terminated.exit_code, terminated.reason == "OOMKilled", job.limits, duration
            )
        return SandboxResult(
            "exited", 0 if status.succeeded else 1, "" if status.succeeded else "the Job failed", duration
        )
