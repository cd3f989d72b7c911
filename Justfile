# pathrig — recipes for people. CI runs `cargo test --workspace` (see README.md).

# The whole test suite, the VM suite included.
test:
    cargo test --workspace

# Only the end-to-end suite (real guests).
vmtest:
    cargo test -p controller --test vm

# Run one scenario in a guest: `just run vm-tests/scenarios/leg-fails-and-returns.toml`
run SCENARIO *ARGS:
    cargo run --release -- run {{SCENARIO}} {{ARGS}}

# Benchmarks: guest boot-to-ready and scenario wall time (medians), and the path manager core.
bench:
    cargo bench -p controller -p path-manager

# Fetch the guest kernel into the cache.
prepare:
    cargo run --release -- guest prepare
