"""The action server's actions, split by domain; each module's Action classes are registered."""

from actions import (
    handoff,  # noqa: F401
    loyalty,  # noqa: F401
    order_changes,  # noqa: F401
    orders,  # noqa: F401
    returns,  # noqa: F401
)
