# Two commands do everything on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
PY := .venv/bin/python
export PYTHONPATH := $(CURDIR)
export RASA_TELEMETRY_ENABLED := false
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: setup run train seed test lint shell bench bench-fleet bench-nlu eval-nlu containment review-export review-check fleet-test fuzz clean

setup:
	@bash scripts/bootstrap.sh

train: setup
	@$(PY) -m bot.launcher train

run: setup
	@$(PY) -m bot.launcher run

seed: setup
	@$(PY) -m crm seed

shell: setup
	@$(PY) -m bot.shell

test: setup train
	@$(PY) -m pytest

lint: setup
	@$(PY) -m ruff check bot actions connectors crm desk shop wechat_sim bench fleet tests
	@$(PY) -m mypy bot handoff actions connectors desk shop wechat_sim fleet

# The stock bot, ours, then two instances of ours behind HAProxy (bench/fleet.py), same load, one after
# the other; figures and the three targets printed, results/bench-<time>.json. --no-fleet skips the fleet.
bench: setup train
	@$(PY) -m bench

# Ours beside the two-instance fleet only (2 Rasa servers of one worker, 2 action servers, HAProxy in front).
bench-fleet: setup train
	@$(PY) -m bench --only ours --fleet

bench-nlu: setup
	@$(PY) -m bench.nlu --train

clean:
	rm -rf var models results .pytest_cache

eval-nlu: setup
	@$(PY) -m bot.evaluation

containment: setup train
	@$(PY) -m bench.containment

# The NLU inbox's labelled messages (desk: 「待学习语句」) as training data for the next `make train`.
review-export: setup
	@$(PY) -m bot.nlu_export

# The learning loop end to end, with a training run: a missed message labelled at the desk, exported,
# and answered with its label by a model trained on the data plus that example (minutes on 2 cores).
review-check: setup train
	@$(PY) -m pytest -q tests/integration/test_review_loop.py

# The stack as a fleet on this machine (root: network namespaces, veth, a bridge; installs haproxy and
# redis-sentinel with apt-get when missing): 2 Rasa servers, 2 action servers and 2 desks behind HAProxy,
# Redis with Sentinel, the CRM on PostgreSQL; kills, a failover, figures in results/ (docs/fleet.md).
# FLEET_SHORT=1: the same checks with fewer messages (CI). Not part of `make test`.
fleet-test: setup train
	@$(PY) -m fleet

# Fuzz campaign (bench/fuzz.py): the app and web channels and the normaliser under hypothesis (profile
# campaign, FUZZ_EXAMPLES examples of a share of 1, at most FUZZ_MAX_S seconds a fuzzer), the CRM's and the
# desk's APIs under schemathesis from their /openapi.json; figures in results/fuzz-*.json.
fuzz: setup train
	@$(PY) -m bench.fuzz
