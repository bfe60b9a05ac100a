//! The route table: every route, with what must run before its handler, one function
//! per area, registered in the order [`configure`] calls them.

use actix_web::middleware::from_fn;
use actix_web::{guard, web};

use crate::auth::{authenticated, no_api_key, not_by_api_key, superuser};
use crate::rate_limit::per_ip;
use crate::routes::{
    self, account, api_keys, audit, auth, identities, mail, mfa, oauth, ops, pages, passkeys,
    register, roles, sessions, upstream, users,
};

/// Registers every route with what it needs before its handler runs, outermost first:
/// the per-IP budget, authentication, the superuser check, the target user. Those are
/// wrapped around the routes, not the resources, so a wrong method is a 405 before
/// anything is counted or checked. Anything else answers JSON 404/405.
/// The order matters twice: the router tries resources in order (the busiest first, see
/// [`first`]), and `/users/me/…` comes before `/users/{id}/…`, which "me" would match.
pub fn configure(cfg: &mut web::ServiceConfig) {
    first(cfg);
    provider_busiest(cfg);
    sign_in(cfg);
    second_factor(cfg);
    passkey_routes(cfg);
    recovery_and_pages(cfg);
    upstream_sign_in(cfg);
    own_data_and_lists(cfg);
    role_admin(cfg);
    user_admin(cfg);
    provider(cfg);
}

/// A resource whose other methods answer 405.
fn resource(path: &str) -> actix_web::Resource {
    web::resource(path.to_owned()).default_service(web::to(routes::method_not_allowed))
}

/// Only the configured upstream providers match `{provider}`.
fn configured_provider() -> impl guard::Guard {
    guard::fn_guard(upstream::configured_provider)
}

/// `/users/me` (the busiest route: the router tries resources in order, so it comes
/// first), the operations routes and the API documentation.
fn first(cfg: &mut web::ServiceConfig) {
    // the busiest route first: the router tries resources in order, and each dynamic
    // one it passes costs a regex match
    cfg.service(
        resource("/users/me")
            .route(web::get().to(users::me).wrap(from_fn(authenticated)))
            .route(
                web::patch()
                    .to(users::update_me)
                    .wrap(from_fn(authenticated)),
            ),
    )
    .service(resource("/healthz").route(web::get().to(ops::healthz)))
    .service(resource("/readyz").route(web::get().to(ops::readyz)))
    .service(resource("/.well-known/jwks.json").route(web::get().to(ops::jwks)))
    .service(resource("/metrics").route(web::get().to(ops::metrics)))
    .configure(crate::openapi::configure_docs);
}

/// Registration, sign-in and sign-out, refresh, sessions.
fn sign_in(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/auth/register")
            .route(web::post().to(register::register).wrap(per_ip("register"))),
    )
    .service(resource("/auth/jwt/login").route(web::post().to(auth::login).wrap(per_ip("login"))))
    .service(
        resource("/auth/jwt/logout").route(
            web::post()
                .to(auth::logout)
                .wrap(from_fn(no_api_key))
                .wrap(from_fn(authenticated)),
        ),
    )
    .service(
        resource("/auth/jwt/refresh").route(web::post().to(auth::refresh).wrap(per_ip("refresh"))),
    )
    .service(
        resource("/auth/cookie/login")
            .route(web::post().to(auth::cookie_login).wrap(per_ip("login"))),
    )
    .service(
        resource("/auth/cookie/logout").route(
            web::post()
                .to(auth::cookie_logout)
                .wrap(from_fn(no_api_key))
                .wrap(from_fn(authenticated)),
        ),
    )
    .service(
        resource("/auth/sessions")
            .route(web::get().to(sessions::list).wrap(from_fn(authenticated)))
            .route(
                web::delete()
                    .to(sessions::end_others)
                    .wrap(from_fn(no_api_key))
                    .wrap(from_fn(authenticated)),
            ),
    )
    .service(
        resource("/auth/sessions/{id}").route(
            web::delete()
                .to(sessions::end_one)
                .wrap(from_fn(no_api_key))
                .wrap(from_fn(authenticated)),
        ),
    );
}

/// The second factor: TOTP, recovery codes, the second step of a sign-in.
fn second_factor(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/auth/mfa").route(web::get().to(mfa::status).wrap(from_fn(authenticated))),
    )
    .service(
        resource("/auth/mfa/totp")
            .route(
                web::post()
                    .to(mfa::totp_enrol)
                    .wrap(from_fn(no_api_key))
                    .wrap(from_fn(authenticated)),
            )
            .route(
                web::delete()
                    .to(mfa::totp_disable)
                    .wrap(from_fn(no_api_key))
                    .wrap(from_fn(authenticated)),
            ),
    )
    .service(
        resource("/auth/mfa/totp/confirm").route(
            web::post()
                .to(mfa::totp_confirm)
                .wrap(from_fn(no_api_key))
                .wrap(from_fn(authenticated)),
        ),
    )
    .service(
        resource("/auth/mfa/recovery-codes").route(
            web::post()
                .to(mfa::recovery_codes)
                .wrap(from_fn(no_api_key))
                .wrap(from_fn(authenticated)),
        ),
    )
    .service(
        resource("/auth/mfa/verify").route(web::post().to(mfa::verify).wrap(per_ip("mfa-verify"))),
    );
}

/// Passkeys: registering, listing and removing them, and signing in with one.
fn passkey_routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/auth/passkeys")
            .route(web::get().to(passkeys::list).wrap(from_fn(authenticated))),
    )
    .service(
        resource("/auth/passkeys/register/options").route(
            web::post()
                .to(passkeys::register_options)
                .wrap(from_fn(no_api_key))
                .wrap(from_fn(authenticated)),
        ),
    )
    .service(
        resource("/auth/passkeys/register").route(
            web::post()
                .to(passkeys::register)
                .wrap(from_fn(no_api_key))
                .wrap(from_fn(authenticated)),
        ),
    )
    .service(
        resource("/auth/passkeys/login/options").route(
            web::post()
                .to(passkeys::login_options)
                .wrap(per_ip("passkey-login")),
        ),
    )
    .service(
        resource("/auth/passkeys/login").route(
            web::post()
                .to(passkeys::login)
                .wrap(per_ip("passkey-login")),
        ),
    )
    .service(
        resource("/auth/passkeys/{id}").route(
            web::delete()
                .to(passkeys::remove)
                .wrap(from_fn(no_api_key))
                .wrap(from_fn(authenticated)),
        ),
    );
}

/// Reset and verification (the API and their pages), and the account page.
fn recovery_and_pages(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/auth/forgot-password").route(
            web::post()
                .to(mail::forgot_password)
                .wrap(per_ip("forgot-password")),
        ),
    )
    .service(
        resource("/auth/reset-password")
            .route(web::post().to(mail::reset).wrap(per_ip("reset-password"))),
    )
    .service(
        resource("/auth/request-verify-token").route(
            web::post()
                .to(mail::request_verify_token)
                .wrap(per_ip("request-verify-token")),
        ),
    )
    .service(resource("/auth/verify").route(web::post().to(mail::verify).wrap(per_ip("verify"))))
    .service(
        resource("/reset-password")
            .route(web::get().to(pages::reset_page))
            .route(
                web::post()
                    .to(pages::reset_submit)
                    .wrap(per_ip("reset-password")),
            ),
    )
    .service(resource("/verify").route(web::get().to(pages::verify_page).wrap(per_ip("verify"))))
    .service(resource("/account").route(web::get().to(account::page)));
}

/// Sign-in through upstream providers and linking them (docs/providers.md).
fn upstream_sign_in(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/auth/providers").route(web::get().to(upstream::list_providers)))
        .service(
            resource("/auth/associate/{provider}/authorize")
                .guard(configured_provider())
                .route(
                    web::get()
                        .to(upstream::associate_authorize)
                        .wrap(from_fn(no_api_key))
                        .wrap(from_fn(authenticated))
                        .wrap(per_ip("oauth-authorize")),
                ),
        )
        .service(
            resource("/auth/associate/{provider}/callback")
                .guard(configured_provider())
                .route(
                    web::get()
                        .to(upstream::associate_callback)
                        .wrap(from_fn(no_api_key))
                        .wrap(from_fn(authenticated))
                        .wrap(per_ip("oauth-callback")),
                ),
        )
        .service(
            resource("/auth/{provider}/authorize")
                .guard(configured_provider())
                // each call writes a state row: unlimited, a client could fill the table
                .route(
                    web::get()
                        .to(upstream::authorize)
                        .wrap(per_ip("oauth-authorize")),
                ),
        )
        .service(
            resource("/auth/{provider}/callback")
                .guard(configured_provider())
                .route(
                    web::get()
                        .to(upstream::callback)
                        .wrap(per_ip("oauth-callback")),
                ),
        );
}

/// The user's own events, identities, roles and API keys; the audit log and the user
/// list.
fn own_data_and_lists(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/users/me/events").route(web::get().to(audit::mine).wrap(from_fn(authenticated))),
    )
    .service(
        resource("/audit").route(
            web::get()
                .to(audit::list)
                .wrap(from_fn(superuser))
                .wrap(from_fn(authenticated)),
        ),
    )
    .service(
        resource("/users/me/identities").route(
            web::get()
                .to(identities::list_identities)
                .wrap(from_fn(authenticated)),
        ),
    )
    .service(
        resource("/users/me/identities/{provider}").route(
            web::delete()
                .to(identities::unlink_identity)
                .wrap(from_fn(no_api_key))
                .wrap(from_fn(authenticated)),
        ),
    )
    .service(
        resource("/users/me/identities/{provider}/{subject}").route(
            web::delete()
                .to(identities::unlink_identity_subject)
                .wrap(from_fn(no_api_key))
                .wrap(from_fn(authenticated)),
        ),
    )
    .service(
        resource("/users").route(
            web::get()
                .to(users::list_users)
                .wrap(from_fn(superuser))
                .wrap(from_fn(authenticated)),
        ),
    )
    // before `/users/{id}/…`, which "me" would match
    .service(
        resource("/users/me/roles").route(
            web::get()
                .to(roles::mine)
                .wrap(from_fn(not_by_api_key))
                .wrap(from_fn(authenticated)),
        ),
    )
    .service(
        resource("/users/me/api-keys")
            .route(
                web::get()
                    .to(api_keys::list)
                    .wrap(from_fn(not_by_api_key))
                    .wrap(from_fn(authenticated)),
            )
            .route(
                web::post()
                    .to(api_keys::create)
                    .wrap(from_fn(no_api_key))
                    .wrap(from_fn(authenticated)),
            ),
    )
    .service(
        resource("/users/me/api-keys/{id}").route(
            web::delete()
                .to(api_keys::revoke)
                .wrap(from_fn(no_api_key))
                .wrap(from_fn(authenticated)),
        ),
    );
}

/// The roles, for superusers signed in without an API key (docs/roles-and-api-keys.md).
fn role_admin(cfg: &mut web::ServiceConfig) {
    let superusers = |route: actix_web::Route| {
        route
            .wrap(from_fn(superuser))
            .wrap(from_fn(not_by_api_key))
            .wrap(from_fn(authenticated))
    };
    cfg.service(
        resource("/roles")
            .route(superusers(web::get().to(roles::list)))
            .route(superusers(web::post().to(roles::create))),
    )
    .service(
        resource("/roles/{name}")
            .route(superusers(web::get().to(roles::get)))
            .route(superusers(web::patch().to(roles::update)))
            .route(superusers(web::delete().to(roles::delete))),
    );
}

/// The superuser's routes on one user, `/users/{id}/…`.
fn user_admin(cfg: &mut web::ServiceConfig) {
    let admin = |route: actix_web::Route| {
        route
            .wrap(from_fn(users::target_user))
            .wrap(from_fn(superuser))
            .wrap(from_fn(authenticated))
    };
    // the superuser routes of Part three: no API key (docs/roles-and-api-keys.md)
    let part_three = |route: actix_web::Route| {
        route
            .wrap(from_fn(users::target_user))
            .wrap(from_fn(superuser))
            .wrap(from_fn(not_by_api_key))
            .wrap(from_fn(authenticated))
    };
    cfg.service(
        resource("/users/{id}")
            .route(admin(web::get().to(users::get_user)))
            .route(admin(web::patch().to(users::patch_user)))
            .route(admin(web::delete().to(users::delete_user))),
    )
    .service(
        resource("/users/{id}/sessions")
            .route(admin(web::get().to(sessions::list_of_user)))
            .route(admin(web::delete().to(sessions::end_all_of_user))),
    )
    .service(resource("/users/{id}/mfa").route(admin(web::delete().to(mfa::reset))))
    .service(
        resource("/users/{id}/roles")
            .route(part_three(web::get().to(roles::of_user)))
            .route(part_three(web::put().to(roles::set_for_user))),
    )
    .service(
        resource("/users/{id}/api-keys").route(part_three(web::get().to(api_keys::list_of_user))),
    )
    .service(
        resource("/users/{id}/api-keys/{key_id}")
            .route(part_three(web::delete().to(api_keys::revoke_of_user))),
    );
}

/// The provider's busiest routes, right after [`first`]: their paths are static, and
/// each of the ~30 dynamic resources registered before them would cost a regex match
/// (about 80,000 instructions a request, measured: bench/results/provider-speed.md).
fn provider_busiest(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/oauth/token").route(web::post().to(oauth::token_endpoint)))
        .service(
            resource("/oauth/userinfo")
                .route(web::get().to(oauth::userinfo))
                .route(web::post().to(oauth::userinfo)),
        )
        .service(resource("/oauth/introspect").route(web::post().to(oauth::introspect)))
        .service(resource("/oauth/revoke").route(web::post().to(oauth::revoke)))
        .service(
            resource("/oauth/authorize").route(
                web::get()
                    .to(oauth::authorize)
                    .wrap(per_ip("oauth-provider-authorize")),
            ),
        );
}

/// The routes of the OAuth 2.1 / OpenID Connect provider (docs/oauth-provider.md).
/// Client authentication failures count against the per-IP budget inside the flow, so
/// the token endpoint's successful calls are not limited.
fn provider(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/.well-known/openid-configuration").route(web::get().to(oauth::discovery)),
    )
    .service(
        resource("/.well-known/oauth-authorization-server").route(web::get().to(oauth::discovery)),
    )
    .service(resource("/login").route(web::get().to(account::login)))
    .service(
        resource("/oauth/clients")
            .route(
                web::post()
                    .to(oauth::register_client)
                    .wrap(per_ip("oauth-register")),
            )
            .route(web::get().to(oauth::list_clients)),
    )
    .service(
        resource("/oauth/clients/{client_id}")
            .route(web::get().to(oauth::get_client))
            .route(web::put().to(oauth::replace_client))
            .route(web::delete().to(oauth::delete_client)),
    )
    .service(
        resource("/oauth/clients/{client_id}/secret").route(web::post().to(oauth::rotate_secret)),
    )
    .service(
        resource("/oauth/clients/{client_id}/roles")
            .route(web::get().to(oauth::client_roles))
            .route(web::put().to(oauth::set_client_roles)),
    )
    .service(
        resource("/oauth/consent")
            .route(web::get().to(oauth::consent_page))
            .route(web::post().to(oauth::consent_decide)),
    )
    .service(resource("/oauth/logout").route(web::get().to(oauth::logout)))
    .service(
        resource("/users/me/grants").route(
            web::get()
                .to(oauth::my_grants)
                .wrap(from_fn(not_by_api_key))
                .wrap(from_fn(authenticated)),
        ),
    )
    .service(
        resource("/users/me/grants/{client_id}").route(
            web::delete()
                .to(oauth::revoke_grant)
                .wrap(from_fn(not_by_api_key))
                .wrap(from_fn(authenticated)),
        ),
    );
}
