"""Run Rasa's graphs by a recorded plan after a first run by dask.

Rasa runs its graphs (NLU once per new message, the policies two or three times per turn) with
``dask.get``, which orders the whole graph and walks dask's scheduler state machine every time:
about a tenth of the server's CPU for graphs of a dozen nodes. The order depends only on the
graph's shape (nodes, dependencies, targets, input names), never on the values, so this patch has
dask run a graph of each shape once while noting the order in which it calls the nodes, then calls
them in that same order with the same arguments for later runs.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, Iterable, List, Optional, Tuple

from bot.rasa_patches import RASA_VERSION, Patch

TARGET = "rasa.engine.runner.dask:DaskGraphRunner.run"


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


def apply(patch: Patch) -> None:
    from rasa.engine.exceptions import GraphRunError
    from rasa.engine.runner.dask import DaskGraphRunner

    stock_run = patch.stock(TARGET)
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

    patch.replace(DaskGraphRunner, "run", run)


PATCH = Patch(
    name="graph_plans",
    rasa_version=RASA_VERSION,
    targets={TARGET: "45f0f52f574f3aa9546a552bf671183e171092c18b66e97f5771a7fa295de37e"},
    apply=apply,
    saves="about a tenth of the Rasa server's CPU (dask's ordering and scheduler per graph run)",
)
