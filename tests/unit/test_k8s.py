"""deploy/k8s runs the same processes as `cbs up` and compose.yaml (DESIGN §2a), and a cluster would
accept it.

Offline: every manifest is checked against the Kubernetes JSON schemas `kubernetes-validate` ships
(strict: an unknown field fails), then against the project itself: one Deployment per worker of
`bus.settings.WORKERS`, every environment variable one the README documents, the image compose
builds, probes on ports the process serves, Secrets referenced and never written down.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from bus import topology
from bus.settings import PROCESSES, WORKERS

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
KUBERNETES_VERSION = "1.30"  # the oldest version still supported upstream when this was written
NOT_APPLIED = {"kustomization.yaml", "prometheus-adapter-rule.yaml"}
HPA_FREE = {"audit", "day"}  # audit: one replica at a time reads its streams; day: a few messages a day
ROLE_UID = 10001  # the Dockerfile's `cbs` user


def _load(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


MANIFEST_FILES = sorted(p for p in K8S.glob("*.yaml") if p.name not in NOT_APPLIED)
DOCS = [doc for path in MANIFEST_FILES for doc in _load(path)]


def of_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in DOCS if doc["kind"] == kind}


def pod_specs() -> dict[str, dict[str, Any]]:
    """Deployment or Job name -> its pod spec."""
    workloads = {**of_kind("Deployment"), **of_kind("Job")}
    return {name: doc["spec"]["template"]["spec"] for name, doc in workloads.items()}


def containers() -> list[tuple[str, dict[str, Any]]]:
    return [(name, c) for name, spec in pod_specs().items() for c in spec["containers"]]


def config() -> dict[str, str]:
    return of_kind("ConfigMap")["cbs-config"]["data"]


# --- the schemas ---------------------------------------------------------------------------


def test_there_are_manifests() -> None:
    assert MANIFEST_FILES and DOCS


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_each_manifest_matches_the_kubernetes_schema(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_validator_refuses_an_unknown_field() -> None:
    """What the test above relies on: a misspelt field fails, it is not ignored."""
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}, "spec": {"portz": []}},
            KUBERNETES_VERSION, strict=True,
        )  # fmt: skip


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(p.name for p in MANIFEST_FILES)


def test_names_are_unique_per_kind() -> None:
    keys = [(doc["kind"], doc["metadata"]["name"]) for doc in DOCS]
    assert len(keys) == len(set(keys))


# --- the processes -----------------------------------------------------------------------


@pytest.mark.parametrize("worker", WORKERS)
def test_every_worker_has_a_deployment_running_it(worker: str) -> None:
    deployment = of_kind("Deployment").get(f"cbs-worker-{worker}")
    assert deployment, f"deploy/k8s has no Deployment cbs-worker-{worker}"
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["cbs", "worker", worker]


def test_no_deployment_for_an_unknown_process() -> None:
    expected = {"cbs-edge", *(f"cbs-worker-{w}" for w in WORKERS)}
    assert set(of_kind("Deployment")) == expected


def test_edge_and_migration_run_their_commands() -> None:
    (edge,) = of_kind("Deployment")["cbs-edge"]["spec"]["template"]["spec"]["containers"]
    assert edge["command"] == ["cbs", "edge"]
    job = of_kind("Job")["cbs-migrate"]["spec"]["template"]["spec"]
    assert [c["command"] for c in job["containers"]] == [["cbs", "migrate"]]
    assert job["restartPolicy"] in ("OnFailure", "Never")


def test_every_image_is_the_one_compose_builds() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    default = re.fullmatch(r"\$\{CBS_IMAGE:-(?P<image>[^}]+)\}", compose["x-cbs-app"]["image"])
    assert default, "compose's image is not ${CBS_IMAGE:-…}"
    images = {c["image"] for _, c in containers()}
    assert images == {default["image"]}
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert [i["name"] for i in kustomization["images"]] == [default["image"].split(":")[0]]


def test_selectors_match_their_pods() -> None:
    for name, doc in of_kind("Deployment").items():
        selector = doc["spec"]["selector"]["matchLabels"]
        assert selector.items() <= doc["spec"]["template"]["metadata"]["labels"].items(), name


# --- configuration -----------------------------------------------------------------------


def documented_variables() -> list[re.Pattern[str]]:
    """The README's configuration table, one pattern per name (`CBS_<WORKER>_…` matches any word)."""
    text = (ROOT / "README.md").read_text()
    table = text.split("## Configuration (environment variables)", 1)[1].split("\n## ", 1)[0]
    patterns = []
    for line in table.splitlines():
        if not line.startswith("| `"):
            continue
        first_cell = line.split("|")[1]
        names = re.findall(r"`([A-Z_<>]+)`", first_cell)
        for suffix in re.findall(r"`(_[A-Z_]+)`", first_cell):  # `CBS_OIDC_JWKS_URL` (+ `_ISSUER`, …)
            names.append(names[0].rsplit("_", 2)[0] + suffix)
        patterns += [re.compile(re.sub(r"<[A-Z]+>", "[A-Z]+", n.replace("_<", "_<"))) for n in names]
    return patterns


def referenced_variables() -> set[str]:
    names = set(config())
    for _, container in containers():
        names |= {e["name"] for e in container.get("env", [])}
    return names


def test_the_readme_table_is_read() -> None:
    patterns = documented_variables()
    assert any(p.fullmatch("CBS_LEDGER_BROKER_PASSWORD") for p in patterns)
    assert any(p.fullmatch("CBS_METRICS_HOST") for p in patterns)
    assert not any(p.fullmatch("CBS_NO_SUCH_SETTING") for p in patterns)


def test_every_variable_set_is_documented_in_the_readme() -> None:
    patterns = documented_variables()
    undocumented = sorted(n for n in referenced_variables() if not any(p.fullmatch(n) for p in patterns))
    assert not undocumented, f"not in the README's configuration table: {undocumented}"


def test_the_configmap_holds_no_secret() -> None:
    for key, value in config().items():
        assert not re.search(r"PASSWORD|SECRET|API_KEY|TOKEN", key), key
        assert not re.search(r"://[^/@]*:[^/@]*@", value), f"{key} carries credentials"


def test_secrets_are_referenced_never_written() -> None:
    assert not of_kind("Secret"), "Secrets are made by the operator (README), never committed"
    for name, container in containers():
        for env in container.get("env", []):
            if re.search(r"PASSWORD|SECRET|API_KEY|_URL$", env["name"]) and "value" in env:
                assert "://" not in env["value"] or "@" not in env["value"], (name, env["name"])
                assert not re.search(r"PASSWORD|SECRET|API_KEY", env["name"]), (name, env["name"])


def broker_secrets(container: dict[str, Any]) -> dict[str, str]:
    """CBS_<PROCESS>_BROKER_PASSWORD -> the Secret it comes from."""
    return {
        e["name"]: e["valueFrom"]["secretKeyRef"]["name"]
        for e in container.get("env", [])
        if e["name"].endswith("_BROKER_PASSWORD")
    }


def test_each_process_gets_its_own_broker_secret_only() -> None:
    for name, spec in pod_specs().items():
        if name == "cbs-migrate":
            continue
        process = name.removeprefix("cbs-").removeprefix("worker-")
        (container,) = spec["containers"]
        assert broker_secrets(container) == {
            f"CBS_{process.upper()}_BROKER_PASSWORD": f"cbs-broker-{process}"
        }, name


def test_the_migration_sets_every_process_password() -> None:
    (container,) = pod_specs()["cbs-migrate"]["containers"]
    assert broker_secrets(container) == {f"CBS_{p.upper()}_BROKER_PASSWORD": f"cbs-broker-{p}" for p in PROCESSES}
    env = {e["name"]: e for e in container["env"]}
    assert env["CBS_AMQP_URL"]["valueFrom"]["secretKeyRef"]["name"] == "cbs-admin"
    assert env["CBS_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == "cbs-admin"
    assert "CBS_RABBITMQ_API_URL" in env  # no rabbitmqctl in the image: users go through the management API


# --- probes, ports, security -------------------------------------------------------------


def _port(container: dict[str, Any], ref: int | str) -> int:
    if isinstance(ref, int):
        return ref
    named = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    assert ref in named, f"{container['name']}: probe names port {ref!r} the container does not declare"
    return named[ref]


def _env_value(container: dict[str, Any], name: str) -> str | None:
    for env in container.get("env", []):
        if env["name"] == name:
            return env.get("value")
    return config().get(name)


def edge_paths() -> set[str]:
    from api_edge.app import app  # the routes only: no lifespan runs

    return set(app.openapi()["paths"])


@pytest.mark.parametrize("name", sorted(of_kind("Deployment")))
def test_probes_point_at_what_the_process_serves(name: str) -> None:
    (container,) = of_kind("Deployment")[name]["spec"]["template"]["spec"]["containers"]
    probes = [container.get(kind) for kind in ("startupProbe", "readinessProbe", "livenessProbe")]
    assert all(probes), f"{name}: startup, readiness and liveness probes all needed"
    if name == "cbs-edge":
        port, paths = int(_env_value(container, "CBS_EDGE_PORT") or 8080), edge_paths()
        assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
        assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
    else:  # a worker serves only its metrics (bus/worker.py), once it consumes its queues
        assert _env_value(container, "CBS_METRICS_HOST") == "0.0.0.0", "metrics on loopback are unreachable"
        port, paths = int(_env_value(container, "CBS_METRICS_PORT") or 0), {"/metrics"}
    for probe in probes:
        assert _port(container, probe["httpGet"]["port"]) == port, name
        assert probe["httpGet"]["path"] in paths, name


@pytest.mark.parametrize("name", sorted(pod_specs()))
def test_pods_run_as_the_image_user_on_a_read_only_root(name: str) -> None:
    spec = pod_specs()[name]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec.get("automountServiceAccountToken") is False, "CBS never talks to the Kubernetes API"
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert f"--uid {ROLE_UID}" in dockerfile
    for container in spec["containers"]:
        sc = container["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False, name
        assert sc["runAsNonRoot"] is True and sc["runAsUser"] == ROLE_UID, name
        assert sc["capabilities"]["drop"] == ["ALL"], name
        mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
        assert "/tmp" in mounts, f"{name}: a read-only root needs a writable /tmp"
        resources = container["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]) and {"cpu", "memory"} <= set(resources["limits"]), name


@pytest.mark.parametrize("name", sorted(of_kind("Deployment")))
def test_termination_grace_outlasts_graceful_shutdown(name: str) -> None:
    spec = of_kind("Deployment")[name]["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    graceful = float(_env_value(container, "CBS_GRACEFUL_TIMEOUT_S") or 20)
    assert spec["terminationGracePeriodSeconds"] > graceful


def test_the_audit_archive_is_on_a_claim() -> None:
    spec = of_kind("Deployment")["cbs-worker-audit"]["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    directory = _env_value(container, "CBS_AUDIT_ARCHIVE_DIR")
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == directory)
    volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
    assert volume["persistentVolumeClaim"]["claimName"] in of_kind("PersistentVolumeClaim")


# --- services, disruption budgets, autoscalers -------------------------------------------


def _pods_selected(selector: dict[str, str]) -> list[dict[str, Any]]:
    return [
        doc["spec"]["template"]
        for doc in of_kind("Deployment").values()
        if selector.items() <= doc["spec"]["template"]["metadata"]["labels"].items()
    ]


def test_services_reach_ports_their_pods_declare() -> None:
    services = of_kind("Service")
    assert {"cbs-edge", "cbs-worker-metrics"} <= set(services)
    for name, service in services.items():
        pods = _pods_selected(service["spec"]["selector"])
        assert pods, f"{name} selects no pod"
        for port in service["spec"]["ports"]:
            for pod in pods:
                (container,) = pod["spec"]["containers"]
                _port(container, port["targetPort"])
    assert len(_pods_selected(services["cbs-worker-metrics"]["spec"]["selector"])) == len(WORKERS)


def test_every_deployment_has_a_disruption_budget() -> None:
    budgets = of_kind("PodDisruptionBudget").values()
    for name, deployment in of_kind("Deployment").items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert any(b["spec"]["selector"]["matchLabels"].items() <= labels.items() for b in budgets), name


def _adapter_metric() -> str:
    rules = yaml.safe_load((K8S / "prometheus-adapter-rule.yaml").read_text())["rules"]["external"]
    (rule,) = rules
    return rule["name"]["as"]


@pytest.mark.parametrize("worker", [w for w in WORKERS if w not in HPA_FREE])
def test_scalable_workers_scale_on_their_queues(worker: str) -> None:
    hpa = of_kind("HorizontalPodAutoscaler").get(f"cbs-worker-{worker}")
    assert hpa, f"no HorizontalPodAutoscaler for {worker}"
    assert hpa["spec"]["scaleTargetRef"]["name"] in of_kind("Deployment")
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "External"
    assert metric["external"]["metric"]["name"] == _adapter_metric()
    (expression,) = metric["external"]["metric"]["selector"]["matchExpressions"]
    assert expression["key"] == "queue" and expression["operator"] == "In"
    wanted = set(topology.command_keys(worker)) | ({f"{worker}.events"} if worker in topology.EVENT_BINDINGS else set())
    assert set(expression["values"]) == wanted
    assert hpa["spec"]["minReplicas"] >= 1 and hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]


def test_no_autoscaler_for_a_worker_that_gains_nothing_by_it() -> None:
    targets = {h["spec"]["scaleTargetRef"]["name"] for h in of_kind("HorizontalPodAutoscaler").values()}
    assert not targets & {f"cbs-worker-{w}" for w in HPA_FREE}
