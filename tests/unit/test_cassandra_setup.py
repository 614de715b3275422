"""`cap-stock cassandra-setup`'s connection: retries while Cassandra starts, then gives up."""

from typing import ClassVar

import cassandra.cluster
import pytest
from capstock.cassandra_setup import CONNECT_ATTEMPTS, CassandraSettings
from cassandra.cluster import NoHostAvailable

from tests.support.clock import RecordingSleeper


class StartingCluster:
    """A Cluster whose first ``down`` connects fail as if Cassandra were still starting."""

    instances: ClassVar[list["StartingCluster"]] = []
    down = 0

    def __init__(self, hosts, **options):
        self.hosts, self.options = hosts, options
        self.connects = 0
        self.shut_down = False
        StartingCluster.instances.append(self)

    def connect(self):
        self.connects += 1
        if self.connects <= self.down:
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
    made, session = settings().session(sleeper)
    assert session == "session" and made.connects == 3
    assert made.hosts == ["10.0.0.1", "10.0.0.2"]
    first, second = sleeper.waits  # doubling, each between half and all of its ceiling
    assert 1.0 <= first <= 2.0 and 2.0 <= second <= 4.0


def test_gives_up_after_the_last_attempt_and_shuts_the_cluster_down(cluster, monkeypatch):
    monkeypatch.setattr(cluster, "down", CONNECT_ATTEMPTS)
    sleeper = RecordingSleeper()
    with pytest.raises(NoHostAvailable):
        settings().session(sleeper)
    (made,) = cluster.instances
    assert made.connects == CONNECT_ATTEMPTS and made.shut_down
    assert len(sleeper.waits) == CONNECT_ATTEMPTS - 1
