# pathrig — recipes for people. CI runs `scripts/test` (see README.md).

# The whole test suite, the VM suite included (installs the build's needs first).
test:
    scripts/test

# The scenario reader against many mutated and random files (CI runs a few hundred cases).
fuzz CASES="20000":
    PROPTEST_CASES={{CASES}} cargo test --release -p faults --test robustness

# Only the end-to-end suite (real guests).
vmtest:
    cargo test -p controller --test vm

# Run one scenario in a guest: `just run vm-tests/scenarios/leg-fails-and-returns.toml`
run SCENARIO *ARGS:
    scripts/run {{SCENARIO}} {{ARGS}}

# Benchmarks: guest boot-to-ready and scenario wall time (medians), and the path manager core.
bench:
    cargo bench -p controller

# Fetch the guest kernel into the cache.
prepare:
    cargo run --release -- guest prepare
