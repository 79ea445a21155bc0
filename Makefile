# make run  - set up a venv, create a demo store and run the server in the foreground
#            (FINGER=, SSH=, KEYS=, RUN_DIR= change where; e.g. make run FINGER=tcp:7979 SSH=tcp:2022)
# make test - set up a venv with the test tools and run the whole test suite (what CI runs)

PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
RUN_DIR ?= run
FINGER ?= tcp:1079:interface=127.0.0.1
SSH ?= tcp:2222:interface=127.0.0.1
KEYS ?= keys
DEMO_PASSWORD ?= sshfinger-demo

.PHONY: run test test-unit lint install test-tools clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# What a regular install copies into the venv.
SOURCES := pyproject.toml $(shell find sshfinger plugins -type f \( -name '*.py' -o -name '*.sql' \))

# A regular (non-editable) install: twistd only finds plugins/ in an installed package.  It is redone only when a
# source is newer than the last install, so `make run` leaves alone a venv that is up to date (and in use, say by
# the test suite, whose README-command test runs `make run` in the suite's own venv).
$(VENV)/.installed: $(BIN)/python $(SOURCES)
	$(BIN)/pip install -q '.[test,postgresql]'
	touch $@

install: $(VENV)/.installed

run: install
	mkdir -p $(RUN_DIR)
	$(BIN)/sshfinger init --store $(RUN_DIR)/sshfinger.db
	test -f $(RUN_DIR)/passwd || echo '$(DEMO_PASSWORD)' | \
		$(BIN)/sshfinger passwd admin --file $(RUN_DIR)/passwd --password-stdin
	@$(BIN)/python -m sshfinger.ops.endpoints '$(FINGER)' '$(SSH)' '$(DEMO_PASSWORD)'
	$(BIN)/twistd --nodaemon --pidfile=$(RUN_DIR)/twistd.pid sshfinger \
		--finger $(FINGER) --ssh $(SSH) --store $(RUN_DIR)/sshfinger.db --keys $(KEYS) \
		--auth file:$(RUN_DIR)/passwd --admin admin

# The real client tools the integration tests drive (sshpass, tmux, nc, ssh; chromium and chromedriver for the
# web face; sshfs), PostgreSQL (a throwaway cluster per test module) and HAProxy; installed when missing.
test-tools:
	@command -v sshpass >/dev/null && command -v tmux >/dev/null && command -v nc >/dev/null && command -v ssh >/dev/null && command -v chromium >/dev/null && command -v chromedriver >/dev/null && command -v sshfs >/dev/null \
		&& ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && command -v haproxy >/dev/null || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sshpass tmux netcat-openbsd openssh-client chromium chromium-driver sshfs \
			postgresql haproxy >/dev/null; }
	@# OpenSSH's /etc/ssh/moduli, as on any host with openssh-server (the hostile GEX test needs it): taken from the package.
	@test -f /etc/ssh/moduli || { d=$$(mktemp -d) && (cd $$d && apt-get download -qq openssh-server) && \
		dpkg-deb --fsys-tarfile $$d/openssh-server_*.deb | tar -xO ./etc/ssh/moduli > /etc/ssh/moduli; rm -rf $$d; }

# The whole suite (what CI runs): lint, then the unit and the integration tests.
test: install test-tools lint
	$(BIN)/python -m twisted.trial -j2 --temp-directory=$(VENV)/_trial_temp tests

# The quick loop: in-memory tests only, no servers started.
test-unit: install
	$(BIN)/python -m twisted.trial --temp-directory=$(VENV)/_trial_temp_unit tests.unit

# ruff and mypy (with mypy-zope) over the package; any finding fails.
lint: install
	$(BIN)/ruff check sshfinger plugins tests bench
	$(BIN)/mypy sshfinger

clean:
	rm -rf $(VENV) build *.egg-info $(RUN_DIR)
