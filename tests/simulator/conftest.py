from tests.fixtures_simulator import simulator, simulator_url  # noqa: F401
