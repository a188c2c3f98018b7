"""Lint the deployment artifacts: Dockerfile, .dockerignore, docker-compose.yml and k8s/.

Neither Docker nor a Kubernetes cluster runs where these tests run, so the files are read and
cross-checked against the code instead: probe and health-check paths against the routes of the
real FastAPI app, environment variables against ``Settings``, COPY sources against the
repository, and the Kubernetes objects against each other (selectors, ports, names).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from fastapi import FastAPI

from aegis_memory.config import Settings

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "k8s"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = ROOT / "docker-compose.yml"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

NAMESPACE = "aegis"
APP_LABELS = {"app.kubernetes.io/name": "aegis-memory"}
SECRET_EXAMPLE = "secret.example.yaml"

# Environment names the PostgreSQL backend work is adding to Settings (SPEC §9). They count as
# known even while src/aegis_memory/config.py does not have them yet.
SETTINGS_FIELDS_COMING = frozenset({"DB_POOL_SIZE", "DB_MAX_OVERFLOW", "DATABASE_READ_REPLICA_URL"})

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
    names = set(SETTINGS_FIELDS_COMING)
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


def compose_env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def configmap_data() -> dict[str, Any]:
    return one("ConfigMap")["data"]


def example_secret_data() -> dict[str, Any]:
    return one("Secret")["stringData"]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No Aegis settings from the developer's shell leak into Settings() here."""
    for name in list(os.environ):
        if name.upper() in settings_env_names():
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
    paths = [COMPOSE, *k8s_files()]
    assert len(paths) >= 9
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
    known = settings_env_names()
    aegis_service = compose()["services"]["aegis"]
    sources = {
        "configmap.yaml": set(configmap_data()),
        SECRET_EXAMPLE: set(example_secret_data()),
        "deployment env": {e["name"] for e in container().get("env", [])},
        "docker-compose.yml": set(compose_env(aegis_service)).union(
            *(compose_vars(v) for v in compose_env(aegis_service).values())),
        "Dockerfile ENV": set(image_env()) - NON_AEGIS_IMAGE_ENV,
    }
    for where, names in sources.items():
        unknown = {n for n in names if n.upper() not in known}
        assert not unknown, f"{where} sets names the server does not read: {sorted(unknown)}"


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


def _pool_per_process(env: dict[str, str]) -> int:
    pool = int(env.get("DB_POOL_SIZE", setting_default("db_pool_size", 10)))
    overflow = int(env.get("DB_MAX_OVERFLOW", setting_default("db_max_overflow", 20)))
    return pool + overflow


def test_k8s_connections_fit_a_stock_postgres_at_full_scale() -> None:
    c = container()
    workers = workers_in([*c.get("command", []), *c.get("args", [])])
    peak = one("HorizontalPodAutoscaler")["spec"]["maxReplicas"] * workers * _pool_per_process(
        configmap_data())
    assert peak <= POSTGRES_CONNECTION_BUDGET, f"{peak} connections at maxReplicas"


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
    assert f"{port}:{port}" in [str(p) for p in aegis["ports"]]

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
