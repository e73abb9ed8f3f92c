# The two set-up commands of the README. Both install into .venv/ first if needed.
.PHONY: demo test lint bootstrap

bootstrap:
	@scripts/bootstrap

demo: bootstrap
	.venv/bin/darts demo

test: bootstrap
	.venv/bin/python -m pytest -q

lint: bootstrap
	.venv/bin/ruff check . && .venv/bin/ruff format --check .
