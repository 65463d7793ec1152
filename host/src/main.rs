//! The `pagehook` binary: everything lives in the library's `cli` module.

/// mimalloc rather than the C library's allocator: at 1,000 events/s the
/// sidecar spent about a fifth of its time in glibc's malloc and free and
/// their arenas' upkeep; with mimalloc it used about 5 % less CPU
/// (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    pagehook::cli::main()
}
