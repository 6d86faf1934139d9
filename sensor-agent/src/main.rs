//! `sensor-agent`: parse arguments, set up logging, run. Everything else is in the library.

fn main() {
    std::process::exit(sensor_agent::cli::run_from_args(std::env::args_os()));
}
