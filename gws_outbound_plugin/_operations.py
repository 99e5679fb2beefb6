"""Old home of the request types and their payloads: they live in ``_requests`` (requests),
``_payloads`` (payload types) and ``_builders`` (building payloads) now. Kept for the modules
that still import from here (the CLI, the engine); add nothing here.
"""

from ._builders import *  # noqa: F403
from ._payloads import *  # noqa: F403
from ._requests import *  # noqa: F403
