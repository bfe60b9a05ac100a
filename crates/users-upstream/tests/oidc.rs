//! The OpenID Connect client against the loopback provider the api tests use too.

// Tests stand outside the service: they read the real clock to date the tokens and
// times they make (the service itself takes `now` as a parameter, see clippy.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use users_testkit::oidc_provider;

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use oidc_provider::{OidcProvider, Tamper};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use users_upstream::{
    pkce_pair, random_nonce, Identity, OAuthError, OidcClient, OidcConfig, ProviderTokens,
};

const REDIRECT_URI: &str = "http://127.0.0.1:9/auth/google/callback";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .try_into()
        .unwrap()
}

fn config(provider: &OidcProvider) -> OidcConfig {
    OidcConfig {
        issuer_url: provider.issuer(),
        client_id: OidcProvider::CLIENT_ID.to_owned(),
        client_secret: SecretString::from(OidcProvider::CLIENT_SECRET),
        timeout: Duration::from_secs(5),
        scopes: Vec::new(),
    }
}

async fn client(provider: &OidcProvider) -> OidcClient {
    OidcClient::discover(config(provider)).await.unwrap()
}

/// One browser round trip: what the server keeps in its state cookie, and the code.
struct Flow {
    code: String,
    verifier: String,
    nonce: String,
}

async fn authorize(client: &OidcClient, provider: &OidcProvider) -> Flow {
    let (verifier, challenge) = pkce_pair();
    let nonce = random_nonce();
    let state = random_nonce();
    let url = client.authorization_url(REDIRECT_URI, &state, &nonce, &challenge, &[]);
    let (code, returned_state) = provider.authorize(&url).await;
    assert_eq!(returned_state, state);
    Flow {
        code,
        verifier,
        nonce,
    }
}

async fn sign_in(
    client: &OidcClient,
    provider: &OidcProvider,
    at: i64,
) -> Result<(Identity, ProviderTokens), OAuthError> {
    let flow = authorize(client, provider).await;
    client
        .sign_in(&flow.code, REDIRECT_URI, &flow.verifier, &flow.nonce, at)
        .await
}

fn alice() -> Identity {
    Identity {
        subject: "google-user-1".into(),
        email: Some("alice@example.com".into()),
        email_verified: true,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_finds_the_provider() {
    let provider = OidcProvider::start().await;
    let client = client(&provider).await;
    assert_eq!(client.issuer(), provider.issuer());
    let shown = format!("{client:?}");
    assert!(shown.contains(&provider.issuer()), "{shown}");
    assert!(!shown.contains(OidcProvider::CLIENT_SECRET), "{shown}");

    // The configured issuer may carry a trailing slash.
    let mut slashed = config(&provider);
    slashed.issuer_url.push('/');
    let client = OidcClient::discover(slashed).await.unwrap();
    assert_eq!(client.issuer(), provider.issuer());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_refuses_unusable_documents() {
    let provider = OidcProvider::start().await;
    provider.patch_discovery(serde_json::json!({ "issuer": "https://issuer.invalid" }));
    let err = OidcClient::discover(config(&provider)).await.unwrap_err();
    assert!(matches!(err, OAuthError::Discovery(_)), "{err:?}");

    for field in [
        "jwks_uri",
        "token_endpoint",
        "authorization_endpoint",
        "issuer",
    ] {
        let provider = OidcProvider::start().await;
        provider.patch_discovery(serde_json::json!({ field: null }));
        let err = OidcClient::discover(config(&provider)).await.unwrap_err();
        assert!(matches!(err, OAuthError::Discovery(_)), "{field}: {err:?}");
    }

    let provider = OidcProvider::start().await;
    provider.patch_discovery(serde_json::json!({ "token_endpoint": "not a url" }));
    let err = OidcClient::discover(config(&provider)).await.unwrap_err();
    assert!(matches!(err, OAuthError::Discovery(_)), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_url_carries_the_oidc_parameters() {
    let provider = OidcProvider::start().await;
    let client = client(&provider).await;
    let (_verifier, challenge) = pkce_pair();
    let url = client.authorization_url(
        REDIRECT_URI,
        "state-1",
        "nonce-1",
        &challenge,
        &["email".to_owned(), "https://example.com/scope".to_owned()],
    );
    let url = reqwest::Url::parse(&url).unwrap();
    assert!(url
        .as_str()
        .starts_with(&format!("{}/authorize?", provider.issuer())));
    let query: HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(query["response_type"], "code");
    assert_eq!(query["client_id"], OidcProvider::CLIENT_ID);
    assert_eq!(query["redirect_uri"], REDIRECT_URI);
    assert_eq!(query["state"], "state-1");
    assert_eq!(query["nonce"], "nonce-1");
    assert_eq!(query["code_challenge"], challenge);
    assert_eq!(query["code_challenge_method"], "S256");
    assert_eq!(
        query["scope"],
        "openid email profile https://example.com/scope"
    );
    assert_eq!(
        url.query_pairs().count(),
        query.len(),
        "no repeated parameter"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_with_client_secret_post() {
    let provider = OidcProvider::start_with("client_secret_post").await;
    let client = client(&provider).await;
    let flow = authorize(&client, &provider).await;
    let started = now();
    let (identity, tokens) = client
        .sign_in(&flow.code, REDIRECT_URI, &flow.verifier, &flow.nonce, now())
        .await
        .unwrap();
    assert_eq!(identity, alice());
    assert!(!tokens.access_token.expose_secret().is_empty());
    assert!(tokens.refresh_token.is_some());
    assert!(tokens.id_token.is_some());
    let expires_at = tokens.expires_at.unwrap();
    assert!((started + 3599..=now() + 3599).contains(&expires_at));

    let requests = provider.token_requests();
    assert_eq!(requests.len(), 1);
    let form = &requests[0];
    assert_eq!(form["grant_type"], "authorization_code");
    assert_eq!(form["code"], flow.code);
    assert_eq!(form["code_verifier"], flow.verifier);
    assert_eq!(form["redirect_uri"], REDIRECT_URI);
    assert_eq!(form["client_id"], OidcProvider::CLIENT_ID);
    assert_eq!(form["client_secret"], OidcProvider::CLIENT_SECRET);
    assert!(!form.contains_key("authorization"));

    let shown = format!("{tokens:?}");
    assert!(
        !shown.contains(tokens.access_token.expose_secret()),
        "{shown}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_with_client_secret_basic() {
    let provider = OidcProvider::start_with("client_secret_basic").await;
    provider.set_identity(oidc_provider::Identity {
        sub: "bob-sub".into(),
        email: Some("bob@example.com".into()),
        email_verified: false,
    });
    let client = client(&provider).await;
    let flow = authorize(&client, &provider).await;
    let (identity, _tokens) = client
        .sign_in(&flow.code, REDIRECT_URI, &flow.verifier, &flow.nonce, now())
        .await
        .unwrap();
    assert_eq!(
        identity,
        Identity {
            subject: "bob-sub".into(),
            email: Some("bob@example.com".into()),
            email_verified: false,
        }
    );

    let requests = provider.token_requests();
    let form = &requests[0];
    assert!(form["authorization"].starts_with("Basic "));
    assert!(!form.contains_key("client_secret"));
    assert_eq!(form["code_verifier"], flow.verifier);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoiled_id_tokens_are_refused() {
    let provider = OidcProvider::start().await;
    let client = client(&provider).await;
    // Warms the JWKS cache, so UnknownKid's refetch comes from the rule, not a cold cache.
    sign_in(&client, &provider, now()).await.unwrap();

    for tamper in [
        Tamper::WrongAudience,
        Tamper::WrongIssuer,
        Tamper::Expired,
        Tamper::IssuedInFuture,
        Tamper::WrongNonce,
        Tamper::MissingNonce,
        Tamper::Unsigned,
        Tamper::BadSignature,
        Tamper::OtherKey,
        Tamper::UnknownKid,
        Tamper::Hs256WithPublicKey,
        Tamper::NoIdToken,
    ] {
        provider.set_tamper(tamper);
        let flow = authorize(&client, &provider).await;
        let err = client
            .sign_in(&flow.code, REDIRECT_URI, &flow.verifier, &flow.nonce, now())
            .await
            .unwrap_err();
        assert!(
            matches!(err, OAuthError::InvalidIdToken(_)),
            "{tamper:?}: {err:?}"
        );
        let message = err.to_string();
        assert!(!message.contains(&flow.code), "{tamper:?}: {message}");
        assert!(!message.contains(OidcProvider::CLIENT_SECRET));
    }

    provider.set_tamper(Tamper::None);
    sign_in(&client, &provider, now()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_for_another_nonce_is_refused() {
    let provider = OidcProvider::start().await;
    let client = client(&provider).await;
    let flow = authorize(&client, &provider).await;
    let err = client
        .sign_in(
            &flow.code,
            REDIRECT_URI,
            &flow.verifier,
            &random_nonce(),
            now(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, OAuthError::InvalidIdToken(_)), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_less_id_token_falls_back_to_userinfo() {
    let provider = OidcProvider::start().await;
    provider.set_email_in_id_token(false);
    let client = client(&provider).await;
    let flow = authorize(&client, &provider).await;
    let (identity, tokens) = client
        .sign_in(&flow.code, REDIRECT_URI, &flow.verifier, &flow.nonce, now())
        .await
        .unwrap();
    assert_eq!(identity, alice());

    let from_token = client
        .verify_id_token(tokens.id_token.as_deref().unwrap(), &flow.nonce, now())
        .await
        .unwrap();
    assert_eq!(from_token.email, None);
    assert_eq!(
        client.userinfo(&tokens.access_token).await.unwrap(),
        alice()
    );

    let err = client
        .userinfo(&SecretString::from("not-a-token"))
        .await
        .unwrap_err();
    assert!(matches!(err, OAuthError::Rejected(_)), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn userinfo_for_another_subject_is_refused() {
    let provider = OidcProvider::start().await;
    provider.set_email_in_id_token(false);
    provider.set_userinfo_identity(Some(oidc_provider::Identity::new(
        "someone-else",
        "eve@example.com",
    )));
    let client = client(&provider).await;
    let err = sign_in(&client, &provider, now()).await.unwrap_err();
    assert!(matches!(err, OAuthError::InvalidIdToken(_)), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_kids_refetch_the_jwks_at_most_once_a_minute() {
    let provider = OidcProvider::start().await;
    let client = client(&provider).await;
    let t0 = now();
    sign_in(&client, &provider, t0).await.unwrap();
    sign_in(&client, &provider, t0).await.unwrap();
    assert_eq!(provider.jwks_requests(), 1, "the JWKS is cached");

    provider.set_tamper(Tamper::UnknownKid);
    for _ in 0..3 {
        let err = sign_in(&client, &provider, t0 + 1).await.unwrap_err();
        assert!(matches!(err, OAuthError::InvalidIdToken(_)), "{err:?}");
    }
    assert_eq!(provider.jwks_requests(), 1, "refetched within the minute");

    let err = sign_in(&client, &provider, t0 + 61).await.unwrap_err();
    assert!(matches!(err, OAuthError::InvalidIdToken(_)), "{err:?}");
    assert_eq!(provider.jwks_requests(), 2);
    sign_in(&client, &provider, t0 + 62).await.unwrap_err();
    assert_eq!(provider.jwks_requests(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_is_picked_up_by_a_refetch() {
    let provider = OidcProvider::start().await;
    let client = client(&provider).await;
    let t0 = now();
    sign_in(&client, &provider, t0).await.unwrap();
    provider.rotate_key();

    // Within the minute, the new kid is not looked up yet.
    let err = sign_in(&client, &provider, t0 + 10).await.unwrap_err();
    assert!(matches!(err, OAuthError::InvalidIdToken(_)), "{err:?}");
    assert_eq!(provider.jwks_requests(), 1);

    let (identity, _) = sign_in(&client, &provider, t0 + 60).await.unwrap();
    assert_eq!(identity, alice());
    assert_eq!(provider.jwks_requests(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_code_is_rejected() {
    let provider = OidcProvider::start().await;
    let client = client(&provider).await;
    let flow = authorize(&client, &provider).await;
    client
        .sign_in(&flow.code, REDIRECT_URI, &flow.verifier, &flow.nonce, now())
        .await
        .unwrap();
    let err = client
        .exchange_code(&flow.code, REDIRECT_URI, &flow.verifier, now())
        .await
        .unwrap_err();
    assert!(matches!(err, OAuthError::Rejected(_)), "{err:?}");
    assert!(!err.to_string().contains(&flow.code), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_verifier_or_redirect_uri_is_rejected() {
    let provider = OidcProvider::start().await;
    let client = client(&provider).await;

    let flow = authorize(&client, &provider).await;
    let (other_verifier, _) = pkce_pair();
    let err = client
        .exchange_code(&flow.code, REDIRECT_URI, &other_verifier, now())
        .await
        .unwrap_err();
    assert!(matches!(err, OAuthError::Rejected(_)), "{err:?}");

    let flow = authorize(&client, &provider).await;
    let err = client
        .exchange_code(
            &flow.code,
            "http://127.0.0.1:9/elsewhere",
            &flow.verifier,
            now(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, OAuthError::Rejected(_)), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_client_secret_is_rejected() {
    for method in ["client_secret_post", "client_secret_basic"] {
        let provider = OidcProvider::start_with(method).await;
        let mut config = config(&provider);
        config.client_secret = SecretString::from("wrong-secret");
        let client = OidcClient::discover(config).await.unwrap();
        let flow = authorize(&client, &provider).await;
        let err = client
            .exchange_code(&flow.code, REDIRECT_URI, &flow.verifier, now())
            .await
            .unwrap_err();
        assert!(matches!(err, OAuthError::Rejected(_)), "{method}: {err:?}");
        assert!(!err.to_string().contains("wrong-secret"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_provider_is_unavailable_quickly() {
    let provider = OidcProvider::start().await;
    let mut config = config(&provider);
    config.timeout = Duration::from_millis(500);
    let client = OidcClient::discover(config.clone()).await.unwrap();
    let flow = authorize(&client, &provider).await;
    provider.stop().await;

    let started = Instant::now();
    let err = client
        .sign_in(&flow.code, REDIRECT_URI, &flow.verifier, &flow.nonce, now())
        .await
        .unwrap_err();
    assert!(matches!(err, OAuthError::Unavailable(_)), "{err:?}");
    assert!(!err.to_string().contains(&flow.code), "{err}");

    let err = OidcClient::discover(config).await.unwrap_err();
    assert!(matches!(err, OAuthError::Unavailable(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_provider_times_out() {
    let provider = OidcProvider::start().await;
    let mut config = config(&provider);
    config.timeout = Duration::from_millis(300);
    let client = OidcClient::discover(config.clone()).await.unwrap();
    let flow = authorize(&client, &provider).await;
    provider.set_latency(Duration::from_secs(3));

    let started = Instant::now();
    let err = client
        .exchange_code(&flow.code, REDIRECT_URI, &flow.verifier, now())
        .await
        .unwrap_err();
    assert!(matches!(err, OAuthError::Unavailable(_)), "{err:?}");
    let err = OidcClient::discover(config).await.unwrap_err();
    assert!(matches!(err, OAuthError::Unavailable(_)), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn pkce_pair_is_s256() {
    let (verifier, challenge) = pkce_pair();
    assert_eq!(
        challenge,
        URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
    );
    assert_ne!(pkce_pair().0, verifier);
}

/// Compiled, never run: the server may await these on any runtime thread.
#[allow(dead_code)]
fn futures_are_send(client: &OidcClient, config: OidcConfig, token: &SecretString) {
    fn assert_send<T: Send>(_: T) {}
    assert_send(OidcClient::discover(config));
    assert_send(client.sign_in("c", REDIRECT_URI, "v", "n", 0));
    assert_send(client.userinfo(token));
}
