use std::process::ExitCode;

use users_server::cli::{self, USAGE};
use users_server::{telemetry, Application, Settings};

fn main() -> ExitCode {
    // Before anything reads a key (the settings do): jsonwebtoken signs with aws-lc-rs,
    // never with a provider that would panic at the first token.
    if !users_core::signing::install_crypto_provider() {
        eprintln!("error: jsonwebtoken cannot use aws-lc-rs in this build");
        return ExitCode::FAILURE;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = args.first().map(String::as_str);
    if matches!(command, Some("-h" | "--help" | "help")) {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    if command == Some("openapi") {
        return match serde_json::to_string_pretty(&users_server::openapi::document()) {
            Ok(json) => {
                println!("{json}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    if command == Some("healthcheck") {
        return ExitCode::from(cli::healthcheck_command(
            &settings.http.bind_addr,
            cli::HEALTHCHECK_TIMEOUT,
        ));
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match command {
        None | Some("serve") => serve_until_stopped(settings, runtime),
        Some(command) => run_command(command, &args[1..], settings, &runtime),
    }
}

/// Serves until SIGTERM, then exports the spans of the last requests.
fn serve_until_stopped(settings: Settings, runtime: tokio::runtime::Runtime) -> ExitCode {
    let export = match telemetry::init_serving(
        &settings.ops.rust_log,
        settings.ops.log_format,
        &settings.traces,
    ) {
        Ok(export) => export,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(serve(settings));
    // the spans of the last requests, once the runtime no longer needs the thread
    drop(runtime);
    export.finish();
    code
}

/// A command of the command line other than `serve` (the usage: `cli::USAGE`).
fn run_command(
    command: &str,
    args: &[String],
    settings: Settings,
    runtime: &tokio::runtime::Runtime,
) -> ExitCode {
    let known = ["create-user", "rotate-signing-key", "import-fastapi-users"];
    if !known.contains(&command) {
        eprintln!("error: unknown command `{command}`\n{USAGE}");
        return ExitCode::from(2);
    }
    telemetry::init(&settings.ops.rust_log, settings.ops.log_format, true);
    match command {
        "create-user" => {
            let parsed = cli::parse_create_user(args, std::env::var("USERS_CREATE_PASSWORD").ok());
            match parsed {
                Ok(a) => ExitCode::from(runtime.block_on(cli::create_user_command(settings, a))),
                Err(e) => {
                    eprintln!("error: {e}\n{USAGE}");
                    ExitCode::from(2)
                }
            }
        }
        "rotate-signing-key" => {
            ExitCode::from(runtime.block_on(cli::rotate_signing_key_command(settings)))
        }
        _ => match cli::import::parse_import(args) {
            Ok(a) => {
                let abort_after = std::env::var(cli::import::ABORT_AFTER_BATCHES_VARIABLE)
                    .ok()
                    .and_then(|v| v.parse().ok());
                ExitCode::from(cli::import::import_command(&settings, &a, abort_after))
            }
            Err(e) => {
                eprintln!("error: {e}\n{USAGE}");
                ExitCode::from(2)
            }
        },
    }
}

async fn serve(settings: Settings) -> ExitCode {
    let mut signals = match users_server::shutdown::Signals::listen() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot listen for signals: {e}");
            return ExitCode::FAILURE;
        }
    };
    let built = tokio::select! {
        built = Application::build(settings) => built,
        _ = signals.next() => {
            eprintln!("stopped while starting");
            return ExitCode::FAILURE;
        }
    };
    let app = match built {
        Ok(app) => app,
        Err(e) => {
            tracing::error!("cannot start: {e}");
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match app.run_until_terminated(signals).await {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
