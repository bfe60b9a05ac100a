//! The `create-user` command, also while a server runs on the same database.

use serde_json::Value;

use crate::both_backends;
use crate::helpers::*;

async fn create_user_command(backend: Backend) {
    let database = TestDatabase::new(backend);
    let env = process_env(&database.url);
    let server = ServerProcess::start(&env);

    let (code, stdout, stderr) = run_binary(
        &env,
        &[
            "create-user",
            "--email",
            "Admin@Example.com",
            "--password",
            PASSWORD,
            "--superuser",
            "--verified",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let user: Value = serde_json::from_str(stdout.trim()).expect("the user's JSON on stdout");
    assert_eq!(user["email"], "Admin@example.com");
    assert_eq!(user["is_superuser"], true);
    assert_eq!(user["is_verified"], true);
    assert_eq!(user["is_active"], true);

    // the running server sees the user at once, and the user is a superuser there
    let client = reqwest::Client::new();
    let token: Value = client
        .post(server.url("/auth/jwt/login"))
        .form(&[("username", "admin@example.com"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["access_token"].as_str().unwrap();
    let list = client
        .get(server.url("/users"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(list.status(), 200);

    // a duplicate (in another case) fails and leaves the first account untouched
    let (code, stdout, stderr) = run_binary(
        &env,
        &[
            "create-user",
            "--email",
            "ADMIN@example.com",
            "--password",
            "some other passphrase",
        ],
    );
    assert_ne!(code, 0);
    assert!(stdout.is_empty());
    assert!(stderr.contains("already exists"), "{stderr}");
    // a password the policy refuses
    let (code, _, stderr) = run_binary(
        &env,
        &[
            "create-user",
            "--email",
            "weak@example.com",
            "--password",
            "short",
        ],
    );
    assert_ne!(code, 0);
    assert!(stderr.contains("password"), "{stderr}");
    // bad usage
    let (code, _, stderr) = run_binary(&env, &["create-user", "--email", "x@example.com"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--password"), "{stderr}");
    let (code, _, _) = run_binary(
        &env,
        &[
            "create-user",
            "--email",
            "not-an-email",
            "--password",
            PASSWORD,
        ],
    );
    assert_eq!(code, 2);

    let r = client
        .post(server.url("/auth/jwt/login"))
        .form(&[("username", "admin@example.com"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        200,
        "the first account still logs in with its password"
    );
    let mut conn = database.pool().get().unwrap();
    assert_eq!(users_db::users::count(&mut conn).unwrap(), 1);
}

both_backends!(create_user_command);

#[test]
fn a_bad_setting_stops_the_server_with_a_message_naming_it() {
    let database = TestDatabase::new(Backend::Sqlite);
    let mut env = process_env(&database.url);
    env.insert("PASSWORD_MIN_LENGTH".into(), "5".into());
    let (code, _, stderr) = run_binary(&env, &[]);
    assert_ne!(code, 0);
    assert!(stderr.contains("PASSWORD_MIN_LENGTH"), "{stderr}");
}

/// `users-server healthcheck` (the image's HEALTHCHECK): 0 while the server on
/// BIND_ADDR answers /healthz, 1 with the reason once it is gone.
#[test]
fn healthcheck_command_follows_the_server_on_bind_addr() {
    let database = TestDatabase::new(Backend::Sqlite);
    let mut env = process_env(&database.url);
    env.insert("BIND_ADDR".into(), format!("127.0.0.1:{}", free_port()));
    let server = ServerProcess::start(&env);
    let (code, stdout, stderr) = run_binary(&env, &["healthcheck"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    drop(server);
    let (code, _, stderr) = run_binary(&env, &["healthcheck"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("/healthz"), "{stderr}");
}
