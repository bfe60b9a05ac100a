//! The mails the service sends, rendered from templates compiled into the binary.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One email to send. Serialisable: it is stored as JSON in a database outbox until sent.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Email {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

// The bodies hold single-use tokens and the local part is personal data, so logs
// that print an `Email` get only what helps to tell mails apart.
impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let domain = self.to.rsplit_once('@').map_or("?", |(_, domain)| domain);
        f.debug_struct("Email")
            .field("to", &format_args!("*@{domain}"))
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

impl Email {
    /// Password reset: `link` already holds the token; lifetime in minutes is stated in the mail.
    pub fn reset_password(product: &str, to: &str, link: &str, lifetime_minutes: u64) -> Email {
        let lifetime = human_minutes(lifetime_minutes);
        Layout {
            product,
            subject: format!("Reset your {product} password"),
            heading: "Reset your password",
            before: vec![
                format!("Someone asked to reset the password of the {product} account for {to}."),
                "To choose a new password, follow this link:".to_owned(),
            ],
            action: Some(Action {
                label: "Choose a new password",
                link,
            }),
            after: vec![
                format!("The link expires in {lifetime} and works only once."),
                "If you did not ask to reset your password, you can ignore this email; \
                 your password is unchanged."
                    .to_owned(),
            ],
        }
        .render(to)
    }

    /// Address verification: `link` already holds the token.
    pub fn verify_email(product: &str, to: &str, link: &str, lifetime_minutes: u64) -> Email {
        let lifetime = human_minutes(lifetime_minutes);
        Layout {
            product,
            subject: format!("Verify your email address for {product}"),
            heading: "Verify your email address",
            before: vec![format!(
                "Please confirm that {to} is your email address for {product} by following this link:"
            )],
            action: Some(Action {
                label: "Verify my email address",
                link,
            }),
            after: vec![
                format!("The link expires in {lifetime}."),
                "If you did not ask for this, you can ignore this email; \
                 nothing changes on your account."
                    .to_owned(),
            ],
        }
        .render(to)
    }

    /// "Your password was changed" notice (no link needed; says to contact support / reset if it wasn't them).
    pub fn password_changed(product: &str, to: &str) -> Email {
        Layout {
            product,
            subject: format!("Your {product} password was changed"),
            heading: "Your password was changed",
            before: vec![
                format!("The password of the {product} account for {to} was just changed."),
                "If you made this change, there is nothing else to do.".to_owned(),
            ],
            action: None,
            after: vec![
                "If you did not change your password, someone else may have access to your \
                 account: reset your password right away with \"Forgot password\" on the \
                 sign-in page, and contact support."
                    .to_owned(),
            ],
        }
        .render(to)
    }

    /// "A recovery code was used; N left" notice.
    pub fn recovery_code_used(product: &str, to: &str, left: i64) -> Email {
        let left_text = match left {
            0 => "You have no recovery codes left: create a new set in your account settings now.".to_owned(),
            1 => "You have 1 recovery code left; consider creating a new set in your account settings.".to_owned(),
            n => format!("You have {n} recovery codes left."),
        };
        Layout {
            product,
            subject: format!("A recovery code of your {product} account was used"),
            heading: "A recovery code was used",
            before: vec![
                format!("Someone signed in to the {product} account for {to} with one of its recovery codes."),
                left_text,
            ],
            action: None,
            after: vec![
                "If this was not you, someone has your password and a recovery code: reset \
                 your password right away with \"Forgot password\" on the sign-in page, create \
                 new recovery codes, and contact support."
                    .to_owned(),
            ],
        }
        .render(to)
    }
}

/// A change to how an account is signed in to, of which its owner is told by mail
/// (docs/security.md): so that a change made by someone else does not go unnoticed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecurityChange {
    PasskeyAdded {
        name: String,
    },
    PasskeyRemoved,
    TotpEnabled,
    TotpDisabled,
    /// A provider account was linked (its label, e.g. "GitHub").
    ProviderLinked {
        provider: String,
    },
    ApiKeyCreated {
        name: String,
    },
    /// To the old address: the account's email is now `new` (shown masked).
    EmailChangedFrom {
        new: String,
    },
    /// To the new address.
    EmailChangedTo,
}

impl Email {
    /// "Something changed on your account" notice, with what to do if it was not you.
    pub fn security_notice(product: &str, to: &str, change: &SecurityChange) -> Email {
        let (subject, heading, what) = match change {
            SecurityChange::PasskeyAdded { name } => (
                format!("A passkey was added to your {product} account"),
                "A passkey was added",
                format!("A passkey named \"{name}\" was added to the {product} account for {to}; it can now sign in to the account."),
            ),
            SecurityChange::PasskeyRemoved => (
                format!("A passkey was removed from your {product} account"),
                "A passkey was removed",
                format!("A passkey was removed from the {product} account for {to}."),
            ),
            SecurityChange::TotpEnabled => (
                format!("Two-step sign-in was turned on for your {product} account"),
                "Two-step sign-in is on",
                format!("An authenticator app was set up for the {product} account for {to}: signing in now asks for its code."),
            ),
            SecurityChange::TotpDisabled => (
                format!("Two-step sign-in was turned off for your {product} account"),
                "Two-step sign-in is off",
                format!("The authenticator app and the recovery codes of the {product} account for {to} were removed."),
            ),
            SecurityChange::ProviderLinked { provider } => (
                format!("A {provider} account was linked to your {product} account"),
                "A sign-in method was linked",
                format!("A {provider} account was linked to the {product} account for {to}; it can now sign in to the account."),
            ),
            SecurityChange::ApiKeyCreated { name } => (
                format!("An API key was created for your {product} account"),
                "An API key was created",
                format!("An API key named \"{name}\" was created for the {product} account for {to}; it acts as the account until it is revoked."),
            ),
            SecurityChange::EmailChangedFrom { new } => (
                format!("The email address of your {product} account was changed"),
                "Your email address was changed",
                format!("The {product} account that used {to} now uses {}. Mail about the account goes there from now on.", mask_address(new)),
            ),
            SecurityChange::EmailChangedTo => (
                format!("This is now the email address of your {product} account"),
                "Your email address was changed",
                format!("The {product} account now uses {to} as its email address."),
            ),
        };
        Layout {
            product,
            subject,
            heading,
            before: vec![
                what,
                "If you made this change, there is nothing else to do.".to_owned(),
            ],
            action: None,
            after: vec![
                "If you did not make this change, someone else may have access to your \
                 account: reset your password right away with \"Forgot password\" on the \
                 sign-in page, review the account's sign-in methods and devices, and contact \
                 support."
                    .to_owned(),
            ],
        }
        .render(to)
    }
}

/// `n***@example.com`: enough for the owner to recognise an address, not to learn one.
fn mask_address(address: &str) -> String {
    match address.rsplit_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".to_owned(),
    }
}

/// "90 minutes", "1 hour", "2 days": what a reader takes in at a glance.
fn human_minutes(minutes: u64) -> String {
    let (n, unit) = if minutes >= 1440 && minutes % 1440 == 0 {
        (minutes / 1440, "day")
    } else if minutes >= 60 && minutes % 60 == 0 {
        (minutes / 60, "hour")
    } else {
        (minutes, "minute")
    };
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

struct Action<'a> {
    label: &'a str,
    link: &'a str,
}

/// One layout for every mail, so the text and HTML parts always say the same thing.
/// Paragraphs are plain text; the HTML rendering escapes them.
struct Layout<'a> {
    product: &'a str,
    subject: String,
    heading: &'a str,
    before: Vec<String>,
    action: Option<Action<'a>>,
    after: Vec<String>,
}

const FOOTER: &str = "This message was sent automatically; please do not reply to it.";

impl Layout<'_> {
    fn render(self, to: &str) -> Email {
        Email {
            to: to.to_owned(),
            text: self.text(),
            html: self.html(),
            subject: self.subject,
        }
    }

    fn text(&self) -> String {
        let mut out = format!("{}\n\n", self.heading);
        for p in &self.before {
            out.push_str(p);
            out.push_str("\n\n");
        }
        if let Some(action) = &self.action {
            out.push_str(action.link);
            out.push_str("\n\n");
        }
        for p in &self.after {
            out.push_str(p);
            out.push_str("\n\n");
        }
        out.push_str(&format!("-- \n{}\n{FOOTER}\n", self.product));
        out
    }

    fn html(&self) -> String {
        const P: &str = "margin:0 0 16px;";
        let mut body = String::new();
        let paragraph = |body: &mut String, text: &str, style: &str| {
            body.push_str(&format!("<p style=\"{style}\">{}</p>\n", escape_html(text)));
        };
        for p in &self.before {
            paragraph(&mut body, p, P);
        }
        if let Some(action) = &self.action {
            let link = escape_html(action.link);
            body.push_str(&format!(
                "<p style=\"margin:24px 0;\"><a href=\"{link}\" style=\"display:inline-block;\
                 padding:12px 20px;border-radius:6px;background-color:#1d4ed8;color:#ffffff;\
                 font-weight:600;text-decoration:none;\">{}</a></p>\n\
                 <p style=\"{P}font-size:14px;color:#52525b;\">If the button does not work, copy \
                 this link into your browser:<br>\n<span style=\"word-break:break-all;\">{link}</span></p>\n",
                escape_html(action.label)
            ));
        }
        for p in &self.after {
            paragraph(&mut body, p, P);
        }
        format!(
            "<!DOCTYPE html>\n\
             <html lang=\"en\">\n\
             <head>\n\
             <meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <title>{title}</title>\n\
             </head>\n\
             <body style=\"margin:0;padding:0;background-color:#f4f4f5;\">\n\
             <div style=\"max-width:560px;margin:0 auto;padding:32px 24px;background-color:#ffffff;\
             font-family:Helvetica,Arial,sans-serif;font-size:16px;line-height:1.5;color:#18181b;\">\n\
             <p style=\"margin:0 0 24px;font-size:14px;font-weight:bold;color:#52525b;\">{product}</p>\n\
             <h1 style=\"margin:0 0 16px;font-size:22px;line-height:1.3;\">{heading}</h1>\n\
             {body}\
             <p style=\"margin:32px 0 0;font-size:12px;color:#71717a;\">{footer}</p>\n\
             </div>\n\
             </body>\n\
             </html>\n",
            title = escape_html(&self.subject),
            product = escape_html(self.product),
            heading = escape_html(self.heading),
            footer = escape_html(FOOTER),
        )
    }
}

/// Escapes text for HTML element content and double- or single-quoted attributes
/// (also used by the server's HTML pages).
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const LINK: &str = "https://id.example.com/reset-password?token=abc.DEF-123_x";

    #[test]
    fn escape_covers_markup_and_quotes() {
        assert_eq!(
            escape_html(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(escape_html("plain text é"), "plain text é");
    }

    #[test]
    fn notices_say_what_changed_and_what_to_do() {
        let mail = Email::security_notice(
            "Acme",
            "ann@example.com",
            &SecurityChange::PasskeyAdded {
                name: "Laptop <b>".into(),
            },
        );
        assert_eq!(mail.to, "ann@example.com");
        assert!(
            mail.subject.contains("passkey was added"),
            "{}",
            mail.subject
        );
        assert!(mail.text.contains("\"Laptop <b>\""), "{}", mail.text);
        assert!(mail.html.contains("Laptop &lt;b&gt;"), "{}", mail.html);
        assert!(mail.text.contains("Forgot password"));
        let moved = Email::security_notice(
            "Acme",
            "ann@example.com",
            &SecurityChange::EmailChangedFrom {
                new: "mallory@evil.example".into(),
            },
        );
        assert!(moved.text.contains("m***@evil.example"), "{}", moved.text);
        assert!(!moved.text.contains("mallory@"), "{}", moved.text);
    }

    #[test]
    fn lifetimes_read_naturally() {
        assert_eq!(human_minutes(1), "1 minute");
        assert_eq!(human_minutes(15), "15 minutes");
        assert_eq!(human_minutes(60), "1 hour");
        assert_eq!(human_minutes(90), "90 minutes");
        assert_eq!(human_minutes(120), "2 hours");
        assert_eq!(human_minutes(1440), "1 day");
        assert_eq!(human_minutes(4320), "3 days");
        assert_eq!(human_minutes(0), "0 minutes");
    }

    #[test]
    fn reset_mail_names_product_link_lifetime_and_the_ignore_line() {
        let m = Email::reset_password("Acme ID", "ann@example.com", LINK, 60);
        assert_eq!(m.to, "ann@example.com");
        assert!(m.subject.contains("Acme ID") && m.subject.contains("password"));
        for body in [&m.text, &m.html] {
            assert!(body.contains("Acme ID"));
            assert!(body.contains(LINK));
            assert!(body.contains("1 hour"));
            assert!(body.contains("If you did not ask to reset your password"));
            assert!(body.contains("your password is unchanged"));
        }
        assert!(m.html.contains(&format!("<a href=\"{LINK}\"")));
        assert!(
            m.html.contains(&format!(">{LINK}</span>")),
            "the link is visible text too"
        );
    }

    #[test]
    fn verify_mail_has_link_lifetime_and_ignore_line() {
        let m = Email::verify_email("Acme ID", "ann@example.com", LINK, 60 * 24);
        assert!(m.subject.contains("Acme ID"));
        for body in [&m.text, &m.html] {
            assert!(body.contains(LINK));
            assert!(body.contains("1 day"));
            assert!(body.contains("If you did not ask for this, you can ignore this email"));
        }
        assert!(m.html.contains(&format!("<a href=\"{LINK}\"")));
    }

    #[test]
    fn password_changed_mail_has_no_link_and_says_what_to_do() {
        let m = Email::password_changed("Acme ID", "ann@example.com");
        assert!(m.subject.to_lowercase().contains("password"));
        for body in [&m.text, &m.html] {
            assert!(body.contains("Acme ID"));
            assert!(body.contains("contact support"));
            assert!(body.contains("reset your password"));
            assert!(!body.contains("http"));
        }
        assert!(!m.html.contains("<a "));
    }

    #[test]
    fn everything_interpolated_is_escaped_in_html() {
        let product = "<b>Evil & Co</b>";
        let link = "https://x.example/reset-password?token=t&next=\"><script>";
        let m = Email::reset_password(product, "a'b@example.com", link, 30);
        assert!(!m.html.contains("<b>") && !m.html.contains("<script>"));
        assert!(m.html.contains("&lt;b&gt;Evil &amp; Co&lt;/b&gt;"));
        assert!(m.html.contains("a&#39;b@example.com"));
        assert!(m.html.contains("token=t&amp;next=&quot;&gt;&lt;script&gt;"));
        // the text part is not HTML: it keeps the characters as they are
        assert!(m.text.contains(product) && m.text.contains(link));
    }

    #[test]
    fn html_is_self_contained() {
        for m in [
            Email::reset_password("P", "a@example.com", LINK, 60),
            Email::verify_email("P", "a@example.com", LINK, 60),
            Email::password_changed("P", "a@example.com"),
        ] {
            assert!(m.html.starts_with("<!DOCTYPE html>"));
            assert!(
                !m.html.contains("<img") && !m.html.contains("<link") && !m.html.contains("<style")
            );
            assert!(!m.html.contains("<script"));
        }
    }

    #[test]
    fn debug_shows_neither_bodies_nor_the_local_part() {
        let m = Email::reset_password("P", "secret-person@example.com", LINK, 60);
        let debug = format!("{m:?}");
        assert!(
            debug.contains("*@example.com") && debug.contains(&m.subject),
            "{debug}"
        );
        assert!(
            !debug.contains("token") && !debug.contains("secret-person"),
            "{debug}"
        );
    }

    #[test]
    fn json_round_trip() {
        let m = Email::verify_email("P", "a@example.com", LINK, 60);
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(json["to"], "a@example.com");
        assert_eq!(json.as_object().unwrap().len(), 4);
        let back: Email = serde_json::from_value(json).unwrap();
        assert_eq!(back, m);
    }
}
