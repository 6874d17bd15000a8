//! The stock `taskrow` binary: every operator command, without task types (so `run` explains
//! how to build a binary that has them; see [`taskrow_cli::run_cli`]).

use std::process::ExitCode;

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(taskrow_cli::run_cli(std::env::args_os(), |client| client))
}
