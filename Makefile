# The two set-up commands of the README. Both install into .venv/ first if needed.
.PHONY: demo test lint bootstrap test-py312 test-py313

bootstrap:
	@scripts/bootstrap

demo: bootstrap
	.venv/bin/darts demo

test: bootstrap
	.venv/bin/python -m pytest -q

lint: bootstrap
	.venv/bin/ruff check . && .venv/bin/ruff format --check .

# CI's checks on newer Pythons: a fresh venv each, base install + [sandbox], the store,
# cube and prep-data tests (scripts/test-python).
test-py312 test-py313:
	scripts/test-python $(subst test-py3,3.,$@)
