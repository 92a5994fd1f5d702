"""Skip the training cache's bookkeeping when the training cache is off.

During ``rasa train`` Rasa's ``TrainingHook`` fingerprints every graph node's inputs before the node
runs and its output after, to store the output in the training cache. A fingerprint of the NLU
training data walks every message and token (about 4,600 examples here, twenty nodes): over a
third of a full training. With the cache off (``RASA_MAX_CACHE_SIZE=0``, how the launcher trains:
it trains only when the data changed, so there is nothing to reuse) ``LocalTrainingCache.cache_output``
returns at once and the fingerprints are thrown away. This patch skips computing them in exactly
that case; with the cache on, Rasa's own hook runs. The trained model is the same either way.
Its targets are both hook methods and the two cache methods whose behaviour it relies on.
"""

from __future__ import annotations

from typing import Any, Dict

from bot.rasa_patches import RASA_VERSION, Patch

BEFORE = "rasa.engine.training.hooks:TrainingHook.on_before_node"
AFTER = "rasa.engine.training.hooks:TrainingHook.on_after_node"
CACHE_OUTPUT = "rasa.engine.caching:LocalTrainingCache.cache_output"
IS_DISABLED = "rasa.engine.caching:LocalTrainingCache._is_disabled"


def cache_is_off(cache: Any) -> bool:
    """Whether ``cache`` is Rasa's local training cache switched off (it then stores nothing)."""
    from rasa.engine.caching import LocalTrainingCache

    return type(cache) is LocalTrainingCache and cache._is_disabled()


def apply(patch: Patch) -> None:
    from rasa.engine.training.hooks import TrainingHook

    stock_before = patch.stock(BEFORE)
    stock_after = patch.stock(AFTER)

    def on_before_node(self: Any, node_name: str, execution_context: Any, config: Dict[str, Any],
                       received_inputs: Dict[str, Any]) -> Dict:
        if cache_is_off(self._cache):
            return {}
        return stock_before(self, node_name, execution_context, config, received_inputs)

    def on_after_node(self: Any, node_name: str, execution_context: Any, config: Dict[str, Any], output: Any,
                      input_hook_data: Dict) -> None:
        if cache_is_off(self._cache):
            return None
        return stock_after(self, node_name, execution_context, config, output, input_hook_data)

    patch.replace(TrainingHook, "on_before_node", on_before_node)
    patch.replace(TrainingHook, "on_after_node", on_after_node)


PATCH = Patch(
    name="training_hook",
    rasa_version=RASA_VERSION,
    targets={
        BEFORE: "6f65355ef979db9dca18e04a4c1cc2a9ab28aef53456ae28d6bf3bd0fac0c7f3",
        AFTER: "f199608136c98ea4ca15ec3876a4ac634f2c8a23ce8d33d39530ef19fe1ab497",
        CACHE_OUTPUT: "a65399f07f2af36056a9ac2ebf6388425c86c05f2f6d847eef1b162a1820913a",
        IS_DISABLED: "c94ef710ea5f9a0c61cc788ac40ee01e7480eec7f1dfbc0f4d7be6dda8ab2fb1",
    },
    apply=apply,
    saves="over a third of a full training (the cache's fingerprints of the NLU data, twenty nodes)",
)
