from tests.support.simulator_fixtures import simulator, simulator_url  # noqa: F401
