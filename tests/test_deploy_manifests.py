"""Lint the deployment artifacts: Dockerfile, .dockerignore, docker-compose.yml, k8s/ and the
deployment guides in docs/deployment/.

Neither Docker nor a Kubernetes cluster runs where these tests run, so the files are read and
cross-checked against the code instead: every Kubernetes object against the API schemas of a
fixed Kubernetes version (kubernetes-validate, strict: unknown fields fail), probe and
health-check paths against the routes of the real FastAPI app, environment variables against
``Settings``, COPY sources against the repository, the Kubernetes objects against each other
(selectors, ports, names), and the guides' links, commands, settings and metric names against
the files and the code they describe.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml
from fastapi import FastAPI

from aegis_memory.config import Settings

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "k8s"
DOCS = ROOT / "docs" / "deployment"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = ROOT / "docker-compose.yml"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

NAMESPACE = "aegis"
APP_LABELS = {"app.kubernetes.io/name": "aegis-memory"}
COMPONENT = "app.kubernetes.io/component"
SECRET_EXAMPLE = "secret.example.yaml"

# The optional parts of k8s/, each a kustomization of its own, by directory.
K8S_PARTS = ("postgres", "redis", "migrate")

# The Kubernetes versions whose API schemas every manifest must satisfy: the oldest the
# manifests are meant for, and a recent one (kubernetes-validate bundles the schemas).
KUBERNETES_VERSIONS = ("1.29", "1.34")

# The Redis address the guides, the compose file and k8s/redis/ give for shared rate limits.
REDIS_URL_EXAMPLE = "redis://redis:6379/0"

# uvicorn's own setting (whose X-Forwarded-* headers to believe). Settings reads it too, to
# require it in production and hand it to uvicorn; it is allowed by name either way.
UVICORN_ENV = frozenset({"FORWARDED_ALLOW_IPS"})

# Dockerfile ENV names that configure Python or the shell, not Aegis.
NON_AEGIS_IMAGE_ENV = frozenset({
    "PATH", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "PIP_NO_CACHE_DIR",
    "PIP_DISABLE_PIP_VERSION_CHECK",
})

# PostgreSQL's default max_connections minus its default superuser_reserved_connections: the
# most connections all server processes together may open against a stock server.
POSTGRES_CONNECTION_BUDGET = 100 - 3


# ---------------------------------------------------------------------------- helpers


def settings_env_names() -> set[str]:
    """Every environment name Settings reads (case-insensitive, so compared upper-case)."""
    names: set[str] = set()
    for field_name, info in Settings.model_fields.items():
        names.add(field_name.upper())
        for alias in (info.alias, info.validation_alias):
            if isinstance(alias, str):
                names.add(alias.upper())
    return names


def setting_default(name: str, fallback: int) -> int:
    info = Settings.model_fields.get(name.lower())
    return int(info.default) if info is not None else fallback


def yaml_docs(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def k8s_files() -> list[Path]:
    return sorted(K8S.glob("*.yaml")) + sorted(K8S.glob("*.yml"))


def k8s_objects(include_example_secret: bool = True) -> list[dict[str, Any]]:
    objects = []
    for path in k8s_files():
        if path.name == "kustomization.yaml":
            continue
        if path.name == SECRET_EXAMPLE and not include_example_secret:
            continue
        objects.extend(yaml_docs(path))
    return objects


def one(kind: str) -> dict[str, Any]:
    found = [o for o in k8s_objects() if o.get("kind") == kind]
    assert len(found) == 1, f"expected exactly one {kind} in k8s/, found {len(found)}"
    return found[0]


def all_k8s_files() -> list[Path]:
    """Every YAML file under k8s/, the optional parts' directories included."""
    return sorted(p for p in K8S.rglob("*") if p.suffix in (".yaml", ".yml"))


def all_k8s_objects() -> list[tuple[Path, dict[str, Any]]]:
    """Every Kubernetes object under k8s/ (the example Secrets too), with its file."""
    return [(path, doc) for path in all_k8s_files() if path.name != "kustomization.yaml"
            for doc in yaml_docs(path)]


def part_objects(part: str) -> list[dict[str, Any]]:
    return [doc for path, doc in all_k8s_objects() if path.parent == K8S / part]


def part_one(part: str, kind: str) -> dict[str, Any]:
    found = [o for o in part_objects(part) if o["kind"] == kind]
    assert len(found) == 1, f"expected exactly one {kind} in k8s/{part}/, found {len(found)}"
    return found[0]


def kustomization_files() -> list[Path]:
    return sorted(K8S.rglob("kustomization.yaml"))


def pod_template(workload: dict[str, Any]) -> dict[str, Any]:
    return workload["spec"]["template"]


def workloads() -> list[dict[str, Any]]:
    """Every object under k8s/ that runs pods."""
    return [o for _, o in all_k8s_objects() if o["kind"] in ("Deployment", "StatefulSet", "Job")]


def only_container(workload: dict[str, Any]) -> dict[str, Any]:
    containers = pod_template(workload)["spec"]["containers"]
    assert len(containers) == 1, f"{workload['metadata']['name']} should run one container"
    return containers[0]


def exec_probe(probe: dict[str, Any]) -> list[str]:
    return probe["exec"]["command"]


def kustomization() -> dict[str, Any]:
    return yaml.safe_load((K8S / "kustomization.yaml").read_text())


def deployment() -> dict[str, Any]:
    return one("Deployment")


def pod_spec() -> dict[str, Any]:
    return deployment()["spec"]["template"]["spec"]


def pod_labels() -> dict[str, str]:
    return deployment()["spec"]["template"]["metadata"]["labels"]


def container() -> dict[str, Any]:
    containers = pod_spec()["containers"]
    assert len(containers) == 1, "the Deployment should run one container"
    return containers[0]


def container_port_names() -> dict[str, int]:
    return {p["name"]: p["containerPort"] for p in container()["ports"] if "name" in p}


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a label selector (``matchLabels`` form or a plain map) selects ``labels``."""
    match = selector.get("matchLabels", selector)
    assert "matchExpressions" not in selector, "only matchLabels selectors are checked here"
    return bool(match) and all(labels.get(k) == v for k, v in match.items())


def workers_in(command: list[str]) -> int:
    """Worker processes an ``aegis serve`` command line starts (the CLI's default is 1)."""
    for i, arg in enumerate(command):
        if arg == "--workers":
            return int(command[i + 1])
        if arg.startswith("--workers="):
            return int(arg.split("=", 1)[1])
    return 1


def http_paths(command: str) -> set[str]:
    """URL paths a health-check command line requests: the path of an ``http://host:port/..``
    URL, or a quoted string literal that starts with '/'."""
    found = set(re.findall(r"https?://[^/'\"\s]+(/[A-Za-z][\w\-/]*)", command))
    found |= set(re.findall(r"['\"](/[A-Za-z][\w\-/]*)['\"]", command))
    return found


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose-style ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?message}`` substitution."""

    def sub(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3) or ""
        if env.get(name):
            return env[name]
        if op == ":?":
            raise AssertionError(f"compose would refuse to start: {name} unset ({arg})")
        return arg if op == ":-" else ""

    return re.sub(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}", sub, value)


def compose_vars(value: str) -> set[str]:
    return set(re.findall(r"\$\{(\w+)", value))


_CPU = re.compile(r"^(\d+(?:\.\d+)?)(m?)$")
_MEMORY_UNITS = {"": 1, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "K": 10**3, "M": 10**6,
                 "G": 10**9}


def cpu_cores(quantity: str | int | float) -> float:
    m = _CPU.match(str(quantity))
    assert m, f"unreadable cpu quantity {quantity!r}"
    return float(m.group(1)) / (1000 if m.group(2) else 1)


def memory_bytes(quantity: str | int) -> int:
    m = re.match(r"^(\d+)([KMG]i?)?$", str(quantity))
    assert m, f"unreadable memory quantity {quantity!r}"
    return int(m.group(1)) * _MEMORY_UNITS[m.group(2) or ""]


@dataclass
class Instruction:
    keyword: str
    args: str
    stage: int  # index of the FROM this instruction belongs to


def dockerfile() -> list[Instruction]:
    """Instructions with continuation lines joined and comment lines dropped, as Docker does."""
    instructions: list[Instruction] = []
    stage = -1
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        instructions.append(Instruction(keyword, args.strip(), stage))
    assert not pending, "the Dockerfile ends inside a continuation line"
    return instructions


def final_stage() -> list[Instruction]:
    instructions = dockerfile()
    last = max(i.stage for i in instructions)
    return [i for i in instructions if i.stage == last]


def stage_names() -> list[str | None]:
    names = []
    for i in dockerfile():
        if i.keyword == "FROM":
            parts = i.args.split()
            names.append(parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None)
    return names


def image_env() -> dict[str, str]:
    """ENV of the final stage, in ``K=V ...`` or legacy ``K V`` form."""
    env: dict[str, str] = {}
    for i in final_stage():
        if i.keyword != "ENV":
            continue
        tokens = shlex.split(i.args)
        if "=" in tokens[0]:
            env.update(t.split("=", 1) for t in tokens)
        else:
            env[tokens[0]] = " ".join(tokens[1:])
    return env


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(a, str) for a in value), args
    return value


def dockerignore_patterns() -> list[str]:
    lines = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    pattern = pattern.strip("/")
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        else:
            c = pattern[i]
            out += "[^/]*" if c == "*" else "[^/]" if c == "?" else re.escape(c)
            i += 1
    return re.compile(out)


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore keeps ``path`` (relative, '/'-separated) out of the build context:
    a pattern excludes a path when it matches the path or one of its parent directories, and
    the last matching pattern wins ('!' re-includes)."""
    parts = path.split("/")
    candidates = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        regex = _pattern_regex(pattern.removeprefix("!"))
        if any(regex.fullmatch(c) for c in candidates):
            excluded = not negate
    return excluded


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def _compose_env_raw(service: dict[str, Any]) -> dict[str, Any]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return env


def compose_env(service: dict[str, Any]) -> dict[str, str]:
    """The variables a service sets to a value. A name without a value is taken from the shell
    running compose, and left out of the container when unset there: see compose_passthrough."""
    return {str(k): str(v) for k, v in _compose_env_raw(service).items() if v is not None}


def compose_passthrough(service: dict[str, Any]) -> set[str]:
    return {str(k) for k, v in _compose_env_raw(service).items() if v is None}


def published_ports(service: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(host address, host port, container port) of each short-form ``ports`` entry."""
    out = []
    for entry in service.get("ports", []):
        parts = str(entry).split(":")
        if len(parts) == 2:
            parts = ["0.0.0.0", *parts]
        assert len(parts) == 3, f"unreadable port entry {entry!r}"
        out.append((parts[0], parts[1], parts[2]))
    return out


def forwarded_allow_ips_ok(value: str) -> bool:
    """A value uvicorn accepts: '*' or comma-separated addresses and networks."""
    if value.strip() == "*":
        return True
    try:
        for item in value.split(","):
            ipaddress.ip_network(item.strip(), strict=False)
    except ValueError:
        return False
    return bool(value.strip())


def configmap_data() -> dict[str, Any]:
    return one("ConfigMap")["data"]


def example_secret_data() -> dict[str, Any]:
    return one("Secret")["stringData"]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No Aegis settings from the developer's shell leak into Settings() here."""
    for name in list(os.environ):
        if name.upper() in settings_env_names() | UVICORN_ENV:
            monkeypatch.delenv(name)
    return monkeypatch


@pytest.fixture
def app(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> FastAPI:
    """The real app, built but not started. Building it opens nothing: the store, the embedder
    and the index are opened by the lifespan, which only a running server enters."""
    from aegis_memory.server.app import create_app

    data_dir = tmp_path / "data"
    built = create_app(Settings(_env_file=None, aegis_data_dir=data_dir), configure_logging=False)
    assert not data_dir.exists(), "create_app touched the data directory"
    return built


@pytest.fixture
def served_get_paths(app: FastAPI) -> set[str]:
    """GET paths of the real app, from its OpenAPI description (the ops routes are in it)."""
    return {path for path, ops in app.openapi()["paths"].items() if "get" in ops}


# ------------------------------------------------------------------------ every file


def test_every_yaml_file_parses() -> None:
    paths = [COMPOSE, *all_k8s_files()]
    assert len(paths) >= 18
    for path in paths:
        docs = yaml_docs(path)
        assert docs, f"{path.name} holds no YAML document"
        assert all(isinstance(d, dict) for d in docs), f"{path.name}: a document is not a map"


# ------------------------------------------------------------------------ Kubernetes


def test_k8s_objects_name_themselves_and_carry_the_app_label() -> None:
    objects = k8s_objects()
    assert {o["kind"] for o in objects} >= {
        "Namespace", "Secret", "ConfigMap", "Deployment", "Service", "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
    }
    for obj in objects:
        where = f"{obj.get('kind')} {obj.get('metadata', {}).get('name')}"
        assert isinstance(obj.get("apiVersion"), str) and obj["apiVersion"], where
        assert isinstance(obj.get("kind"), str) and obj["kind"], where
        assert isinstance(obj["metadata"].get("name"), str) and obj["metadata"]["name"], where
        labels = obj["metadata"].get("labels") or {}
        assert APP_LABELS.items() <= labels.items(), f"{where} lacks {APP_LABELS}"


def test_one_namespace_everywhere() -> None:
    ns = one("Namespace")
    assert ns["metadata"]["name"] == NAMESPACE
    assert kustomization()["namespace"] == NAMESPACE
    for obj in k8s_objects():
        if obj["kind"] != "Namespace":
            assert obj["metadata"].get("namespace") == NAMESPACE, obj["metadata"]["name"]


def test_kustomization_lists_every_manifest_but_the_example_secret() -> None:
    k = kustomization()
    assert k["kind"] == "Kustomization"
    resources = k["resources"]
    assert len(resources) == len(set(resources)), "a resource is listed twice"
    for name in resources:
        assert (K8S / name).is_file(), f"kustomization lists missing file {name}"
    assert SECRET_EXAMPLE not in resources, "real secrets must not come from the repository"
    manifests = {p.name for p in k8s_files()} - {"kustomization.yaml", SECRET_EXAMPLE}
    assert set(resources) == manifests, "a manifest in k8s/ is not listed (or vice versa)"


def test_image_tag_is_the_package_version() -> None:
    version = PYPROJECT["project"]["version"]
    name, _, tag = container()["image"].rpartition(":")
    assert tag == version
    overrides = {i["name"]: i for i in kustomization().get("images", [])}
    if name in overrides:
        assert overrides[name].get("newTag", version) == version
    assert compose()["services"]["aegis"]["image"] == f"{name}:{version}"


def test_deployment_selector_matches_its_pod_template() -> None:
    spec = deployment()["spec"]
    assert spec["selector"]["matchLabels"].items() >= APP_LABELS.items()
    assert selects(spec["selector"], pod_labels())
    for constraint in spec["template"]["spec"].get("topologySpreadConstraints", []):
        assert selects(constraint["labelSelector"], pod_labels())


def test_deployment_rolls_without_losing_capacity() -> None:
    spec = deployment()["spec"]
    assert spec["replicas"] >= 2
    assert spec["strategy"]["type"] == "RollingUpdate"
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert spec["strategy"]["rollingUpdate"].get("maxSurge", 1) not in (0, "0%")


def test_service_routes_to_the_deployment_pods() -> None:
    service = one("Service")
    assert service["spec"].get("type", "ClusterIP") == "ClusterIP"
    assert selects(service["spec"]["selector"], pod_labels())
    names = container_port_names()
    ports = service["spec"]["ports"]
    assert any(p["port"] == 80 for p in ports)
    for port in ports:
        assert isinstance(port["targetPort"], str), "target the container port by its name"
        assert port["targetPort"] in names, f"targetPort {port['targetPort']} is not declared"


def test_container_port_is_the_port_the_server_binds() -> None:
    assert container_port_names()["http"] == int(configmap_data()["PORT"]) == 8000
    assert configmap_data()["HOST"] == "0.0.0.0"


def test_pdb_and_hpa_target_the_deployment() -> None:
    pdb, hpa, spec = one("PodDisruptionBudget"), one("HorizontalPodAutoscaler"), deployment()
    assert pdb["apiVersion"] == "policy/v1"
    assert selects(pdb["spec"]["selector"], pod_labels())
    # Below the replica count, or a node drain could never evict a pod.
    assert 1 <= pdb["spec"]["minAvailable"] < spec["spec"]["replicas"]

    assert hpa["apiVersion"] == "autoscaling/v2"
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == (
        "apps/v1", "Deployment", spec["metadata"]["name"])
    assert pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    assert hpa["spec"]["minReplicas"] == spec["spec"]["replicas"]
    cpu = [m for m in hpa["spec"]["metrics"]
           if m["type"] == "Resource" and m["resource"]["name"] == "cpu"]
    assert cpu and cpu[0]["resource"]["target"]["averageUtilization"] == 70
    # CPU utilisation is measured against the request, so there has to be one.
    assert "cpu" in container()["resources"]["requests"]


def test_env_comes_from_the_configmap_and_secret_defined_here() -> None:
    refs = container()["envFrom"]
    configmaps = {r["configMapRef"]["name"] for r in refs if "configMapRef" in r}
    secrets = {r["secretRef"]["name"] for r in refs if "secretRef" in r}
    assert configmaps == {one("ConfigMap")["metadata"]["name"]}
    assert secrets == {one("Secret")["metadata"]["name"]} == {"aegis-secrets"}
    assert all(isinstance(v, str) for v in configmap_data().values()), "values must be strings"
    assert all(isinstance(v, str) for v in example_secret_data().values())


def test_probes_hit_paths_the_app_serves(served_get_paths: set[str]) -> None:
    assert {"/health", "/ready"} <= served_get_paths
    c = container()
    expected = {"startupProbe": "/health", "livenessProbe": "/health", "readinessProbe": "/ready"}
    for probe_name, path in expected.items():
        probe = c[probe_name]["httpGet"]
        assert probe["path"] == path, probe_name
        assert probe["path"] in served_get_paths, probe_name
        assert probe["port"] in container_port_names(), f"{probe_name} port is not declared"
    startup = c["startupProbe"]
    # Migrations run before the server answers; on a large database they take minutes.
    assert startup["failureThreshold"] * startup.get("periodSeconds", 10) >= 300


def test_probe_paths_answer_as_probes_expect(app: FastAPI) -> None:
    """In process, without the lifespan (so nothing is opened): /health answers 200 at once,
    /ready answers 503 until the database and the index are open."""
    from fastapi.testclient import TestClient

    client = TestClient(app)  # not entered as a context manager: the lifespan does not run
    assert client.get("/health").status_code == 200
    ready = client.get("/ready")
    assert ready.status_code == 503 and ready.json()["code"] == "not_ready"


def test_pod_runs_unprivileged_on_a_read_only_root() -> None:
    pod, c = pod_spec(), container()
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False

    user = next(i.args for i in reversed(final_stage()) if i.keyword == "USER")
    uid = user.split(":")[0]
    assert uid.isdigit(), "a numeric USER lets the kubelet verify runAsNonRoot"
    assert pod["securityContext"]["runAsUser"] == int(uid)

    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    for name in mounts.values():
        assert name in volumes, f"volumeMount {name} has no volume"
    data_dir = configmap_data().get("AEGIS_DATA_DIR", image_env().get("AEGIS_DATA_DIR"))
    for path in ("/tmp", data_dir):
        assert path in mounts, f"{path} must be writable on a read-only root"
        assert "emptyDir" in volumes[mounts[path]], f"{path} should be an emptyDir"


def test_resource_requests_fit_within_limits() -> None:
    resources = container()["resources"]
    requests, limits = resources["requests"], resources["limits"]
    assert 0 < cpu_cores(requests["cpu"]) <= cpu_cores(limits["cpu"])
    assert 0 < memory_bytes(requests["memory"]) <= memory_bytes(limits["memory"])


# ------------------------------------------------------------------------ settings


def test_every_configured_env_name_is_a_setting() -> None:
    """Every name the server's containers get is a Settings field, or uvicorn's
    FORWARDED_ALLOW_IPS."""
    known = settings_env_names() | UVICORN_ENV
    aegis_service = compose()["services"]["aegis"]
    job = only_container(part_one("migrate", "Job"))
    sources = {
        "configmap.yaml": set(configmap_data()),
        SECRET_EXAMPLE: set(example_secret_data()),
        "deployment env": {e["name"] for e in container().get("env", [])},
        "migrate job env": {e["name"] for e in job.get("env", [])},
        "docker-compose.yml": set(compose_env(aegis_service)).union(
            compose_passthrough(aegis_service),
            *(compose_vars(v) for v in compose_env(aegis_service).values())),
        "Dockerfile ENV": set(image_env()) - NON_AEGIS_IMAGE_ENV,
    }
    for where, names in sources.items():
        unknown = {n for n in names if n.upper() not in known}
        assert not unknown, f"{where} sets names the server does not read: {sorted(unknown)}"


def test_forwarded_allow_ips_is_set_for_the_tls_proxy() -> None:
    """Production mode requires FORWARDED_ALLOW_IPS; both setups set a value uvicorn takes."""
    k8s_value = configmap_data()["FORWARDED_ALLOW_IPS"]
    compose_value = compose_env(compose()["services"]["aegis"])["FORWARDED_ALLOW_IPS"]
    for value in (k8s_value, compose_value):
        assert forwarded_allow_ips_ok(value), value
    assert forwarded_allow_ips_ok("10.244.0.0/16, 10.0.0.5") and not forwarded_allow_ips_ok("")
    # "*" trusts every peer: right only while no one but the proxy can reach the server.
    if compose_value == "*":
        for host, _, _ in published_ports(compose()["services"]["aegis"]):
            assert ipaddress.ip_address(host).is_loopback, "a public port with '*' trusts anyone"
    if k8s_value == "*":
        assert one("Service")["spec"].get("type", "ClusterIP") == "ClusterIP"


def _settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    from aegis_memory.service.engine import check_production_settings

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings(_env_file=None)
    check_production_settings(settings)  # raises if the dev key would be used in production
    return settings


def test_k8s_configuration_is_a_valid_production_configuration(
    clean_env: pytest.MonkeyPatch,
) -> None:
    env = {k: v for k, v in image_env().items() if k not in NON_AEGIS_IMAGE_ENV}
    env |= configmap_data() | example_secret_data()
    settings = _settings_from(env, clean_env)
    assert settings.aegis_env == "production"
    assert settings.log_format == "json"
    assert not settings.is_sqlite
    assert urlsplit(settings.resolved_database_url).scheme.startswith("postgres")


def test_compose_configuration_is_a_valid_production_configuration(
    clean_env: pytest.MonkeyPatch,
) -> None:
    raw = compose_env(compose()["services"]["aegis"])
    assert raw["AEGIS_API_KEY"].startswith("${AEGIS_API_KEY:?"), "the key must be required"
    with pytest.raises(AssertionError, match="AEGIS_API_KEY"):
        interpolate(raw["AEGIS_API_KEY"], {})
    env = {k: v for k, v in image_env().items() if k not in NON_AEGIS_IMAGE_ENV}
    env |= {k: interpolate(v, {"AEGIS_API_KEY": "a-long-random-secret"}) for k, v in raw.items()}
    settings = _settings_from(env, clean_env)
    assert settings.aegis_env == "production"
    assert not settings.is_sqlite


def test_production_would_refuse_these_configurations_without_the_proxy_setting(
    clean_env: pytest.MonkeyPatch,
) -> None:
    """What the guides say: production mode needs FORWARDED_ALLOW_IPS, so the value the
    ConfigMap sets is load-bearing."""
    env = {k: v for k, v in image_env().items() if k not in NON_AEGIS_IMAGE_ENV}
    env |= configmap_data() | example_secret_data()
    del env["FORWARDED_ALLOW_IPS"]
    with pytest.raises(Exception, match="FORWARDED_ALLOW_IPS"):
        _settings_from(env, clean_env)


def _pool_per_process(env: dict[str, str]) -> int:
    pool = int(env.get("DB_POOL_SIZE", setting_default("db_pool_size", 10)))
    overflow = int(env.get("DB_MAX_OVERFLOW", setting_default("db_max_overflow", 20)))
    return pool + overflow


def test_k8s_connections_fit_a_stock_postgres_at_full_scale() -> None:
    """At the HPA's maximum, plus the extra pod of a rollout (maxSurge), or plus the
    migration Job: never more connections than a stock PostgreSQL accepts."""
    c = container()
    workers = workers_in([*c.get("command", []), *c.get("args", [])])
    per_pod = workers * _pool_per_process(configmap_data())
    max_replicas = one("HorizontalPodAutoscaler")["spec"]["maxReplicas"]
    surge = deployment()["spec"]["strategy"]["rollingUpdate"]["maxSurge"]
    assert isinstance(surge, int), "a fixed maxSurge keeps this budget checkable"
    job = only_container(part_one("migrate", "Job"))
    job_workers = workers_in([*job.get("command", []), *job.get("args", [])])
    for what, peak in (
        ("at maxReplicas during a rollout", (max_replicas + surge) * per_pod),
        ("at maxReplicas with the migration Job", max_replicas * per_pod
         + job_workers * _pool_per_process(configmap_data())),
    ):
        assert peak <= POSTGRES_CONNECTION_BUDGET, f"{peak} connections {what}"
    # The StatefulSet in k8s/postgres/ states the limit the budget assumes.
    args = only_container(part_one("postgres", "StatefulSet"))["args"]
    assert f"max_connections={100}" in args


def test_compose_connections_fit_a_stock_postgres() -> None:
    service = compose()["services"]["aegis"]
    peak = workers_in(service["command"]) * _pool_per_process(compose_env(service))
    assert peak <= POSTGRES_CONNECTION_BUDGET


# ------------------------------------------------------------------------ compose


def test_compose_runs_aegis_on_a_healthy_pgvector_postgres() -> None:
    doc = compose()
    services = doc["services"]
    assert {"postgres", "aegis"} <= set(services)
    pg, aegis = services["postgres"], services["aegis"]

    assert pg["image"].startswith("pgvector/pgvector:pg")
    check = pg["healthcheck"]["test"]
    check = " ".join(check) if isinstance(check, list) else check
    assert "pg_isready" in check and "-U aegis" in check
    assert aegis["depends_on"]["postgres"]["condition"] == "service_healthy"

    pg_env = compose_env(pg)
    url = urlsplit(compose_env(aegis)["DATABASE_URL"])
    assert url.scheme == "postgresql"
    assert url.hostname in services and url.port == 5432
    assert (url.username, url.password, url.path.lstrip("/")) == (
        pg_env["POSTGRES_USER"], pg_env["POSTGRES_PASSWORD"], pg_env["POSTGRES_DB"])

    declared = set(doc.get("volumes") or {})
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0] if isinstance(volume, str) else volume["source"]
            if not source.startswith((".", "/")):
                assert source in declared, f"named volume {source} is not declared"


def test_compose_serves_aegis_on_the_published_port(served_get_paths: set[str]) -> None:
    aegis = compose()["services"]["aegis"]
    build = aegis["build"]
    context = ROOT / (build if isinstance(build, str) else build.get("context", "."))
    assert (context / "Dockerfile").is_file()

    command = aegis["command"]
    assert command[:2] == ["aegis", "serve"]
    port = command[command.index("--port") + 1]
    assert command[command.index("--host") + 1] == "0.0.0.0"
    # Published on the host's loopback only: plain HTTP stays behind the TLS proxy.
    assert published_ports(aegis) == [("127.0.0.1", port, port)]

    check = aegis["healthcheck"]["test"]
    check = " ".join(check) if isinstance(check, list) else check
    paths = http_paths(check)
    assert paths and paths <= served_get_paths
    assert f":{port}/" in check


# ------------------------------------------------------------------------ Dockerfile


def test_dockerfile_runs_aegis_serve_as_a_non_root_user() -> None:
    stage = final_stage()
    base = next(i.args for i in stage if i.keyword == "FROM").split()[0]
    m = re.fullmatch(r"python:3\.(\d+)-slim", base)
    assert m, f"final stage should be python:3.x-slim, not {base}"
    minimum = re.search(r">=\s*3\.(\d+)", PYPROJECT["project"]["requires-python"])
    assert minimum and int(m.group(1)) >= int(minimum.group(1))

    users = [i.args for i in stage if i.keyword == "USER"]
    assert users, "the image must not run as root"
    assert users[-1].split(":")[0] not in ("root", "0")

    exposed = {p for i in stage if i.keyword == "EXPOSE" for p in i.args.split()}
    assert "8000" in exposed or "8000/tcp" in exposed

    cmds = [exec_form(i.args) for i in stage if i.keyword == "CMD"]
    assert cmds and cmds[-1][:2] == ["aegis", "serve"]
    assert "aegis" in PYPROJECT["project"]["scripts"]

    env = image_env()
    assert (env["HOST"], env["PORT"], env["AEGIS_DATA_DIR"]) == ("0.0.0.0", "8000", "/data")


def test_dockerfile_installs_the_server_and_postgres_extras() -> None:
    installs = [m for i in dockerfile() if i.keyword == "RUN"
                for m in re.findall(r"pip install\s+['\"]?\.\[([\w,-]+)\]", i.args)]
    assert installs, "the package is installed from the source tree"
    extras = set(installs[0].split(","))
    assert extras >= {"server", "postgres"}
    assert extras <= set(PYPROJECT["project"]["optional-dependencies"])


def test_dockerfile_copies_only_what_exists_and_is_in_the_build_context() -> None:
    patterns = dockerignore_patterns()
    names = stage_names()
    copies = [i for i in dockerfile() if i.keyword in ("COPY", "ADD")]
    assert copies
    for instruction in copies:
        tokens = shlex.split(instruction.args)
        if tokens and tokens[0].startswith("["):
            tokens = exec_form(instruction.args)
        options = [t for t in tokens if t.startswith("--")]
        paths = [t for t in tokens if not t.startswith("--")]
        assert len(paths) >= 2, instruction.args
        from_stage = [o.split("=", 1)[1] for o in options if o.startswith("--from=")]
        if from_stage:
            assert from_stage[0] in names[: instruction.stage], f"unknown stage {from_stage}"
            continue
        for source in paths[:-1]:
            matches = list(ROOT.glob(source))
            assert matches, f"COPY source {source} does not exist"
            for match in matches:
                files = [match] if match.is_file() else [p for p in match.rglob("*")
                                                         if p.is_file()]
                for f in files:
                    rel = f.relative_to(ROOT).as_posix()
                    if "__pycache__" in rel.split("/") or rel.endswith(".pyc"):
                        continue  # excluded on purpose
                    assert not dockerignored(rel, patterns), f".dockerignore drops {rel}"


def test_dockerfile_healthcheck_polls_a_served_path(served_get_paths: set[str]) -> None:
    checks = [i.args for i in final_stage() if i.keyword == "HEALTHCHECK"]
    assert len(checks) == 1
    m = re.search(r"(?:^|\s)CMD\s+(.*)$", checks[0])
    assert m, "HEALTHCHECK has no CMD"
    command = exec_form(m.group(1))
    assert command[0] == "python", "slim images have no curl: use python"
    script = " ".join(command)
    assert "urllib" in script
    paths = http_paths(script)
    assert paths == {"/health"}
    assert paths <= served_get_paths


def test_dockerignore_keeps_local_state_out_of_the_context() -> None:
    patterns = dockerignore_patterns()
    for path in (".venv/bin/python", ".git/HEAD", "src/aegis_memory/__pycache__/app.pyc",
                 "benchmarks/results/engine.json", "aegis.db", "data/aegis.db",
                 ".pytest_cache/v/cache", ".ruff_cache/CACHEDIR.TAG", ".env"):
        assert dockerignored(path, patterns), f"{path} would be sent to the Docker daemon"
    for path in ("pyproject.toml", "README.md", "src/aegis_memory/server/app.py"):
        assert not dockerignored(path, patterns), path


def test_dockerignore_matcher() -> None:
    """The matcher the checks above rely on follows Docker's rules on the cases used here."""
    assert dockerignored("a/b/__pycache__/x.pyc", ["**/__pycache__"])
    assert dockerignored("x.db", ["**/*.db"])
    assert not dockerignored("src/x.py", ["*.db", ".venv"])
    assert not dockerignored("keep.db", ["**/*.db", "!keep.db"])
    assert dockerignored("benchmarks/results/r.json", ["benchmarks/results"])
    assert not dockerignored("benchmarks/run.py", ["benchmarks/results"])


# ------------------------------------------------------------------ Kubernetes API schemas


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize(
    "path", [p for p in all_k8s_files() if p.name != "kustomization.yaml"], ids=_rel)
def test_manifest_matches_the_kubernetes_api_schema(path: Path, version: str) -> None:
    """Strict: an unknown or misspelt field fails, as does a kind the version does not have."""
    docs = yaml_docs(path)
    assert docs, f"{_rel(path)} holds no object"
    for doc in docs:
        what = f"{_rel(path)}: {doc.get('kind')} {doc.get('metadata', {}).get('name')}"
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            field = ".".join(str(part) for part in exc.path)
            pytest.fail(f"{what} (Kubernetes {version}): {field}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            pytest.fail(f"{what}: {exc.message}")


def test_the_schema_check_is_strict() -> None:
    """A misspelt field fails the check above, so its passing means something."""
    bad = copy.deepcopy(deployment())
    probe = bad["spec"]["template"]["spec"]["containers"][0].pop("livenessProbe")
    bad["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = probe
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, KUBERNETES_VERSIONS[0], strict=True)
    kubernetes_validate.validate(deployment(), KUBERNETES_VERSIONS[0], strict=True)


# ------------------------------------------------------------------ kustomizations


KUSTOMIZATION_KEYS = {"apiVersion", "kind", "namespace", "resources", "images"}


def _listed_files(kustomization_path: Path) -> list[Path]:
    k = yaml.safe_load(kustomization_path.read_text())
    return [kustomization_path.parent / name for name in k["resources"]]


@pytest.mark.parametrize("path", kustomization_files(), ids=_rel)
def test_kustomization_lists_every_manifest_of_its_directory(path: Path) -> None:
    k = yaml.safe_load(path.read_text())
    assert (k["apiVersion"], k["kind"]) == ("kustomize.config.k8s.io/v1beta1", "Kustomization")
    assert set(k) <= KUSTOMIZATION_KEYS, f"unexpected keys {sorted(set(k) - KUSTOMIZATION_KEYS)}"
    assert k["namespace"] == NAMESPACE
    resources = k["resources"]
    assert len(resources) == len(set(resources)), "a resource is listed twice"
    for target in _listed_files(path):
        assert target.is_file(), f"{_rel(path)} lists {target.name}, which does not exist"
        assert target.parent == path.parent, "each kustomization lists its own directory's files"
    here = {p.name for p in path.parent.glob("*.yaml")} - {"kustomization.yaml", SECRET_EXAMPLE}
    assert set(resources) == here, "a manifest is not listed (or a listed one is missing)"
    assert SECRET_EXAMPLE not in resources, "real secrets must not come from the repository"

    images = {only_container(o)["image"].rsplit(":", 1)[0]
              for f in _listed_files(path) for o in yaml_docs(f)
              if o["kind"] in ("Deployment", "StatefulSet", "Job")}
    for image in k.get("images", []):
        assert image["name"] in images, f"images: {image['name']} is not used here"
        assert image.get("newTag", PYPROJECT["project"]["version"]) == PYPROJECT["project"][
            "version"]


def test_every_k8s_directory_is_a_kustomization() -> None:
    directories = {p.parent for p in all_k8s_files()}
    assert directories == {K8S, *(K8S / part for part in K8S_PARTS)}
    for directory in directories:
        assert (directory / "kustomization.yaml").is_file(), directory


def test_every_object_carries_the_namespace_and_its_part_label() -> None:
    for path, obj in all_k8s_objects():
        where = f"{_rel(path)}: {obj['kind']} {obj['metadata']['name']}"
        labels = obj["metadata"].get("labels") or {}
        assert APP_LABELS.items() <= labels.items(), f"{where} lacks {APP_LABELS}"
        if obj["kind"] != "Namespace":
            assert obj["metadata"].get("namespace") == NAMESPACE, where
        if path.parent != K8S:
            assert labels.get(COMPONENT), f"{where} needs an {COMPONENT} label"
    for part in K8S_PARTS:
        components = {o["metadata"]["labels"][COMPONENT] for o in part_objects(part)}
        assert len(components) == 1, f"k8s/{part}/ mixes components {components}"
        for workload in (o for o in part_objects(part) if "template" in o.get("spec", {})):
            labels = pod_template(workload)["metadata"]["labels"]
            assert labels.get(COMPONENT) in components


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
@pytest.mark.parametrize("path", kustomization_files(), ids=_rel)
def test_kustomize_renders_what_the_files_hold(path: Path) -> None:
    done = subprocess.run(["kubectl", "kustomize", str(path.parent)], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    rendered = [d for d in yaml.safe_load_all(done.stdout) if d]
    expected = [o for f in _listed_files(path) for o in yaml_docs(f)]
    key = lambda o: (o["kind"], o["metadata"]["name"])  # noqa: E731
    assert sorted(map(key, rendered)) == sorted(map(key, expected))
    version = PYPROJECT["project"]["version"]
    for obj in rendered:
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == NAMESPACE
        if obj["kind"] in ("Deployment", "Job") and "aegis-memory" in only_container(obj)["image"]:
            assert only_container(obj)["image"] == f"aegis-memory:{version}"


# ------------------------------------------------------------------ selectors across the parts


def _selector(obj: dict[str, Any]) -> dict[str, Any] | None:
    if obj["kind"] == "Service":
        return obj["spec"].get("selector")
    if obj["kind"] in ("Deployment", "StatefulSet", "PodDisruptionBudget"):
        return obj["spec"]["selector"]
    return None


def test_every_selector_picks_the_pods_of_its_own_part_only() -> None:
    """All parts share app.kubernetes.io/name; the component label keeps each Service,
    PodDisruptionBudget and workload selector on its own pods."""
    pods = [(w["metadata"]["name"], pod_template(w)["metadata"]["labels"]) for w in workloads()]
    for path, obj in all_k8s_objects():
        selector = _selector(obj)
        if selector is None:
            continue
        where = f"{_rel(path)}: {obj['kind']} {obj['metadata']['name']}"
        component = obj["metadata"]["labels"][COMPONENT]
        chosen = {name for name, labels in pods if selects(selector, labels)}
        own = {name for name, labels in pods if labels.get(COMPONENT) == component}
        assert chosen, f"{where} selects no pods"
        assert chosen == own, f"{where} selects {sorted(chosen)}, not {sorted(own)}"


def test_every_service_targets_a_named_port_of_its_pods() -> None:
    for _, svc in all_k8s_objects():
        if svc["kind"] != "Service":
            continue
        selected = [w for w in workloads()
                    if selects(svc["spec"]["selector"], pod_template(w)["metadata"]["labels"])]
        names = {p["name"]: p["containerPort"] for w in selected
                 for p in only_container(w).get("ports", [])}
        for port in svc["spec"]["ports"]:
            assert port["targetPort"] in names, f"{svc['metadata']['name']}: {port}"


# ------------------------------------------------------------------ every workload


@pytest.mark.parametrize("name", [f"{w['kind']}/{w['metadata']['name']}" for w in workloads()])
def test_every_workload_runs_unprivileged_within_set_resources(name: str) -> None:
    workload = next(w for w in workloads() if f"{w['kind']}/{w['metadata']['name']}" == name)
    pod = pod_template(workload)["spec"]
    c = only_container(workload)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"].get("runAsUser", 0) != 0
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod.get("automountServiceAccountToken") is False
    assert pod.get("enableServiceLinks") is False
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]

    requests, limits = c["resources"]["requests"], c["resources"]["limits"]
    assert 0 < cpu_cores(requests["cpu"]) <= cpu_cores(limits["cpu"])
    assert 0 < memory_bytes(requests["memory"]) <= memory_bytes(limits["memory"])

    volumes = {v["name"] for v in pod.get("volumes", [])}
    claims = {t["metadata"]["name"] for t in workload["spec"].get("volumeClaimTemplates", [])}
    for mount in c.get("volumeMounts", []):
        assert mount["name"] in volumes | claims, f"volumeMount {mount['name']} has no volume"
    if workload["kind"] != "Job":
        assert "livenessProbe" in c and "readinessProbe" in c


# ------------------------------------------------------------------ PostgreSQL StatefulSet


def postgres_env() -> dict[str, dict[str, Any]]:
    c = only_container(part_one("postgres", "StatefulSet"))
    return {e["name"]: e for e in c["env"]}


def test_postgres_statefulset_is_served_by_its_headless_service() -> None:
    sts, svc = part_one("postgres", "StatefulSet"), part_one("postgres", "Service")
    labels = pod_template(sts)["metadata"]["labels"]
    assert sts["spec"]["serviceName"] == svc["metadata"]["name"]
    assert svc["spec"]["clusterIP"] == "None", "a StatefulSet's service is headless"
    assert selects(sts["spec"]["selector"], labels)
    assert selects(svc["spec"]["selector"], labels)
    assert sts["spec"]["replicas"] == 1, "one server: no replication is set up here"
    ports = {p["name"]: p["containerPort"] for p in only_container(sts)["ports"]}
    assert [(p["port"], ports[p["targetPort"]]) for p in svc["spec"]["ports"]] == [(5432, 5432)]
    # The same image as the compose file's database.
    assert only_container(sts)["image"] == compose()["services"]["postgres"]["image"]
    assert only_container(sts)["image"].startswith("pgvector/pgvector:pg")


def test_postgres_keeps_its_data_on_a_claimed_volume() -> None:
    sts = part_one("postgres", "StatefulSet")
    c = only_container(sts)
    claims = {t["metadata"]["name"]: t for t in sts["spec"]["volumeClaimTemplates"]}
    on_claims = [m["mountPath"] for m in c["volumeMounts"] if m["name"] in claims]
    assert len(on_claims) == 1
    # initdb needs an empty directory, and a fresh volume's root may hold lost+found.
    pgdata = postgres_env()["PGDATA"]["value"]
    assert pgdata.startswith(on_claims[0].rstrip("/") + "/")
    claim = next(iter(claims.values()))["spec"]
    assert claim["accessModes"] == ["ReadWriteOnce"]
    assert memory_bytes(claim["resources"]["requests"]["storage"]) >= 10 * 2**30
    # A read-only root: the socket directory must be writable too.
    mounts = {m["mountPath"] for m in c["volumeMounts"]}
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"/var/run/postgresql", "/tmp"} <= mounts


def test_postgres_password_comes_from_the_secret_its_example_shows() -> None:
    env = postgres_env()
    assert "value" not in env["POSTGRES_PASSWORD"], "no password in the repository"
    ref = env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"]
    example = part_one("postgres", "Secret")
    assert ref["name"] == example["metadata"]["name"]
    assert ref["key"] in example["stringData"]
    compose_pg = compose_env(compose()["services"]["postgres"])
    assert env["POSTGRES_USER"]["value"] == compose_pg["POSTGRES_USER"]
    assert env["POSTGRES_DB"]["value"] == compose_pg["POSTGRES_DB"]


def test_the_documented_in_cluster_database_url_reaches_the_statefulset() -> None:
    svc = part_one("postgres", "Service")
    env = postgres_env()
    texts = {
        "k8s/postgres/kustomization.yaml": (K8S / "postgres" / "kustomization.yaml").read_text(),
        "docs/deployment/kubernetes.md": (DOCS / "kubernetes.md").read_text(),
    }
    for where, text in texts.items():
        urls = re.findall(r"postgresql://[^\s\"'`]*@postgres[^\s\"'`]*", text)
        assert urls, f"{where} does not give the in-cluster DATABASE_URL"
        for url in urls:
            parts = urlsplit(url)
            assert parts.hostname == svc["metadata"]["name"], url
            assert parts.port == svc["spec"]["ports"][0]["port"], url
            assert parts.username == env["POSTGRES_USER"]["value"], url
            assert parts.path.lstrip("/") == env["POSTGRES_DB"]["value"], url


def test_postgres_probes_shutdown_and_memory() -> None:
    sts = part_one("postgres", "StatefulSet")
    c = only_container(sts)
    for name in ("startupProbe", "livenessProbe", "readinessProbe"):
        command = exec_probe(c[name])
        # Over TCP: the temporary server of first-time initialisation listens on no port.
        assert command[0] == "pg_isready" and "127.0.0.1" in command, name
        assert command[command.index("-U") + 1] == postgres_env()["POSTGRES_USER"]["value"]
    startup = c["startupProbe"]
    assert startup["failureThreshold"] * startup["periodSeconds"] >= 300
    # A fast shutdown, which does not wait for the API's pooled connections, within the
    # grace period.
    stop = " ".join(c["lifecycle"]["preStop"]["exec"]["command"])
    assert "pg_ctl stop" in stop and "-m fast" in stop
    wait = int(re.search(r"-t (\d+)", stop).group(1))
    assert wait < pod_template(sts)["spec"]["terminationGracePeriodSeconds"]
    # shared_buffers at most half of the memory limit.
    settings = dict(arg.split("=", 1) for arg in c["args"] if "=" in arg)
    assert memory_bytes(settings["shared_buffers"].replace("MB", "Mi").replace("GB", "Gi")) \
        <= memory_bytes(c["resources"]["limits"]["memory"]) // 2


# ------------------------------------------------------------------ Redis and rate limits


def test_redis_for_rate_limits_matches_the_documented_url() -> None:
    url = urlsplit(REDIS_URL_EXAMPLE)
    svc, dep = part_one("redis", "Service"), part_one("redis", "Deployment")
    assert url.hostname == svc["metadata"]["name"]
    assert url.port in {p["port"] for p in svc["spec"]["ports"]}
    # One instance at a time: two side by side would split the counters.
    assert dep["spec"]["replicas"] == 1 and dep["spec"]["strategy"]["type"] == "Recreate"
    args = only_container(dep)["args"]
    assert args[args.index("--save") + 1] == "" and args[args.index("--appendonly") + 1] == "no"

    services = compose()["services"]
    assert url.hostname in services
    compose_args = services["redis"]["command"]
    assert compose_args[compose_args.index("--save") + 1] == ""
    for where in (COMPOSE, DOCS / "docker.md", DOCS / "kubernetes.md", DOCS / "scaling.md",
                  K8S / "configmap.yaml", K8S / "redis" / "kustomization.yaml"):
        assert REDIS_URL_EXAMPLE in where.read_text(), f"{_rel(where)} lacks {REDIS_URL_EXAMPLE}"


def test_compose_redis_is_optional_behind_its_profile() -> None:
    services = compose()["services"]
    redis = services["redis"]
    assert redis["profiles"] == ["redis"]
    assert "ports" not in redis, "Redis is for the server only"
    check = redis["healthcheck"]["test"]
    assert check[-2:] == ["redis-cli", "ping"]
    for name, service in services.items():
        if name == "redis":
            continue
        assert "profiles" not in service, f"{name} must start without any profile"
        depends = service.get("depends_on") or {}
        assert isinstance(depends, dict), "long-form depends_on, so redis can be optional"
        if "redis" in depends:
            assert depends["redis"]["required"] is False, f"{name} needs redis without profile"
            assert depends["redis"]["condition"] == "service_healthy"
    aegis = services["aegis"]
    # From the shell when set there, else absent: a fixed value would point at a Redis that
    # does not run without the profile.
    assert "REDIS_URL" in compose_passthrough(aegis)
    assert "REDIS_URL" not in compose_env(aegis)


# ------------------------------------------------------------------ migration Job


def test_migration_job_runs_aegis_migrate_like_the_server() -> None:
    job = part_one("migrate", "Job")
    c = only_container(job)
    assert c["command"] == ["aegis", "migrate"]
    assert "migrate" in cli_commands()
    assert c["envFrom"] == container()["envFrom"], "the same settings as the server"
    assert c["image"] == container()["image"]
    pod = pod_template(job)["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["securityContext"]["runAsUser"] == pod_spec()["securityContext"]["runAsUser"]
    mounts = {m["mountPath"] for m in c["volumeMounts"]}
    assert {"/tmp", configmap_data()["AEGIS_DATA_DIR"]} <= mounts


# ------------------------------------------------------------------ graceful shutdown


def _seconds(value: str | int) -> float:
    m = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", str(value))
    assert m and any(m.groups()), f"unreadable duration {value!r}"
    return int(m.group(1) or 0) * 60 + int(m.group(2) or 0)


def _shutdown_timeout(env: dict[str, str]) -> float:
    default = Settings.model_fields["aegis_shutdown_timeout"].default
    return float(env.get("AEGIS_SHUTDOWN_TIMEOUT", default))


def test_kubernetes_gives_the_server_time_to_finish_its_requests() -> None:
    """The kubelet's grace period starts with preStop: it must cover the pause, the server's
    own shutdown timeout, and a few seconds to close the pool and exit."""
    pre_stop = container()["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    grace = pod_spec()["terminationGracePeriodSeconds"]
    assert grace >= float(pre_stop[1]) + _shutdown_timeout(configmap_data()) + 5


def test_compose_gives_the_server_time_to_finish_its_requests() -> None:
    aegis = compose()["services"]["aegis"]
    grace = _seconds(aegis["stop_grace_period"])
    assert grace >= _shutdown_timeout(compose_env(aegis)) + 5


# ------------------------------------------------------------------ the bundled model


def test_the_embedding_model_is_baked_into_the_image() -> None:
    """The model ships inside the package: `COPY src` brings it into the build, the wheel
    packs it, and the image downloads nothing. The build embeds one text to prove it."""
    from aegis_memory.embeddings.local import LOCAL_MODEL_NAME

    model_dir = ROOT / "src" / "aegis_memory" / "embeddings" / "models" / LOCAL_MODEL_NAME
    files = [model_dir / name for name in ("model.onnx", "tokenizer.json", "model.json")]
    for f in files:
        assert f.is_file(), f"{_rel(f)} is missing"
        assert not dockerignored(_rel(f), dockerignore_patterns()), f"{_rel(f)} is dockerignored"
    wheel = PYPROJECT["tool"]["hatch"]["build"]["targets"]["wheel"]
    assert wheel["packages"] == ["src/aegis_memory"], "the wheel packs the whole package dir"
    if shutil.which("git") and (ROOT / ".git").exists():
        # Hatch leaves out what .gitignore ignores.
        done = subprocess.run(["git", "check-ignore", *map(str, files)], cwd=ROOT,
                              capture_output=True, text=True, check=False)
        assert done.returncode == 1, f"ignored by git, so not in the wheel: {done.stdout}"

    runs = [i for i in dockerfile() if i.keyword == "RUN"]
    assert not any(re.search(r"\b(curl|wget|huggingface|hf_hub|snapshot_download)\b", i.args)
                   for i in runs), "the image must not download a model"
    install = next(n for n, i in enumerate(runs) if "pip install" in i.args)
    checks = [i for i in runs[install + 1:] if "LocalOnnxEmbedder" in i.args]
    assert len(checks) == 1 and checks[0].stage == runs[install].stage
    code = re.search(r'python -c "(.*)"', checks[0].args)
    assert code, checks[0].args
    compile(code.group(1), "<Dockerfile RUN>", "exec")


# ------------------------------------------------------------------ the deployment guides


DOC_FILES = sorted(DOCS.glob("*.md"))
NEW_GUIDES = ("production-checklist.md", "backup-restore.md", "upgrades.md", "scaling.md")

# Names the guides may show that Settings does not read: the SDK's and CLI's server address,
# and settings of other software (the postgres image, libpq, prometheus-client).
CLIENT_ENV = frozenset({"AEGIS_BASE_URL"})
OTHER_SOFTWARE_ENV = frozenset({
    "POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB", "PGDATA", "PGOPTIONS",
    "PROMETHEUS_MULTIPROC_DIR",
})
_FENCE = re.compile(r"^[ \t]*```[^\n]*\n(.*?)^[ \t]*```", re.S | re.M)


def _prose(text: str) -> str:
    return _FENCE.sub("", text)


def _code(text: str) -> list[str]:
    """Fenced blocks and inline code spans."""
    return _FENCE.findall(text) + re.findall(r"`([^`\n]+)`", _prose(text))


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    return {_slug(m) for m in re.findall(r"^#{1,6}\s+(.+)$", _prose(path.read_text()), re.M)}


def _links(path: Path) -> list[str]:
    return re.findall(r"\]\(([^)\s]+)\)", _prose(path.read_text()))


def cli_commands() -> dict[str, Any]:
    import typer.main

    from aegis_memory.cli.main import app as cli_app

    return typer.main.get_command(cli_app).commands  # type: ignore[attr-defined]


def _options(command: Any) -> set[str]:
    return {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}


_GLOBAL_OPTIONS = ("--api-key", "--base-url", "--timeout")
_END = re.compile(r"^(\||&&|\|\||;|>|<|#.*)$")


def aegis_invocations(snippet: str) -> list[list[str]]:
    """The `aegis ...` command lines in a code snippet, from the command on (global options
    dropped). `aegis` as an option's value (`-n aegis`, `-U aegis`) or a compose service name
    (`exec aegis aegis ...`) is not an invocation."""
    found = []
    for line in snippet.replace("\\\n", " ").splitlines():
        tokens = line.split()
        for i, token in enumerate(tokens):
            if token != "aegis":
                continue
            previous = tokens[i - 1] if i else ""
            if previous.startswith("-") and previous != "--":
                continue
            rest = tokens[i + 1:]
            while rest and rest[0] in _GLOBAL_OPTIONS:
                rest = rest[2:]
            if not rest or rest[0] == "aegis" or not re.fullmatch(r"[a-z][a-z-]*", rest[0]):
                continue
            end = next((n for n, t in enumerate(rest) if _END.match(t)), len(rest))
            found.append(rest[:end])
    return found


@pytest.mark.parametrize("doc", DOC_FILES, ids=lambda p: p.name)
def test_guide_links_resolve(doc: Path) -> None:
    for target in _links(doc):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path_part, _, anchor = target.partition("#")
        dest = (doc.parent / path_part).resolve() if path_part else doc
        assert dest.exists(), f"{doc.name}: link to {target}: no such file"
        if anchor:
            assert dest.suffix == ".md" and anchor in _anchors(dest), (
                f"{doc.name}: link to {target}: no such heading in {dest.name}")


def test_the_link_check_reads_headings_as_github_does() -> None:
    slug = _slug("Shared rate limits: the `redis` profile")
    assert slug == "shared-rate-limits-the-redis-profile"
    assert "[a](b.md)" not in _prose("```\n[a](b.md)\n```\n") and _links(DOCS / "docker.md")


def test_new_guides_are_linked_from_the_docker_and_kubernetes_guides() -> None:
    for guide in ("docker.md", "kubernetes.md"):
        targets = {t.partition("#")[0] for t in _links(DOCS / guide)}
        missing = set(NEW_GUIDES) - targets
        assert not missing, f"{guide} should link {sorted(missing)}"
    for name in NEW_GUIDES:
        assert (DOCS / name).is_file()


@pytest.mark.parametrize("doc", DOC_FILES, ids=lambda p: p.name)
def test_guides_show_only_real_cli_commands_and_options(doc: Path) -> None:
    commands = cli_commands()
    for snippet in _code(doc.read_text()):
        for words in aegis_invocations(snippet):
            name = words[0]
            assert name in commands, f"{doc.name}: `aegis {name}` is not a command"
            command = commands[name]
            args = words[1:]
            if hasattr(command, "commands"):  # a group: keys, projects, ...
                if not args or not re.fullmatch(r"[a-z][a-z-]*", args[0]):
                    continue
                assert args[0] in command.commands, f"{doc.name}: `aegis {name} {args[0]}`"
                command, args = command.commands[args[0]], args[1:]
            for arg in args:
                if arg.startswith("--"):
                    option = arg.split("=", 1)[0]
                    assert option in _options(command), f"{doc.name}: `aegis {name}` {option}"


def test_the_command_finder_reads_command_lines_as_meant() -> None:
    assert aegis_invocations("docker compose run --rm aegis aegis migrate") == [["migrate"]]
    assert aegis_invocations("kubectl -n aegis exec deploy/x -- aegis projects create a") == [
        ["projects", "create", "a"]]
    assert aegis_invocations("aegis --base-url http://h:8000 export -o f.jsonl  # x") == [
        ["export", "-o", "f.jsonl"]]
    assert aegis_invocations("pg_dump -U aegis -d aegis > aegis.dump") == []


def _env_names_shown(text: str) -> set[str]:
    names: set[str] = set()
    prose = _prose(text)
    names |= set(re.findall(r"`([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)(?:=[^`]*)?`", prose))
    for block in _FENCE.findall(text):
        for line in block.splitlines():
            stripped = line.strip()
            if stripped.startswith("export "):
                names |= set(re.findall(r"\b([A-Z][A-Z0-9_]*)=", stripped))
            names |= set(re.findall(r"(?:-e |--from-literal=)([A-Z][A-Z0-9_]*)=", line))
            m = re.match(r"^\s+([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+):\s", line)
            if m:
                names.add(m.group(1))
    return names


@pytest.mark.parametrize("doc", DOC_FILES, ids=lambda p: p.name)
def test_guides_name_only_real_settings(doc: Path) -> None:
    known = settings_env_names() | UVICORN_ENV | CLIENT_ENV | OTHER_SOFTWARE_ENV
    unknown = _env_names_shown(doc.read_text()) - known
    assert not unknown, f"{doc.name} names settings the server does not have: {sorted(unknown)}"


@pytest.mark.parametrize("doc", DOC_FILES, ids=lambda p: p.name)
def test_guides_name_only_real_metrics_and_make_targets(doc: Path) -> None:
    text = doc.read_text()
    source = (ROOT / "src" / "aegis_memory" / "server" / "metrics.py").read_text()
    # Metric names have at least two parts after the prefix (aegis_english, a text search
    # configuration, and aegis_restored, a database name, are not metrics).
    for name in set(re.findall(r"`(aegis_[a-z]+_[a-z_]+)`", text)):
        assert f'"{name}"' in source, f"{doc.name}: {name} is not a metric"
    targets = set(re.findall(r"^([a-zA-Z][\w-]*):", (ROOT / "Makefile").read_text(), re.M))
    for target in re.findall(r"\bmake ([a-z][\w-]*)", " ".join(_code(text))):
        assert target in targets, f"{doc.name}: `make {target}` is not a Makefile target"


def test_production_checklist_covers_what_production_mode_enforces() -> None:
    text = (DOCS / "production-checklist.md").read_text()
    for needed in ("AEGIS_ENV=production", "dev-key", "FORWARDED_ALLOW_IPS", "LOG_FORMAT=json",
                   "RATE_LIMIT_PER_MINUTE", "RATE_LIMIT_PER_HOUR", "REDIS_URL", "/metrics",
                   "aegis keys create", "aegis keys list", "aegis keys revoke", "SHA-256",
                   "backup-restore.md", "1.9 GB"):
        assert needed in text, f"the production checklist does not mention {needed}"
