"""The embedded Genesys Web Services (GWS v2) simulator for the outbound-record API.

A real aiohttp server on loopback with HTTP Basic auth, ``JSESSIONID`` sessions, CSRF
protection, every GWS outbound record and preview operation validated like GWS, a small
OCS model (record states, preview sessions, do-not-call, callbacks on a clock the tests
control, unsolicited events), a Bayeux long-polling CometD endpoint that publishes the
outcome messages, and fault injection. Used by the test suite, the example host,
benchmarks and plugin authors who want to test offline.

>>> async with GWSSimulator(users={"agent1": "secret"}) as sim:   # doctest: +SKIP
...     print(sim.base_url, sim.device_path("agent1"))

From a shell: ``python -m gws_outbound_plugin.simulator --port 0``. Full reference:
``docs/simulator.md``.
"""

from ._bayeux import DEFAULT_MAX_QUEUE as DEFAULT_MAX_QUEUE
from ._cli import main as main
from ._cli import parse_fault_spec as parse_fault_spec
from ._clock import SimulatorClock as SimulatorClock
from ._faults import Faults as Faults
from ._outbound import ACKNOWLEDGEMENTS as ACKNOWLEDGEMENTS
from ._outbound import OPERATIONS as OPERATIONS
from ._recording import HandledOperation as HandledOperation
from ._recording import OCSVerdict as OCSVerdict
from ._recording import PublishedMessage as PublishedMessage
from ._recording import RecordedRequest as RecordedRequest
from ._records import CAMPAIGN_EVENTS as CAMPAIGN_EVENTS
from ._records import DEFAULT_RECORDS as DEFAULT_RECORDS
from ._records import PHONE_TYPES as PHONE_TYPES
from ._records import CampaignState as CampaignState
from ._records import OCSError as OCSError
from ._records import RecordState as RecordState
from ._records import RecordStatus as RecordStatus
from ._records import SeedRecord as SeedRecord
from ._records import load_records as load_records
from ._records import parse_records as parse_records
from ._server import DEFAULT_USERS as DEFAULT_USERS
from ._server import GWSSimulator as GWSSimulator

__all__ = [
    "ACKNOWLEDGEMENTS",
    "CAMPAIGN_EVENTS",
    "DEFAULT_MAX_QUEUE",
    "DEFAULT_RECORDS",
    "DEFAULT_USERS",
    "OPERATIONS",
    "PHONE_TYPES",
    "CampaignState",
    "Faults",
    "GWSSimulator",
    "HandledOperation",
    "OCSError",
    "OCSVerdict",
    "PublishedMessage",
    "RecordState",
    "RecordStatus",
    "RecordedRequest",
    "SeedRecord",
    "SimulatorClock",
    "load_records",
    "main",
    "parse_fault_spec",
    "parse_records",
]
