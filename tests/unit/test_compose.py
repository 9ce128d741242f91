"""compose.yaml and the Dockerfile run the same processes as `cbs up` (DESIGN §2a).

Static checks only: no Docker, broker or database needed. The worker list comes from
`bus.settings.WORKERS`, so adding a worker without its compose service fails here.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from bus.settings import WORKERS, Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
PYPROJECT = ROOT / "pyproject.toml"

EDGE_AND_WORKERS = ["edge", *(f"worker-{w}" for w in WORKERS)]
APP_SERVICES = ["migrate", *EDGE_AND_WORKERS]


# --- helpers -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(loaded, dict) and isinstance(loaded.get("services"), dict), "compose.yaml has no services"
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


_INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<default>[^}]*))?\}")


def interpolate(value: str) -> str:
    """Compose `${VAR:-default}` interpolation as it resolves with none of the variables set."""

    def resolve(match: re.Match[str]) -> str:
        op = match.group("op")
        assert op in ("-", ":-"), f"{match.group(0)!r} has no development default"
        return match.group("default")

    return _INTERPOLATION.sub(resolve, value.replace("$$", "\0")).replace("\0", "$")


def command_of(service: dict[str, Any]) -> list[str]:
    command = service.get("command")
    if command is None:
        return []
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def environment_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.split("=", 1) for item in env)
        return {pair[0]: pair[1] if len(pair) == 2 else "" for pair in pairs}
    return {key: "" if value is None else str(value) for key, value in env.items()}


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    """Dependency -> condition; the short (list) form means `service_started`."""
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {name: "service_started" for name in deps}
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s|us|ns)")
_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}


def duration_s(value: str | int | float) -> float:
    """A compose duration ("40s", "1m30s", "1500ms") in seconds."""
    if isinstance(value, (int, float)):
        return float(value)
    text = value.strip()
    parts = _DURATION_PART.findall(text)
    assert parts and "".join(n + u for n, u in parts) == text, f"not a compose duration: {value!r}"
    return sum(float(number) * _UNIT_S[unit] for number, unit in parts)


def service_named(services: dict[str, dict[str, Any]], name: str) -> dict[str, Any]:
    assert name in services, f"compose.yaml has no service {name!r}"
    return services[name] or {}


def healthcheck_test(service: dict[str, Any]) -> str:
    check = service.get("healthcheck") or {}
    assert not check.get("disable"), "healthcheck disabled"
    test = check.get("test")
    assert test, "no healthcheck test"
    if isinstance(test, str):
        return test
    assert test[0] in ("CMD", "CMD-SHELL"), f"healthcheck test must start with CMD or CMD-SHELL: {test!r}"
    return " ".join(str(part) for part in test[1:])


# --- the helpers themselves --------------------------------------------------------------


def test_duration_parsing() -> None:
    assert duration_s("40s") == 40
    assert duration_s("1m30s") == 90
    assert duration_s("1500ms") == 1.5
    assert duration_s(25) == 25
    with pytest.raises(AssertionError):
        duration_s("forty")


def test_interpolation_uses_defaults() -> None:
    assert interpolate("a:${X:-dev}@h") == "a:dev@h"
    assert interpolate("${X-y}$$") == "y$"
    with pytest.raises(AssertionError):
        interpolate("${NO_DEFAULT}")


# --- services ----------------------------------------------------------------------------


def test_workers_list_is_not_empty() -> None:
    assert WORKERS, "bus.settings.WORKERS is empty"


@pytest.mark.parametrize("worker", WORKERS)
def test_every_worker_has_a_service_running_it(services: dict[str, dict[str, Any]], worker: str) -> None:
    name = f"worker-{worker}"
    assert name in services, f"compose.yaml has no service {name!r} for worker {worker!r}"
    assert command_of(service_named(services, name)) == ["cbs", "worker", worker]


def test_no_service_for_an_unknown_worker(services: dict[str, dict[str, Any]]) -> None:
    extra = {name for name in services if name.startswith("worker-")} - {f"worker-{w}" for w in WORKERS}
    assert not extra, f"services for workers not in bus.settings.WORKERS: {sorted(extra)}"


def test_edge_and_migrate_run_their_commands(services: dict[str, dict[str, Any]]) -> None:
    assert command_of(services.get("edge", {})) == ["cbs", "edge"]
    assert command_of(services.get("migrate", {})) == ["cbs", "migrate"]


def test_migrate_is_one_shot_after_healthy_broker_and_database(services: dict[str, dict[str, Any]]) -> None:
    migrate = service_named(services, "migrate")
    assert str(migrate.get("restart", "no")) == "no", "migrate must run once, not restart"
    deps = depends_on(migrate)
    assert deps.get("rabbitmq") == "service_healthy"
    assert deps.get("postgres") == "service_healthy"


@pytest.mark.parametrize("name", EDGE_AND_WORKERS)
def test_edge_and_workers_start_after_migrations(services: dict[str, dict[str, Any]], name: str) -> None:
    assert depends_on(service_named(services, name)).get("migrate") == "service_completed_successfully"


@pytest.mark.parametrize("name", EDGE_AND_WORKERS)
def test_edge_and_workers_restart(services: dict[str, dict[str, Any]], name: str) -> None:
    assert service_named(services, name).get("restart") == "unless-stopped"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_share_the_cbs_image(services: dict[str, dict[str, Any]], name: str) -> None:
    service = service_named(services, name)
    assert service.get("build"), f"{name} does not build the application image"
    assert interpolate(str(service.get("image", ""))) == interpolate(str(service_named(services, "migrate").get("image", "")))


@pytest.mark.parametrize("name", APP_SERVICES)
def test_stop_grace_period_outlasts_graceful_shutdown(
    services: dict[str, dict[str, Any]], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = service_named(services, name)
    env = environment_of(service)
    monkeypatch.delenv("CBS_GRACEFUL_TIMEOUT_S", raising=False)  # unset in the container: the default
    graceful = float(env.get("CBS_GRACEFUL_TIMEOUT_S") or Settings().graceful_timeout_s)
    grace = duration_s(service.get("stop_grace_period", "10s"))  # Docker's default is 10s
    assert grace > graceful, f"{name}: stop_grace_period {grace}s <= CBS_GRACEFUL_TIMEOUT_S {graceful}s"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_reach_broker_and_database_by_service_name(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    env = environment_of(service_named(services, name))
    amqp = urlsplit(interpolate(env.get("CBS_AMQP_URL", "")))
    assert amqp.scheme == "amqp" and amqp.hostname == "rabbitmq", f"{name}: CBS_AMQP_URL must point at rabbitmq"
    broker_env = environment_of(service_named(services, "rabbitmq"))
    # RabbitMQ 4 accepts `guest` from loopback only: the URL must use the configured user.
    assert amqp.username == interpolate(broker_env.get("RABBITMQ_DEFAULT_USER", "guest")) != "guest"
    assert amqp.password == interpolate(broker_env.get("RABBITMQ_DEFAULT_PASS", ""))

    db = urlsplit(interpolate(env.get("CBS_DATABASE_URL", "")))
    assert db.scheme.startswith("postgres") and db.hostname == "postgres", f"{name}: CBS_DATABASE_URL"
    pg_env = environment_of(service_named(services, "postgres"))
    assert db.username == interpolate(pg_env.get("POSTGRES_USER", "postgres"))
    assert db.password == interpolate(pg_env["POSTGRES_PASSWORD"])
    assert interpolate(env.get("CBS_DB_ROLE_PASSWORD", "")), f"{name}: CBS_DB_ROLE_PASSWORD unset"


def test_passwords_come_from_the_environment(services: dict[str, dict[str, Any]]) -> None:
    assert "${" in str(environment_of(service_named(services, "postgres"))["POSTGRES_PASSWORD"])
    assert "${" in str(environment_of(service_named(services, "rabbitmq")).get("RABBITMQ_DEFAULT_PASS", ""))
    for name in APP_SERVICES:
        assert "${" in environment_of(service_named(services, name)).get("CBS_DB_ROLE_PASSWORD", ""), name


def test_edge_listens_publicly_and_is_health_checked(services: dict[str, dict[str, Any]]) -> None:
    edge = service_named(services, "edge")
    env = environment_of(edge)
    assert env.get("CBS_EDGE_HOST") == "0.0.0.0"
    port = env.get("CBS_EDGE_PORT", "8080")
    published = [interpolate(str(p)) for p in edge.get("ports", [])]
    assert any(p.rsplit(":", 1)[-1].split("/")[0] == port for p in published), published
    assert "/health/live" in healthcheck_test(edge)


@pytest.mark.parametrize("name", [f"worker-{w}" for w in WORKERS])
def test_workers_can_be_scaled(services: dict[str, dict[str, Any]], name: str) -> None:
    service = service_named(services, name)
    assert "container_name" not in service, f"{name}: container_name prevents --scale"
    assert not service.get("ports"), f"{name}: published ports prevent --scale"


# --- infrastructure ----------------------------------------------------------------------


def test_rabbitmq_has_management_and_a_healthcheck(services: dict[str, dict[str, Any]]) -> None:
    rabbitmq = service_named(services, "rabbitmq")
    assert "management" in rabbitmq["image"]
    test = healthcheck_test(rabbitmq)
    assert "rabbitmq-diagnostics" in test and "ping" in test


def test_postgres_has_a_healthcheck_and_a_named_volume(compose: dict[str, Any]) -> None:
    postgres = compose["services"]["postgres"]
    assert postgres["image"].startswith("postgres:")
    assert "pg_isready" in healthcheck_test(postgres)
    named = set(compose.get("volumes") or {})
    mounted = {str(v).split(":", 1)[0] for v in postgres.get("volumes", []) if isinstance(v, str)}
    mounted |= {v.get("source") for v in postgres.get("volumes", []) if isinstance(v, dict)}
    assert mounted & named, "postgres data is not on a named volume"


# --- Dockerfile ----------------------------------------------------------------------------


def _copied_sources() -> set[str]:
    sources: set[str] = set()
    for line in DOCKERFILE.read_text().splitlines():
        words = line.split()
        if not words or words[0].upper() not in ("COPY", "ADD"):
            continue
        if any(w.startswith("--from") for w in words[1:]):
            continue  # from another stage, not from the build context
        args = [w for w in words[1:] if not w.startswith("--")]  # --chown, --chmod, ...
        sources |= {a.strip("/").removeprefix("./") or "." for a in args[:-1]}
    return sources


def test_dockerfile_copies_every_top_level_package() -> None:
    includes = tomllib.loads(PYPROJECT.read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {pattern.rstrip("*").rstrip(".") for pattern in includes}
    assert {"bus", "contracts", "workers", "api_edge"} <= packages
    copied = _copied_sources()
    if "." in copied:  # `COPY . .` copies everything
        return
    missing = ({"pyproject.toml"} | packages) - copied
    assert not missing, f"Dockerfile does not copy {sorted(missing)}"


def test_dockerfile_runs_as_non_root_and_exposes_the_edge() -> None:
    text = DOCKERFILE.read_text()
    users = re.findall(r"^\s*USER\s+(\S+)", text, re.MULTILINE)
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the image must run as a non-root user"
    assert re.search(r"^\s*EXPOSE\s+.*\b8080\b", text, re.MULTILINE)
    assert re.search(r"^\s*FROM\s", text, re.MULTILINE) and "python:3.11." in text


def test_audit_archives_to_a_named_volume_the_image_prepares(compose: dict[str, Any]) -> None:
    audit = compose["services"]["worker-audit"]
    directory = audit["environment"]["CBS_AUDIT_ARCHIVE_DIR"]
    assert audit["environment"]["CBS_AMQP_URL"] == compose["x-cbs-env"]["CBS_AMQP_URL"]  # the shared settings kept
    mounts = {str(v).split(":", 1)[1]: str(v).split(":", 1)[0] for v in audit.get("volumes", [])}
    assert mounts.get(directory) in set(compose.get("volumes") or {}), "the archive is not on a named volume"
    assert f"mkdir -p {directory}" in DOCKERFILE.read_text() and "chown -R cbs:cbs" in DOCKERFILE.read_text()


def test_each_process_reads_its_broker_secret_from_the_volume_migrate_writes(compose: dict[str, Any]) -> None:
    """`cbs migrate` makes every process's broker user (through the management API: no rabbitmqctl
    in the image) and writes their secrets; the other services only read them."""
    services, directory = compose["services"], "/var/lib/cbs/secrets"
    assert "cbs-secrets" in set(compose.get("volumes") or {})
    for name in APP_SERVICES:
        mounts = {str(v).split(":")[1]: str(v).split(":") for v in service_named(services, name).get("volumes", [])}
        assert directory in mounts, f"{name} cannot read its broker secret"
        source, _, *mode = mounts[directory]
        assert source == "cbs-secrets" and (mode == [] if name == "migrate" else mode == ["ro"]), (name, mode)
        assert environment_of(service_named(services, name)).get("CBS_SECRETS_DIR") == directory, name
    assert environment_of(service_named(services, "migrate")).get("CBS_RABBITMQ_API_URL") == "http://rabbitmq:15672"


def test_the_image_ships_no_load_generator_or_simulated_partner() -> None:
    """`ops/bench` and `ops/sim` are for operators' machines, never for the cluster's containers."""
    ignored = {line.strip().rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {"ops/bench", "ops/sim"} <= ignored


# --- the image's build steps, parsed (no Docker here) ---------------------------------------


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order: comments dropped, `\\` continuations joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):  # a comment inside a continued instruction
            continue
        pending += " " + stripped.removesuffix("\\").strip() if pending else stripped.removesuffix("\\").strip()
        if stripped.endswith("\\"):
            continue
        word, _, rest = pending.partition(" ")
        instructions.append((word.upper(), rest.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued instruction"
    return instructions


def stages(instructions: list[tuple[str, str]]) -> list[tuple[str, str, list[tuple[str, str]]]]:
    """(base image with ARG defaults resolved, stage name, its instructions) per FROM."""
    args: dict[str, str] = {}
    found: list[tuple[str, str, list[tuple[str, str]]]] = []
    for word, rest in instructions:
        if word == "ARG" and not found:
            name, _, default = rest.partition("=")
            args[name] = default
        elif word == "FROM":
            parts = rest.split()
            image = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args[m.group(1) or m.group(2)], parts[0])
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else ""
            found.append((image, name, []))
        elif found:
            found[-1][2].append((word, rest))
    return found


def test_dockerfile_parser() -> None:
    parsed = dockerfile_instructions("ARG B=x:1\n# c\nFROM ${B} AS one\nRUN a \\\n  # inner\n  && b\nUSER u\n")
    assert parsed == [("ARG", "B=x:1"), ("FROM", "${B} AS one"), ("RUN", "a && b"), ("USER", "u")]
    assert stages(parsed) == [("x:1", "one", [("RUN", "a && b"), ("USER", "u")])]


@pytest.fixture(scope="module")
def image_stages() -> list[tuple[str, str, list[tuple[str, str]]]]:
    found = stages(dockerfile_instructions(DOCKERFILE.read_text()))
    assert found, "the Dockerfile has no FROM"
    return found


def test_base_images_are_pinned(image_stages: list[tuple[str, str, list[tuple[str, str]]]]) -> None:
    """A patch release and a Debian release (or a digest): never `latest`, never a moving minor tag."""
    names = {name for _, name, _ in image_stages}
    for image, _, _ in image_stages:
        if image in names:
            continue  # built on an earlier stage
        if "@sha256:" in image:
            continue
        repository, _, tag = image.rpartition(":")
        assert repository and tag and tag != "latest", f"{image}: no tag"
        assert re.fullmatch(r"\d+\.\d+\.\d+-slim-(bookworm|trixie)", tag), f"{image}: not pinned to a release"


def test_the_final_stage_runs_the_installed_project_as_non_root(
    image_stages: list[tuple[str, str, list[tuple[str, str]]]],
) -> None:
    *builds, (_, _, final) = image_stages
    users = [rest for word, rest in final if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the last stage must run as a non-root USER"
    # The project is installed (not run from a source tree) in a build stage, and its venv copied over.
    installs = [rest for _, _, steps in builds for word, rest in steps if word == "RUN"]
    assert any(re.search(r"pip install (\S+ )*\.(\s|$)", run) for run in installs), "the project is not pip-installed"
    copies = [rest for word, rest in final if word == "COPY"]
    assert any(c.startswith("--from=") and "/opt/venv" in c for c in copies), "the runtime stage lacks the venv"
    assert not [c for c in copies if not c.startswith("--from=")], "the runtime stage copies sources, not the install"
    env = " ".join(rest for word, rest in final if word == "ENV")
    assert "/opt/venv/bin" in env, "cbs is not on the runtime PATH"


def test_the_build_context_leaves_bench_and_sim_out(image_stages: list[tuple[str, str, list[tuple[str, str]]]]) -> None:
    """The README: the image ships neither `ops/bench` nor `ops/sim`. The ignore file keeps them out of
    the context, and no COPY names them (or the whole context) anyway."""
    ignored = {line.strip().rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {"ops/bench", "ops/sim"} <= ignored
    for _, _, steps in image_stages:
        for word, rest in steps:
            if word in ("COPY", "ADD") and not rest.startswith("--from="):
                sources = [a for a in rest.split() if not a.startswith("--")][:-1]
                assert not any(s.rstrip("/") in ("ops/bench", "ops/sim", ".", "ops/bench/", "ops/sim/") for s in sources), rest


def test_the_cli_in_the_image_starts_without_bench_or_sim() -> None:
    """The build runs `cbs --help`; that holds only while ops/cli.py imports bench and sim lazily."""
    import ast

    tree = ast.parse((ROOT / "ops" / "cli.py").read_text())
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    names = {a.name for n in top if isinstance(n, ast.Import) for a in n.names}
    names |= {f"{n.module}.{a.name}" if n.module else a.name for n in top if isinstance(n, ast.ImportFrom) for a in n.names}
    assert not [n for n in names if n.startswith(("ops.bench", "ops.sim"))], names
    runs = [rest for word, rest in dockerfile_instructions(DOCKERFILE.read_text()) if word == "RUN"]
    assert any("cbs --help" in run for run in runs), "the build no longer proves the installed cbs starts"


@pytest.mark.parametrize("name", EDGE_AND_WORKERS)
def test_every_long_running_process_is_health_checked(services: dict[str, dict[str, Any]], name: str) -> None:
    """No HEALTHCHECK in the one image (the processes differ); each service checks its own."""
    service = service_named(services, name)
    test = healthcheck_test(service)
    if name == "edge":
        assert "/health/live" in test and f":{environment_of(service).get('CBS_EDGE_PORT', '8080')}/" in test
    else:
        port = environment_of(service)["CBS_METRICS_PORT"]
        assert f"localhost:{port}/metrics" in test, f"{name} is not checked on its metrics port"
        assert environment_of(service)["CBS_METRICS_HOST"] == "0.0.0.0"
    assert duration_s(service["healthcheck"].get("start_period", "0s")) > 0


def test_migrate_is_not_health_checked(services: dict[str, dict[str, Any]]) -> None:
    assert (service_named(services, "migrate").get("healthcheck") or {}).get("disable") is True
