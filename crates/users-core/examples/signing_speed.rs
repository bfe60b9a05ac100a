//! How fast this machine signs (and verifies) an access token with each asymmetric
//! `JWT_ALGORITHM`, on one thread: the key is generated and loaded the way the service
//! does it (`signing::generate_private_key`, `signing::load_private_key`), and each
//! token is made as the service makes one (`SigningKey::sign_jwt`: the key read once, a
//! header with `kid`, the claims of an access token of a session) and verified as it
//! verifies one (`jsonwebtoken::decode`). Prints one line per algorithm and
//! round; no assertion, since the numbers depend on the machine and its load.
//!
//! Each rate is given twice: per second of wall time, and per second this thread was on
//! a CPU (`utime` + `stime` of Linux's `/proc/thread-self/stat`, in 10 ms ticks), which
//! other processes' load hardly changes; on a busy machine compare the second.
//!
//! ```sh
//! cargo run --release -p users-core --example signing_speed -- --seconds 3 --rounds 5
//! ```

use std::error::Error;
use std::time::{Duration, Instant};

use jsonwebtoken::{Header, Validation};
use users_core::signing::{generate_private_key, load_private_key, SigningAlgorithm};

const USAGE: &str = "usage: signing_speed [--seconds S] [--rounds N] [--alg EdDSA|ES256|RS256]";

/// Nanoseconds this thread has run on a CPU, where Linux tells it: `utime` and `stime`
/// (the 14th and 15th fields, after the command name in parentheses), in clock ticks of
/// USER_HZ, which is 100 on the architectures Linux runs this on.
fn thread_cpu_ns() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    let (_, after_name) = stat.rsplit_once(')')?;
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) * 10_000_000)
}

/// Counts how often `op` runs in `seconds`, checking the clock every few calls so the
/// clock itself is not what is measured: per wall second, and per CPU second (0 where
/// unknown).
fn per_second(
    seconds: f64,
    mut op: impl FnMut() -> Result<(), Box<dyn Error>>,
) -> Result<(f64, f64), Box<dyn Error>> {
    let budget = Duration::from_secs_f64(seconds);
    let cpu_started = thread_cpu_ns();
    let started = Instant::now();
    let mut done = 0u64;
    while started.elapsed() < budget {
        for _ in 0..8 {
            op()?;
        }
        done += 8;
    }
    let wall = done as f64 / started.elapsed().as_secs_f64();
    let cpu = match (cpu_started, thread_cpu_ns()) {
        (Some(a), Some(b)) if b > a => done as f64 / ((b - a) as f64 / 1e9),
        _ => 0.0,
    };
    Ok((wall, cpu))
}

/// The middle value; the mean of the two middle ones for an even count.
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        return 0.0;
    }
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut seconds = 3.0;
    let mut rounds = 5usize;
    let mut only: Option<String> = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            println!("{USAGE}");
            return Ok(());
        }
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        match flag.as_str() {
            "--seconds" => seconds = value.parse()?,
            "--rounds" => rounds = value.parse::<usize>()?.max(1),
            "--alg" => only = Some(value),
            other => return Err(format!("unknown argument {other}\n{USAGE}").into()),
        }
    }

    // The claims of an access token of a session, as `JwtKeys::issue_access` writes them.
    let claims = serde_json::json!({
        "sub": "0190a6f0-6c3e-7b6d-9a51-3f1e5c2b8d47",
        "aud": ["fastapi-users:auth"],
        "exp": 1_900_003_600i64,
        "iat": 1_900_000_000i64,
        "iat_ms": 1_900_000_000_123i64,
        "jti": "Zk3q8Xc1VbT2nL0pRw5sYg",
        "sid": "0190a6f0-7d21-7c88-b1f4-52a9e0c7d316",
        "iss": "https://id.example.com",
    });

    for alg in [
        SigningAlgorithm::EdDsa,
        SigningAlgorithm::Es256,
        SigningAlgorithm::Rs256,
    ] {
        if only.as_deref().is_some_and(|o| o != alg.name()) {
            continue;
        }
        let pem = generate_private_key(alg)?;
        let key = load_private_key(&pem, alg)?;
        let decoding = key.decoding_key()?;
        let mut header = Header::new(alg.jwt());
        header.kid = Some(key.kid.clone());
        let token = key.sign_jwt(&header, &claims)?;
        let mut validation = Validation::new(alg.jwt());
        validation.set_audience(&["fastapi-users:auth"]);
        validation.set_issuer(&["https://id.example.com"]);
        validation.validate_exp = false;

        let mut signs = Vec::with_capacity(rounds);
        let mut verifies = Vec::with_capacity(rounds);
        let mut signs_cpu = Vec::with_capacity(rounds);
        let mut verifies_cpu = Vec::with_capacity(rounds);
        for round in 1..=rounds {
            let sign = per_second(seconds, || {
                key.sign_jwt(&header, &claims)?;
                Ok(())
            })?;
            let verify = per_second(seconds, || {
                jsonwebtoken::decode::<serde_json::Value>(&token, &decoding, &validation)?;
                Ok(())
            })?;
            println!(
                "{:<5} round {round}: sign {:>9.0}/s ({:>9.0}/CPU-s)  verify {:>9.0}/s ({:>9.0}/CPU-s)",
                alg.name(),
                sign.0,
                sign.1,
                verify.0,
                verify.1
            );
            signs.push(sign.0);
            signs_cpu.push(sign.1);
            verifies.push(verify.0);
            verifies_cpu.push(verify.1);
        }
        println!(
            "{:<5} median of {rounds}: sign {:>9.0}/s ({:>9.0}/CPU-s)  verify {:>9.0}/s ({:>9.0}/CPU-s)",
            alg.name(),
            median(signs),
            median(signs_cpu),
            median(verifies),
            median(verifies_cpu)
        );
    }
    Ok(())
}
