//! `gatehouse-idp`: see the library docs and `gatehouse-idp --help`.

use std::io::Write as _;
use std::process::ExitCode;

use gatehouse_idp::config::{self, Command};
use gatehouse_idp::server;

fn main() -> ExitCode {
    let config = match config::parse(std::env::args().skip(1), |name| std::env::var(name).ok()) {
        Ok(Command::Run(config)) => config,
        Ok(Command::Help) => {
            println!("{}", config::usage());
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("gatehouse-idp: {message}");
            return ExitCode::from(2);
        }
    };
    let running = match server::start(&config) {
        Ok(running) => running,
        Err(message) => {
            eprintln!("gatehouse-idp: {message}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!("gatehouse-idp: issuer {}", running.issuer());
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "gatehouse-idp listening on {}", running.url());
    let _ = stdout.flush();
    drop(stdout);
    running.wait();
    ExitCode::SUCCESS
}
