"""Old home of ``CancelRequest`` and the cancel payloads: they live in ``_requests`` and
``_payloads`` now. Kept for the modules that still import from here (the CLI, the engine, the
plugin and the correlator's modules); add nothing here.
"""

from ._payloads import *  # noqa: F403
from ._requests import *  # noqa: F403
