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

# Benchmarks: guest boot-to-ready and scenario wall time (medians), the workload engine against
# fio, and the path manager core. (The SCSI freeze bench takes half an hour: `just bench-freeze`.)
bench:
    cargo bench -p controller --bench guest --bench engine
    cargo bench -p path-manager

# Fetch the guest kernel into the cache.
prepare:
    cargo run --release -- guest prepare

# Time-critical IO through the map against multiplexed down every path, under a hard fail, a
# hang, a slow and a flapping path: medians of 3 guest runs each (PATHRIG_BENCH_RUNS=N).
bench-critical:
    cargo bench -p controller --bench critical

# The workload engine against fio in the guest (needs `apt-get install fio`).
bench-engine:
    cargo bench -p controller --bench engine

# The HBA-wide freeze of the SCSI error handler for each combination of device timeout,
# eh_timeout, eh_deadline and abort handling, medians of 3 guest runs (about half an hour).
bench-freeze:
    cargo bench -p controller --bench scsi_freeze

# The VM suite with each scenario's wall time split into boot, setup, run and teardown (ms),
# slowest first. `just suite-times 2` runs two guests at once.
suite-times GUESTS="1":
    rm -f target/vm-times.tsv
    PATHRIG_VM_GUESTS={{GUESTS}} PATHRIG_VM_TIMES=$PWD/target/vm-times.tsv cargo test -p controller --test vm
    @{ printf 'scenario\twall\tboot_to_ready\tsetup\trun\tteardown\n'; sort -t"$(printf '\t')" -k2,2nr target/vm-times.tsv; } | column -t
    @awk -F'\t' '{ w += $2; b += $3; r += $5 } END { printf "sum: wall %.1f s, boot to ready %.1f s, run %.1f s over %d runs\n", w/1000, b/1000, r/1000, NR }' target/vm-times.tsv
