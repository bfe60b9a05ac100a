//! A real SMTP server for tests: listens on 127.0.0.1, speaks enough ESMTP for lettre
//! (EHLO/HELO, AUTH PLAIN/LOGIN accepting any credentials, MAIL, RCPT, DATA, RSET, NOOP,
//! QUIT), and keeps every message it accepts in memory.
//!
//! It runs on a thread of its own with its own Tokio runtime, so it keeps answering
//! whatever the test's runtime is doing, and stopping it really closes the port.
//!
//! Shared by the api tests and users-mail's own tests; it depends only on std and tokio.
//! Reading what arrived (MIME parts, encodings, links) is `mime`.

mod mime;

use mime::base64_decode;

use std::{
    io::ErrorKind,
    sync::{Arc, Mutex},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{
        tcp::{OwnedReadHalf, OwnedWriteHalf},
        TcpStream,
    },
    sync::oneshot,
};

/// Longest command line or message accepted; beyond that the client gets an error.
const MAX_LINE: usize = 64 * 1024;
const MAX_MESSAGE: usize = 25 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct ReceivedMail {
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    /// The raw message after dot-unstuffing, line endings as received (CRLF).
    pub data: String,
}

#[derive(Default)]
struct Shared {
    messages: Mutex<Vec<ReceivedMail>>,
    refused: Mutex<Vec<String>>,
    logins: Mutex<Vec<(String, String)>>,
    /// How long the reply to a message's final dot waits after the message is kept.
    reply_delay: Mutex<Duration>,
}

pub struct SmtpSink {
    port: u16,
    shared: Arc<Shared>,
    stop: Mutex<Option<oneshot::Sender<()>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

#[allow(dead_code)]
impl SmtpSink {
    /// A sink on 127.0.0.1 and a free port.
    pub async fn start() -> SmtpSink {
        Self::start_on(0).await
    }

    /// A sink on a given port, e.g. where a server under test expects SMTP to come back.
    /// Waits a few seconds for the port if something still holds it.
    pub async fn start_on(port: u16) -> SmtpSink {
        let deadline = Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match std::net::TcpListener::bind(("127.0.0.1", port)) {
                Ok(listener) => break listener,
                Err(e) if e.kind() == ErrorKind::AddrInUse && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("smtp sink: cannot listen on 127.0.0.1:{port}: {e}"),
            }
        };
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let port = listener.local_addr().expect("listener address").port();
        let shared = Arc::new(Shared::default());
        let (stop_tx, stop_rx) = oneshot::channel();
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("smtp-sink-{port}"))
                .spawn(move || run(listener, shared, stop_rx))
                .expect("spawn the smtp sink thread")
        };
        SmtpSink {
            port,
            shared,
            stop: Mutex::new(Some(stop_tx)),
            thread: Mutex::new(Some(thread)),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `smtp://127.0.0.1:<port>`, for SMTP_URL.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message accepted so far, in order of arrival.
    pub fn messages(&self) -> Vec<ReceivedMail> {
        self.shared.messages.lock().unwrap().clone()
    }

    /// (user, password) of every successful AUTH, in order.
    pub fn logins(&self) -> Vec<(String, String)> {
        self.shared.logins.lock().unwrap().clone()
    }

    /// Waits for the first message whose subject contains `text` (other mails, such as
    /// security notices, may arrive around it), or panics after `timeout`.
    pub async fn wait_for_subject(&self, text: &str, timeout: Duration) -> ReceivedMail {
        let deadline = Instant::now() + timeout;
        loop {
            let found = self
                .messages()
                .into_iter()
                .find(|m| m.subject().is_some_and(|s| s.contains(text)));
            if let Some(mail) = found {
                return mail;
            }
            if Instant::now() >= deadline {
                let subjects: Vec<_> = self.messages().iter().map(|m| m.subject()).collect();
                panic!("smtp sink: no mail about {text:?} within {timeout:?}; got {subjects:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until at least `n` messages arrived, or panics after `timeout` with what it has.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<ReceivedMail> {
        let deadline = Instant::now() + timeout;
        loop {
            let messages = self.messages();
            if messages.len() >= n {
                return messages;
            }
            if Instant::now() >= deadline {
                let summary: Vec<_> = messages
                    .iter()
                    .map(|m| format!("to {:?}: {:?}", m.rcpt_to, m.subject()))
                    .collect();
                panic!(
                    "smtp sink on port {}: waited {timeout:?} for {n} message(s), got {}: {summary:#?}",
                    self.port,
                    messages.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Answers RCPT TO with 550 for recipients containing `needle` (case-insensitive).
    pub fn refuse_recipients_containing(&self, needle: &str) {
        self.shared
            .refused
            .lock()
            .unwrap()
            .push(needle.to_lowercase());
    }

    /// From now on, keeps each message as it arrives but answers its final dot only
    /// `delay` later: a slow server, from the sender's side.
    pub fn delay_replies_to_data(&self, delay: Duration) {
        *self.shared.reply_delay.lock().unwrap() = delay;
    }

    /// Stops accepting, closes the listener (the port is free once this returns) and
    /// drops open connections, as a server going down would. Idempotent.
    pub fn stop(&self) {
        if let Some(stop) = self.stop.lock().unwrap().take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.lock().unwrap().take() {
            let _ = thread.join();
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(listener: std::net::TcpListener, shared: Arc<Shared>, mut stop: oneshot::Receiver<()>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("smtp sink runtime");
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
        loop {
            tokio::select! {
                _ = &mut stop => break,
                accepted = listener.accept() => {
                    if let Ok((stream, _)) = accepted {
                        tokio::spawn(Session::serve(stream, shared.clone()));
                    }
                }
            }
        }
    });
    // Dropping the runtime drops every session task, closing their sockets.
    drop(runtime);
}

struct Session {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    shared: Arc<Shared>,
    mail_from: Option<String>,
    rcpt_to: Vec<String>,
    authenticated: bool,
}

/// Why a session ends early: the peer went away, or broke the protocol beyond repair.
struct Closed;

impl Session {
    async fn serve(stream: TcpStream, shared: Arc<Shared>) {
        let (reader, writer) = stream.into_split();
        let mut session = Session {
            reader: BufReader::new(reader),
            writer,
            shared,
            mail_from: None,
            rcpt_to: Vec::new(),
            authenticated: false,
        };
        let _ = session.run().await;
    }

    async fn reply(&mut self, text: &str) -> Result<(), Closed> {
        self.writer
            .write_all(format!("{text}\r\n").as_bytes())
            .await
            .map_err(|_| Closed)
    }

    /// One line including its line ending; `Closed` at end of stream.
    async fn read_line(&mut self) -> Result<Vec<u8>, Closed> {
        let mut line = Vec::new();
        let n = (&mut self.reader)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut line)
            .await
            .map_err(|_| Closed)?;
        if n == 0 {
            return Err(Closed);
        }
        Ok(line)
    }

    async fn read_command(&mut self) -> Result<String, Closed> {
        let line = self.read_line().await?;
        let line = String::from_utf8_lossy(&line);
        Ok(line.trim_end_matches(['\r', '\n']).to_owned())
    }

    async fn run(&mut self) -> Result<(), Closed> {
        self.reply("220 127.0.0.1 ESMTP smtp-sink ready").await?;
        loop {
            let line = self.read_command().await?;
            let (verb, arg) = match line.split_once(' ') {
                Some((verb, arg)) => (verb.to_ascii_uppercase(), arg.trim().to_owned()),
                None => (line.to_ascii_uppercase(), String::new()),
            };
            match verb.as_str() {
                "EHLO" => {
                    self.reset();
                    self.reply(&format!(
                        "250-127.0.0.1 greets {arg}\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n\
                         250-AUTH PLAIN LOGIN\r\n250 SIZE {MAX_MESSAGE}"
                    ))
                    .await?;
                }
                "HELO" => {
                    self.reset();
                    self.reply("250 127.0.0.1").await?;
                }
                "AUTH" => self.auth(&arg).await?,
                "MAIL" => {
                    let reply = match address_after(&arg, "FROM:") {
                        _ if self.mail_from.is_some() => "503 5.5.1 Nested MAIL command",
                        Some(from) => {
                            self.mail_from = Some(from);
                            "250 2.1.0 OK"
                        }
                        None => "501 5.5.4 Syntax: MAIL FROM:<address>",
                    };
                    self.reply(reply).await?;
                }
                "RCPT" => {
                    let reply = match address_after(&arg, "TO:") {
                        _ if self.mail_from.is_none() => "503 5.5.1 MAIL first".to_owned(),
                        Some(to) if self.is_refused(&to) => {
                            format!("550 5.1.1 <{to}>: Recipient address rejected")
                        }
                        Some(to) => {
                            self.rcpt_to.push(to);
                            "250 2.1.5 OK".to_owned()
                        }
                        None => "501 5.5.4 Syntax: RCPT TO:<address>".to_owned(),
                    };
                    self.reply(&reply).await?;
                }
                "DATA" => self.data().await?,
                "RSET" => {
                    self.reset();
                    self.reply("250 2.0.0 OK").await?;
                }
                "NOOP" => self.reply("250 2.0.0 OK").await?,
                "QUIT" => {
                    self.reply("221 2.0.0 Bye").await?;
                    return Ok(());
                }
                _ => self.reply("500 5.5.2 Command not recognized").await?,
            }
        }
    }

    fn reset(&mut self) {
        self.mail_from = None;
        self.rcpt_to.clear();
    }

    fn is_refused(&self, address: &str) -> bool {
        let address = address.to_lowercase();
        let refused = self.shared.refused.lock().unwrap();
        refused
            .iter()
            .any(|needle| address.contains(needle.as_str()))
    }

    async fn data(&mut self) -> Result<(), Closed> {
        if self.mail_from.is_none() || self.rcpt_to.is_empty() {
            return self.reply("503 5.5.1 RCPT first").await;
        }
        self.reply("354 End data with <CR><LF>.<CR><LF>").await?;
        let mut data = Vec::new();
        let mut too_big = false;
        loop {
            let line = self.read_line().await?;
            if line == b".\r\n" || line == b".\n" {
                break;
            }
            let line = line.strip_prefix(b".").unwrap_or(&line);
            too_big |= data.len() + line.len() > MAX_MESSAGE;
            if !too_big {
                data.extend_from_slice(line);
            }
        }
        if too_big {
            self.reset();
            return self.reply("552 5.3.4 Message too big").await;
        }
        let mail = ReceivedMail {
            mail_from: self.mail_from.take().unwrap_or_default(),
            rcpt_to: std::mem::take(&mut self.rcpt_to),
            data: String::from_utf8_lossy(&data).into_owned(),
        };
        let count = {
            let mut messages = self.shared.messages.lock().unwrap();
            messages.push(mail);
            messages.len()
        };
        let delay = *self.shared.reply_delay.lock().unwrap();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        self.reply(&format!("250 2.0.0 OK queued as {count}")).await
    }

    async fn auth(&mut self, arg: &str) -> Result<(), Closed> {
        if self.authenticated {
            return self.reply("503 5.5.1 Already authenticated").await;
        }
        let (mechanism, initial) = match arg.split_once(' ') {
            Some((m, i)) => (m.to_ascii_uppercase(), Some(i.trim().to_owned())),
            None => (arg.to_ascii_uppercase(), None),
        };
        let login = match mechanism.as_str() {
            "PLAIN" => {
                let response = match initial {
                    Some(i) if i != "=" => i,
                    Some(_) => String::new(),
                    None => {
                        self.reply("334 ").await?;
                        self.read_command().await?
                    }
                };
                if response == "*" {
                    return self.reply("501 5.7.0 Authentication cancelled").await;
                }
                // authorization identity NUL user NUL password
                base64_decode(&response).and_then(|raw| {
                    let mut fields = raw.split(|&b| b == 0).skip(1);
                    let user = String::from_utf8(fields.next()?.to_vec()).ok()?;
                    let password = String::from_utf8(fields.next()?.to_vec()).ok()?;
                    Some((user, password))
                })
            }
            "LOGIN" => {
                let user = match initial {
                    Some(i) => i,
                    None => {
                        self.reply("334 VXNlcm5hbWU6").await?;
                        self.read_command().await?
                    }
                };
                self.reply("334 UGFzc3dvcmQ6").await?;
                let password = self.read_command().await?;
                let decode = |s: &str| base64_decode(s).and_then(|b| String::from_utf8(b).ok());
                decode(&user).zip(decode(&password))
            }
            _ => {
                return self
                    .reply("504 5.5.4 Unrecognized authentication type")
                    .await
            }
        };
        match login {
            Some(login) => {
                self.shared.logins.lock().unwrap().push(login);
                self.authenticated = true;
                self.reply("235 2.7.0 Authentication successful").await
            }
            None => self.reply("501 5.5.2 Cannot decode the response").await,
        }
    }
}

/// `FROM:<a@b> BODY=8BITMIME` → `a@b` (the prefix is matched case-insensitively).
fn address_after(arg: &str, prefix: &str) -> Option<String> {
    let head = arg.get(..prefix.len())?;
    if !head.eq_ignore_ascii_case(prefix) {
        return None;
    }
    let rest = arg[prefix.len()..].trim_start();
    if let Some(rest) = rest.strip_prefix('<') {
        let end = rest.find('>')?;
        Some(rest[..end].to_owned())
    } else {
        rest.split_whitespace().next().map(str::to_owned)
    }
}
