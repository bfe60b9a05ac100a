//! Inserts many users straight into a `users` database (SQLite file or PostgreSQL), for
//! the scaling benchmark in `bench/`: the same migrations and `NewUser` rows the server
//! writes, in batched multi-row INSERTs inside transactions, far faster than registering
//! over HTTP (which costs one argon2 hash per user).
//!
//! Every user gets the same precomputed password hash (`--hash`, a PHC string: make it
//! with the server's parameters, e.g. `argon2_ceiling --hash PASSWORD`, so a login
//! verifies without re-hashing), a random UUIDv4 id, the email `seed-<n>@example.com`
//! for n in `start..start+count` (its lower-cased key the same), active, unverified,
//! timestamps now. Prints one JSON line with what it did.
//!
//! ```sh
//! cargo run --release -p users-db --example seed_users -- \
//!     --database-url sqlite:///tmp/users.db --count 1000000 --hash '$argon2id$v=19$...'
//! ```

use std::error::Error;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use diesel::prelude::*;
use users_db::schema::users;
use users_db::users::NewUser;
use users_db::{Database, DatabaseUrl, DbConnection, PoolOptions};
use users_domain::User;

const USAGE: &str = "usage: seed_users --database-url URL --hash PHC [--count N] [--start S] \
[--rows-per-insert R] [--rows-per-transaction T]";

struct Args {
    database_url: String,
    hash: String,
    count: u64,
    start: u64,
    rows_per_insert: usize,
    rows_per_transaction: usize,
}

fn parse_args() -> Result<Args, Box<dyn Error>> {
    let mut database_url = None;
    let mut hash = None;
    let mut count = 1000u64;
    let mut start = 0u64;
    // 10 columns a row: 1,000 rows stay far below SQLite's 32,766 and PostgreSQL's
    // 65,535 bind parameters per statement.
    let mut rows_per_insert = 1000usize;
    let mut rows_per_transaction = 20_000usize;
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
            "--database-url" => database_url = Some(value),
            "--hash" => hash = Some(value),
            "--count" => count = value.parse()?,
            "--start" => start = value.parse()?,
            "--rows-per-insert" => rows_per_insert = value.parse::<usize>()?.clamp(1, 3000),
            "--rows-per-transaction" => rows_per_transaction = value.parse::<usize>()?.max(1),
            other => return Err(format!("unknown argument {other}\n{USAGE}").into()),
        }
    }
    let database_url = database_url
        .or_else(|| std::env::var("DATABASE_URL").ok())
        .ok_or_else(|| format!("--database-url (or DATABASE_URL) is required\n{USAGE}"))?;
    let hash = hash.ok_or_else(|| format!("--hash is required\n{USAGE}"))?;
    if !hash.starts_with("$argon2") {
        return Err("--hash must be an argon2 PHC string ($argon2id$v=19$m=...)".into());
    }
    Ok(Args {
        database_url,
        hash,
        count,
        start,
        rows_per_insert,
        rows_per_transaction,
    })
}

// a tool outside the service: it dates the rows it seeds by the real clock
#[allow(clippy::disallowed_methods)]
fn now_ms() -> Result<i64, Box<dyn Error>> {
    Ok(i64::try_from(
        SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis(),
    )?)
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = parse_args()?;
    let url = DatabaseUrl::parse(&args.database_url)?;
    let backend = if url.is_sqlite() {
        "sqlite"
    } else {
        "postgres"
    };
    let db = Database::connect_and_migrate(url, &PoolOptions::default())?;
    let mut conn = db.get()?;

    let started = Instant::now();
    let end = args.start + args.count;
    let mut next = args.start;
    let mut rows: Vec<NewUser> = Vec::with_capacity(args.rows_per_transaction);
    while next < end {
        let upto = end.min(next + args.rows_per_transaction as u64);
        let now = now_ms()?;
        rows.clear();
        for n in next..upto {
            let email = format!("seed-{n}@example.com");
            let user = User {
                id: uuid::Uuid::new_v4(),
                email,
                is_active: true,
                is_superuser: false,
                is_verified: false,
            };
            rows.push(NewUser::new(&user, args.hash.clone(), now));
        }
        // Multi-row INSERTs do not go through the MultiConnection: one per backend.
        macro_rules! insert_batches {
            ($c:expr) => {
                $c.transaction::<_, diesel::result::Error, _>(|c| {
                    for chunk in rows.chunks(args.rows_per_insert) {
                        diesel::insert_into(users::table).values(chunk).execute(c)?;
                    }
                    Ok(())
                })?
            };
        }
        match &mut **conn {
            DbConnection::Sqlite(c) => insert_batches!(c),
            DbConnection::Postgresql(c) => insert_batches!(c),
        }
        next = upto;
    }
    let seconds = started.elapsed().as_secs_f64();
    let total: i64 = users::table.count().get_result(&mut **conn)?;
    println!(
        "{{\"backend\":\"{backend}\",\"inserted\":{},\"start\":{},\"seconds\":{seconds:.3},\"rows_per_sec\":{:.0},\"users_total\":{total}}}",
        args.count,
        args.start,
        args.count as f64 / seconds.max(1e-9),
    );
    Ok(())
}
