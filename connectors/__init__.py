"""Rasa input channels of the shop assistant (``app``, ``web``, ``wechat``).

Each channel verifies who the shopper is before the bot sees a message and binds the
conversation to its owner, so one shopper can neither write into nor read another's conversation.
"""

from bot import action_timeout
from bot.settings import load_settings

# The Rasa server imports this package at start-up (credentials.yml), before its workers start.
# Rasa's speed patches are installed by the server's entry point (python -m bot.rasa_patches), not here.
action_timeout.install(load_settings().action_timeout_s)
