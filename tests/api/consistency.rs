//! The consistency rule of the per-request check, which coalesces concurrent lookups:
//! a user deactivated, or a session ended, in one request is refused by every request
//! that starts after that request's answer, under concurrent load.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;

/// One `/users/me` as the load saw it.
struct Seen {
    token: usize,
    started: Instant,
    status: u16,
}

const USERS: usize = 12;
const CLIENTS: usize = 32;

async fn refusals_apply_to_every_later_request(backend: Backend) {
    let app = Arc::new(
        spawn_app_with(backend, |env| {
            env.insert("DATABASE_MAX_CONNECTIONS".into(), "8".into());
        })
        .await,
    );
    let (_, admin) = app.superuser_with_token().await;
    // per user: the token the load uses, and a second session to end the first from
    let mut users = Vec::new();
    for _ in 0..USERS {
        let email = unique_email();
        let user = app.create_user(&email).await;
        let loaded = app.token(&email, PASSWORD).await;
        let other = app.token(&email, PASSWORD).await;
        users.push((user["id"].as_str().unwrap().to_owned(), loaded, other));
    }
    let tokens: Arc<Vec<String>> = Arc::new(users.iter().map(|u| u.1.clone()).collect());

    let seen = Arc::new(Mutex::new(Vec::<Seen>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for client in 0..CLIENTS {
        let (app, tokens, seen, stop) = (app.clone(), tokens.clone(), seen.clone(), stop.clone());
        load.push(tokio::spawn(async move {
            let mut i = client;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let token = i % USERS;
                i += 7;
                let started = Instant::now();
                let status = app.me(&tokens[token]).await.status().as_u16();
                seen.lock().unwrap().push(Seen {
                    token,
                    started,
                    status,
                });
            }
        }));
    }

    // while the load runs: half the users deactivated by a superuser, the other half's
    // loaded session ended by the user from another session
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut refused_at = [None; USERS];
    for (n, (id, loaded, other)) in users.iter().enumerate() {
        if n % 2 == 0 {
            let r = app
                .patch(
                    &format!("/users/{id}"),
                    &admin,
                    &json!({"is_active": false}),
                )
                .await;
            assert_eq!(r.status(), 200);
        } else {
            let sessions: Vec<Value> = app
                .get("/auth/sessions", Some(loaded))
                .await
                .json()
                .await
                .unwrap();
            let sid = sessions.iter().find(|s| s["current"] == true).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned();
            let r = app.delete(&format!("/auth/sessions/{sid}"), other).await;
            assert_eq!(r.status(), 204);
        }
        refused_at[n] = Some(Instant::now());
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }

    // the load shared statements: more checks than statements
    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    let metric = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap()
    };
    let (checks, batches) = (
        metric("users_token_checks_total"),
        metric("users_token_check_batches_total"),
    );
    assert!(
        checks > 1.5 * batches,
        "{checks} checks in {batches} statements"
    );

    let seen = seen.lock().unwrap();
    let mut before_ok = 0;
    let mut after = 0;
    for s in seen.iter() {
        assert!(
            s.status == 200 || s.status == 401,
            "unexpected status {}",
            s.status
        );
        let at = refused_at[s.token].unwrap();
        if s.started > at {
            after += 1;
            assert_eq!(
                s.status, 401,
                "a request that started after the change was let through"
            );
        } else if s.status == 200 {
            before_ok += 1;
        }
    }
    println!(
        "{backend:?}: {} requests, {before_ok} served before their change, {after} refused after it; {:.1} checks per statement",
        seen.len(),
        checks / batches
    );
    assert!(before_ok > 100, "the load ran: {before_ok}");
    assert!(after > 100, "requests came after the changes: {after}");
}

both_backends!(refusals_apply_to_every_later_request);
