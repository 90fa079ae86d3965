"""deploy/k8s: every manifest validates against the Kubernetes schemas (kubernetes-validate,
strict: unknown fields are errors), and the pieces fit together. No cluster needed."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from service.config import DEFAULTS

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
# The oldest Kubernetes minor release the manifests promise to work on, and the newest the
# validator knows. Raise the floor deliberately, never by accident.
KUBERNETES_VERSIONS = ("1.29.0", "1.33.0")
GUNICORN_SETTINGS = {
    "WORKERS",
    "THREADS",
    "WORKER_TIMEOUT",
    "GRACEFUL_TIMEOUT",
    "KEEPALIVE",
    "MAX_REQUESTS",
    "MAX_REQUESTS_JITTER",
    "WORKER_TMP_DIR",
    "ACCESS_LOG",
    "ACCESS_LOG_PROBES",
    "BIND",
}


def load_all() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs.append((path.name, doc))
    return docs


DOCS = load_all()
RESOURCES = [(name, doc) for name, doc in DOCS if doc["kind"] != "Kustomization"]


def one(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        d
        for _, d in RESOURCES
        if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"{kind} {name or ''}: {len(found)} found"
    return found[0]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize(
    ("file", "doc"),
    RESOURCES,
    ids=[f"{f}:{d['kind']}/{d['metadata']['name']}" for f, d in RESOURCES],
)
def test_manifest_validates_strictly(file: str, doc: dict[str, Any], version: str) -> None:
    kubernetes_validate.validate(doc, version, strict=True)


def test_strict_validation_catches_a_typo() -> None:
    """A misspelt field fails: the validation above really is strict."""
    bad = copy.deepcopy(one("Deployment"))
    bad["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, KUBERNETES_VERSIONS[0], strict=True)


def test_the_kustomization_lists_every_manifest() -> None:
    (kustomization,) = [d for _, d in DOCS if d["kind"] == "Kustomization"]
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files
    assert {i["name"] for i in kustomization["images"]} == {container()["image"]}


def test_every_kind_the_issue_asks_for_is_there() -> None:
    kinds = {d["kind"] for _, d in RESOURCES}
    assert {
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "ConfigMap",
        "Secret",
        "NetworkPolicy",
        "ServiceAccount",
    } <= kinds


def pod_spec() -> dict[str, Any]:
    spec: dict[str, Any] = one("Deployment")["spec"]["template"]["spec"]
    return spec


def container() -> dict[str, Any]:
    (c,) = pod_spec()["containers"]
    return c  # type: ignore[no-any-return]


def pod_labels() -> dict[str, str]:
    labels: dict[str, str] = one("Deployment")["spec"]["template"]["metadata"]["labels"]
    return labels


def selects(selector: dict[str, str]) -> bool:
    return all(pod_labels().get(k) == v for k, v in selector.items())


def test_probes_use_the_health_endpoints() -> None:
    c = container()
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["startupProbe"]["httpGet"]["path"] == "/healthz"
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert c[probe]["httpGet"]["port"] in ports


def test_resources_have_requests_and_limits() -> None:
    resources = container()["resources"]
    for kind in ("cpu", "memory"):
        assert kind in resources["requests"]
        assert kind in resources["limits"]


def test_the_pod_runs_non_root_on_a_read_only_filesystem() -> None:
    pod = pod_spec()
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["automountServiceAccountToken"] is False
    sc = container()["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    # /tmp is the one writable place (gunicorn heartbeats, Prometheus multiprocess files).
    mounts = {m["mountPath"]: m["name"] for m in container()["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    env = {e["name"]: e.get("value") for e in container().get("env", [])}
    assert env["PROMETHEUS_MULTIPROC_DIR"].startswith("/tmp/")


def test_shutdown_gives_in_flight_requests_time_to_finish() -> None:
    settings = one("ConfigMap", "iport-cds-settings")["data"]
    graceful = int(settings["IPORT_CDS_GRACEFUL_TIMEOUT"])
    (sleep,) = [
        int(a) for a in container()["lifecycle"]["preStop"]["exec"]["command"] if a.isdigit()
    ]
    assert pod_spec()["terminationGracePeriodSeconds"] > graceful + sleep
    # gunicorn's graceful timeout covers a whole FHIR read.
    assert graceful > float(
        settings.get("IPORT_CDS_FHIR_DEADLINE_SECONDS", DEFAULTS["FHIR_DEADLINE_SECONDS"])
    )


def test_service_hpa_and_pdb_point_at_the_deployment() -> None:
    deployment = one("Deployment")
    assert selects(deployment["spec"]["selector"]["matchLabels"])
    service = one("Service")
    assert selects(service["spec"]["selector"])
    container_ports = {p["name"] for p in container()["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= container_ports
    hpa = one("HorizontalPodAutoscaler")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert hpa["spec"]["minReplicas"] >= 2
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    pdb = one("PodDisruptionBudget")
    assert selects(pdb["spec"]["selector"]["matchLabels"])
    assert pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"]  # drains can proceed


def test_settings_and_secrets_are_wired_in() -> None:
    env_from = container()["envFrom"]
    settings = one("ConfigMap", env_from[0]["configMapRef"]["name"])
    secret = one("Secret", env_from[1]["secretRef"]["name"])
    assert set(secret["stringData"]) == {
        "IPORT_CDS_DATABASE_URL",
        "IPORT_CDS_AUDIT_HASH_KEY",
        "IPORT_CDS_REVIEW_APP_SESSION_KEY",
    }
    # Every setting is one the service or gunicorn reads (a misspelt name would be ignored).
    for key in settings["data"]:
        name = key.removeprefix("IPORT_CDS_")
        assert key.startswith("IPORT_CDS_")
        assert name in DEFAULTS or name in GUNICORN_SETTINGS, key
    # With auth on, the service refuses to start without the public base URL (the JWT aud).
    assert settings["data"]["IPORT_CDS_REQUIRE_AUTH"] == "true"
    assert settings["data"]["IPORT_CDS_EXTERNAL_BASE_URL"].startswith("https://")
    # No secret in the ConfigMap.
    for key in settings["data"]:
        assert not re.search("PASSWORD|SECRET|TOKEN|HASH_KEY|DATABASE_URL", key), key
    # The files the settings name are mounted from ConfigMaps.
    mounts = {m["mountPath"]: m["name"] for m in container()["volumeMounts"]}
    volumes = {v["name"]: v for v in pod_spec()["volumes"]}
    valuesets = settings["data"]["IPORT_CDS_VALUESET_EXTRA_DIR"]
    one("ConfigMap", volumes[mounts[valuesets]]["configMap"]["name"])
    issuers = Path(settings["data"]["IPORT_CDS_TRUSTED_ISSUERS_FILE"])
    issuers_map = one("ConfigMap", volumes[mounts[str(issuers.parent)]]["configMap"]["name"])
    assert issuers.name in issuers_map["data"]


def test_egress_goes_only_to_dns_the_database_and_fhir_servers() -> None:
    policy = one("NetworkPolicy")
    assert selects(policy["spec"]["podSelector"]["matchLabels"])
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    ports = set()
    for rule in policy["spec"]["egress"]:
        assert rule.get("to"), "an egress rule without 'to' would allow every destination"
        for port in rule["ports"]:
            ports.add(port["port"])
        for peer in rule["to"]:
            cidr = peer.get("ipBlock", {}).get("cidr")
            assert cidr not in ("0.0.0.0/0", "::/0")
    assert ports == {53, 5432, 443}
    (ingress,) = policy["spec"]["ingress"]
    assert [p["port"] for p in ingress["ports"]] == ["http"]
