//! Repository functions on a real PostgreSQL server: the per-request token check (one
//! prepared statement answers any number of tokens, prepared once per connection
//! whatever the batch size), counters that race to create their row, and the last-use
//! touch that never waits for a held row.

// Tests stand outside the service: they read the real clock to date the tokens and
// times they make (the service itself takes `now` as a parameter, see clippy.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use diesel::prelude::*;
use diesel::sql_types::BigInt;
use users_db::sessions::NewSession;
use users_db::users::{NewUser, TokenKey, TokenScope};
use users_db::{Database, DatabaseUrl, DbConnection, Effects, PoolOptions};
use users_domain::UserId;

fn postgres_base() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

fn prepared(conn: &mut DbConnection) -> i64 {
    let DbConnection::Postgresql(pg) = conn else {
        panic!("postgres expected")
    };
    diesel::sql_query("SELECT count(*) AS n FROM pg_prepared_statements")
        .get_result::<Count>(pg)
        .unwrap()
        .n
}

fn user(conn: &mut DbConnection, n: usize) -> (UserId, String) {
    let id = UserId::new_v4();
    let email = format!("check-{n}-{}@example.com", id.simple());
    users_db::users::create(
        conn,
        &NewUser {
            id: id.to_string(),
            email: email.clone(),
            email_key: email,
            hashed_password: "!".into(),
            is_active: true,
            is_superuser: false,
            is_verified: false,
            tokens_valid_after: 0,
            created_at: 0,
            updated_at: 0,
        },
        &Effects::none(),
    )
    .unwrap();
    let sid = uuid::Uuid::new_v4().to_string();
    users_db::sessions::create(
        conn,
        &NewSession {
            id: sid.clone(),
            user_id: id.to_string(),
            created_at: 0,
            last_used_at: 0,
            expires_at: i64::MAX,
            ip: None,
            user_agent: None,
            method: "password".into(),
            aal: 1,
            refresh_key_salt: None,
            second_factor: None,
        },
        &Effects::none(),
    )
    .unwrap();
    (id, sid)
}

#[test]
fn one_statement_prepared_once_answers_every_token() {
    let name = format!("users_check_{}", uuid::Uuid::new_v4().simple());
    users_db::admin::create_postgres_database(&postgres_base(), &name).unwrap();
    let url = DatabaseUrl::parse(&format!("{}/{name}", postgres_base())).unwrap();
    let db = Database::connect_and_migrate(url, &PoolOptions::default()).unwrap();
    let mut conn = db.get().unwrap();
    let users: Vec<(UserId, String)> = (0..6).map(|n| user(&mut conn, n)).collect();
    let key = |(id, sid): &(UserId, String), own: bool| TokenKey {
        user_id: *id,
        // a session of another user never matches
        scope: TokenScope::Session(if own { sid.clone() } else { users[0].1.clone() }),
    };
    let sid_of = |k: &TokenKey| match &k.scope {
        TokenScope::Session(s) => s.clone(),
        TokenScope::Unscoped { .. } => unreachable!(),
    };

    let before = prepared(&mut conn);
    let three: Vec<TokenKey> = users[..3].iter().map(|u| key(u, true)).collect();
    let found = users_db::users::find_for_tokens(&mut conn, &three).unwrap();
    assert_eq!(prepared(&mut conn), before + 1, "one statement");
    for (k, check) in three.iter().zip(&found) {
        let check = check.as_ref().unwrap();
        assert_eq!(check.user.user.id, k.user_id);
        assert_eq!(check.session.as_ref().unwrap().id, sid_of(k));
        assert!(!check.revoked);
    }

    // more tokens, a repeated one, a foreign session and an unknown user: same statement
    let mut six: Vec<TokenKey> = users[1..].iter().map(|u| key(u, true)).collect();
    six.push(key(&users[2], true));
    six.push(key(&users[3], false));
    six.push(TokenKey {
        user_id: UserId::new_v4(),
        scope: TokenScope::Session(users[4].1.clone()),
    });
    let found = users_db::users::find_for_tokens(&mut conn, &six).unwrap();
    assert_eq!(prepared(&mut conn), before + 1, "prepared once, reused");
    assert_eq!(found.len(), six.len());
    assert_eq!(found[5].as_ref().unwrap().user.user.id, users[2].0);
    let foreign = found[6].as_ref().unwrap();
    assert_eq!(foreign.user.user.id, users[3].0);
    assert!(
        foreign.session.is_none(),
        "another user's session never matches"
    );
    assert!(found[7].is_none(), "unknown user");

    // tokens without a session: the revoked one is told apart, by a second statement
    users_db::revocations::revoke(
        &mut conn,
        "revoked",
        users[1].0,
        i64::MAX,
        0,
        &Effects::none(),
    )
    .unwrap();
    let unscoped = |n: usize, hash: &str| TokenKey {
        user_id: users[n].0,
        scope: TokenScope::Unscoped {
            token_hash: hash.to_owned(),
        },
    };
    let mixed = vec![
        unscoped(1, "revoked"),
        unscoped(2, "fine"),
        key(&users[3], true),
    ];
    let found = users_db::users::find_for_tokens(&mut conn, &mixed).unwrap();
    let revoked: Vec<bool> = found.iter().map(|c| c.as_ref().unwrap().revoked).collect();
    assert_eq!(revoked, [true, false, false]);
    assert!(found[1].as_ref().unwrap().session.is_none());
    let after_mixed = prepared(&mut conn);
    users_db::users::find_for_tokens(&mut conn, &mixed[1..]).unwrap();
    assert_eq!(prepared(&mut conn), after_mixed, "both statements reused");

    // one key alone: its own statement, prepared once too
    for k in [&six[0], &six[1], &mixed[0]] {
        users_db::users::find_for_tokens(&mut conn, std::slice::from_ref(k)).unwrap();
    }
    let single = prepared(&mut conn);
    for k in [&six[2], &six[3], &mixed[1]] {
        users_db::users::find_for_tokens(&mut conn, std::slice::from_ref(k)).unwrap();
    }
    assert_eq!(prepared(&mut conn), single, "single-key statements reused");

    drop(conn);
    drop(db);
    users_db::admin::drop_postgres_database(&postgres_base(), &name).unwrap();
}

/// API keys in the batch: one statement answers tokens and keys together (the keys'
/// users found through their hashes), prepared once per connection and reused.
#[test]
fn one_statement_answers_tokens_and_api_keys() {
    use users_db::api_keys::ApiKeyRow;
    use users_db::users::Credential;
    let name = format!("users_check_{}", uuid::Uuid::new_v4().simple());
    users_db::admin::create_postgres_database(&postgres_base(), &name).unwrap();
    let url = DatabaseUrl::parse(&format!("{}/{name}", postgres_base())).unwrap();
    let db = Database::connect_and_migrate(url, &PoolOptions::default()).unwrap();
    let mut conn = db.get().unwrap();
    let users: Vec<(UserId, String)> = (0..4).map(|n| user(&mut conn, n)).collect();
    let key_of = |conn: &mut DbConnection, n: usize, hash: &str| {
        let row = ApiKeyRow {
            id: uuid::Uuid::new_v4().to_string(),
            user_id: users[n].0.to_string(),
            name: format!("key {n}"),
            key_hash: hash.to_owned(),
            prefix: "usr_00000000".into(),
            permissions: None,
            created_at: 0,
            expires_at: None,
            last_used_at: None,
        };
        assert!(users_db::api_keys::create(conn, &row, &Effects::none()).unwrap());
        row
    };
    let k1 = key_of(&mut conn, 1, "hash-1");
    let k2 = key_of(&mut conn, 2, "hash-2");
    let token = |n: usize| {
        Credential::Token(TokenKey {
            user_id: users[n].0,
            scope: TokenScope::Session(users[n].1.clone()),
        })
    };
    let api_key = |hash: &str| Credential::ApiKey {
        key_hash: hash.to_owned(),
    };

    let before = prepared(&mut conn);
    // a user with both a session token and a key in the batch, a key alone, an unknown key
    let batch = vec![
        token(0),
        api_key("hash-1"),
        token(1),
        api_key("unknown"),
        api_key("hash-2"),
    ];
    let found = users_db::users::find_for_credentials(&mut conn, &batch).unwrap();
    assert_eq!(prepared(&mut conn), before + 1, "one statement");
    let user_of = |i: usize| found[i].as_ref().unwrap().user.user.id;
    assert_eq!(user_of(0), users[0].0);
    assert!(found[0].as_ref().unwrap().api_key.is_none());
    assert_eq!(
        found[0].as_ref().unwrap().session.as_ref().unwrap().id,
        users[0].1
    );
    assert_eq!(user_of(1), users[1].0);
    assert_eq!(
        found[1].as_ref().unwrap().api_key.as_ref().unwrap().id,
        k1.id
    );
    assert!(found[1].as_ref().unwrap().session.is_none());
    assert_eq!(user_of(2), users[1].0);
    assert_eq!(
        found[2].as_ref().unwrap().session.as_ref().unwrap().id,
        users[1].1
    );
    assert!(found[3].is_none(), "an unknown key");
    assert_eq!(user_of(4), users[2].0);
    assert_eq!(
        found[4].as_ref().unwrap().api_key.as_ref().unwrap().id,
        k2.id
    );

    // other batches of keys: the same statement, reused
    let keys_only = vec![api_key("hash-2"), api_key("hash-1")];
    let found = users_db::users::find_for_credentials(&mut conn, &keys_only).unwrap();
    assert_eq!(found[0].as_ref().unwrap().user.user.id, users[2].0);
    assert_eq!(found[1].as_ref().unwrap().user.user.id, users[1].0);
    assert_eq!(prepared(&mut conn), before + 1, "prepared once, reused");

    // a revoked key is gone at once
    assert!(users_db::api_keys::revoke(&mut conn, users[1].0, &k1.id, &Effects::none()).unwrap());
    let found = users_db::users::find_for_credentials(&mut conn, &keys_only).unwrap();
    assert!(found[1].is_none());
    assert!(found[0].is_some());

    drop(conn);
    drop(db);
    users_db::admin::drop_postgres_database(&postgres_base(), &name).unwrap();
}

/// The provider's access tokens (a grant's session and a `jti`): a batch of them is one
/// statement, which also says which `jti`s are revoked, prepared once; one alone is one
/// statement too. A revoked `jti` is seen at once either way.
#[test]
fn one_statement_answers_grant_tokens_and_their_revocations() {
    use users_db::users::Credential;
    let name = format!("users_check_{}", uuid::Uuid::new_v4().simple());
    users_db::admin::create_postgres_database(&postgres_base(), &name).unwrap();
    let url = DatabaseUrl::parse(&format!("{}/{name}", postgres_base())).unwrap();
    let db = Database::connect_and_migrate(url, &PoolOptions::default()).unwrap();
    let mut conn = db.get().unwrap();
    let users: Vec<(UserId, String)> = (0..3).map(|n| user(&mut conn, n)).collect();
    let grant = |n: usize, jti: &str| Credential::Grant {
        key: TokenKey {
            user_id: users[n].0,
            scope: TokenScope::Session(users[n].1.clone()),
        },
        jti: jti.to_owned(),
    };
    let batch = vec![grant(0, "jti-0"), grant(1, "jti-1"), grant(2, "jti-2")];
    let revoked = |found: &[Option<users_db::users::TokenCheck>]| -> Vec<bool> {
        found.iter().map(|c| c.as_ref().unwrap().revoked).collect()
    };
    let before = prepared(&mut conn);
    let found = users_db::users::find_for_credentials(&mut conn, &batch).unwrap();
    assert_eq!(revoked(&found), [false, false, false]);
    assert_eq!(
        found[1].as_ref().unwrap().session.as_ref().unwrap().id,
        users[1].1
    );
    assert_eq!(
        prepared(&mut conn),
        before + 1,
        "one statement for the batch"
    );

    users_db::oauth::revoke_jti(&mut conn, "jti-1", i64::MAX, 0).unwrap();
    let after = prepared(&mut conn);
    let found = users_db::users::find_for_credentials(&mut conn, &batch).unwrap();
    assert_eq!(revoked(&found), [false, true, false]);
    let found = users_db::users::find_for_credentials(&mut conn, &batch[..2]).unwrap();
    assert_eq!(revoked(&found), [false, true]);
    assert_eq!(prepared(&mut conn), after, "the batch's statement reused");

    // one alone: its own statement, prepared once
    let one = users_db::users::find_for_credentials(&mut conn, &batch[1..2]).unwrap();
    assert_eq!(revoked(&one), [true]);
    let single = prepared(&mut conn);
    let one = users_db::users::find_for_credentials(&mut conn, &batch[2..3]).unwrap();
    assert_eq!(revoked(&one), [false]);
    assert_eq!(prepared(&mut conn), single, "the single statement reused");

    drop(conn);
    drop(db);
    users_db::admin::drop_postgres_database(&postgres_base(), &name).unwrap();
}

/// The first failures of an address counted at the same instant from many connections:
/// the race to create the row is lost without failing the transaction (PostgreSQL
/// aborts a transaction on any error unless a savepoint holds it).
#[test]
fn simultaneous_first_login_failures_all_count() {
    const THREADS: usize = 8;
    let name = format!("users_limits_{}", uuid::Uuid::new_v4().simple());
    users_db::admin::create_postgres_database(&postgres_base(), &name).unwrap();
    let url = DatabaseUrl::parse(&format!("{}/{name}", postgres_base())).unwrap();
    let opts = PoolOptions {
        max_connections: THREADS as u32,
        ..PoolOptions::default()
    };
    let db = Database::connect_and_migrate(url, &opts).unwrap();
    for round in 0..20 {
        let key = format!("race-{round}@example.com");
        let start = std::sync::Arc::new(std::sync::Barrier::new(THREADS));
        let threads: Vec<_> = (0..THREADS)
            .map(|_| {
                let (db, key, start) = (db.clone(), key.clone(), start.clone());
                std::thread::spawn(move || {
                    let mut conn = db.get().unwrap();
                    start.wait();
                    users_db::limits::record_login_failure(&mut conn, &key, 0, 100, |_| 0)
                })
            })
            .collect();
        for t in threads {
            t.join()
                .unwrap()
                .expect("each failure is counted without an error");
        }
        let mut conn = db.get().unwrap();
        let failures =
            users_db::limits::record_login_failure(&mut conn, &key, 0, 100, |_| 0).unwrap();
        assert_eq!(failures, THREADS as i64 + 1, "round {round}");
    }
    drop(db);
    users_db::admin::drop_postgres_database(&postgres_base(), &name).unwrap();
}

#[derive(QueryableByName)]
struct LastUse {
    #[diesel(sql_type = diesel::sql_types::Nullable<BigInt>)]
    last_used_at: Option<i64>,
}

fn last_use(conn: &mut DbConnection, table: &str, id: &str) -> Option<i64> {
    let DbConnection::Postgresql(pg) = conn else {
        panic!("postgres expected")
    };
    diesel::sql_query(format!("SELECT last_used_at FROM {table} WHERE id = $1"))
        .bind::<diesel::sql_types::Text, _>(id)
        .get_result::<LastUse>(pg)
        .unwrap()
        .last_used_at
}

/// The last-use touch never waits for a row another transaction holds
/// (docs/sessions-and-tokens.md#last-use): it skips it, writes the others, and the next
/// touch writes the skipped one. Without that, the touch below would wait for the
/// holder, and the statement timeout would fail it.
#[test]
fn a_touch_skips_what_another_transaction_holds() {
    use users_db::api_keys::ApiKeyRow;
    let name = format!("users_touch_{}", uuid::Uuid::new_v4().simple());
    users_db::admin::create_postgres_database(&postgres_base(), &name).unwrap();
    let url = DatabaseUrl::parse(&format!("{}/{name}", postgres_base())).unwrap();
    let db = Database::connect_and_migrate(url, &PoolOptions::default()).unwrap();
    let mut conn = db.get().unwrap();
    let (u1, s1) = user(&mut conn, 1);
    let (_, s2) = user(&mut conn, 2);
    let keys: Vec<String> = (0..2)
        .map(|n| {
            let row = ApiKeyRow {
                id: uuid::Uuid::new_v4().to_string(),
                user_id: u1.to_string(),
                name: format!("key {n}"),
                key_hash: format!("hash-{n}"),
                prefix: "usr_00000000".into(),
                permissions: None,
                created_at: 0,
                expires_at: None,
                last_used_at: None,
            };
            assert!(users_db::api_keys::create(&mut conn, &row, &Effects::none()).unwrap());
            row.id
        })
        .collect();
    let DbConnection::Postgresql(pg) = &mut **conn else {
        panic!("postgres expected")
    };
    diesel::sql_query("SET statement_timeout = '3s'")
        .execute(pg)
        .unwrap();

    let mut holder = db.get().unwrap();
    holder
        .transaction::<_, diesel::result::Error, _>(|h| {
            // as a batch of rotations holds its sessions, and a revocation its key
            users_db::sessions::lock_in_order(h, std::slice::from_ref(&s1))?;
            let DbConnection::Postgresql(hpg) = h else {
                panic!("postgres expected")
            };
            diesel::sql_query("SELECT id FROM api_keys WHERE id = $1 FOR UPDATE")
                .bind::<diesel::sql_types::Text, _>(&keys[0])
                .execute(hpg)?;

            let sessions = [s1.clone(), s2.clone()];
            let n = users_db::sessions::touch_many(&mut conn, &sessions, 1_000, 500)
                .expect("the touch does not wait for the held session");
            assert_eq!(n, 1, "the free session only");
            let n = users_db::api_keys::touch_many(&mut conn, &keys, 1_000, 500)
                .expect("the touch does not wait for the held key");
            assert_eq!(n, 1, "the free key only");
            assert_eq!(last_use(&mut conn, "sessions", &s1), Some(0));
            assert_eq!(last_use(&mut conn, "sessions", &s2), Some(1_000));
            assert_eq!(last_use(&mut conn, "api_keys", &keys[0]), None);
            assert_eq!(last_use(&mut conn, "api_keys", &keys[1]), Some(1_000));
            Ok(())
        })
        .unwrap();

    // the holder is done: the next touch writes what was skipped, and only that
    let sessions = [s1.clone(), s2.clone()];
    assert_eq!(
        users_db::sessions::touch_many(&mut conn, &sessions, 2_000, 500).unwrap(),
        1
    );
    assert_eq!(last_use(&mut conn, "sessions", &s1), Some(2_000));
    assert_eq!(
        users_db::api_keys::touch_many(&mut conn, &keys, 2_000, 500).unwrap(),
        1
    );
    assert_eq!(last_use(&mut conn, "api_keys", &keys[0]), Some(2_000));
    drop((conn, holder, db));
    users_db::admin::drop_postgres_database(&postgres_base(), &name).unwrap();
}

/// Consents given for one person and client at the same moment, each for its own scope,
/// are all remembered (docs/oauth-provider.md#the-authorization-request): whether the row
/// existed before (each adds to it under its lock) or not (those that lose the race to
/// insert it add to the winner's).
#[test]
fn simultaneous_consents_all_count() {
    use users_db::oauth::ClientRow;
    use users_db::oauth::{CodeIssue, CodeRow};
    const THREADS: usize = 6;
    let name = format!("users_consent_{}", uuid::Uuid::new_v4().simple());
    users_db::admin::create_postgres_database(&postgres_base(), &name).unwrap();
    let url = DatabaseUrl::parse(&format!("{}/{name}", postgres_base())).unwrap();
    let opts = PoolOptions {
        max_connections: THREADS as u32 + 1,
        ..PoolOptions::default()
    };
    let db = Database::connect_and_migrate(url, &opts).unwrap();
    let mut conn = db.get().unwrap();
    let (user_id, _) = user(&mut conn, 0);
    for round in 0..8 {
        let client_id = format!("client-{round}");
        users_db::oauth::insert_client(
            &mut conn,
            &ClientRow {
                client_id: client_id.clone(),
                secret_hash: None,
                metadata: "{}".into(),
                created_at: 0,
                updated_at: 0,
            },
            &Effects::none(),
        )
        .unwrap();
        // odd rounds: the row is there before the race; even rounds: it is not
        if round % 2 == 1 {
            let row = CodeRow {
                code_hash: format!("ab-{round}-first"),
                client_id: client_id.clone(),
                user_id: user_id.to_string(),
                data: "{}".into(),
                created_at: 1,
                expires_at: i64::MAX,
                used_at: None,
                grant_session_id: None,
            };
            let issue = CodeIssue {
                remember: Some("openid".into()),
                spend_request: None,
            };
            users_db::oauth::issue_code(&mut conn, &row, &issue, &Effects::none()).unwrap();
        }
        let start = std::sync::Arc::new(std::sync::Barrier::new(THREADS));
        let threads: Vec<_> = (0..THREADS)
            .map(|i| {
                let (db, start, client_id) = (db.clone(), start.clone(), client_id.clone());
                std::thread::spawn(move || {
                    let mut conn = db.get().unwrap();
                    let row = CodeRow {
                        code_hash: format!("ab-{round}-{i}"),
                        client_id,
                        user_id: user_id.to_string(),
                        data: "{}".into(),
                        created_at: 2,
                        expires_at: i64::MAX,
                        used_at: None,
                        grant_session_id: None,
                    };
                    let issue = CodeIssue {
                        remember: Some(format!("scope-{i}")),
                        spend_request: None,
                    };
                    start.wait();
                    users_db::oauth::issue_code(&mut conn, &row, &issue, &Effects::none())
                })
            })
            .collect();
        for t in threads {
            assert!(t.join().unwrap().expect("each consent is stored"));
        }
        let consent = users_db::oauth::find_consent(&mut conn, user_id, &client_id)
            .unwrap()
            .unwrap();
        let mut have: Vec<&str> = consent.scopes.split(' ').collect();
        have.sort_unstable();
        let mut want: Vec<String> = (0..THREADS).map(|i| format!("scope-{i}")).collect();
        if round % 2 == 1 {
            want.push("openid".into());
        }
        want.sort_unstable();
        assert_eq!(have, want, "round {round}");
    }
    drop((conn, db));
    users_db::admin::drop_postgres_database(&postgres_base(), &name).unwrap();
}
