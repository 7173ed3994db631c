"""Session-wide test support: every Model the tests build is recorded (its graph and
dtype), so that tests/test_scheduler.py can run each graph through both the generated plan
and the reference interpreter and compare them."""

import pytest

from graphnet.model import Model


def pytest_configure(config):
    config.addinivalue_line("markers", "last: run after every other test (it reads what "
                                       "they recorded)")


def pytest_collection_modifyitems(items):
    items.sort(key=lambda item: item.get_closest_marker("last") is not None)


@pytest.fixture(scope="session", autouse=True)
def recorded_graphs():
    """{structure: (graph, dtype)} of each distinct Model built so far in this session."""
    graphs = {}
    original = Model.__init__

    def recording_init(self, graph, *args, **kwargs):
        original(self, graph, *args, **kwargs)
        key = repr((list(self.graph.nx.nodes(data=True)), self.graph.outputs, self.dtype))
        graphs.setdefault(key, (self.graph, str(self.dtype)))

    Model.__init__ = recording_init
    try:
        yield graphs
    finally:
        Model.__init__ = original
