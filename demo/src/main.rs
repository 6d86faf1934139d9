//! `centinela-demo`: see `centinela-demo --help`.

use std::process::ExitCode;

use clap::Parser;

/// Run the whole Centinela system on this machine: embedded broker, server and simulated
/// sensors of a demo prison.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    args: centinela_demo::DemoArgs,
}

fn main() -> ExitCode {
    central_server::init_logging();
    let cli = Cli::parse();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(centinela_demo::run(
        cli.args,
        central_server::wait_for_signal(),
    )) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            match e {
                central_server::ServerError::Config(_)
                | central_server::ServerError::PortTaken { .. } => ExitCode::from(2),
                _ => ExitCode::FAILURE,
            }
        }
    }
}
