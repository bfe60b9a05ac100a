//! The one portable schema, shared by both backends (see `migrations/`).

diesel::table! {
    users (id) {
        id -> Text,
        email -> Text,
        email_key -> Text,
        hashed_password -> Text,
        is_active -> Bool,
        is_superuser -> Bool,
        is_verified -> Bool,
        tokens_valid_after -> BigInt,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    revoked_tokens (token_hash) {
        token_hash -> Text,
        user_id -> Text,
        expires_at -> BigInt,
    }
}

diesel::table! {
    service_settings (name) {
        name -> Text,
        value -> Text,
    }
}

diesel::table! {
    sessions (id) {
        id -> Text,
        user_id -> Text,
        created_at -> BigInt,
        last_used_at -> BigInt,
        expires_at -> BigInt,
        ended_at -> Nullable<BigInt>,
        end_reason -> Nullable<Text>,
        ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        method -> Text,
        aal -> BigInt,
        refresh_key_salt -> Nullable<Text>,
        refresh_counter -> BigInt,
        refreshed_at -> Nullable<BigInt>,
        second_factor -> Nullable<Text>,
    }
}

diesel::table! {
    totp_factors (user_id) {
        user_id -> Text,
        secret_sealed -> Text,
        pending_session_id -> Nullable<Text>,
        confirmed_at -> Nullable<BigInt>,
        last_step -> BigInt,
        created_at -> BigInt,
        unverified_at_setup -> Bool,
    }
}

diesel::table! {
    recovery_codes (code_hash) {
        code_hash -> Text,
        user_id -> Text,
        used_at -> Nullable<BigInt>,
        created_at -> BigInt,
    }
}

diesel::table! {
    passkeys (id) {
        id -> Text,
        user_id -> Text,
        credential_id -> Text,
        name -> Text,
        credential -> Text,
        sign_count -> BigInt,
        created_at -> BigInt,
        last_used_at -> Nullable<BigInt>,
        unverified_at_setup -> Bool,
    }
}

diesel::table! {
    webauthn_challenges (id) {
        id -> Text,
        kind -> Text,
        user_id -> Nullable<Text>,
        mfa_id -> Nullable<Text>,
        state -> Text,
        expires_at -> BigInt,
    }
}

diesel::table! {
    mfa_challenges (id) {
        id -> Text,
        user_id -> Text,
        method -> Text,
        transport -> Text,
        offline_access -> Bool,
        ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        failures -> BigInt,
        expires_at -> BigInt,
    }
}

diesel::table! {
    signing_keys (kid) {
        kid -> Text,
        algorithm -> Text,
        private_key_sealed -> Text,
        public_jwk -> Text,
        created_at -> BigInt,
        active_from -> BigInt,
    }
}

diesel::table! {
    audit_events (id) {
        id -> Text,
        at -> BigInt,
        #[sql_name = "type"]
        event_type -> Text,
        user_id -> Nullable<Text>,
        actor_id -> Nullable<Text>,
        ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        request_id -> Nullable<Text>,
        data -> Text,
    }
}

diesel::table! {
    roles (name) {
        name -> Text,
        description -> Text,
        permissions -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    user_roles (user_id, role_name) {
        user_id -> Text,
        role_name -> Text,
    }
}

diesel::table! {
    api_keys (id) {
        id -> Text,
        user_id -> Text,
        name -> Text,
        key_hash -> Text,
        prefix -> Text,
        permissions -> Nullable<Text>,
        created_at -> BigInt,
        expires_at -> Nullable<BigInt>,
        last_used_at -> Nullable<BigInt>,
        unverified_at_setup -> Bool,
    }
}

diesel::joinable!(revoked_tokens -> users (user_id));
diesel::joinable!(user_roles -> users (user_id));
diesel::joinable!(user_roles -> roles (role_name));
diesel::joinable!(api_keys -> users (user_id));
diesel::joinable!(sessions -> users (user_id));
diesel::allow_tables_to_appear_in_same_query!(
    users,
    sessions,
    totp_factors,
    recovery_codes,
    passkeys,
    webauthn_challenges,
    mfa_challenges,
    signing_keys,
    audit_events,
    revoked_tokens,
    service_settings,
    outbox,
    upstream_identities,
    upstream_states,
    login_failures,
    rate_limits,
    mail_sends,
    oauth_clients,
    oauth_consents,
    oauth_requests,
    oauth_codes,
    oauth_grants,
    oauth_revoked,
    oauth_client_roles,
    roles,
    user_roles,
    api_keys
);

diesel::table! {
    outbox (id) {
        id -> Text,
        kind -> Text,
        payload -> Nullable<Text>,
        status -> Text,
        attempts -> BigInt,
        next_attempt_at -> BigInt,
        locked_until -> BigInt,
        locked_by -> Nullable<Text>,
        last_error -> Nullable<Text>,
        created_at -> BigInt,
        finished_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    upstream_identities (id) {
        id -> Text,
        user_id -> Text,
        oauth_name -> Text,
        account_id -> Text,
        account_email -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
        unverified_at_setup -> Bool,
        email_verified -> Bool,
    }
}

diesel::table! {
    upstream_states (id) {
        id -> Text,
        pkce_verifier -> Text,
        nonce -> Text,
        user_id -> Nullable<Text>,
        expires_at -> BigInt,
        provider -> Text,
        return_to -> Nullable<Text>,
    }
}

diesel::table! {
    mail_sends (id) {
        id -> Text,
        email_key -> Text,
        kind -> Text,
        sent_at -> BigInt,
    }
}

diesel::joinable!(upstream_identities -> users (user_id));

diesel::table! {
    login_failures (email_key) {
        email_key -> Text,
        failures -> BigInt,
        locked_until -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    rate_limits (bucket) {
        bucket -> Text,
        window_start -> BigInt,
        hits -> BigInt,
    }
}

diesel::table! {
    oauth_clients (client_id) {
        client_id -> Text,
        secret_hash -> Nullable<Text>,
        metadata -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    oauth_consents (user_id, client_id) {
        user_id -> Text,
        client_id -> Text,
        scopes -> Text,
        granted_at -> BigInt,
        last_used_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    oauth_requests (id) {
        id -> Text,
        kind -> Text,
        client_id -> Text,
        params -> Text,
        user_id -> Nullable<Text>,
        session_id -> Nullable<Text>,
        csrf -> Nullable<Text>,
        created_at -> BigInt,
        expires_at -> BigInt,
    }
}

diesel::table! {
    oauth_codes (code_hash) {
        code_hash -> Text,
        client_id -> Text,
        user_id -> Text,
        data -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
        used_at -> Nullable<BigInt>,
        grant_session_id -> Nullable<Text>,
    }
}

diesel::table! {
    oauth_grants (session_id) {
        session_id -> Text,
        client_id -> Text,
        user_id -> Text,
        scope -> Text,
        resource -> Nullable<Text>,
        auth_time -> BigInt,
        amr -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    oauth_revoked (jti) {
        jti -> Text,
        expires_at -> BigInt,
    }
}

diesel::joinable!(oauth_grants -> sessions (session_id));
diesel::joinable!(oauth_consents -> oauth_clients (client_id));

diesel::table! {
    oauth_client_roles (client_id, role_name) {
        client_id -> Text,
        role_name -> Text,
    }
}
