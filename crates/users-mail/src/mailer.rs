//! Delivery: over SMTP, or into a folder of `.eml` files.

use std::{
    fmt,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, OnceLock,
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use lettre::{
    message::{header::ContentTransferEncoding, Body, Mailbox, MultiPart, SinglePart},
    transport::smtp::{
        authentication::Credentials,
        client::{Tls, TlsParameters},
        AsyncSmtpTransportBuilder,
    },
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
};
use secrecy::{ExposeSecret, SecretString};
use url::{Host, Url};

use crate::{Email, MailError};

/// Where and how mail goes; validated by [`Mailer::new`].
pub struct MailConfig {
    /// `None`: write `.eml` files into `mail_dir`.
    pub smtp_url: Option<SecretString>,
    pub mail_dir: PathBuf,
    /// e.g. `users <noreply@localhost>`
    pub from: String,
    /// Per SMTP operation (connect, each command).
    pub timeout: Duration,
}

/// Sends mails. Cheap to clone: clones share one SMTP connection pool, which lives on
/// the Tokio runtime of the first `send`, so send from one long-lived runtime.
#[derive(Clone)]
pub struct Mailer {
    from: Mailbox,
    delivery: Arc<Delivery>,
}

enum Delivery {
    Smtp {
        // The pool spawns a task on the current Tokio runtime when it is built, so it
        // is built on the first send (always inside a runtime) rather than in `new`.
        builder: Box<AsyncSmtpTransportBuilder>,
        transport: OnceLock<AsyncSmtpTransport<Tokio1Executor>>,
        description: String,
    },
    Folder {
        dir: PathBuf,
    },
}

impl fmt::Debug for Mailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mailer")
            .field("from", &self.from.to_string())
            .field("delivery", &self.describe())
            .finish()
    }
}

impl Mailer {
    /// Validates everything up front: SMTP_URL syntax, From address. Errors say what is wrong.
    pub fn new(config: &MailConfig) -> Result<Mailer, MailError> {
        let from: Mailbox = config.from.trim().parse().map_err(|e| {
            MailError::Config(format!(
                "From address `{}` is not valid ({e}); use `name <user@domain>` or `user@domain`",
                config.from
            ))
        })?;
        if config.timeout.is_zero() {
            return Err(MailError::Config(
                "the SMTP timeout must be positive".into(),
            ));
        }
        let delivery = match &config.smtp_url {
            Some(url) => {
                let target = SmtpTarget::parse(url.expose_secret())?;
                let description = target.describe();
                Delivery::Smtp {
                    builder: Box::new(target.builder()?.timeout(Some(config.timeout))),
                    transport: OnceLock::new(),
                    description,
                }
            }
            None => {
                if config.mail_dir.exists() && !config.mail_dir.is_dir() {
                    return Err(MailError::Config(format!(
                        "mail folder {} exists and is not a folder",
                        config.mail_dir.display()
                    )));
                }
                Delivery::Folder {
                    dir: config.mail_dir.clone(),
                }
            }
        };
        Ok(Mailer {
            from,
            delivery: Arc::new(delivery),
        })
    }

    /// Sends `email` under a new Message-ID.
    pub async fn send(&self, email: &Email) -> Result<(), MailError> {
        self.deliver(email, &uuid::Uuid::new_v4().to_string()).await
    }

    /// Sends `email` under the Message-ID `<id@domain of the sender>`, `id` being the
    /// caller's lasting name for this mail (its outbox row): sent again after a crash
    /// between the SMTP server's acceptance and its recording, it carries the same
    /// Message-ID, so the receiving side can tell the repeat. `id`: 1 to 128 of
    /// `A-Z a-z 0-9 - _ .`, not starting or ending with a dot.
    pub async fn send_as(&self, email: &Email, id: &str) -> Result<(), MailError> {
        let shaped = (1..=128).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            && !id.starts_with('.')
            && !id.ends_with('.')
            && !id.contains("..");
        if !shaped {
            return Err(MailError::Permanent(
                "the message id is not a dot-atom of letters, digits, - _ and .".into(),
            ));
        }
        self.deliver(email, id).await
    }

    async fn deliver(&self, email: &Email, id: &str) -> Result<(), MailError> {
        let message = self.message(email, id)?;
        match &*self.delivery {
            Delivery::Smtp {
                builder, transport, ..
            } => {
                let transport = transport.get_or_init(|| (**builder).clone().build());
                transport.send(message).await.map_err(classify)?;
                Ok(())
            }
            Delivery::Folder { dir } => {
                let dir = dir.clone();
                let bytes = message.formatted();
                tokio::task::spawn_blocking(move || write_eml(&dir, &bytes))
                    .await
                    .map_err(|e| MailError::Transient(format!("mail folder task failed: {e}")))?
            }
        }
    }

    /// For logs: "smtp://host:port (starttls)" without credentials, or "folder mail (<dir>)".
    pub fn describe(&self) -> String {
        match &*self.delivery {
            Delivery::Smtp { description, .. } => description.clone(),
            Delivery::Folder { dir } => format!("folder mail ({})", dir.display()),
        }
    }

    fn message(&self, email: &Email, id: &str) -> Result<Message, MailError> {
        let to: Mailbox = email
            .to
            .parse()
            .map_err(|e| MailError::Permanent(format!("recipient address is not valid: {e}")))?;
        // The sender's domain, not this machine's host name, identifies the message.
        let message_id = format!("<{id}@{}>", self.from.email.domain());
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(email.subject.as_str())
            .date_now()
            .message_id(Some(message_id))
            .multipart(
                MultiPart::alternative()
                    .singlepart(SinglePart::plain(encode_body(&email.text)))
                    .singlepart(SinglePart::html(encode_body(&email.html))),
            )
            .map_err(|e| MailError::Permanent(format!("cannot build the message: {e}")))
    }
}

/// Prefers 7bit, which RFC 5322 allows up to 998 characters a line: lettre's own
/// choice switches to quoted-printable past 76, which splits the links (`=` soft
/// breaks, `token=3D…`) in the `.eml` files a developer opens to copy them from.
fn encode_body(content: &str) -> Body {
    let seven_bit = content.is_ascii()
        && !content.contains(['\0', '\r'])
        && content.split('\n').all(|line| line.len() <= 998);
    if seven_bit {
        Body::dangerous_pre_encoded(
            content.replace('\n', "\r\n").into_bytes(),
            ContentTransferEncoding::SevenBit,
        )
    } else {
        Body::new(content.to_owned())
    }
}

/// Only a 5xx reply says the same mail will never go through; anything else (refused
/// connection, time-out, TLS trouble, 4xx) may pass on a later try.
fn classify(e: lettre::transport::smtp::Error) -> MailError {
    if e.is_permanent() {
        MailError::Permanent(e.to_string())
    } else {
        MailError::Transient(e.to_string())
    }
}

/// Writes atomically (temporary file, then rename) so a reader of the folder never
/// sees half a message; names sort by time and cannot collide.
fn write_eml(dir: &Path, bytes: &[u8]) -> Result<(), MailError> {
    use std::io::Write;

    let io = |what: &str, e: std::io::Error| {
        MailError::Transient(format!("mail folder {}: {what}: {e}", dir.display()))
    };
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|e| io("cannot create it", e))?;

    // Mails written in the same millisecond still sort in the order they were sent. The
    // time only orders file names; no rule depends on it (clippy.toml's clock rule).
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let id = uuid::Uuid::new_v4();
    #[allow(clippy::disallowed_methods)]
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    let final_path = dir.join(format!("{millis:013}-{sequence:09}-{id}.eml"));
    let temp_path = dir.join(format!(".{id}.eml.tmp"));

    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    // The files hold single-use tokens.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let result = options
        .open(&temp_path)
        .and_then(|mut file| {
            file.write_all(bytes)?;
            file.sync_all()
        })
        .and_then(|()| std::fs::rename(&temp_path, &final_path));
    if let Err(e) = result {
        let _ = std::fs::remove_file(&temp_path);
        return Err(io("cannot write a mail file", e));
    }
    tracing::debug!(file = %final_path.display(), "mail written to the mail folder");
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Security {
    Plain,
    StartTls,
    ImplicitTls,
}

/// A parsed SMTP_URL. Deliberately not `Debug`: it holds the password.
struct SmtpTarget {
    host: String,
    port: u16,
    security: Security,
    credentials: Option<(String, String)>,
}

const URL_FORMS: &str = "use smtp://host:port, smtp://host:port?tls=starttls or \
                         smtps://host:port, with optional user:password@ before the host";

impl SmtpTarget {
    /// Error messages never quote the URL: it may hold a password.
    fn parse(raw: &str) -> Result<SmtpTarget, MailError> {
        let bad = |what: String| MailError::Config(format!("SMTP URL: {what}; {URL_FORMS}"));
        let url = Url::parse(raw.trim()).map_err(|e| bad(format!("not a valid URL ({e})")))?;
        let mut security = match url.scheme() {
            "smtp" => Security::Plain,
            "smtps" => Security::ImplicitTls,
            other => return Err(bad(format!("unsupported scheme `{other}`"))),
        };
        let host = match url.host() {
            Some(Host::Domain(d)) if !d.is_empty() => d.to_owned(),
            Some(Host::Ipv4(ip)) => ip.to_string(),
            Some(Host::Ipv6(ip)) => ip.to_string(),
            _ => return Err(bad("no host".into())),
        };
        let port = match url.port() {
            Some(0) => return Err(bad("port 0 is not usable".into())),
            Some(port) => port,
            None if security == Security::ImplicitTls => 465,
            None => 25,
        };
        if !matches!(url.path(), "" | "/") {
            return Err(bad("a path is not allowed".into()));
        }
        if url.fragment().is_some() {
            return Err(bad("a #fragment is not allowed".into()));
        }
        for (key, value) in url.query_pairs() {
            match (key.as_ref(), security) {
                ("tls", Security::Plain) if value.eq_ignore_ascii_case("starttls") => {
                    security = Security::StartTls;
                }
                ("tls", Security::ImplicitTls) => {
                    return Err(bad(
                        "smtps:// always uses implicit TLS and takes no ?tls= option".into(),
                    ))
                }
                ("tls", _) => {
                    return Err(bad(format!(
                        "unsupported tls=`{value}` (only tls=starttls is understood)"
                    )))
                }
                (key, _) => return Err(bad(format!("unknown option `{key}`"))),
            }
        }
        let credentials = match (url.username(), url.password()) {
            ("", None) => None,
            ("", Some(_)) => return Err(bad("a password without a user name".into())),
            (_, None) => return Err(bad("a user name without a password".into())),
            (user, Some(password)) => {
                let user = percent_decode(user).ok_or_else(|| {
                    bad("the user name is not valid UTF-8 once percent-decoded".into())
                })?;
                let password = percent_decode(password).ok_or_else(|| {
                    bad("the password is not valid UTF-8 once percent-decoded".into())
                })?;
                Some((user, password))
            }
        };
        Ok(SmtpTarget {
            host,
            port,
            security,
            credentials,
        })
    }

    fn describe(&self) -> String {
        let (scheme, mode) = match self.security {
            Security::Plain => ("smtp", "plain, no TLS"),
            Security::StartTls => ("smtp", "starttls"),
            Security::ImplicitTls => ("smtps", "implicit TLS"),
        };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let auth = if self.credentials.is_some() {
            ", with credentials"
        } else {
            ""
        };
        format!("{scheme}://{host}:{} ({mode}{auth})", self.port)
    }

    fn builder(&self) -> Result<AsyncSmtpTransportBuilder, MailError> {
        let tls_parameters = || {
            TlsParameters::new(self.host.clone())
                .map_err(|e| MailError::Config(format!("SMTP URL: cannot set up TLS: {e}")))
        };
        let tls = match self.security {
            Security::Plain => Tls::None,
            Security::StartTls => Tls::Required(tls_parameters()?),
            Security::ImplicitTls => Tls::Wrapper(tls_parameters()?),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&self.host)
            .port(self.port)
            .tls(tls);
        if let Some((user, password)) = &self.credentials {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        Ok(builder)
    }
}

/// Percent-decodes URL user info. `None` when the bytes are not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                let value = hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0);
                out.push(u8::try_from(value).unwrap_or(b'?'));
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn target(url: &str) -> SmtpTarget {
        match SmtpTarget::parse(url) {
            Ok(t) => t,
            Err(e) => panic!("{url}: {e}"),
        }
    }

    fn refused(url: &str) -> String {
        match SmtpTarget::parse(url) {
            Ok(t) => panic!("{url} was accepted as {}", t.describe()),
            Err(MailError::Config(e)) => e,
            Err(e) => panic!("{url}: not a config error: {e}"),
        }
    }

    #[test]
    fn accepted_forms() {
        let t = target("smtp://mail.example.com:2525");
        assert_eq!(
            (t.host.as_str(), t.port, t.security),
            ("mail.example.com", 2525, Security::Plain)
        );
        assert!(t.credentials.is_none());
        assert_eq!(t.describe(), "smtp://mail.example.com:2525 (plain, no TLS)");

        let t = target("smtp://mail.example.com");
        assert_eq!(t.port, 25);

        let t = target("smtp://mail.example.com:587?tls=starttls");
        assert_eq!((t.port, t.security), (587, Security::StartTls));
        assert_eq!(t.describe(), "smtp://mail.example.com:587 (starttls)");

        let t = target("smtps://user:pass@mail.example.com");
        assert_eq!((t.port, t.security), (465, Security::ImplicitTls));
        assert_eq!(t.credentials, Some(("user".into(), "pass".into())));

        let t = target("smtp://us%40er:p%3As%2Fs%20w%25@127.0.0.1:587/?tls=STARTTLS");
        assert_eq!(t.credentials, Some(("us@er".into(), "p:s/s w%".into())));
        assert_eq!(t.host, "127.0.0.1");
        assert_eq!(
            t.describe(),
            "smtp://127.0.0.1:587 (starttls, with credentials)"
        );

        let t = target("smtp://[::1]:2525");
        assert_eq!(t.host, "::1");
        assert_eq!(t.describe(), "smtp://[::1]:2525 (plain, no TLS)");
    }

    #[test]
    fn refused_forms_say_why_without_the_password() {
        for (url, why) in [
            ("http://host:25", "unsupported scheme `http`"),
            ("mailto:someone@example.com", "unsupported scheme `mailto`"),
            ("not a url", "not a valid URL"),
            ("smtp://host:99999", "not a valid URL"),
            ("smtp://host:0", "port 0"),
            ("smtp:///", "no host"),
            ("smtp://host:25/path", "path"),
            ("smtp://host:25#x", "fragment"),
            ("smtp://host:25?tls=required", "unsupported tls=`required`"),
            ("smtp://host:25?tls=none", "unsupported tls"),
            ("smtps://host?tls=starttls", "implicit TLS"),
            ("smtp://host:25?timeout=3", "unknown option `timeout`"),
            ("smtp://user@host:25", "without a password"),
            ("smtp://:hunter2@host:25", "without a user name"),
            ("smtp://user:%FF%FE@host:25", "not valid UTF-8"),
        ] {
            let e = refused(url);
            assert!(e.contains(why), "{url}: {e}");
            assert!(
                e.contains("smtp://host:port"),
                "the accepted forms are listed: {e}"
            );
            assert!(!e.contains("hunter2") && !e.contains("%FF"), "{e}");
        }
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b%2"), Some("a b%2".into()));
        assert_eq!(percent_decode("%zz%41"), Some("%zzA".into()));
        assert_eq!(percent_decode("%C3%A9"), Some("é".into()));
        assert_eq!(percent_decode("%FF"), None);
    }

    fn config(smtp_url: Option<&str>, from: &str) -> MailConfig {
        MailConfig {
            smtp_url: smtp_url.map(SecretString::from),
            mail_dir: PathBuf::from("mail"),
            from: from.into(),
            timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn mailer_new_validates_and_describes_without_secrets() {
        let m = Mailer::new(&config(
            Some("smtps://alice:s3cr3t-pw@smtp.example.com:465"),
            "users <noreply@localhost>",
        ))
        .unwrap();
        assert_eq!(
            m.describe(),
            "smtps://smtp.example.com:465 (implicit TLS, with credentials)"
        );
        let debug = format!("{m:?}");
        assert!(
            !debug.contains("s3cr3t") && !debug.contains("alice"),
            "{debug}"
        );
        assert!(debug.contains("noreply@localhost"), "{debug}");

        let m = Mailer::new(&config(None, "noreply@example.com")).unwrap();
        assert_eq!(m.describe(), "folder mail (mail)");

        for from in ["", "not an address", "users <noreply>x", "a@b@c"] {
            match Mailer::new(&config(None, from)) {
                Err(MailError::Config(e)) => assert!(e.contains("From address"), "{e}"),
                other => panic!("{from:?}: {other:?}"),
            }
        }
        match Mailer::new(&config(
            Some("smtp://u:topsecret@host:25?tls=bogus"),
            "a@example.com",
        )) {
            Err(MailError::Config(e)) => assert!(!e.contains("topsecret"), "{e}"),
            other => panic!("{other:?}"),
        }
        let mut zero = config(None, "a@example.com");
        zero.timeout = Duration::ZERO;
        assert!(matches!(Mailer::new(&zero), Err(MailError::Config(_))));
    }

    #[test]
    fn mail_dir_that_is_a_file_is_refused() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let mut c = config(None, "a@example.com");
        c.mail_dir = file.path().to_owned();
        match Mailer::new(&c) {
            Err(MailError::Config(e)) => assert!(e.contains("not a folder"), "{e}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bodies_are_seven_bit_when_they_can_be() {
        let long_link = format!("https://x.example/reset-password?token={}", "a".repeat(300));
        let body = encode_body(&format!("Hello\n\n{long_link}\n"));
        assert_eq!(body.encoding(), ContentTransferEncoding::SevenBit);
        assert_eq!(
            body.as_ref(),
            format!("Hello\r\n\r\n{long_link}\r\n").as_bytes()
        );
        for other in ["café\n".to_owned(), "a".repeat(999)] {
            let body = encode_body(&other);
            assert_ne!(
                body.encoding(),
                ContentTransferEncoding::SevenBit,
                "{other:?}"
            );
            assert_ne!(
                body.encoding(),
                ContentTransferEncoding::EightBit,
                "{other:?}"
            );
        }
        assert_eq!(
            encode_body(&"a".repeat(998)).encoding(),
            ContentTransferEncoding::SevenBit
        );
    }

    #[test]
    fn bad_recipient_is_permanent() {
        let m = Mailer::new(&config(None, "a@example.com")).unwrap();
        let mut email = Email::password_changed("P", "x@example.com");
        email.to = "no address here".into();
        assert!(matches!(
            m.message(&email, "some-id"),
            Err(MailError::Permanent(_))
        ));
    }
}
