"""The action server's actions, split by domain; each module's Action classes are registered."""

from actions import orders  # noqa: F401
