"""The embedded Genesys Web Services (GWS v2) simulator for the outbound-record API.

A real aiohttp server on loopback with HTTP Basic auth, ``JSESSIONID`` sessions, CSRF
protection, ``CancelRecord`` validated like GWS, a Bayeux long-polling CometD endpoint that
publishes the two outcome messages, and fault injection. Used by the test suite, the
example host, benchmarks and plugin authors who want to test offline.

>>> async with GWSSimulator(users={"agent1": "secret"}) as sim:   # doctest: +SKIP
...     print(sim.base_url, sim.device_path("agent1"))

From a shell: ``python -m gws_outbound_plugin.simulator --port 0``. Full reference:
``docs/simulator.md``.
"""

from ._bayeux import DEFAULT_MAX_QUEUE as DEFAULT_MAX_QUEUE
from ._cli import main as main
from ._cli import parse_fault_spec as parse_fault_spec
from ._faults import Faults as Faults
from ._recording import PublishedMessage as PublishedMessage
from ._recording import RecordedRequest as RecordedRequest
from ._records import DEFAULT_RECORDS as DEFAULT_RECORDS
from ._records import OCSError as OCSError
from ._records import RecordState as RecordState
from ._records import SeedRecord as SeedRecord
from ._records import load_records as load_records
from ._records import parse_records as parse_records
from ._server import DEFAULT_USERS as DEFAULT_USERS
from ._server import GWSSimulator as GWSSimulator

__all__ = [
    "DEFAULT_MAX_QUEUE",
    "DEFAULT_RECORDS",
    "DEFAULT_USERS",
    "Faults",
    "GWSSimulator",
    "OCSError",
    "PublishedMessage",
    "RecordState",
    "RecordedRequest",
    "SeedRecord",
    "load_records",
    "main",
    "parse_fault_spec",
    "parse_records",
]
