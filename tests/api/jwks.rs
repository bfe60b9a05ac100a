//! Access tokens other services verify alone (docs/sessions-and-tokens.md): signed with
//! EdDSA, ES256 or RS256, checked here by a verifier that knows nothing but the published
//! JWKS (jsonwebtoken used directly, not the service's decoder); rotation with
//! publish-ahead; the alg-confusion attack.

use std::time::Duration;

use base64::Engine;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{json, Value};

use crate::helpers::*;

/// The test app's PUBLIC_URL (from BIND_ADDR), which asymmetric tokens carry as `iss`.
const ISSUER: &str = "http://127.0.0.1:0";

async fn jwks(app: &TestApp) -> JwkSet {
    let r = app.get("/.well-known/jwks.json", None).await;
    assert_eq!(r.status(), 200);
    let cache = r.headers()["cache-control"].to_str().unwrap().to_owned();
    assert!(cache.starts_with("public, max-age="), "{cache}");
    let text = r.text().await.unwrap();
    for private in ["\"d\"", "\"p\"", "\"q\"", "\"dp\"", "\"dq\"", "\"qi\""] {
        assert!(
            !text.contains(private),
            "no private member {private}: {text}"
        );
    }
    serde_json::from_str(&text).unwrap()
}

/// The keys of one algorithm: the provider's keys of the other algorithms are published
/// beside the access tokens' (docs/oauth-provider.md).
fn only(set: &JwkSet, alg: &str) -> JwkSet {
    JwkSet {
        keys: set
            .keys
            .iter()
            .filter(|k| k.common.key_algorithm.map(|a| a.to_string()).as_deref() == Some(alg))
            .cloned()
            .collect(),
    }
}

/// What a resource server does with only the JWKS: the key its `kid` names, the
/// algorithm that key is for (never the token's say-so), `iss`, `aud`, `exp`.
fn verify_with(set: &JwkSet, token: &str) -> Result<Value, String> {
    let header = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
    let kid = header.kid.ok_or("no kid")?;
    let jwk = set.find(&kid).ok_or("unknown kid")?;
    let alg: Algorithm = jwk
        .common
        .key_algorithm
        .ok_or("no alg")?
        .to_string()
        .parse()
        .map_err(|_| "bad alg")?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    let mut v = Validation::new(alg);
    v.set_audience(&["fastapi-users:auth"]);
    v.set_issuer(&[ISSUER]);
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    jsonwebtoken::decode::<Value>(token, &key, &v)
        .map(|d| d.claims)
        .map_err(|e| e.to_string())
}

async fn app_signing_with(backend: Backend, alg: &str) -> TestApp {
    let alg = alg.to_owned();
    spawn_app_with(backend, move |env| {
        env.insert("JWT_ALGORITHM".into(), alg);
    })
    .await
}

async fn tokens_verify_with_the_jwks_alone(backend: Backend) {
    for alg in ["EdDSA", "ES256", "RS256"] {
        let app = app_signing_with(backend, alg).await;
        let (user, token) = app.user_with_token().await;
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(format!("{:?}", header.alg), alg);
        let all = jwks(&app).await;
        assert_eq!(
            all.keys.len(),
            1,
            "only the access tokens' key until an OAuth client is registered"
        );
        let set = only(&all, alg);
        assert_eq!(set.keys.len(), 1);
        let jwk = serde_json::to_value(&set.keys[0]).unwrap();
        assert_eq!(jwk["alg"], alg);
        assert_eq!(jwk["use"], "sig");
        assert_eq!(Some(jwk["kid"].as_str().unwrap().to_owned()), header.kid);
        let claims = verify_with(&set, &token).unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(claims["sub"], user["id"]);
        assert_eq!(claims["iss"], ISSUER);
        // and the service itself takes it
        assert_eq!(app.me(&token).await.status(), 200, "{alg}");

        // tokens signed with JWT_SECRET (fastapi-users') stop working after the switch
        let hs256 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &json!({"sub": user["id"], "aud": ["fastapi-users:auth"], "exp": 4_000_000_000u64}),
            &EncodingKey::from_secret(TEST_SECRET.as_bytes()),
        )
        .unwrap();
        assert_eq!(app.me(&hs256).await.status(), 401, "{alg}");

        // alg confusion: HS256 keyed with the published key itself, under its kid
        for secret in [jwk.to_string(), serde_json::to_string(&set).unwrap()] {
            let mut header = Header::new(Algorithm::HS256);
            header.kid = jwk["kid"].as_str().map(str::to_owned);
            let forged = jsonwebtoken::encode(
                &header,
                &json!({"sub": user["id"], "aud": ["fastapi-users:auth"], "iss": ISSUER, "exp": 4_000_000_000u64}),
                &EncodingKey::from_secret(secret.as_bytes()),
            )
            .unwrap();
            assert_eq!(app.me(&forged).await.status(), 401, "{alg}: alg confusion");
            assert!(verify_with(&set, &forged).is_err());
        }
        // another issuer, and an unknown kid
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let mut payload: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(&parts[1])
                .unwrap(),
        )
        .unwrap();
        payload["iss"] = json!("https://elsewhere.example");
        parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(payload.to_string());
        assert_eq!(app.me(&parts.join(".")).await.status(), 401, "tampered");
        // refresh tokens (not JWTs) still work, and the access tokens they bring verify
        let login = app
            .login_offline(user["email"].as_str().unwrap(), PASSWORD)
            .await;
        let refreshed: Value = app
            .refresh(login["refresh_token"].as_str().unwrap())
            .await
            .json()
            .await
            .unwrap();
        assert!(verify_with(&set, refreshed["access_token"].as_str().unwrap()).is_ok());
    }
}

/// A new key is published at once and signs from JWKS_PUBLISH_AHEAD_SECONDS later; the
/// old one stays published until the last token it signed has expired.
async fn keys_rotate_with_publish_ahead(backend: Backend) {
    let app = spawn_app_with(backend, |env| {
        env.insert("JWT_ALGORITHM".into(), "EdDSA".into());
        env.insert("JWKS_PUBLISH_AHEAD_SECONDS".into(), "600".into());
    })
    .await;
    let replica = spawn_app_on(backend, app.database.clone(), |env| {
        env.insert("JWT_ALGORITHM".into(), "EdDSA".into());
    })
    .await;
    let email = unique_email();
    app.create_user(&email).await;
    let old_token = app.token(&email, PASSWORD).await;
    let old_kid = jsonwebtoken::decode_header(&old_token)
        .unwrap()
        .kid
        .unwrap();
    assert_eq!(
        replica.me(&old_token).await.status(),
        200,
        "one key for all replicas"
    );

    let now = users_domain::Clock::now(&*app.clock);
    let ring = app.core.tokens.ring.clone().expect("asymmetric");
    let (new_kid, signs_from) = ring.rotate(now).await.unwrap();
    assert_eq!(signs_from, now.plus_secs(600));
    // published at once, not signing yet
    let set = only(&jwks(&app).await, "EdDSA");
    let kids: Vec<_> = set
        .keys
        .iter()
        .filter_map(|k| k.common.key_id.clone())
        .collect();
    assert_eq!(kids, [old_kid.clone(), new_kid.clone()]);
    let token = app.token(&email, PASSWORD).await;
    assert_eq!(
        jsonwebtoken::decode_header(&token).unwrap().kid,
        Some(old_kid.clone())
    );

    // once active it signs; the old token still verifies, here and on the replica
    app.clock.advance(Duration::from_secs(601));
    let new_token = app.token(&email, PASSWORD).await;
    assert_eq!(
        jsonwebtoken::decode_header(&new_token).unwrap().kid,
        Some(new_kid.clone())
    );
    assert_eq!(app.me(&old_token).await.status(), 200);
    let set = jwks(&app).await;
    assert!(verify_with(&set, &new_token).is_ok());
    // the replica has not reloaded yet: an unknown kid makes it look
    assert_eq!(replica.me(&new_token).await.status(), 200);

    // after the old key's last token expired, it is no longer published
    app.clock.advance(Duration::from_secs(3600));
    let set = only(&jwks(&app).await, "EdDSA");
    let kids: Vec<_> = set
        .keys
        .iter()
        .filter_map(|k| k.common.key_id.clone())
        .collect();
    assert_eq!(kids, [new_kid]);
    assert!(
        set.find(&old_kid).is_none(),
        "a retired key verifies nothing"
    );
}

/// A key given in JWT_PRIVATE_KEY signs; `rotate-signing-key` says what to do instead.
async fn a_configured_key_signs(backend: Backend) {
    let pem =
        users_core::signing::generate_private_key(users_core::signing::SigningAlgorithm::Es256)
            .unwrap();
    let key =
        users_core::signing::load_private_key(&pem, users_core::signing::SigningAlgorithm::Es256)
            .unwrap();
    let escaped = pem.replace('\n', "\\n");
    let app = spawn_app_with(backend, move |env| {
        env.insert("JWT_ALGORITHM".into(), "ES256".into());
        env.insert("JWT_PRIVATE_KEY".into(), escaped);
    })
    .await;
    let (_, token) = app.user_with_token().await;
    assert_eq!(
        jsonwebtoken::decode_header(&token).unwrap().kid,
        Some(key.kid.clone())
    );
    let set = jwks(&app).await;
    assert_eq!(only(&set, "ES256").keys.len(), 1);
    assert!(verify_with(&set, &token).is_ok());

    // the command line: a key given in the environment is rotated by changing it
    let mut env = process_env(&app.database.url);
    env.insert("JWT_SECRET".into(), TEST_SECRET.into());
    env.insert("JWT_ALGORITHM".into(), "ES256".into());
    env.insert("JWT_PRIVATE_KEY".into(), pem.clone());
    let (code, _, err) = run_binary(&env, &["rotate-signing-key"]);
    assert_ne!(code, 0);
    assert!(err.contains("JWT_PRIVATE_KEY"), "{err}");
    // a bad key stops the start, naming the variable
    env.insert(
        "JWT_PRIVATE_KEY".into(),
        pem.replace("PRIVATE KEY", "ENCRYPTED PRIVATE KEY"),
    );
    let (code, _, err) = run_binary(&env, &["rotate-signing-key"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("JWT_PRIVATE_KEY") && err.contains("encrypted"),
        "{err}"
    );
    env.insert("JWT_PRIVATE_KEY".into(), pem);
    env.insert("JWT_ALGORITHM".into(), "RS256".into());
    let (code, _, err) = run_binary(&env, &["rotate-signing-key"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("JWT_PRIVATE_KEY") && err.contains("RS256"),
        "{err}"
    );
}

/// `users-server rotate-signing-key` against a database whose keys are generated.
async fn the_rotate_command_publishes_a_key_ahead(backend: Backend) {
    let app = app_signing_with(backend, "RS256").await;
    let mut env = process_env(&app.database.url);
    env.insert("JWT_SECRET".into(), TEST_SECRET.into());
    env.insert("JWT_ALGORITHM".into(), "RS256".into());
    let (code, out, err) = run_binary(&env, &["rotate-signing-key"]);
    assert_eq!(code, 0, "{err}");
    let printed: Value = serde_json::from_str(out.trim()).unwrap();
    let kid = printed["kid"].as_str().unwrap().to_owned();
    assert!(printed["signs_from"].as_str().unwrap() > printed["published_from"].as_str().unwrap());
    // this app reloads its keys every 30 s; a restart of the ring shows it now
    app.core
        .tokens
        .ring
        .clone()
        .unwrap()
        .reload()
        .await
        .unwrap();
    let set = jwks(&app).await;
    assert!(set.find(&kid).is_some());
    // no OAuth client yet: the provider's other rings have no keys to rotate
    let provider = printed["provider"].as_array().unwrap();
    assert_eq!(provider.len(), 1, "{printed}");
    assert_eq!(provider[0]["algorithm"], "RS256");
    assert_eq!(provider[0]["kid"], printed["kid"]);
    // with HS256 the access tokens have no key; the RS256 keys this database keeps are
    // the provider's now, and rotate
    env.insert("JWT_ALGORITHM".into(), "HS256".into());
    let (code, out, err) = run_binary(&env, &["rotate-signing-key"]);
    assert_eq!(code, 0, "{err}");
    let printed: Value = serde_json::from_str(out.trim()).unwrap();
    assert!(printed.get("kid").is_none(), "{printed}");
    assert_eq!(
        printed["provider"].as_array().unwrap().len(),
        1,
        "{printed}"
    );
    // a fresh database with HS256 and no client publishes nothing
    let plain = spawn_app(backend).await;
    assert_eq!(jwks(&plain).await.keys.len(), 0);
    // once a client is registered, every provider algorithm has a published key
    let (_, admin) = plain.superuser_with_token().await;
    let r = plain
        .post_json(
            "/oauth/clients",
            &json!({"redirect_uris": ["https://app.example/cb"]}),
            Some(&admin),
        )
        .await;
    assert_eq!(r.status(), 201);
    let set = jwks(&plain).await;
    assert_eq!(set.keys.len(), 3, "one key per provider algorithm");
    let mut env = process_env(&plain.database.url);
    env.insert("JWT_SECRET".into(), TEST_SECRET.into());
    let (code, out, err) = run_binary(&env, &["rotate-signing-key"]);
    assert_eq!(code, 0, "{err}");
    let printed: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        printed["provider"].as_array().unwrap().len(),
        3,
        "{printed}"
    );
}

crate::both_backends!(
    tokens_verify_with_the_jwks_alone,
    keys_rotate_with_publish_ahead,
    a_configured_key_signs,
    the_rotate_command_publishes_a_key_ahead,
);
