//! A software passkey authenticator for the tests: webauthn-authenticator-rs's SoftToken
//! (a CTAP2 token in memory), made to behave like a passkey provider. SoftToken does not
//! keep resident credentials, returns no user handle and needs an allow-list, so this
//! wrapper remembers what it registered, fills the allow-list of a usernameless request
//! and adds the user handle to assertions (the handle is not covered by the signature,
//! so the server sees exactly what a platform passkey sends).

use serde_json::{json, Value};
use webauthn_authenticator_rs::prelude::{
    CreationChallengeResponse, PublicKeyCredential, RegisterPublicKeyCredential,
    RequestChallengeResponse, Url, WebauthnAuthenticator, WebauthnCError,
};
use webauthn_authenticator_rs::softtoken::SoftToken;
use webauthn_authenticator_rs::AuthenticatorBackendHashedClientData;
use webauthn_rs_proto::{
    AllowCredentials, PublicKeyCredentialCreationOptions, PublicKeyCredentialRequestOptions,
};

/// One registered credential: (RP ID, credential id, user handle).
type Resident = (String, Vec<u8>, Vec<u8>);

struct Passkeys {
    token: SoftToken,
    residents: Vec<Resident>,
}

impl AuthenticatorBackendHashedClientData for Passkeys {
    fn perform_register(
        &mut self,
        client_data_hash: Vec<u8>,
        mut options: PublicKeyCredentialCreationOptions,
        timeout_ms: u32,
    ) -> Result<RegisterPublicKeyCredential, WebauthnCError> {
        if let Some(selection) = options.authenticator_selection.as_mut() {
            // SoftToken refuses to be asked for a resident key; it acts as one here
            selection.require_resident_key = false;
        }
        let (rp, user) = (options.rp.id.clone(), options.user.id.clone());
        let created = self
            .token
            .perform_register(client_data_hash, options, timeout_ms)?;
        self.residents
            .push((rp, created.raw_id.to_vec(), user.to_vec()));
        Ok(created)
    }

    fn perform_auth(
        &mut self,
        client_data_hash: Vec<u8>,
        mut options: PublicKeyCredentialRequestOptions,
        timeout_ms: u32,
    ) -> Result<PublicKeyCredential, WebauthnCError> {
        if options.allow_credentials.is_empty() {
            options.allow_credentials = self
                .residents
                .iter()
                .filter(|r| r.0 == options.rp_id)
                .map(|r| AllowCredentials {
                    type_: "public-key".to_owned(),
                    id: r.1.clone(),
                    transports: None,
                })
                .collect();
        }
        let mut asserted = self
            .token
            .perform_auth(client_data_hash, options, timeout_ms)?;
        if let Some(r) = self
            .residents
            .iter()
            .find(|r| r.1 == asserted.raw_id.to_vec())
        {
            asserted.response.user_handle = Some(r.2.clone());
        }
        Ok(asserted)
    }
}

/// A passkey authenticator in a browser on `origin`.
pub struct Authenticator {
    passkeys: Passkeys,
    pub origin: Url,
}

impl Authenticator {
    pub fn new(origin: &str) -> Authenticator {
        // true: the token claims user verification, as a platform authenticator does
        let (token, _attestation_ca) = SoftToken::new(true).expect("soft token");
        Authenticator {
            passkeys: Passkeys {
                token,
                residents: Vec::new(),
            },
            origin: Url::parse(origin).expect("origin"),
        }
    }

    /// An exact copy, counter and keys included: a cloned authenticator.
    pub fn clone_device(&self) -> Authenticator {
        let cbor = self.passkeys.token.to_cbor().expect("cbor");
        Authenticator {
            passkeys: Passkeys {
                token: SoftToken::from_cbor(&cbor).expect("from cbor"),
                residents: self.passkeys.residents.clone(),
            },
            origin: self.origin.clone(),
        }
    }

    /// The credential for registration options `{challenge_id, publicKey}`, as JSON.
    pub fn register(&mut self, options: &Value) -> Value {
        self.try_register(options)
            .expect("the authenticator registers")
    }

    pub fn try_register(&mut self, options: &Value) -> Result<Value, WebauthnCError> {
        let ccr: CreationChallengeResponse =
            serde_json::from_value(json!({ "publicKey": options["publicKey"] }))
                .expect("creation options");
        let created = self.passkeys.do_registration(self.origin.clone(), ccr)?;
        Ok(serde_json::to_value(created).expect("json"))
    }

    /// The assertion for sign-in options `{challenge_id, publicKey}`, as JSON.
    pub fn assert(&mut self, options: &Value) -> Value {
        self.try_assert(options).expect("the authenticator signs")
    }

    pub fn try_assert(&mut self, options: &Value) -> Result<Value, WebauthnCError> {
        let rcr: RequestChallengeResponse =
            serde_json::from_value(json!({ "publicKey": options["publicKey"] }))
                .expect("request options");
        let asserted = self.passkeys.do_authentication(self.origin.clone(), rcr)?;
        Ok(serde_json::to_value(asserted).expect("json"))
    }
}
