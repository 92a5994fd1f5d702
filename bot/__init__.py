"""The shop assistant's own code that runs beside Rasa: settings, launcher, NLU components."""

import os as _os

if _os.environ.get("REDIS_SENTINELS", "").strip():  # Redis behind Sentinel: see bot/redis_sentinel.py
    from bot import redis_sentinel as _redis_sentinel

    _redis_sentinel.install_from_environment()
