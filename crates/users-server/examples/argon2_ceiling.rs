//! The argon2id ceiling of this machine: how many hashes per second all cores together
//! compute with given parameters, using the `argon2` crate as the server does
//! (`Argon2::new(Argon2id, V0x13, Params::new(m, t, p, None))`, a fresh 16-byte random
//! salt and a 32-byte output per hash). One OS thread per core hashes for a fixed time,
//! each reusing its own argon2 memory (`hash_password_into_with_memory`), so the number is
//! the cost of the hash itself, not of allocating and faulting in 19 or 64 MiB each time.
//! The result is printed as one JSON object. Used by `bench/run.py`; no server involved.
//!
//! ```sh
//! cargo run --release -p users-server --example argon2_ceiling -- \
//!     --memory-kib 19456 --iterations 2 --parallelism 1 --seconds 10
//! ```
//!
//! With `--hash PASSWORD` it instead prints one PHC hash of PASSWORD with the given
//! parameters (what the seeding example stores for every seeded user) and exits.

use std::error::Error;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHasher as _, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};

const USAGE: &str = "usage: argon2_ceiling [--memory-kib M] [--iterations T] [--parallelism P] \
[--seconds S] [--threads N] [--hash PASSWORD]";

struct Args {
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
    seconds: f64,
    threads: usize,
    hash: Option<String>,
}

fn parse_args() -> Result<Args, Box<dyn Error>> {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mut args = Args {
        memory_kib: 19456,
        iterations: 2,
        parallelism: 1,
        seconds: 10.0,
        threads: cores,
        hash: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        match flag.as_str() {
            "--memory-kib" => args.memory_kib = value.parse()?,
            "--iterations" => args.iterations = value.parse()?,
            "--parallelism" => args.parallelism = value.parse()?,
            "--seconds" => args.seconds = value.parse()?,
            "--threads" => args.threads = value.parse::<usize>()?.max(1),
            "--hash" => args.hash = Some(value),
            other => return Err(format!("unknown argument {other}\n{USAGE}").into()),
        }
    }
    Ok(args)
}

/// A PHC string, as stored in the users table.
fn phc(argon: &Argon2<'_>, password: &[u8]) -> Result<String, Box<dyn Error>> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(argon
        .hash_password(password, &salt)
        .map_err(|e| e.to_string())?
        .to_string())
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = parse_args()?;
    let params = Params::new(args.memory_kib, args.iterations, args.parallelism, None)
        .map_err(|e| format!("invalid argon2 parameters: {e}"))?;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());

    if let Some(password) = &args.hash {
        println!("{}", phc(&argon, password.as_bytes())?);
        return Ok(());
    }

    let stop = Arc::new(AtomicBool::new(false));
    let total = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut handles = Vec::with_capacity(args.threads);
    for i in 0..args.threads {
        let stop = Arc::clone(&stop);
        let total = Arc::clone(&total);
        let params = params.clone();
        handles.push(std::thread::spawn(
            move || -> Result<(), Box<dyn Error + Send + Sync>> {
                let mut memory = vec![Block::default(); params.block_count()];
                let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
                let password = format!("ceiling benchmark password {i}");
                let mut salt = [0u8; 16];
                let mut out = [0u8; 32];
                while !stop.load(Ordering::Relaxed) {
                    OsRng.fill_bytes(&mut salt);
                    argon
                        .hash_password_into_with_memory(
                            password.as_bytes(),
                            &salt,
                            &mut out,
                            &mut memory,
                        )
                        .map_err(|e| e.to_string())?;
                    total.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            },
        ));
    }
    std::thread::sleep(Duration::from_secs_f64(args.seconds.max(0.1)));
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join()
            .map_err(|_| "a hashing thread panicked")?
            .map_err(|e| e.to_string())?;
    }
    // Hashes still running when `stop` was set finish and count: divide by the real time.
    let elapsed = started.elapsed().as_secs_f64();
    let hashes = total.load(Ordering::Relaxed);
    let out = serde_json::json!({
        "algorithm": "argon2id",
        "version": 19,
        "memory_kib": args.memory_kib,
        "iterations": args.iterations,
        "parallelism": args.parallelism,
        "threads": args.threads,
        "seconds": elapsed,
        "hashes": hashes,
        "hashes_per_sec": hashes as f64 / elapsed,
        "ms_per_hash_per_thread": if hashes > 0 { elapsed * 1000.0 * args.threads as f64 / hashes as f64 } else { 0.0 },
    });
    println!("{out}");
    Ok(())
}
