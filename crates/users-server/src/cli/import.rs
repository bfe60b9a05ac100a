//! `users-server import-fastapi-users --from URL [--dry-run] [--batch-size N]`
//! (docs/migrating-from-fastapi-users.md): the arguments, the target database, the progress
//! bar and what is printed. The import itself is `users_core::flows::import`.

use std::io::{IsTerminal, Write};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use users_core::flows::import::{
    self, ImportOptions, ImportProgress, ImportSummary, OpenError, Report,
};
use users_domain::Clock;

use super::Flags;
use crate::settings::Settings;
use crate::state::SystemClock;

/// Users per page and per transaction unless `--batch-size` says otherwise.
const DEFAULT_BATCH_SIZE: usize = 1000;
const MAX_BATCH_SIZE: usize = 10_000;

/// For the test of an interrupted import only: the process aborts (as if killed) right
/// after this many batches were committed.
pub const ABORT_AFTER_BATCHES_VARIABLE: &str = "USERS_IMPORT_ABORT_AFTER_BATCHES";

#[derive(Debug, PartialEq, Eq)]
pub struct ImportArgs {
    /// The SQLAlchemy URL of the fastapi-users database.
    pub from: String,
    pub dry_run: bool,
    pub batch_size: usize,
}

pub fn parse_import(args: &[String]) -> Result<ImportArgs, String> {
    let mut from = None;
    let mut dry_run = false;
    let mut batch_size = DEFAULT_BATCH_SIZE;
    let mut flags = Flags::new(args);
    while let Some(flag) = flags.next_flag() {
        match flag {
            "--from" => from = Some(flags.value(flag)?),
            "--batch-size" => {
                batch_size = flags
                    .value(flag)?
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_BATCH_SIZE).contains(n))
                    .ok_or_else(|| {
                        format!("--batch-size must be a number from 1 to {MAX_BATCH_SIZE}")
                    })?;
            }
            "--dry-run" => dry_run = true,
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(ImportArgs {
        from: from.ok_or("--from is required")?,
        dry_run,
        batch_size,
    })
}

/// Runs the command (blocking; it needs no async runtime); returns the exit code.
pub fn import_command(settings: &Settings, args: &ImportArgs, abort_after: Option<u64>) -> u8 {
    let database = &settings.database;
    let mut opened = match import::open(
        &args.from,
        &database.database_url,
        &database.pool,
        args.dry_run,
    ) {
        Ok(opened) => opened,
        Err(e @ OpenError::Url(_)) => {
            eprintln!("error: {e}");
            return 2;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let options = ImportOptions {
        batch_size: args.batch_size,
        dry_run: args.dry_run,
    };
    let mut progress = Progress::new(abort_after);
    let started = Instant::now();
    let outcome = opened.run(&options, SystemClock.now(), &mut progress);
    progress.bar.finish_and_clear();
    match outcome {
        Ok(summary) => {
            print_summary(&summary);
            let seconds = started.elapsed().as_secs_f64();
            eprintln!(
                "{} users read in {seconds:.2} s ({:.0} users/s)",
                progress.users,
                progress.users as f64 / seconds.max(1e-9)
            );
            0
        }
        Err(e) => {
            eprintln!(
                "error: {e}\nthe batches committed before stay imported; run the command again to finish"
            );
            1
        }
    }
}

fn print_summary(summary: &ImportSummary) {
    let mut out = std::io::stdout().lock();
    let u = summary.users;
    let a = summary.accounts;
    let dry = if summary.dry_run {
        " (dry run: nothing was written)"
    } else {
        ""
    };
    let _ = writeln!(
        out,
        "imported {}, skipped {}, conflicts {}{dry}",
        u.imported, u.skipped, u.conflicts
    );
    if summary.without_oauth_table {
        let _ = writeln!(
            out,
            "oauth accounts: none (the source has no oauth_account table)"
        );
    } else {
        let _ = writeln!(
            out,
            "oauth accounts: imported {}, skipped {}, conflicts {}",
            a.imported, a.skipped, a.conflicts
        );
    }
}

/// A progress bar on stderr when it is a terminal; the reports on stdout.
struct Progress {
    bar: ProgressBar,
    users: u64,
    batches: u64,
    abort_after: Option<u64>,
}

impl Progress {
    fn new(abort_after: Option<u64>) -> Progress {
        let bar = if std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template(
                "{bar:40} {human_pos}/{human_len} users ({elapsed}, {eta} left)",
            ) {
                bar.set_style(style);
            }
            bar
        } else {
            ProgressBar::hidden()
        };
        Progress {
            bar,
            users: 0,
            batches: 0,
            abort_after,
        }
    }
}

impl ImportProgress for Progress {
    fn started(&mut self, users: u64) {
        self.bar.set_length(users);
    }

    fn report(&mut self, report: &Report) {
        self.bar.suspend(|| {
            let _ = writeln!(std::io::stdout().lock(), "{report}");
        });
    }

    fn batch_done(&mut self, users: u64) {
        self.users += users;
        self.batches += 1;
        self.bar.inc(users);
        if self.abort_after == Some(self.batches) {
            let _ = std::io::stdout().flush();
            std::process::abort();
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_the_import_arguments() {
        assert_eq!(
            parse_import(&args(&["--from", "sqlite:///app.db", "--dry-run"])).unwrap(),
            ImportArgs {
                from: "sqlite:///app.db".into(),
                dry_run: true,
                batch_size: DEFAULT_BATCH_SIZE
            }
        );
        let a = parse_import(&args(&["--from=postgres://h/db", "--batch-size", "7"])).unwrap();
        assert_eq!(
            (a.from.as_str(), a.dry_run, a.batch_size),
            ("postgres://h/db", false, 7)
        );
        assert!(parse_import(&args(&["--dry-run"]))
            .unwrap_err()
            .contains("--from"));
        assert!(parse_import(&args(&["--from", "x", "--batch-size", "0"]))
            .unwrap_err()
            .contains("--batch-size"));
        assert!(parse_import(&args(&["--from", "x", "--force"]))
            .unwrap_err()
            .contains("--force"));
    }
}
