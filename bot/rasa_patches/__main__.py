"""``python -m bot.rasa_patches ARGS``: the ``rasa`` command with the project's patches.

``python -m bot.rasa_patches run --model ...`` installs the patches (as ``RASA_SPEEDUPS`` says)
and runs ``rasa run --model ...`` in this process, so its Sanic workers (forked) share them; this
is how the launcher starts the Rasa server. ``python -m bot.rasa_patches train ...`` is ``rasa
train`` with the training patches only (:data:`TRAINING_PATCHES`): how the launcher trains. ``run`` also adds the Prometheus page ``/metrics`` to
Rasa's app and prepares its multiprocess store (:func:`bot.metrics.rasa_entry`, patches on or
off), and with ``LOG_FORMAT=json`` puts Rasa's logging on JSON lines (:func:`bot.logs.rasa_entry`).
``python -m bot.rasa_patches status`` prints what would be installed here and why a patch
would be skipped; ``hashes`` prints each target's current source hash (to review after a Rasa
upgrade).
"""

from __future__ import annotations

import sys
from typing import List, Optional

from bot import rasa_patches

TRAINING_PATCHES = ("training_hook",)
"""What ``python -m bot.rasa_patches train ...`` installs (the launcher's way to train)."""


def main(argv: Optional[List[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["status"]:
        for name, state in rasa_patches.install().items():
            print(f"{name:20} {state}")
        return 0
    if args[:1] == ["hashes"]:
        for each in rasa_patches.patches():
            for target, declared in each.targets.items():
                found = each.stock(target)
                current = rasa_patches.ABSENT if declared == rasa_patches.ABSENT else rasa_patches.source_hash(found)
                print(f"{each.name:20} {target} {current}{'' if current == declared else '  (changed)'}")
        return 0
    if args[:1] == ["run"]:
        from bot import logs, metrics
        from bot.settings import load_settings

        settings = load_settings()
        logs.rasa_entry(settings.log_format)
        metrics.rasa_entry(settings, args)
    # A training gets only the patches written for training; serving gets them all.
    rasa_patches.install(only=TRAINING_PATCHES if args[:1] == ["train"] else None)
    from rasa.__main__ import main as rasa_main

    sys.argv = ["rasa", *args]
    rasa_main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
