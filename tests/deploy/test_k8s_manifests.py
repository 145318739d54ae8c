"""k8s/: every manifest valid for Kubernetes (strict schemas, offline), and consistent with the image and boltlink.

The schemas come with the kubernetes-validate package. The other tests check
what no schema can: labels and selectors that meet, the settings the
manifests pass being ones boltlink knows, probes and ports matching the app
and the Dockerfile, a grace period that covers the drain.
"""

from __future__ import annotations

import copy
import shutil
import subprocess
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from deploy_support import (
    K8S,
    REQUIRE_SERVICES,
    config_map_data,
    k8s_object,
    load_documents,
    manifest_paths,
    objects,
    parse_dockerfile,
    pod_templates,
)

import boltlink
from boltlink.cli import cli
from boltlink.config import Config, load_config

# The oldest Kubernetes the manifests are written for (PDB unhealthyPodEvictionPolicy is beta
# in 1.27, or the oldest schemas the package still ships), and the newest it knows.
KUBERNETES_VERSIONS = ["oldest", "latest"]
OLDEST = "1.27.0"
IMAGE = f"boltlink:{boltlink.__version__}"
API = "boltlink-api"
WORKLOADS = ["boltlink-api", "boltlink-aggregator", "boltlink-analytics", "boltlink-migrate"]


@pytest.fixture(scope="module")
def kubernetes_validate() -> Any:
    try:
        import kubernetes_validate
    except ImportError:
        message = "kubernetes-validate is not installed (pip install -e '.[test]')"
        if REQUIRE_SERVICES:
            pytest.fail(message)
        pytest.skip(message)
    return kubernetes_validate


def validate(module: Any, document: dict[str, Any], version: str) -> None:
    if version == "latest":
        version = module.latest_version()
    elif version == "oldest":
        from packaging.version import Version

        version = max(OLDEST, module.utils.all_versions()[0], key=Version)
    module.validate(document, version, strict=True)


def container(workload: str) -> dict[str, Any]:
    containers = pod_templates()[workload]["spec"]["containers"]
    assert len(containers) == 1, f"{workload}: one container expected"
    return containers[0]


def env_value(workload: str, name: str) -> dict[str, Any]:
    entries = [e for e in container(workload).get("env", []) if e["name"] == name]
    assert len(entries) == 1, f"{workload}: {name} set {len(entries)} times"
    return entries[0]


def setting(key: str) -> Any:
    """A setting as the pods get it: the ConfigMap's value, else boltlink's default."""
    return load_config(environ=dict(config_map_data())).model_dump()[key]


# -- the schemas ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("path", manifest_paths(), ids=lambda p: p.name)
def test_manifest_is_valid_kubernetes(kubernetes_validate: Any, path: Any, version: str) -> None:
    documents = load_documents(path)
    assert documents, f"{path.name} holds no object"
    for document in documents:
        validate(kubernetes_validate, document, version)


def test_strict_validation_rejects_a_misspelt_field(kubernetes_validate: Any) -> None:
    """The control for the test above: a typo a lenient schema would wave through."""
    broken = copy.deepcopy(k8s_object("Deployment", API))
    container = broken["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError, match="readinesProbe"):
        validate(kubernetes_validate, broken, "latest")


def test_kustomization_lists_every_manifest_but_the_secret_example() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = kustomization["resources"]
    assert len(listed) == len(set(listed))
    expected = {p.name for p in manifest_paths()} - {"secret.example.yaml"}
    assert set(listed) == expected
    assert kustomization["namespace"] == k8s_object("Namespace", "boltlink")["metadata"]["name"]
    # The image every manifest names, pinned to this version: `kustomize edit set image` points it elsewhere.
    (image,) = kustomization["images"]
    assert f"{image['name']}:{image['newTag']}" == IMAGE


def test_kustomize_builds_valid_objects(kubernetes_validate: Any) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: kustomization.yaml is checked by the test above only")
    built = subprocess.run([kubectl, "kustomize", str(K8S)], capture_output=True, text=True, timeout=60)
    assert built.returncode == 0, built.stderr
    documents = [d for d in yaml.safe_load_all(built.stdout) if d]
    assert len(documents) == len(objects()) - 1  # all but the Secret example
    for document in documents:
        validate(kubernetes_validate, document, "latest")
        if document["kind"] != "Namespace":
            assert document["metadata"]["namespace"] == "boltlink", document["metadata"]["name"]


# -- labels and selectors ----------------------------------------------------------------------------------


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def test_each_deployment_selects_its_own_pods_and_no_other() -> None:
    templates = pod_templates()
    deployments = {name: obj for (kind, name), obj in objects().items() if kind == "Deployment"}
    assert set(deployments) == {"boltlink-api", "boltlink-aggregator", "boltlink-analytics"}
    for name, deployment in deployments.items():
        selector = deployment["spec"]["selector"]["matchLabels"]
        for other, template in templates.items():
            assert selects(selector, template["metadata"]["labels"]) == (other == name), (name, other)


def test_service_pdb_and_hpa_reach_the_api_pods() -> None:
    api_labels = pod_templates()[API]["metadata"]["labels"]
    service = k8s_object("Service", API)
    pdb = k8s_object("PodDisruptionBudget", API)
    for selector in (service["spec"]["selector"], pdb["spec"]["selector"]["matchLabels"]):
        assert selects(selector, api_labels)
        others = [n for n, t in pod_templates().items() if n != API and selects(selector, t["metadata"]["labels"])]
        assert not others, f"also selects {others}"
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] in {p["name"] for p in container(API)["ports"]}

    hpa = k8s_object("HorizontalPodAutoscaler", API)
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": API}
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    # With fewer than 2 pods, a node drain (the PDB allows one) would take the API down.
    assert hpa["spec"]["minReplicas"] >= 2
    assert pdb["spec"]["maxUnavailable"] < hpa["spec"]["minReplicas"]
    # The HPA owns the replica count: a `replicas` here would reset it at every apply.
    assert "replicas" not in k8s_object("Deployment", API)["spec"]


# -- the API Deployment ---------------------------------------------------------------------------------------


def test_api_rolls_out_without_losing_capacity() -> None:
    strategy = k8s_object("Deployment", API)["spec"]["strategy"]
    assert strategy["type"] == "RollingUpdate"
    assert strategy["rollingUpdate"]["maxUnavailable"] == 0
    assert strategy["rollingUpdate"]["maxSurge"] >= 1


def test_api_probes_use_the_apps_endpoints_and_port() -> None:
    api = container(API)
    ports = {p["name"]: p["containerPort"] for p in api["ports"]}
    dockerfile = parse_dockerfile()
    assert ports["http"] == setting("port") == int(dockerfile.last("EXPOSE").args)
    assert ports["metrics"] == setting("metrics_port")
    expected = {"readinessProbe": "/ready", "livenessProbe": "/health", "startupProbe": "/health"}
    for probe, path in expected.items():
        assert api[probe]["httpGet"] == {"path": path, "port": "http"}, probe
    # The startup probe gives a start at least listen_timeout (a worker's time to report ready).
    startup = api["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= setting("listen_timeout")


def test_grace_period_covers_prestop_drain_and_kill_timeout() -> None:
    spec = pod_templates()[API]["spec"]
    command = container(API)["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    needed = float(command[1]) + setting("drain_delay") + setting("kill_timeout")
    assert spec["terminationGracePeriodSeconds"] > needed


def test_api_workers_follow_the_cpu_limit() -> None:
    """BOLTLINK_INSTANCES is the container's CPU limit, rounded up (test_pod_cpu_limit.py: as `max` counts)."""
    source = env_value(API, "BOLTLINK_INSTANCES")["valueFrom"]["resourceFieldRef"]
    assert source == {"containerName": container(API)["name"], "resource": "limits.cpu", "divisor": "1"}
    resources = container(API)["resources"]
    # Requests = limits: the HPA's utilization is then the share of the workers' CPUs in use.
    assert resources["requests"]["cpu"] == resources["limits"]["cpu"]


# -- every workload ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("workload", WORKLOADS)
def test_pods_run_locked_down_as_the_images_user(workload: str) -> None:
    spec = pod_templates()[workload]["spec"]
    uid, gid = parse_dockerfile().user()
    pod = spec["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert (pod["runAsUser"], pod["runAsGroup"]) == (uid, gid)
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    box = container(workload)["securityContext"]
    assert box["readOnlyRootFilesystem"] is True
    assert box["allowPrivilegeEscalation"] is False
    assert box["capabilities"] == {"drop": ["ALL"]}
    assert spec["automountServiceAccountToken"] is False


@pytest.mark.parametrize("workload", WORKLOADS)
def test_pods_write_only_to_their_volumes(workload: str) -> None:
    """A read-only root: the data dir (the image's BOLTLINK_DATA_DIR) and /tmp must be volumes."""
    spec = pod_templates()[workload]["spec"]
    mounts = {m["mountPath"]: m["name"] for m in container(workload)["volumeMounts"]}
    data_dir = parse_dockerfile().env()["BOLTLINK_DATA_DIR"]
    assert set(mounts) == {data_dir, "/tmp"}
    # boltlink's own data dir lies inside the volume: it creates it 0700, as the master demands, where
    # the emptyDir itself is world-writable.
    assert config_map_data()["BOLTLINK_DATA_DIR"].startswith(data_dir + "/")
    volumes = {v["name"]: v for v in spec["volumes"]}
    for name in mounts.values():
        assert "sizeLimit" in volumes[name]["emptyDir"], name


@pytest.mark.parametrize("workload", WORKLOADS)
def test_pods_have_requests_and_limits(workload: str) -> None:
    resources = container(workload)["resources"]
    for kind in ("requests", "limits"):
        assert set(resources[kind]) == {"cpu", "memory"}, f"{workload} {kind}"


@pytest.mark.parametrize("workload", WORKLOADS)
def test_pods_get_the_image_config_and_secret(workload: str) -> None:
    spec = pod_templates()[workload]["spec"]
    box = container(workload)
    assert box["image"] == IMAGE
    sources = box["envFrom"]
    assert {"configMapRef": {"name": k8s_object("ConfigMap", "boltlink")["metadata"]["name"]}} in sources
    assert {"secretRef": {"name": k8s_object("Secret", "boltlink")["metadata"]["name"]}} in sources
    # Service links would add BOLTLINK_PORT=tcp://... for a Service called boltlink: our config's prefix.
    assert spec["enableServiceLinks"] is False


@pytest.mark.parametrize("workload", WORKLOADS)
def test_pod_args_are_boltlink_commands(workload: str) -> None:
    """The args follow the image's ENTRYPOINT (boltlink) and must be a command this boltlink has."""
    assert parse_dockerfile().exec_form("ENTRYPOINT") == ["boltlink"]
    args = container(workload)["args"]
    result = CliRunner().invoke(cli, [*args, "--help"])
    assert result.exit_code == 0, f"boltlink {' '.join(args)}: {result.output}"


def test_workers_run_one_role_each() -> None:
    expected = {
        "boltlink-api": ["start-cluster", "--foreground"],
        "boltlink-aggregator": ["worker", "aggregator"],
        "boltlink-analytics": ["worker", "analytics"],
        "boltlink-migrate": ["migrate"],
    }
    assert {name: container(name)["args"] for name in WORKLOADS} == expected
    for name in ("boltlink-aggregator", "boltlink-analytics"):
        spec = k8s_object("Deployment", name)["spec"]
        # One at a time: Recreate stops the old pod before the new one starts.
        assert (spec["replicas"], spec["strategy"]) == (1, {"type": "Recreate"}), name
    assert pod_templates()["boltlink-migrate"]["spec"]["restartPolicy"] in ("Never", "OnFailure")


# -- the settings ------------------------------------------------------------------------------------------------------


def boltlink_variables() -> dict[str, str]:
    """Every BOLTLINK_* variable the manifests set: ConfigMap, the Secret example, and the containers' env."""
    found = dict(config_map_data())
    found.update(k8s_object("Secret", "boltlink")["stringData"])
    for workload in WORKLOADS:
        for entry in container(workload).get("env", []):
            found[entry["name"]] = entry.get("value", "2")  # valueFrom: the downward API gives a number
    return found


def test_every_variable_is_a_boltlink_setting() -> None:
    """boltlink ignores BOLTLINK_* names it does not know, so a typo would go unnoticed."""
    variables = boltlink_variables()
    known = {f"BOLTLINK_{key.upper()}" for key in Config.model_fields}
    assert set(variables) <= known, sorted(set(variables) - known)
    config = load_config(environ=variables)
    assert config.database_url and config.redis_url, "pods share no disk: Kubernetes needs PostgreSQL and Redis"
    assert config.log_format == "json"


def test_the_secret_example_holds_no_secret() -> None:
    secret = k8s_object("Secret", "boltlink")
    assert "data" not in secret
    for key, value in secret["stringData"].items():
        assert "CHANGE-ME" in value, key
