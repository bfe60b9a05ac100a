//! Reset and verification by mail: the requests of the API and the reset page's form.

use secrecy::SecretString;
use users_domain::EmailAddress;
use utoipa::ToSchema;

use crate::extract::{Fields, Validated};

/// `{email}`: forgot-password and request-verify-token.
#[derive(ToSchema)]
pub struct EmailRequest {
    #[schema(value_type = String, format = Email)]
    pub email: EmailAddress,
}

impl Validated for EmailRequest {
    fn validate(f: &mut Fields<'_>) -> Option<Self> {
        Some(EmailRequest {
            email: f.required_email("email")?,
        })
    }
}

/// `{token, password}`: completing a password reset.
#[derive(ToSchema)]
pub struct ResetPassword {
    pub token: String,
    #[schema(value_type = String)]
    pub password: SecretString,
}

impl Validated for ResetPassword {
    fn validate(f: &mut Fields<'_>) -> Option<Self> {
        let token = f.required_str("token");
        let password = f.required_password("password");
        Some(ResetPassword {
            token: token?,
            password: password?,
        })
    }
}

/// The reset page's form: as [`ResetPassword`], with the repeated password. Missing
/// fields are the page's business (it answers with the form again), so none is
/// required here.
#[derive(ToSchema)]
pub struct ResetPasswordForm {
    pub token: Option<String>,
    #[schema(value_type = Option<String>)]
    pub password: Option<SecretString>,
    #[schema(value_type = Option<String>)]
    pub confirm: Option<SecretString>,
}

impl Validated for ResetPasswordForm {
    fn validate(f: &mut Fields<'_>) -> Option<Self> {
        let token = f.optional_str("token");
        let password = f.optional_password("password");
        let confirm = f.optional_password("confirm");
        Some(ResetPasswordForm {
            token: token?,
            password: password?,
            confirm: confirm?,
        })
    }
}

/// `{token}`: verifying an email address.
#[derive(ToSchema)]
pub struct VerifyToken {
    pub token: String,
}

impl Validated for VerifyToken {
    fn validate(f: &mut Fields<'_>) -> Option<Self> {
        Some(VerifyToken {
            token: f.required_str("token")?,
        })
    }
}
