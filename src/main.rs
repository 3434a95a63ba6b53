//! The `feedmill` binary: everything lives in the library; see `feedmill::cli`.

fn main() -> std::process::ExitCode {
    feedmill::cli::main()
}
