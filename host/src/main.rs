//! The `pagehook` binary: everything lives in the library's `cli` module.

fn main() -> std::process::ExitCode {
    pagehook::cli::main()
}
