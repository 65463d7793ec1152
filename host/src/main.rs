//! The `pagehook` binary: everything lives in the library's `cli` module.

/// mimalloc rather than the C library's allocator: under load the sidecar
/// spent a fifth of its time in glibc's malloc and free (its arenas
/// consolidating), which mimalloc's per-thread pages avoid.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    pagehook::cli::main()
}
