"""How long the Rasa server waits for one action: below the conversation locks, not Rasa's 300 s.

Rasa 3.6 calls the action server with ``timeout=DEFAULT_REQUEST_TIMEOUT`` (300 s), a name it
imports into ``rasa.core.actions.action``; no setting changes it. A turn that waits that long
outlives the 60 s conversation and lock-store locks, so another message of the same conversation
could run beside it. :func:`install` sets that module's name to ``ACTION_TIMEOUT_S`` (20 s by
default). It is fenced: it runs only on the Rasa version it was written for and only when the name
still holds Rasa's value; ``ACTION_TIMEOUT_S=0`` leaves Rasa as it is.
"""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)

WRITTEN_FOR = "3.6."
RASA_DEFAULT_S = 60 * 5


def install(timeout_s: float) -> bool:
    """Make the Rasa server wait at most ``timeout_s`` seconds for an action.

    Args:
        timeout_s: the limit; 0 or less keeps Rasa's own.

    Returns:
        True when the limit is in force.
    """
    if timeout_s <= 0:
        return False
    import rasa
    from rasa.core.actions import action

    current = getattr(action, "DEFAULT_REQUEST_TIMEOUT", None)
    if not rasa.__version__.startswith(WRITTEN_FOR) or current not in (RASA_DEFAULT_S, timeout_s):
        logger.warning("action_timeout.not_installed rasa=%s current=%r", rasa.__version__, current)
        return False
    action.DEFAULT_REQUEST_TIMEOUT = timeout_s  # type: ignore[attr-defined]
    return True
