"""`cap-stock cassandra-setup`'s connection: retries while Cassandra starts, then gives up."""

from typing import ClassVar

import cassandra.cluster
import pytest
from capstock.config import CassandraSettings
from capstock.history.setup import CONNECT_ATTEMPTS, admin_session
from cassandra.cluster import NoHostAvailable

from tests.support.clock import RecordingSleeper


class StartingCluster:
    """A Cluster whose first ``down`` connects (over all instances) fail as if Cassandra
    were still starting."""

    instances: ClassVar[list["StartingCluster"]] = []
    down = 0

    def __init__(self, hosts, **options):
        self.hosts, self.options = hosts, options
        self.shut_down = False
        StartingCluster.instances.append(self)

    def connect(self):
        if len(StartingCluster.instances) <= self.down:
            raise NoHostAvailable("Unable to connect to any servers", {})
        return "session"

    def shutdown(self):
        self.shut_down = True


@pytest.fixture
def cluster(monkeypatch):
    StartingCluster.instances = []
    monkeypatch.setattr(cassandra.cluster, "Cluster", StartingCluster)
    return StartingCluster


def settings():
    return CassandraSettings(host="10.0.0.1, 10.0.0.2", admin_password="secret")


def test_waits_with_backoff_until_cassandra_answers(cluster, monkeypatch):
    monkeypatch.setattr(cluster, "down", 2)
    sleeper = RecordingSleeper()
    made, session = admin_session(settings(), sleeper)
    assert session == "session" and len(cluster.instances) == 3
    assert made.hosts == ["10.0.0.1", "10.0.0.2"] and not made.shut_down
    assert all(failed.shut_down for failed in cluster.instances[:-1])  # no stray threads
    first, second = sleeper.waits  # doubling, each between half and all of its ceiling
    assert 1.0 <= first <= 2.0 and 2.0 <= second <= 4.0


def test_gives_up_after_the_last_attempt_and_shuts_the_cluster_down(cluster, monkeypatch):
    monkeypatch.setattr(cluster, "down", CONNECT_ATTEMPTS)
    sleeper = RecordingSleeper()
    with pytest.raises(NoHostAvailable):
        admin_session(settings(), sleeper)
    assert len(cluster.instances) == CONNECT_ATTEMPTS
    assert all(made.shut_down for made in cluster.instances)
    assert len(sleeper.waits) == CONNECT_ATTEMPTS - 1
