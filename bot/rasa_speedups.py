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

Every tracker read from the Redis tracker store (twice a turn: Rasa's fetch, and its save, which
reads the stored tracker back to merge it) turns each stored event into an object with
``Event.resolve_by_type``, which walks the whole tree of ``Event`` subclasses (and asks
``inspect.isabstract`` of each) for every event: 10-12 % of the server's CPU. :func:`install`
keeps the answer per type name, found the same way (first match in the same order), and forgets it
whenever a new ``Event`` subclass is defined, the only way the answer can change.

The rule policy finds the rules that apply to a conversation by checking each of its rules against
each of the conversation's states (``RulePolicy._get_possible_keys``, twice per prediction, two or
three predictions a turn): about 2 ms of CPU each time, for a result that depends on nothing but
the rule table and the states. Conversations go through the same few states again and again, so
:func:`install` keeps the result per rule table and states (an exact, type-preserving key) in a
policy loaded to serve, whose rule tables Rasa never changes, and hands back the very set Rasa
computed the first time (Rasa only reads it; picking the longest rule among several of the same
length follows that set's order, so the order is kept too).

Saving a tracker, Rasa's Redis tracker store reads the stored one back and merges the two. Our
trackers start with the ``session_started_metadata`` slot before ``action_session_start``, so the
tracker Rasa fetched (the last session) never equals the stored one and every save takes the slow
merge: for each event of the turn's tracker, ``as_dict()`` of every event already merged (quadratic
in the length of the conversation). :func:`install` merges the same events in the same order, but
looks events up in an index of those dicts (by event type and timestamp, which equal dicts always
share, each candidate then compared with ``==`` as Rasa does), so the stored tracker is the same
byte for byte.

Every tracker Rasa builds (reading one, and again per policy and prediction to replay the
conversation into states) copies each of the domain's slots with ``copy.copy``, whose generic
path (``__reduce_ex__``, ``copyreg.__newobj__``, ``copy._reconstruct``) is about a tenth of the
server's CPU. For a slot class with nothing custom about copying (no slot names, state or
reduce hooks, no ``copyreg`` entry: every Rasa slot type) that path amounts to a new instance of
the same class with the same attribute dict copied over; :func:`install` gives ``Slot`` a
``__copy__`` that does just that, and takes the generic path for any other slot class.

Rasa runs its graphs (NLU once per new message, the policies two or three times per turn) with
``dask.get``, which orders the whole graph and walks dask's scheduler state machine every time:
about a tenth of the server's CPU for graphs of a dozen nodes. The order depends only on the
graph's shape (nodes, dependencies, targets, input names), never on the values, so
:func:`install` has dask run a graph of each shape once while noting the order in which it calls
the nodes, then calls them in that same order with the same arguments for later runs.
"""

from __future__ import annotations

import copy
import copyreg
import logging
from collections import OrderedDict
from contextlib import contextmanager
from functools import cache, lru_cache
from itertools import islice
from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple

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
    install_event_type_index()
    install_rule_match_cache()
    install_fast_tracker_merge()
    install_fast_slot_copy()
    install_graph_plans()
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


# ------------------------------------------------------------------------ event type names
class EventTypeIndex:
    """``Event`` classes by type name, found exactly as ``Event.resolve_by_type`` finds them.

    The answer for a name is the first non-abstract subclass of ``Event`` (depth first, in
    definition order) with that ``type_name``; it only changes when a subclass is defined, which
    :meth:`forget` is told about.
    """

    def __init__(self) -> None:
        self._by_name: Optional[Dict[str, Any]] = None

    def forget(self) -> None:
        """Drop the index (a new ``Event`` subclass was defined)."""
        self._by_name = None

    def find(self, type_name: str) -> Optional[Any]:
        """The class Rasa would pick for ``type_name``, or None when no class has that name."""
        by_name = self._by_name
        if by_name is None:
            by_name = self._build()
        return by_name.get(type_name)

    def _build(self) -> Dict[str, Any]:
        from rasa.shared.core.events import Event
        from rasa.shared.utils.common import all_subclasses

        by_name: Dict[str, Any] = {}
        for cls in all_subclasses(Event):
            name = cls.type_name
            if isinstance(name, str):
                by_name.setdefault(name, cls)  # the first match wins, as in Rasa's loop
        self._by_name = by_name
        return by_name


EVENT_TYPES = EventTypeIndex()
_stock_resolve_by_type: Optional[Any] = None


def resolve_event_type(type_name: str, default: Optional[Any] = None) -> Optional[Any]:
    """``Event.resolve_by_type`` with the index: same class, same ``None``, same error."""
    found = EVENT_TYPES.find(type_name) if isinstance(type_name, str) else None
    if found is not None:
        return found
    assert _stock_resolve_by_type is not None
    return _stock_resolve_by_type(type_name, default)  # unknown names: Rasa's own answer or error


def install_event_type_index() -> None:
    """Resolve event type names through :data:`EVENT_TYPES` (idempotent)."""
    global _stock_resolve_by_type
    from rasa.shared.core.events import Event

    if _stock_resolve_by_type is not None:
        return
    _stock_resolve_by_type = Event.resolve_by_type
    stock_init_subclass = Event.__dict__.get("__init_subclass__")

    def __init_subclass__(cls: Any, **kwargs: Any) -> None:
        if stock_init_subclass is not None:
            stock_init_subclass.__get__(None, cls)(**kwargs)
        else:
            super(Event, cls).__init_subclass__(**kwargs)
        EVENT_TYPES.forget()

    Event.__init_subclass__ = classmethod(__init_subclass__)  # type: ignore[assignment,method-assign]
    Event.resolve_by_type = staticmethod(resolve_event_type)  # type: ignore[assignment,method-assign]
    EVENT_TYPES.forget()


# --------------------------------------------------------------------------- rule matches
RULE_MATCH_CACHE_SIZE = 20_000
"""Distinct conversation states remembered per rule table (each entry is a small set)."""

_SCALARS = (str, int, float, bool, type(None))


def freeze_states(value: Any) -> Any:
    """A hashable key equal for two values only when Rasa's rule matching cannot tell them apart.

    Dicts (in any order), lists and tuples are told apart and scalars keep their type, since
    ``(1.0,) != [1.0]`` for the rule policy.

    Raises:
        TypeError: the value holds something else (such states are not cached).
    """
    if isinstance(value, dict):
        return ("d", tuple(sorted((key, freeze_states(item)) for key, item in value.items())))
    if isinstance(value, list):
        return ("l", tuple(freeze_states(item) for item in value))
    if isinstance(value, tuple):
        return ("t", tuple(freeze_states(item) for item in value))
    if isinstance(value, _SCALARS):
        return type(value), value
    raise TypeError(f"cannot freeze {type(value).__name__}")


class RuleMatchCache:
    """The rule keys that apply to given states, per rule table of one loaded rule policy."""

    def __init__(self, size: int = RULE_MATCH_CACHE_SIZE) -> None:
        self.size = size
        self._tables: Dict[int, Tuple[Any, OrderedDict[Any, Any]]] = {}

    def entries(self, lookup: Any) -> OrderedDict[Any, Any]:
        """The entries of one rule table (the table object itself is kept, so its id stays unique)."""
        found = self._tables.get(id(lookup))
        if found is None or found[0] is not lookup:
            found = (lookup, OrderedDict())
            self._tables[id(lookup)] = found
        return found[1]

    def get_or_compute(self, lookup: Any, states: Any, compute: Any) -> Any:
        """The cached result for ``states`` in ``lookup``, else ``compute()`` stored."""
        try:
            key = freeze_states(states)
        except TypeError:
            return compute()
        entries = self.entries(lookup)
        found = entries.get(key)
        if found is not None:
            entries.move_to_end(key)
            return found
        result = compute()
        entries[key] = result
        while len(entries) > self.size:
            entries.popitem(last=False)
        return result


_stock_rule_policy_load: Optional[Any] = None
_STOCK_TURN_METHODS: Dict[str, Any] = {}


def install_rule_match_cache() -> None:
    """Cache ``RulePolicy._get_possible_keys`` in rule policies loaded to serve (idempotent)."""
    global _stock_rule_policy_load
    from rasa.core.policies.rule_policy import RulePolicy

    if _stock_rule_policy_load is not None:
        return
    stock_load = RulePolicy.load.__func__  # type: ignore[attr-defined]
    stock_possible_keys = RulePolicy._get_possible_keys
    _stock_rule_policy_load = stock_load
    _STOCK_TURN_METHODS["rule_possible_keys"] = stock_possible_keys

    def load(cls: Any, *args: Any, **kwargs: Any) -> Any:
        policy = stock_load(cls, *args, **kwargs)
        policy._shop_rule_matches = RuleMatchCache()  # loaded to predict: its tables never change
        return policy

    def _get_possible_keys(self: RulePolicy, lookup: Dict[str, str], states: Any) -> Any:
        cache: Optional[RuleMatchCache] = getattr(self, "_shop_rule_matches", None)
        if cache is None:  # training: the tables are still being built
            return stock_possible_keys(self, lookup, states)
        return cache.get_or_compute(lookup, states, lambda: stock_possible_keys(self, lookup, states))

    RulePolicy.load = classmethod(load)  # type: ignore[method-assign,assignment]
    RulePolicy._get_possible_keys = _get_possible_keys  # type: ignore[method-assign]


# ------------------------------------------------------------------------- tracker merge
def event_dict_key(as_dict: Dict[str, Any]) -> Tuple[Any, Any]:
    """A hashable key that two equal (``==``) event dicts always share: their type and timestamp.

    Raises:
        TypeError: the type or timestamp is unhashable.
    """
    key = (as_dict.get("event"), as_dict.get("timestamp"))
    hash(key)
    return key


class EventDictIndex:
    """The ``as_dict()`` of events, looked up by :func:`event_dict_key` and confirmed with ``==``."""

    def __init__(self) -> None:
        self._buckets: Dict[Any, List[Dict[str, Any]]] = {}

    def add(self, events: Iterable[Any]) -> None:
        """Index events (their dicts as they are now)."""
        for event in events:
            as_dict = event.as_dict()
            self._buckets.setdefault(event_dict_key(as_dict), []).append(as_dict)

    def __contains__(self, as_dict: Dict[str, Any]) -> bool:
        return any(as_dict == known for known in self._buckets.get(event_dict_key(as_dict), ()))


def merge_trackers(prior_tracker: Any, tracker: Any) -> Any:
    """``RedisTrackerStore._merge_trackers`` with the events looked up in an index.

    Args:
        prior_tracker: the tracker stored in Redis (every session).
        tracker: the tracker to save.

    Returns:
        The tracker Rasa would save: ``tracker`` when it extends the stored one, else the stored
        events followed by the events of ``tracker`` whose ``as_dict()`` none of the merged
        events has, in order.
    """
    if not prior_tracker.events:
        return tracker
    past_tracker = tracker.travel_back_in_time(target_time=prior_tracker.events[-1].timestamp)
    if past_tracker.events == prior_tracker.events:
        return tracker
    merged = tracker.init_copy()
    merged.update_with_events(list(prior_tracker.events), override_timestamp=False, domain=None)
    try:
        known = EventDictIndex()
        known.add(merged.events)
        for new_event in tracker.events:
            if new_event.as_dict() not in known:
                before = len(merged.events)
                merged.update(new_event)
                known.add(islice(merged.events, before, None))
    except TypeError:  # an event dict with a value of unknown kind: Rasa's own way
        assert _stock_merge_trackers is not None
        return _stock_merge_trackers(prior_tracker, tracker)
    return merged


_stock_merge_trackers: Optional[Any] = None


def install_fast_tracker_merge() -> None:
    """Merge trackers in the Redis tracker store with :func:`merge_trackers` (idempotent)."""
    global _stock_merge_trackers
    from rasa.core.tracker_store import RedisTrackerStore

    if _stock_merge_trackers is not None:
        return
    _stock_merge_trackers = RedisTrackerStore._merge_trackers
    RedisTrackerStore._merge_trackers = staticmethod(merge_trackers)  # type: ignore[method-assign,assignment]


# ---------------------------------------------------------------------------- slot copies
_COPY_HOOKS = ("__getstate__", "__setstate__", "__getnewargs__", "__getnewargs_ex__")


@cache
def copies_as_plain_object(cls: Any) -> bool:
    """Whether ``copy.copy`` of an instance of ``cls`` is a new instance with the same attribute dict.

    True when nothing of the class changes Python's default reduction: no ``copyreg`` entry,
    ``__reduce_ex__`` and ``__reduce__`` of ``object``, no slot names (``abc.ABC``'s empty
    ``__slots__`` add none), no state or
    new-arguments hooks (``object.__getstate__`` of Python 3.11 keeps the default).
    """
    if cls in copyreg.dispatch_table:
        return False
    if cls.__reduce_ex__ is not object.__reduce_ex__ or cls.__reduce__ is not object.__reduce__:
        return False
    if copyreg._slotnames(cls):  # type: ignore[attr-defined]  # what the reduction itself consults
        return False
    default_getstate = getattr(object, "__getstate__", None)
    return all(getattr(cls, hook, None) in (None, default_getstate) for hook in _COPY_HOOKS)


def copy_slot(slot: Any) -> Any:
    """``copy.copy(slot)``, without the generic reduction for plain slot classes."""
    cls: Any = type(slot)
    if copies_as_plain_object(cls):
        copied = cls.__new__(cls)
        copied.__dict__.update(slot.__dict__)
        return copied
    reductor = copyreg.dispatch_table.get(cls)  # copy.copy's own way, past the __copy__ lookup
    reduced = reductor(slot) if reductor is not None else slot.__reduce_ex__(4)
    if isinstance(reduced, str):
        return slot
    return copy._reconstruct(slot, None, *reduced)  # type: ignore[attr-defined]


def install_fast_slot_copy() -> None:
    """Give Rasa's ``Slot`` the ``__copy__`` of :func:`copy_slot` (idempotent)."""
    from rasa.shared.core.slots import Slot

    if "__copy__" not in vars(Slot):
        Slot.__copy__ = copy_slot  # type: ignore[attr-defined]


# ----------------------------------------------------------------------------- graph plans
class _Recorder:
    """A graph node that notes its name when dask calls it."""

    def __init__(self, name: str, node: Any, calls: List[str]) -> None:
        self.name = name
        self.node = node
        self.calls = calls

    def __call__(self, *args: Any) -> Any:
        self.calls.append(self.name)
        return self.node(*args)


Plan = List[str]
"""The names of a graph's nodes in the order dask calls them."""


def record_plan(run_graph: Dict[str, Any], run_targets: List[str], input_names: Iterable[str]) -> Tuple[Any, Optional[Plan]]:
    """Run a dask graph as Rasa does, noting the order dask calls the nodes in.

    Args:
        run_graph: the dask graph: nodes as ``(node, *names of their inputs)``, inputs as data.
        run_targets: the names of the outputs wanted.
        input_names: the names of the graph's inputs (its only data entries).

    Returns:
        dask's result, and the plan (None when the graph holds anything else, or dask called a
        node twice: such graphs are always left to dask).
    """
    import dask

    calls: List[str] = []
    recording: Dict[str, Any] = {}
    for name, task in run_graph.items():
        recording[name] = (_Recorder(name, task[0], calls), *task[1:]) if is_node(task) else task
    result = dask.get(recording, run_targets)
    nodes = {name for name, task in run_graph.items() if is_node(task)}
    plannable = all(isinstance(need, str) for name in nodes for need in run_graph[name][1:])
    plannable = plannable and set(run_graph) - nodes <= set(input_names) and len(set(calls)) == len(calls)
    return result, (calls if plannable else None)


def is_node(task: Any) -> bool:
    """Whether a dask graph entry is a task (a tuple starting with something callable)."""
    return type(task) is tuple and bool(task) and callable(task[0])


def run_plan(plan: Plan, run_graph: Dict[str, Any], run_targets: List[str]) -> Tuple[Any, ...]:
    """Call the nodes of ``run_graph`` in the plan's order, as dask would: what ``dask.get`` returns.

    Entries that are not nodes (the inputs) are their own value, as in dask.
    """
    results: Dict[str, Any] = {name: task for name, task in run_graph.items() if not is_node(task)}
    for name in plan:
        node, *needs = run_graph[name]
        results[name] = node(*(results[need] if need in results else need for need in needs))
    return tuple(results[target] for target in run_targets)


_stock_graph_run: Optional[Any] = None


def install_graph_plans() -> None:
    """Run Rasa's graphs by recorded plans after a first run by dask (idempotent)."""
    global _stock_graph_run
    from rasa.engine.exceptions import GraphRunError
    from rasa.engine.runner.dask import DaskGraphRunner

    if _stock_graph_run is not None:
        return
    stock_run = DaskGraphRunner.run
    _stock_graph_run = stock_run
    runner_logger = logging.getLogger("rasa.engine.runner.dask")

    def run(self: DaskGraphRunner, inputs: Optional[Dict[str, Any]] = None,
            targets: Optional[List[str]] = None) -> Dict[str, Any]:
        run_targets = targets if targets else self._graph_schema.target_names
        plans: Dict[Any, Optional[Plan]] = self.__dict__.setdefault("_shop_plans", {})
        shape = (tuple(run_targets), tuple(inputs or ()))
        if shape in plans and plans[shape] is None:
            return stock_run(self, inputs, targets)
        minimal_schema = self._graph_schema.minimal_graph_schema(run_targets)
        run_graph = self._build_dask_graph(minimal_schema)
        if inputs:
            self._add_inputs_to_graph(inputs, run_graph)  # refuses inputs named like nodes, as Rasa does
        if runner_logger.isEnabledFor(logging.DEBUG):
            runner_logger.debug(f"Running graph with inputs: {inputs}, targets: {targets} "
                                f"and {self._execution_context}.")
        try:
            plan = plans.get(shape)
            if plan is None:
                dask_result, plans[shape] = record_plan(run_graph, run_targets, inputs or ())
            else:
                dask_result = run_plan(plan, run_graph, run_targets)
            return dict(dask_result)
        except RuntimeError as e:
            raise GraphRunError("Error running runner.") from e

    DaskGraphRunner.run = run  # type: ignore[method-assign]


# ------------------------------------------------------------------------ for comparisons
@contextmanager
def stock_turns() -> Iterator[None]:
    """Rasa's own event lookup, rule matching, tracker merge, slot copy and graph runs inside the block.

    For tests that compare both ways on the same loaded model; the speed fixes are back after it.
    """
    from rasa.core.policies.rule_policy import RulePolicy
    from rasa.core.tracker_store import RedisTrackerStore
    from rasa.engine.runner.dask import DaskGraphRunner
    from rasa.shared.core.events import Event
    from rasa.shared.core.slots import Slot

    install()
    ours = (Event.__dict__["resolve_by_type"], RulePolicy.__dict__["_get_possible_keys"],
            RedisTrackerStore.__dict__["_merge_trackers"], Slot.__dict__["__copy__"], DaskGraphRunner.__dict__["run"])
    Event.resolve_by_type = staticmethod(_stock_resolve_by_type)  # type: ignore[assignment,method-assign,arg-type]
    RulePolicy._get_possible_keys = _STOCK_TURN_METHODS["rule_possible_keys"]  # type: ignore[method-assign]
    RedisTrackerStore._merge_trackers = staticmethod(_stock_merge_trackers)  # type: ignore[method-assign,assignment,arg-type]
    del Slot.__copy__  # type: ignore[attr-defined]
    DaskGraphRunner.run = _stock_graph_run  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        (Event.resolve_by_type, RulePolicy._get_possible_keys, RedisTrackerStore._merge_trackers,  # type: ignore[method-assign]
         Slot.__copy__, DaskGraphRunner.run) = ours  # type: ignore[attr-defined,method-assign]
