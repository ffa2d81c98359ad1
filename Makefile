# pg_encrypt_ml — the two commands a user needs:
#   make demo   installs what is missing, builds and installs the extension, starts a throw-away
#               cluster as the postgres OS user and runs examples/demo.sql
#   make test   the same set-up, then every test (the layering test, Rust unit tests, a few seconds of fuzzing per
#               parser (fuzz/), #[pg_test]s, pg_regress,
#               the upgrade test from every release, multi-session and dump/restore scripts,
#               and the Citus suite on a local coordinator and two workers)
# Also: make install (build + install, release), make test-slow (multi-gigabyte tests), make bench,
# make stop (stop the cluster).

PG_CONFIG ?= /usr/lib/postgresql/15/bin/pg_config
PGRX_PGDATA ?= /tmp/pg_encrypt_ml-pgrx-test
export PG_CONFIG
# A running server with the library preloaded maps the installed .so: every install unlinks it
# first, so the copy is a new file and running processes keep the old one (rewriting the file in
# place crashes them).
UNLINK_SO = rm -f "$$($(PG_CONFIG) --pkglibdir 2>/dev/null || echo /nonexistent)/pg_encrypt_ml.so"

.PHONY: test-isolation test-architecture test-fuzz deps install install-dev demo test test-unit test-pgrx test-regress test-upgrade test-integration test-crash test-citus citus test-slow bench bench-citus stop fmt

deps:
	@bash scripts/install-deps.sh

# The extension, and the FHE client tool in $(BINDIR) (docs/fhe.md "The tool").
BINDIR ?= /usr/local/bin
install: deps
	@$(UNLINK_SO)
	cargo pgrx install --release --pg-config $(PG_CONFIG)
	@bash scripts/install-sql.sh
	cargo build --release --locked -p encml-fhe --features uint32,zk --bin pg_encrypt_ml-fhe
	install -D -m 0755 target/release/pg_encrypt_ml-fhe $(DESTDIR)$(BINDIR)/pg_encrypt_ml-fhe
	@echo "pg_encrypt_ml-fhe installed in $(DESTDIR)$(BINDIR)"

# Dev profile (dependencies optimized, see Cargo.toml): what the tests run against.
install-dev: deps
	@$(UNLINK_SO)
	cargo pgrx install --pg-config $(PG_CONFIG)
	@bash scripts/install-sql.sh

demo: install
	@bash scripts/cluster.sh start
	@bash scripts/demo.sh

test: deps test-architecture test-unit test-fuzz test-pgrx test-regress test-isolation test-upgrade test-integration test-crash test-citus
	@echo "==> all tests passed"

# The layer order of src/lib.rs holds (docs/architecture.md); internal errors only where listed;
# every volatile SQL function refuses on a hot standby or is listed as working there;
# every unsafe block explains itself
# and clippy has nothing to say (the workspace lints of Cargo.toml, warnings as errors); rustfmt.
test-architecture: deps
	python3 tests/architecture/layers.py --self-test
	python3 tests/architecture/internal_errors.py --self-test
	python3 tests/architecture/standby.py --self-test
	cargo fmt --all -- --check
	cargo clippy --locked --workspace --all-targets --features pg_test -- -D warnings

test-unit:
	cargo test -p encml-core -p encml-dp -p encml-fhe --features encml-fhe/uint32,encml-fhe/zk
	cargo build -p encml-core -p encml-dp -p encml-fhe --features encml-fhe/uint32,encml-fhe/zk --bin pg_encrypt_ml-fhe
	@python3 -c 'import cryptography' 2>/dev/null || python3 -m pip install --quiet cryptography \
	  || apt-get install -y -qq python3-cryptography
	python3 tests/interop/reference_client.py

test-pgrx: deps
	rm -rf $(PGRX_PGDATA)
	@$(UNLINK_SO)
	cargo pgrx test pg15 --runas postgres --pgdata $(PGRX_PGDATA)

test-regress: install-dev
	@bash scripts/cluster.sh start
	@bash scripts/regress.sh
	python3 scripts/reference.py --check

# Every released version upgraded to this one equals a fresh install, loses nothing, and
# survives pg_dump/pg_restore (tests/upgrade/run.sh, docs/upgrading.md).
# Concurrency: pg_isolation_regress specs (tests/isolation/specs), sessions interleaved step by step.
test-isolation: install-dev
	@bash scripts/cluster.sh start
	@bash tests/isolation/run.sh

test-upgrade: install-dev
	@bash scripts/cluster.sh start
	@bash tests/upgrade/run.sh

test-integration: install-dev
	@bash scripts/cluster.sh start
	@bash tests/integration/run.sh

# Citus vs a single node (release build): docs/benchmarks.md "Citus".
bench-citus: install citus
	@bash benches/citus.sh

# Citus 13.2 from the source in ../shared/citus (no registry has it); does nothing when installed.
CITUS_BUILD ?= ../shared/citus/build.sh
citus:
	@bash $(CITUS_BUILD)

# A coordinator and two workers on this machine (scripts/citus-cluster.sh), tests/citus.
# Kills at pause points of key rotation, master-key rotation, destroy_key, sealing, a privacy
# charge, fhe_close_round, lo_encrypt and subject_forget, each on a throw-away cluster.
test-crash: install-dev
	@bash tests/crash/run.sh

test-citus: install-dev citus
	@bash tests/citus/run.sh

# Coverage-guided fuzzing of the parsers (AFL++ through cargo-afl, fuzz/README.md): every target
# for FUZZ_SECONDS each (installs cargo-afl on first use). In `make test` with 3 s per target:
# 42 s warm, about 3.5 min from a clean clone plus cargo-afl's install (once per machine).
FUZZ_SECONDS ?= 3
test-fuzz:
	@bash fuzz/run.sh $(FUZZ_SECONDS)

# Minutes-long tests with multi-gigabyte data (a 2.25 GB encrypted large object); CI runs them too.
test-slow: install-dev
	@bash scripts/cluster.sh start
	@bash tests/slow/large_object_2gb.sh

bench: install
	@bash scripts/cluster.sh start
	@bash benches/run.sh

stop:
	@bash scripts/cluster.sh stop
	@bash scripts/citus-cluster.sh stop

fmt:
	cargo fmt --all
