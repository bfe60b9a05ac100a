//! Delivery through a real SMTP server (the api tests' sink) and into a mail folder.

// Tests stand outside the service: they read the real clock to date the tokens and
// times they make (the service itself takes `now` as a parameter, see clippy.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use users_testkit::smtp_sink;

use std::{path::Path, time::Duration};

use secrecy::SecretString;
use smtp_sink::{ReceivedMail, SmtpSink};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
};
use users_mail::{Email, MailConfig, MailError, Mailer};

const WAIT: Duration = Duration::from_secs(10);
const RESET_LINK: &str = "http://users.example.com/reset-password?token=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwiYXVkIjoiZmFzdGFwaS11c2VyczpyZXNldCJ9.c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmU";
const RESET_TOKEN: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwiYXVkIjoiZmFzdGFwaS11c2VyczpyZXNldCJ9.c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmU";

fn mailer(smtp_url: Option<String>, mail_dir: &Path) -> Mailer {
    Mailer::new(&MailConfig {
        smtp_url: smtp_url.map(SecretString::from),
        mail_dir: mail_dir.to_owned(),
        from: "users <noreply@localhost>".into(),
        timeout: Duration::from_secs(5),
    })
    .unwrap()
}

fn smtp_mailer(url: String) -> Mailer {
    mailer(Some(url), Path::new("unused"))
}

fn assert_well_formed(mail: &ReceivedMail, to: &str) {
    let raw = &mail.data;
    assert!(raw.contains("\r\n"), "CRLF line endings");
    assert!(raw.contains("multipart/alternative"), "{raw}");
    assert!(raw.contains("text/plain; charset=utf-8"), "{raw}");
    assert!(raw.contains("text/html; charset=utf-8"), "{raw}");
    assert_eq!(mail.header("To").unwrap(), to);
    assert_eq!(mail.header("From").unwrap(), "users <noreply@localhost>");
    assert!(mail.header("Date").is_some(), "{raw}");
    let id = mail.header("Message-ID").unwrap();
    assert!(id.starts_with('<') && id.ends_with("@localhost>"), "{id}");
    assert!(mail.header("MIME-Version").is_some());
}

#[tokio::test]
async fn the_three_mails_arrive_over_smtp() {
    let sink = SmtpSink::start().await;
    let mailer = smtp_mailer(sink.url());
    assert_eq!(
        mailer.describe(),
        format!("smtp://127.0.0.1:{} (plain, no TLS)", sink.port())
    );
    let verify_link = "http://users.example.com/verify?token=v.e.rify";
    mailer
        .send(&Email::reset_password(
            "Café ID",
            "ann@example.com",
            RESET_LINK,
            60,
        ))
        .await
        .unwrap();
    mailer
        .send(&Email::verify_email(
            "Café ID",
            "bob@example.com",
            verify_link,
            1440,
        ))
        .await
        .unwrap();
    mailer
        .send(&Email::password_changed("Café ID", "ann@example.com"))
        .await
        .unwrap();

    let mails = sink.wait_for(3, WAIT).await;
    assert_eq!(mails.len(), 3);
    for m in &mails {
        assert_eq!(m.mail_from, "noreply@localhost");
    }
    let [reset, verify, changed] = &mails[..] else {
        unreachable!()
    };

    assert_eq!(reset.rcpt_to, vec!["ann@example.com"]);
    assert_well_formed(reset, "ann@example.com");
    assert_eq!(reset.subject().unwrap(), "Reset your Café ID password");
    let text = reset.text_body().unwrap();
    assert!(text.contains(RESET_LINK), "{text}");
    assert!(
        text.contains("Café ID") && text.contains("1 hour"),
        "{text}"
    );
    assert!(text.contains("your password is unchanged"), "{text}");
    let html = reset.html_body().unwrap();
    assert!(
        html.contains(&format!("<a href=\"{RESET_LINK}\"")),
        "{html}"
    );
    assert_eq!(reset.link_token("/reset-password").unwrap(), RESET_TOKEN);
    assert!(reset.link_token("/verify").is_none());

    assert_eq!(verify.rcpt_to, vec!["bob@example.com"]);
    assert_well_formed(verify, "bob@example.com");
    assert_eq!(verify.link_token("/verify").unwrap(), "v.e.rify");
    assert!(verify.text_body().unwrap().contains("1 day"));
    assert!(verify.html_body().unwrap().contains(verify_link));

    assert_well_formed(changed, "ann@example.com");
    assert!(changed.subject().unwrap().contains("password was changed"));
    assert!(changed.text_body().unwrap().contains("contact support"));
    assert!(changed.link_token("/reset-password").is_none());
}

/// A mail sent under a lasting name keeps its Message-ID when it is sent again (the
/// outbox's one at-least-once point); plain sends get a new one each time.
#[tokio::test]
async fn a_named_mail_keeps_its_message_id() {
    let sink = SmtpSink::start().await;
    let mailer = smtp_mailer(sink.url());
    let email = Email::password_changed("P", "ann@example.com");
    let id = "0193a4f2-7c1e-7d2b-9a11-5be2c8f0e6d4";
    mailer.send_as(&email, id).await.unwrap();
    mailer.send_as(&email, id).await.unwrap();
    mailer.send(&email).await.unwrap();
    mailer.send(&email).await.unwrap();
    let ids: Vec<String> = sink
        .wait_for(4, WAIT)
        .await
        .iter()
        .map(|m| m.header("Message-ID").unwrap())
        .collect();
    let named = format!("<{id}@localhost>");
    assert_eq!(ids[0], named);
    assert_eq!(ids[1], named);
    assert_ne!(ids[2], named);
    assert_ne!(ids[2], ids[3]);
    for bad in [
        "",
        "a b",
        "<x>",
        "x@y",
        ".x",
        "x.",
        "a..b",
        &"x".repeat(129),
    ] {
        assert!(
            matches!(
                mailer.send_as(&email, bad).await,
                Err(MailError::Permanent(_))
            ),
            "{bad:?}"
        );
    }
    assert_eq!(sink.messages().len(), 4, "nothing sent under a bad id");
}

#[tokio::test]
async fn credentials_are_percent_decoded_and_sent() {
    let sink = SmtpSink::start().await;
    let url = format!("smtp://us%40er:p%3Ass%20w@127.0.0.1:{}", sink.port());
    let mailer = smtp_mailer(url);
    let described = mailer.describe();
    assert!(
        described.ends_with("(plain, no TLS, with credentials)"),
        "{described}"
    );
    assert!(
        !described.contains("us%40er") && !described.contains("p%3Ass"),
        "{described}"
    );
    mailer
        .send(&Email::password_changed("P", "ann@example.com"))
        .await
        .unwrap();
    sink.wait_for(1, WAIT).await;
    assert_eq!(
        sink.logins(),
        vec![("us@er".to_owned(), "p:ss w".to_owned())]
    );
}

#[tokio::test]
async fn many_mails_over_pooled_connections() {
    let sink = SmtpSink::start().await;
    let mailer = smtp_mailer(sink.url());
    let sends = (0..8).map(|i| {
        let mailer = mailer.clone();
        async move {
            let to = format!("user{i}@example.com");
            mailer.send(&Email::password_changed("P", &to)).await
        }
    });
    for result in futures_join_all(sends).await {
        result.unwrap();
    }
    for i in 8..12 {
        mailer
            .send(&Email::password_changed(
                "P",
                &format!("user{i}@example.com"),
            ))
            .await
            .unwrap();
    }
    let mut got: Vec<String> = sink
        .wait_for(12, WAIT)
        .await
        .into_iter()
        .flat_map(|m| m.rcpt_to)
        .collect();
    got.sort();
    let mut expected: Vec<String> = (0..12).map(|i| format!("user{i}@example.com")).collect();
    expected.sort();
    assert_eq!(got, expected);
}

/// Runs futures concurrently on the current task (no extra dependency for join_all).
async fn futures_join_all<F: std::future::Future + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test]
async fn nothing_listening_is_transient() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mailer = smtp_mailer(format!("smtp://127.0.0.1:{port}"));
    match mailer
        .send(&Email::password_changed("P", "ann@example.com"))
        .await
    {
        Err(MailError::Transient(e)) => assert!(!e.is_empty()),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn refused_recipient_is_permanent_and_the_next_mail_still_goes() {
    let sink = SmtpSink::start().await;
    sink.refuse_recipients_containing("blocked");
    let mailer = smtp_mailer(sink.url());
    match mailer
        .send(&Email::password_changed("P", "Blocked@example.com"))
        .await
    {
        Err(MailError::Permanent(e)) => assert!(e.contains("550"), "{e}"),
        other => panic!("{other:?}"),
    }
    mailer
        .send(&Email::password_changed("P", "fine@example.com"))
        .await
        .unwrap();
    let mails = sink.wait_for(1, WAIT).await;
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].rcpt_to, vec!["fine@example.com"]);
}

#[tokio::test]
async fn smtp_coming_back_up_on_the_same_port() {
    let sink = SmtpSink::start().await;
    let port = sink.port();
    let mailer = smtp_mailer(sink.url());
    mailer
        .send(&Email::password_changed("P", "one@example.com"))
        .await
        .unwrap();
    sink.stop();
    sink.stop(); // idempotent
    assert!(
        std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
        "the port is free once stopped"
    );
    match mailer
        .send(&Email::password_changed("P", "two@example.com"))
        .await
    {
        Err(MailError::Transient(_)) => {}
        other => panic!("{other:?}"),
    }
    let again = SmtpSink::start_on(port).await;
    mailer
        .send(&Email::password_changed("P", "three@example.com"))
        .await
        .unwrap();
    let mails = again.wait_for(1, WAIT).await;
    assert_eq!(mails[0].rcpt_to, vec!["three@example.com"]);
    assert_eq!(sink.messages().len(), 1, "the first sink keeps what it had");
}

#[tokio::test]
async fn folder_mode_writes_complete_eml_files() {
    let dir = tempfile::tempdir().unwrap();
    let mail_dir = dir.path().join("not").join("yet");
    let mailer = mailer(None, &mail_dir);
    assert!(mailer.describe().starts_with("folder mail"));
    mailer
        .send(&Email::reset_password(
            "P",
            "ann@example.com",
            RESET_LINK,
            30,
        ))
        .await
        .unwrap();
    mailer
        .send(&Email::verify_email(
            "P",
            "bob@example.com",
            "http://x.example/verify?token=abc",
            30,
        ))
        .await
        .unwrap();

    let mut names: Vec<String> = std::fs::read_dir(&mail_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names.len(), 2, "no temporary files are left: {names:?}");
    for name in &names {
        // <unix millis>-<sequence>-<uuid>.eml
        let mut fields = name.splitn(3, '-');
        let millis = fields.next().unwrap();
        let sequence = fields.next().unwrap();
        let rest = fields.next().unwrap();
        assert!(millis.len() >= 13, "{name}");
        for number in [millis, sequence] {
            assert!(number.bytes().all(|b| b.is_ascii_digit()), "{name}");
        }
        assert!(rest.ends_with(".eml") && !rest.starts_with('.'), "{name}");
    }
    let read = |name: &str| {
        let data = std::fs::read_to_string(mail_dir.join(name)).unwrap();
        ReceivedMail {
            mail_from: String::new(),
            rcpt_to: vec![],
            data,
        }
    };
    let first = read(&names[0]);
    assert!(
        first.data.contains("To: ann@example.com\r\n"),
        "{}",
        first.data
    );
    assert_well_formed(&first, "ann@example.com");
    assert!(
        first.data.contains(RESET_LINK),
        "ASCII bodies are 7bit: the link reads as is"
    );
    assert_eq!(first.link_token("/reset-password").unwrap(), RESET_TOKEN);
    assert!(first.html_body().unwrap().contains(RESET_TOKEN));
    let second = read(&names[1]);
    assert_eq!(second.link_token("/verify").unwrap(), "abc");

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(mail_dir.join(&names[0]))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "mail files hold tokens: {mode:o}");
    }
}

#[tokio::test]
async fn folder_write_failure_is_transient() {
    let dir = tempfile::tempdir().unwrap();
    let mail_dir = dir.path().join("mail");
    let mailer = mailer(None, &mail_dir);
    // created after the mailer, so `new` could not catch it
    std::fs::write(&mail_dir, b"a file where the folder should be").unwrap();
    match mailer
        .send(&Email::password_changed("P", "ann@example.com"))
        .await
    {
        Err(MailError::Transient(e)) => assert!(e.contains("mail folder"), "{e}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn every_smtp_url_form_is_validated() {
    let cfg = |url: &str| MailConfig {
        smtp_url: Some(SecretString::from(url)),
        mail_dir: "mail".into(),
        from: "users <noreply@localhost>".into(),
        timeout: Duration::from_secs(5),
    };
    // building a mailer needs no runtime and no network
    for (url, described) in [
        (
            "smtp://mail.example.com:2525",
            "smtp://mail.example.com:2525 (plain, no TLS)",
        ),
        (
            "smtp://mail.example.com",
            "smtp://mail.example.com:25 (plain, no TLS)",
        ),
        (
            "smtp://mail.example.com:587?tls=starttls",
            "smtp://mail.example.com:587 (starttls)",
        ),
        (
            "smtp://me:pa%24%24word@mail.example.com:587?tls=starttls",
            "smtp://mail.example.com:587 (starttls, with credentials)",
        ),
        (
            "smtps://me:pa%24%24word@mail.example.com",
            "smtps://mail.example.com:465 (implicit TLS, with credentials)",
        ),
        (
            "smtps://mail.example.com:2465",
            "smtps://mail.example.com:2465 (implicit TLS)",
        ),
    ] {
        let mailer = Mailer::new(&cfg(url)).unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(mailer.describe(), described);
        let debug = format!("{mailer:?}");
        assert!(
            !debug.contains("pa%24") && !debug.contains("pa$$") && !debug.contains("me:"),
            "{debug}"
        );
    }
    for url in [
        "http://mail.example.com",
        "smtp://mail.example.com?tls=yes",
        "smtps://mail.example.com?tls=starttls",
        "smtp://me@mail.example.com",
        "smtp://me:pa%24%24word@mail.example.com/x",
        "",
    ] {
        match Mailer::new(&cfg(url)) {
            Err(e @ MailError::Config(_)) => {
                let message = e.to_string();
                assert!(
                    message.starts_with("invalid mail configuration: SMTP URL:"),
                    "{message}"
                );
                assert!(
                    !message.contains("pa%24") && !message.contains("pa$$"),
                    "{message}"
                );
            }
            other => panic!("{url}: {other:?}"),
        }
    }
}

// ---- the sink itself ----------------------------------------------------------------

struct Client {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
}

impl Client {
    async fn connect(port: u16) -> Client {
        let (r, w) = TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap()
            .into_split();
        let mut c = Client {
            reader: BufReader::new(r),
            writer: w,
        };
        assert!(c.reply().await.starts_with("220 "));
        c
    }

    /// A whole reply, continuation lines included.
    async fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).await.unwrap();
            assert!(line.ends_with("\r\n"), "{line:?}");
            all.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return all;
            }
        }
    }

    async fn send(&mut self, line: &str) -> String {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .unwrap();
        self.reply().await
    }
}

#[tokio::test]
async fn the_sink_speaks_smtp() {
    let sink = SmtpSink::start().await;
    let mut c = Client::connect(sink.port()).await;
    let ehlo = c.send("EHLO client.example").await;
    for ext in ["250-8BITMIME", "AUTH PLAIN LOGIN", "SMTPUTF8", "250 SIZE"] {
        assert!(ehlo.contains(ext), "{ehlo}");
    }
    assert!(!ehlo.contains("STARTTLS"));
    assert!(c.send("FROBNICATE").await.starts_with("500 "));
    assert!(c.send("STARTTLS").await.starts_with("500 "));
    assert!(
        c.send("RCPT TO:<a@example.com>").await.starts_with("503 "),
        "MAIL first"
    );
    assert!(c.send("AUTH LOGIN").await.starts_with("334 VXNlcm5hbWU6"));
    assert!(c.send("dXNlcg==").await.starts_with("334 UGFzc3dvcmQ6")); // "user"
    assert!(c.send("c2VjcmV0").await.starts_with("235 ")); // "secret"
    assert!(c.send("NOOP").await.starts_with("250 "));
    assert!(c
        .send("MAIL FROM:<drop@example.com>")
        .await
        .starts_with("250 "));
    assert!(c.send("RSET").await.starts_with("250 "));
    assert!(c
        .send("mail from:<from@example.com> BODY=8BITMIME")
        .await
        .starts_with("250 "));
    assert!(c.send("RCPT TO:<a@example.com>").await.starts_with("250 "));
    assert!(c.send("RCPT TO:<b@example.com>").await.starts_with("250 "));
    assert!(c.send("DATA").await.starts_with("354 "));
    let body = "Subject: =?utf-8?b?SMOpbGxv?= =?utf-8?q?_w=C3=B6rld?=\r\n\
                Content-Type: text/plain; charset=utf-8\r\n\
                Content-Transfer-Encoding: quoted-printable\r\n\
                \r\n\
                ..a line that starts with a dot\r\n\
                a soft =\r\n\
                break and caf=C3=A9 http://x.example/reset-password?token=a%2Bb&x=1\r\n\
                .\r\n";
    c.writer.write_all(body.as_bytes()).await.unwrap();
    assert!(c.reply().await.starts_with("250 "));
    assert!(c.send("QUIT").await.starts_with("221 "));

    let mails = sink.wait_for(1, WAIT).await;
    let m = &mails[0];
    assert_eq!(m.mail_from, "from@example.com");
    assert_eq!(m.rcpt_to, vec!["a@example.com", "b@example.com"]);
    assert!(
        m.data.contains("\r\n.a line that starts with a dot\r\n"),
        "dot-unstuffed: {}",
        m.data
    );
    assert!(!m.data.contains("\r\n.\r\n"));
    assert_eq!(m.subject().unwrap(), "Héllo wörld");
    assert_eq!(
        m.text_body().unwrap(),
        ".a line that starts with a dot\na soft break and café http://x.example/reset-password?token=a%2Bb&x=1\n"
    );
    assert_eq!(m.link_token("/reset-password").unwrap(), "a+b");
    assert!(m.html_body().is_none());
    assert_eq!(
        sink.logins(),
        vec![("user".to_owned(), "secret".to_owned())]
    );
}

#[tokio::test]
async fn the_sink_auth_plain_and_refusals() {
    let sink = SmtpSink::start().await;
    sink.refuse_recipients_containing("@nope.example");
    let mut c = Client::connect(sink.port()).await;
    assert!(c.send("HELO client").await.starts_with("250 "));
    assert!(c.send("AUTH CRAM-MD5").await.starts_with("504 "));
    assert!(c.send("AUTH PLAIN").await.starts_with("334"));
    assert!(c.send("AHVAaABwdw==").await.starts_with("235 ")); // \0u@h\0pw
    assert!(c.send("MAIL FROM:<>").await.starts_with("250 "));
    assert!(c.send("DATA").await.starts_with("503 "), "no recipient yet");
    assert!(c.send("RCPT TO:<x@NOPE.example>").await.starts_with("550 "));
    assert!(c.send("RCPT TO:<y@ok.example>").await.starts_with("250 "));
    assert!(c.send("DATA").await.starts_with("354 "));
    c.writer
        .write_all(b"Content-Type: multipart/alternative; boundary=\"BB\"\r\n\r\npreamble\r\n--BB\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\naGVsbG8g\r\nd29ybGQ=\r\n--BB\r\nContent-Type: text/html\r\n\r\n<p>hi</p>\r\n--BB--\r\n.\r\n")
        .await
        .unwrap();
    assert!(c.reply().await.starts_with("250 "));
    let m = &sink.wait_for(1, WAIT).await[0];
    assert_eq!(m.mail_from, "");
    assert_eq!(m.rcpt_to, vec!["y@ok.example"]);
    assert_eq!(m.text_body().unwrap(), "hello world");
    assert_eq!(m.html_body().unwrap(), "<p>hi</p>");
    assert!(m.subject().is_none());
    assert_eq!(sink.logins(), vec![("u@h".to_owned(), "pw".to_owned())]);
}

#[tokio::test]
#[should_panic(expected = "waited")]
async fn wait_for_gives_up() {
    let sink = SmtpSink::start().await;
    sink.wait_for(1, Duration::from_millis(100)).await;
}
