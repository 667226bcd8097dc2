"""The controller's settings: one frozen value the CLI builds from `kratix controller` flags."""

from __future__ import annotations

from dataclasses import dataclass

from kratix.gitio import NETWORK_TIMEOUT_SECONDS


@dataclass(frozen=True)
class ControllerOptions:
    repo: str  # the input repo (URL or path) the cluster's objects are mirrored into
    branch: str = "main"
    kubeconfig: str | None = None  # None: $KUBECONFIG or ~/.kube/config
    context: str | None = None
    in_cluster: bool = False  # use the pod's service account instead of a kubeconfig
    output_repo: str | None = None  # where the compiler publishes `.kratix/status/`; None: no status back
    output_branch: str | None = None  # None: same as `branch`
    debounce: float = 1.0  # seconds of quiet before a batch of changes becomes one commit
    status_interval: float = 10.0  # seconds between polls of the output repo
    workdir: str | None = None  # where the private clones live; None: a temporary directory
    push_attempts: int = 5  # pushes that may lose a race to another writer before the batch is retried later
    resync_interval: float = 300.0  # re-converge the repo this often even without cluster changes
    watch_timeout: int = 300  # seconds a watch request lasts before it is renewed
    relist_interval: float = 900.0  # seconds between full lists of each resource
    backoff_max: float = 30.0  # the longest wait between retries of a failing API server or Git remote
    git_timeout: float = NETWORK_TIMEOUT_SECONDS  # seconds a fetch or push may take before it is killed
    api_timeout: float = 30.0  # seconds an API request may wait for an answer (watches: on top of theirs)
    http_address: str | None = None  # host:port serving /healthz, /readyz and /metrics; None: not served
    leader_election: bool = False  # hold a Lease before mirroring, so that replicas take turns
    lease_namespace: str | None = None  # None: the pod's namespace (in-cluster), else "default"
    lease_name: str = "kratix-controller"
    identity: str | None = None  # this replica's name in the Lease and in Events; None: $POD_NAME or hostname
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    api_check_interval: float = 60.0  # seconds between re-reads of each served Promise's CRD
