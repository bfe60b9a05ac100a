//! The outbox lease: one worker at a time holds a row; the holder renews it while it
//! delivers; a lease that ran out (its holder died) lets another worker take the row,
//! and the old holder can then neither renew nor record it.

// Tests stand outside the service: they read the real clock to date the tokens and
// times they make (the service itself takes `now` as a parameter, see clippy.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use users_db::outbox::{self, NewOutboxRow};
use users_db::{Database, DatabaseUrl, Effects, PoolOptions};

const LEASE: i64 = 15_000;

fn database() -> (tempfile::TempDir, Database) {
    let dir = tempfile::tempdir().unwrap();
    let url =
        DatabaseUrl::parse(&format!("sqlite://{}", dir.path().join("u.db").display())).unwrap();
    let db = Database::connect_and_migrate(url, &PoolOptions::default()).unwrap();
    (dir, db)
}

fn queue(db: &Database, id: &str, now: i64) {
    let mut conn = db.get().unwrap();
    let row = NewOutboxRow {
        id: id.to_owned(),
        kind: "email".to_owned(),
        payload: "{}".to_owned(),
        created_at: now,
    };
    outbox::enqueue(&mut conn, &Effects::none().with_outbox(row)).unwrap();
}

#[test]
fn a_renewed_lease_keeps_the_row_and_a_lapsed_one_frees_it() {
    let (_dir, db) = database();
    let mut conn = db.get().unwrap();
    let t0 = 1_000_000;
    queue(&db, "row-1", t0);

    assert!(outbox::claim(&mut conn, "row-1", "a", t0, LEASE)
        .unwrap()
        .is_some());
    // held: not due, and nobody else can claim it
    assert!(outbox::due(&mut conn, &["email"], t0 + 1, 10)
        .unwrap()
        .is_empty());
    assert!(outbox::claim(&mut conn, "row-1", "b", t0 + 1, LEASE)
        .unwrap()
        .is_none());
    // only the holder renews
    assert!(!outbox::renew(&mut conn, "row-1", "b", t0 + 5_000, LEASE).unwrap());
    assert!(outbox::renew(&mut conn, "row-1", "a", t0 + 10_000, LEASE).unwrap());
    // past the first lease, still held thanks to the renewal
    let t1 = t0 + LEASE + 1;
    assert!(outbox::due(&mut conn, &["email"], t1, 10)
        .unwrap()
        .is_empty());
    assert!(outbox::claim(&mut conn, "row-1", "b", t1, LEASE)
        .unwrap()
        .is_none());

    // the holder stops renewing (it died): once the lease runs out, another worker takes it
    let t2 = t0 + 10_000 + LEASE;
    assert_eq!(
        outbox::due(&mut conn, &["email"], t2, 10).unwrap(),
        vec!["row-1".to_owned()]
    );
    assert!(outbox::claim(&mut conn, "row-1", "b", t2, LEASE)
        .unwrap()
        .is_some());
    // the old holder can neither renew nor record it
    assert!(!outbox::renew(&mut conn, "row-1", "a", t2 + 1, LEASE).unwrap());
    assert!(!outbox::mark_sent(&mut conn, "row-1", "a", t2 + 1).unwrap());
    assert!(outbox::mark_sent(&mut conn, "row-1", "b", t2 + 2).unwrap());
    // a finished row is not leased again
    assert!(!outbox::renew(&mut conn, "row-1", "b", t2 + 3, LEASE).unwrap());
    assert_eq!(outbox::by_status(&mut conn, outbox::SENT).unwrap().len(), 1);
}

#[test]
fn a_renewal_after_a_release_does_not_hold_the_row_again() {
    let (_dir, db) = database();
    let mut conn = db.get().unwrap();
    let t0 = 2_000_000;
    queue(&db, "row-2", t0);
    assert!(outbox::claim(&mut conn, "row-2", "a", t0, LEASE)
        .unwrap()
        .is_some());
    // the delivery failed and released the row for a retry in 1 s
    assert!(outbox::mark_retry(&mut conn, "row-2", "a", t0 + 1_000, "down").unwrap());
    // a renewal that was already under way arrives late: it changes nothing
    assert!(!outbox::renew(&mut conn, "row-2", "a", t0 + 10, LEASE).unwrap());
    assert_eq!(
        outbox::due(&mut conn, &["email"], t0 + 1_000, 10).unwrap(),
        vec!["row-2".to_owned()]
    );
}
