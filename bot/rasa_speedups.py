"""Speed fixes for the Rasa 3.6 server, installed when the server imports our channels.

Rasa validates every action server response with ``jsonschema.validate``, which checks the
schema itself (the whole event schema) and builds a new validator on every call: about 30 ms of
CPU per custom action turn on these machines, more than the action server and the CRM together.
:func:`install` replaces that method with one that builds the validator once and validates the
same way, raising the same :class:`jsonschema.ValidationError` with the same message.

Understanding a message (tokenizer, featurizers, DIET, entity extractors) costs 7-12 ms of CPU and
depends on nothing but the message's text: Rasa 3.6's NLU components here read neither the tracker
nor the metadata. At a sales peak thousands of shoppers write the same short messages (「在吗」,
「你好」, 「转人工」, 「我的快递到哪了」), so :func:`install` also keeps the parse results of up to
``NLU_CACHE_SIZE`` short messages per model in memory (least recently used first out), and hands
out copies. The cache lives and dies with the loaded model, in the server's memory only.

Loading a trained model, Rasa 3.6 builds each TensorFlow model (DIET, the response selector, TED)
by running one training step on one example, which traces the whole training graph: 40-80 s of a
start-up on these machines. :func:`install` builds them with the one prediction Rasa runs anyway
after loading, and restores the trained weights as the variables are created (TensorFlow's
deferred restoration); it then checks that every variable was restored. Predictions are
identical (``tests/integration/test_fast_model_load.py`` compares both ways on the held-out
messages and on dialogue turns). Fine-tuning loads keep Rasa's way.
"""

from __future__ import annotations

import copy
import logging
from collections import OrderedDict
from functools import lru_cache
from typing import Any, Dict, Optional, Tuple

logger = logging.getLogger(__name__)

_installed = False

NLU_CACHE_MAX_CHARS = 64
"""Longer messages are rarely repeated word for word: they are parsed every time."""


class ParseCache:
    """Least-recently-used store of parse results keyed by message text.

    Args:
        size: how many results are kept; 0 disables the cache.
    """

    def __init__(self, size: int) -> None:
        self.size = max(0, size)
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[Tuple[str, bool], Dict[str, Any]] = OrderedDict()

    def key(self, text: Optional[str], only_output_properties: bool) -> Optional[Tuple[str, bool]]:
        """The cache key of a message, or None when it is not cached (too long, empty, cache off)."""
        if not self.size or not text or len(text) > NLU_CACHE_MAX_CHARS:
            return None
        return text, only_output_properties

    def get(self, key: Tuple[str, bool]) -> Optional[Dict[str, Any]]:
        """A copy of the stored result, or None."""
        found = self._entries.get(key)
        if found is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return copy.deepcopy(found)

    def put(self, key: Tuple[str, bool], parse_data: Dict[str, Any]) -> None:
        """Store a copy of a result, dropping the least recently used beyond the size."""
        self._entries[key] = copy.deepcopy(parse_data)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


def parse_cache_of(processor: Any) -> ParseCache:
    """The parse cache of one loaded model (created on first use)."""
    cache = getattr(processor, "_shop_parse_cache", None)
    if cache is None:
        from bot.settings import load_settings

        cache = ParseCache(load_settings().nlu_cache_size)
        processor._shop_parse_cache = cache
    return cache


@lru_cache(maxsize=1)
def action_response_validator() -> Any:
    """The validator of action server responses, built (and its schema checked) once."""
    from jsonschema.validators import validator_for
    from rasa.core.actions.action import RemoteAction

    schema = RemoteAction.action_response_format_spec()
    validator_class = validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema)


def validate_action_result(result: Dict[str, Any]) -> bool:
    """Validate an action server response as Rasa does, with the cached validator.

    Args:
        result: the decoded JSON response of the action server.

    Returns:
        True when it is valid.

    Raises:
        jsonschema.ValidationError: it is not, with Rasa's hint appended to the message.
    """
    from jsonschema import ValidationError
    from jsonschema.exceptions import best_match
    from rasa.shared.constants import DOCS_BASE_URL

    error = best_match(action_response_validator().iter_errors(result))
    if error is None:
        return True
    if not isinstance(error, ValidationError):  # pragma: no cover - best_match returns ValidationErrors
        raise error
    error.message += (
        ". Failed to validate Action server response from API, make sure your response from the "
        f"Action endpoint is valid. For more information about the format visit {DOCS_BASE_URL}/custom-actions"
    )
    raise error


def install() -> None:
    """Install the fixes (idempotent)."""
    global _installed
    if _installed:
        return
    from rasa.core.actions.action import RemoteAction

    def _validate_action_result(self: RemoteAction, result: Dict[str, Any]) -> bool:
        return validate_action_result(result)

    RemoteAction._validate_action_result = _validate_action_result  # type: ignore[method-assign]
    action_response_validator()

    from rasa.core.processor import MessageProcessor

    parse_with_graph = MessageProcessor._parse_message_with_graph

    def _parse_message_with_graph(self: MessageProcessor, message: Any, tracker: Any,
                                  only_output_properties: bool = True) -> Dict[str, Any]:
        cache = parse_cache_of(self)
        key = cache.key(getattr(message, "text", None), only_output_properties)
        if key is not None:
            found = cache.get(key)
            if found is not None:
                return found
        parse_data = parse_with_graph(self, message, tracker, only_output_properties)
        if key is not None:
            cache.put(key, parse_data)
        return parse_data

    MessageProcessor._parse_message_with_graph = _parse_message_with_graph  # type: ignore[method-assign]
    install_fast_model_load()
    _installed = True
    logger.debug("rasa speed fixes installed")


_stock_model_load: Optional[Any] = None


def install_fast_model_load() -> None:
    """Build loaded TensorFlow models by inference instead of a training step (idempotent)."""
    global _stock_model_load
    from rasa.utils.tensorflow.models import RasaModel

    if _stock_model_load is not None:
        return
    stock = RasaModel.load.__func__  # type: ignore[attr-defined]
    _stock_model_load = stock

    def load(cls: Any, model_file_name: str, model_data_example: Any, predict_data_example: Any = None,
             finetune_mode: bool = False, *args: Any, **kwargs: Any) -> Any:
        if finetune_mode or predict_data_example is None:
            return stock(cls, model_file_name, model_data_example, predict_data_example, finetune_mode, *args, **kwargs)
        model = cls(*args, **kwargs)
        status = model.load_weights(model_file_name)
        model.run_inference(predict_data_example)  # creates the variables; the checkpoint fills them
        status.assert_existing_objects_matched()
        status.expect_partial()  # the optimizer's state is in the checkpoint but not needed to predict
        return model

    RasaModel.load = classmethod(load)  # type: ignore[method-assign,assignment]


def uninstall_fast_model_load() -> None:
    """Give Rasa back its own way of loading TensorFlow models (for comparisons)."""
    global _stock_model_load
    from rasa.utils.tensorflow.models import RasaModel

    if _stock_model_load is not None:
        RasaModel.load = classmethod(_stock_model_load)  # type: ignore[method-assign,assignment]
        _stock_model_load = None
