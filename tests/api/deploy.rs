//! The deployment files (Dockerfile, docker-compose.yml, .env.example) agree with the
//! service: they name only variables it reads, with values it accepts, on the port it
//! listens on. No server and no Docker needed: the files are parsed and checked.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use reqwest::Url;
use serde_norway::Value;
use users_server::settings::{is_known_variable, variable, variables, Settings};

/// The port the container listens on (docs/configuration.md: `BIND_ADDR` is `0.0.0.0:8000`
/// in a container).
const CONTAINER_PORT: u16 = 8000;

fn repo_file(name: &str) -> (PathBuf, String) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {name} at the repository root: {e}"));
    (path, text)
}

/// A variable the service reads: a fixed one, its `_FILE` variant, or a setting of an
/// OpenID provider (`OIDC_<NAME>_ISSUER_URL`, …: the names depend on `OIDC_PROVIDERS`).
fn is_known(name: &str) -> bool {
    is_known_variable(name)
}

/// The variables of the service's table with a fixed name (the `OIDC_<NAME>_*` rows are
/// patterns, one variable per provider).
fn fixed_variables() -> Vec<&'static str> {
    variables()
        .filter(|v| !v.is_pattern())
        .map(|v| v.name)
        .collect()
}

/// What `Settings::from_env` would make of exactly these variables.
fn settings_from(vars: &BTreeMap<String, String>) -> Result<Settings, String> {
    Settings::from_lookup(|name| vars.get(name).cloned()).map_err(|e| e.to_string())
}

// ---- docker-compose.yml ---------------------------------------------------------------

fn compose() -> Value {
    let (_, text) = repo_file("docker-compose.yml");
    let mut doc: Value =
        serde_norway::from_str(&text).expect("docker-compose.yml is not valid YAML");
    doc.apply_merge()
        .expect("docker-compose.yml: bad `<<` merge key");
    doc
}

fn service<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc.get("services")
        .and_then(|s| s.get(name))
        .unwrap_or_else(|| panic!("docker-compose.yml has no service `{name}`"))
}

/// A scalar as Compose reads it (numbers and booleans are strings to it).
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Compose interpolation with an empty environment and no .env file, i.e. what
/// `docker compose up` does out of the box: `${X:-d}` and `${X-d}` give `d`, `${X}` and
/// `$X` give "", `${X:+a}` gives "", `$$` is `$`; `${X:?e}` is an error (a variable
/// that must be set, so `up` would not work out of the box).
fn interpolate(s: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(body) = after.strip_prefix('{') {
            let mut depth = 1;
            let mut end = None;
            for (j, c) in body.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            end = Some(j);
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let end = end.ok_or_else(|| format!("unclosed `${{` in `{s}`"))?;
            let expr = &body[..end];
            rest = &body[end + 1..];
            let name_len = expr
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(expr.len());
            let (name, op) = expr.split_at(name_len);
            if op.is_empty() || op.starts_with(":+") || op.starts_with('+') {
                // Unset: empty.
            } else if let Some(default) = op.strip_prefix(":-").or_else(|| op.strip_prefix('-')) {
                out.push_str(&interpolate(default)?);
            } else if op.starts_with(":?") || op.starts_with('?') {
                return Err(format!("`{s}` needs {name} to be set"));
            } else {
                return Err(format!("unsupported interpolation `${{{expr}}}` in `{s}`"));
            }
        } else {
            let name_len = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            if name_len == 0 {
                return Err(format!("a lone `$` in `{s}` (write `$$`)"));
            }
            rest = &after[name_len..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// A service's `environment` (map or list form): name → raw value, `None` for a
/// variable given without a value (passed through from the shell or .env when set there,
/// unset otherwise).
fn environment(svc: &Value) -> BTreeMap<String, Option<String>> {
    let mut vars = BTreeMap::new();
    match svc.get("environment") {
        None | Some(Value::Null) => {}
        Some(Value::Mapping(m)) => {
            for (k, v) in m {
                let k = k
                    .as_str()
                    .expect("environment names are strings")
                    .to_owned();
                let v = if v.is_null() {
                    None
                } else {
                    Some(scalar(v).unwrap_or_else(|| panic!("environment {k}: not a scalar")))
                };
                vars.insert(k, v);
            }
        }
        Some(Value::Sequence(items)) => {
            for item in items {
                let item = item.as_str().expect("environment entries are strings");
                match item.split_once('=') {
                    Some((k, v)) => vars.insert(k.to_owned(), Some(v.to_owned())),
                    None => vars.insert(item.to_owned(), None),
                };
            }
        }
        Some(other) => panic!("environment is neither a map nor a list: {other:?}"),
    }
    vars
}

/// The environment as the container gets it out of the box (valueless entries unset).
fn resolved_environment(svc: &Value) -> BTreeMap<String, String> {
    environment(svc)
        .into_iter()
        .filter_map(|(k, v)| {
            v.map(|v| {
                let v = interpolate(&v).unwrap_or_else(|e| panic!("environment {k}: {e}"));
                (k, v)
            })
        })
        .collect()
}

/// The healthcheck's command as one string; panics when there is none or it is disabled.
fn healthcheck_command(svc: &Value, name: &str) -> String {
    let hc = svc
        .get("healthcheck")
        .unwrap_or_else(|| panic!("service `{name}` has no healthcheck"));
    assert_ne!(
        hc.get("disable").and_then(Value::as_bool),
        Some(true),
        "service `{name}`: healthcheck disabled"
    );
    let test = hc
        .get("test")
        .unwrap_or_else(|| panic!("service `{name}`: healthcheck without `test`"));
    let command = match test {
        Value::String(s) => s.clone(),
        Value::Sequence(parts) => {
            let parts: Vec<String> = parts.iter().filter_map(scalar).collect();
            assert!(
                matches!(parts.first().map(String::as_str), Some("CMD" | "CMD-SHELL")),
                "service `{name}`: healthcheck test must start with CMD or CMD-SHELL: {parts:?}"
            );
            parts[1..].join(" ")
        }
        other => panic!("service `{name}`: healthcheck test {other:?}"),
    };
    interpolate(&command).unwrap_or_else(|e| panic!("service `{name}` healthcheck: {e}"))
}

/// A health check asks `/healthz` on the container's `port` from inside the container:
/// the binary's own `users-server healthcheck` (which reads BIND_ADDR), or a command
/// with such a URL (curl, wget).
fn assert_checks_healthz(command: &str, port: u16, what: &str) {
    let words: Vec<&str> = command
        .split(|c: char| c.is_whitespace() || "[],\"'".contains(c))
        .filter(|w| !w.is_empty())
        .collect();
    if words == ["users-server", "healthcheck"] {
        return;
    }
    let url = url_in(command);
    assert_eq!(url.port_or_known_default(), Some(port), "{what} {url}");
    assert_eq!(url.path(), "/healthz", "{what} {url}");
    assert!(
        matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]")),
        "{what} {url}: check the service from inside its container"
    );
}

/// A duration as Docker writes it (`5s`, `1m30s`) is at most 10 s: the service is ready
/// within a second, and is reported healthy only after the first check.
fn assert_is_short(duration: &str, what: &str) {
    let seconds: u64 = duration
        .strip_suffix('s')
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{what}: `{duration}` is not a number of seconds"));
    assert!(
        (1..=10).contains(&seconds),
        "{what}: {duration}; the first check, which makes the service healthy, runs \
         only after one interval"
    );
}

/// The first http(s) URL in a command line.
fn url_in(command: &str) -> Url {
    let token = command
        .split_whitespace()
        .map(|t| t.trim_matches(|c| c == '"' || c == '\''))
        .find(|t| t.starts_with("http://") || t.starts_with("https://"))
        .unwrap_or_else(|| panic!("no http URL in `{command}`"));
    Url::parse(token).unwrap_or_else(|e| panic!("`{token}`: {e}"))
}

fn port_of_addr(addr: &str) -> u16 {
    addr.rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or_else(|| panic!("`{addr}` is not host:port"))
}

/// The container ports a service publishes: short syntax `[[ip:]published:]target[/proto]`
/// or long syntax `{target, published}`.
fn target_ports(svc: &Value) -> Vec<u16> {
    let Some(ports) = svc.get("ports").and_then(Value::as_sequence) else {
        return Vec::new();
    };
    ports
        .iter()
        .map(|p| match p {
            Value::Mapping(_) => p
                .get("target")
                .and_then(scalar)
                .and_then(|t| interpolate(&t).ok())
                .and_then(|t| t.parse().ok())
                .unwrap_or_else(|| panic!("port without a numeric target: {p:?}")),
            _ => {
                let short = interpolate(&scalar(p).expect("a port is a scalar"))
                    .unwrap_or_else(|e| panic!("ports: {e}"));
                let short = short.split('/').next().unwrap_or_default();
                let target = short.rsplit(':').next().unwrap_or_default();
                target
                    .parse()
                    .unwrap_or_else(|_| panic!("port `{short}`: target is not one port"))
            }
        })
        .collect()
}

#[test]
fn compose_users_environment_is_known_and_accepted() {
    let doc = compose();
    let users = service(&doc, "users");
    let env = environment(users);
    let unknown: Vec<&String> = env.keys().filter(|k| !is_known(k)).collect();
    assert!(
        unknown.is_empty(),
        "docker-compose.yml sets variables the service does not read: {unknown:?} \
         (see the table of variables in users_server::settings)"
    );
    // .env.example promises that each of its variables reaches the service (as itself,
    // or as NAME_FILE when this file fixes it to a Compose secret).
    let missing: Vec<&str> = fixed_variables()
        .into_iter()
        .filter(|k| !env.contains_key(*k) && !env.contains_key(&format!("{k}_FILE")))
        .collect();
    assert!(
        missing.is_empty(),
        "the users service neither sets nor passes through {missing:?}; \
         add them to its environment (without a value to pass them through from .env)"
    );
    let both: Vec<&String> = env
        .keys()
        .filter(|k| k.strip_suffix("_FILE").is_some_and(|n| env.contains_key(n)))
        .collect();
    assert!(
        both.is_empty(),
        "the users service gets both NAME and NAME_FILE for {both:?}, which it refuses"
    );
    // Out of the box (no .env, nothing in the shell) the service accepts its settings,
    // its secret files holding what the jwt-secret service writes (64 base64 characters).
    let secrets = tempfile::tempdir().unwrap();
    let mut resolved = resolved_environment(users);
    for (name, value) in resolved.iter_mut() {
        if name.ends_with("_FILE") && value.starts_with("/run/secrets/") {
            let file = secrets.path().join(name);
            std::fs::write(&file, format!("{}\n", "A".repeat(64))).unwrap();
            *value = file.to_string_lossy().into_owned();
        }
    }
    if let Err(e) = settings_from(&resolved) {
        panic!("the users service's environment in docker-compose.yml is refused: {e}");
    }
}

/// JWT_SECRET_FILE is a file of a Compose secret, the secrets folder, into which the
/// one-shot jwt-secret service writes it before users starts. The secret is the folder:
/// it exists in a checkout, so that Compose v2, which creates every container before it
/// starts any, can create users before the file is written.
#[test]
fn compose_jwt_secret_is_a_compose_secret_written_before_users_starts() {
    let doc = compose();
    let users = service(&doc, "users");
    let env = resolved_environment(users);
    let listed: Vec<String> = users
        .get("secrets")
        .and_then(Value::as_sequence)
        .expect("users: secrets")
        .iter()
        .filter_map(|s| {
            s.as_str()
                .or_else(|| s.get("source").and_then(Value::as_str))
        })
        .map(str::to_owned)
        .collect();
    let jwt_secret_file = env.get("JWT_SECRET_FILE").expect("users: JWT_SECRET_FILE");
    let secret = listed
        .iter()
        .find(|s| *jwt_secret_file == format!("/run/secrets/{s}/jwt_secret"))
        .unwrap_or_else(|| {
            panic!("JWT_SECRET_FILE {jwt_secret_file} is not jwt_secret in a secret of users {listed:?}")
        });
    let folder = doc
        .get("secrets")
        .and_then(|s| s.get(secret.as_str()))
        .and_then(|s| s.get("file"))
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no top-level secret {secret} with a file"));
    let folder = interpolate(folder).unwrap();
    if let Some(relative) = folder.strip_prefix("./") {
        let (path, _) = repo_file(&format!("{relative}/.gitignore"));
        assert!(
            path.parent().is_some_and(|p| p.is_dir()),
            "the secrets folder {folder} must be in the repository"
        );
    }

    let writer = service(&doc, "jwt-secret");
    let mounts: Vec<String> = writer
        .get("volumes")
        .and_then(Value::as_sequence)
        .expect("jwt-secret: volumes")
        .iter()
        .filter_map(|v| v.as_str().map(|v| interpolate(v).unwrap()))
        .collect();
    assert!(
        mounts.iter().any(|m| m == &format!("{folder}:/secrets")),
        "jwt-secret must mount the secrets folder {folder} on /secrets: {mounts:?}"
    );
    let script = writer
        .get("command")
        .and_then(Value::as_sequence)
        .and_then(|c| c.first())
        .and_then(Value::as_str)
        .expect("jwt-secret: command");
    for step in ["/secrets/jwt_secret", "chown 10001:10001", "chmod 0400"] {
        assert!(script.contains(step), "jwt-secret's script lacks `{step}`");
    }
    let condition = users
        .get("depends_on")
        .and_then(|d| d.get("jwt-secret"))
        .and_then(|d| d.get("condition"))
        .and_then(Value::as_str);
    assert_eq!(
        condition,
        Some("service_completed_successfully"),
        "users must start after jwt-secret has written the secret"
    );
}

#[test]
fn compose_ports_and_healthcheck_match_bind_addr_and_the_dockerfile() {
    let doc = compose();
    let users = service(&doc, "users");
    let env = resolved_environment(users);
    let bind = env
        .get("BIND_ADDR")
        .expect("the users service must set BIND_ADDR (0.0.0.0:PORT)");
    assert!(
        bind.starts_with("0.0.0.0:") || bind.starts_with("[::]:"),
        "BIND_ADDR `{bind}` would not be reachable from outside the container"
    );
    let port = port_of_addr(bind);
    assert_eq!(port, CONTAINER_PORT, "BIND_ADDR in docker-compose.yml");

    let targets = target_ports(users);
    assert_eq!(
        targets,
        vec![port],
        "the users service must publish exactly its BIND_ADDR port"
    );

    assert_checks_healthz(&healthcheck_command(users, "users"), port, "healthcheck");
    let interval = users
        .get("healthcheck")
        .and_then(|h| h.get("interval"))
        .and_then(scalar)
        .expect("users: healthcheck interval");
    assert_is_short(&interval, "users: healthcheck interval");

    let docker = dockerfile();
    assert_eq!(
        docker.bind_port(),
        port,
        "Dockerfile ENV BIND_ADDR vs compose"
    );
    assert!(
        docker.exposed().contains(&port),
        "Dockerfile EXPOSE {:?} lacks {port}",
        docker.exposed()
    );
}

#[test]
fn compose_users_waits_for_healthy_postgres_and_mailpit() {
    let doc = compose();
    let users = service(&doc, "users");
    let depends = users
        .get("depends_on")
        .and_then(Value::as_mapping)
        .expect("users: depends_on must be a map with conditions");
    for dep in ["postgres", "mailpit"] {
        let condition = depends
            .get(dep)
            .and_then(|d| d.get("condition"))
            .and_then(Value::as_str);
        assert_eq!(
            condition,
            Some("service_healthy"),
            "users must depend on {dep} with condition service_healthy"
        );
        healthcheck_command(service(&doc, dep), dep);
    }
}

#[test]
fn compose_postgres_is_pinned_persistent_and_matches_database_url() {
    let doc = compose();
    let pg = service(&doc, "postgres");

    let image = pg
        .get("image")
        .and_then(Value::as_str)
        .expect("postgres: image");
    let image = image.split('@').next().unwrap_or(image);
    let last_segment = image.rsplit('/').next().unwrap_or(image);
    let tag = last_segment
        .split_once(':')
        .map(|(_, tag)| tag)
        .unwrap_or_else(|| panic!("postgres image `{image}` has no tag: pin the major version"));
    let major = tag.split(['.', '-']).next().unwrap_or_default();
    assert!(
        major.parse::<u32>().is_ok(),
        "postgres image `{image}`: the tag must start with the major version (e.g. postgres:17)"
    );

    // The data folder is a named volume declared at the top level.
    let declared: BTreeSet<String> = doc
        .get("volumes")
        .and_then(Value::as_mapping)
        .map(|m| {
            m.keys()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let mounts = pg
        .get("volumes")
        .and_then(Value::as_sequence)
        .expect("postgres: volumes");
    let data_volume = mounts.iter().find_map(|m| {
        let (source, target) = match m {
            Value::Mapping(_) => (
                m.get("source").and_then(Value::as_str)?.to_owned(),
                m.get("target").and_then(Value::as_str)?.to_owned(),
            ),
            _ => {
                let mut parts = m.as_str()?.split(':');
                (parts.next()?.to_owned(), parts.next()?.to_owned())
            }
        };
        target.starts_with("/var/lib/postgresql").then_some(source)
    });
    let data_volume = data_volume.expect("postgres: no volume on /var/lib/postgresql[/data]");
    assert!(
        declared.contains(&data_volume),
        "postgres' data volume `{data_volume}` must be a named volume declared under \
         the top-level `volumes:` (declared: {declared:?})"
    );

    // DATABASE_URL of users = the postgres service with its user, password and database.
    let pg_env = resolved_environment(pg);
    let user = pg_env
        .get("POSTGRES_USER")
        .map_or("postgres", String::as_str);
    let password = pg_env
        .get("POSTGRES_PASSWORD")
        .expect("postgres: POSTGRES_PASSWORD");
    let db = pg_env.get("POSTGRES_DB").map_or(user, String::as_str);

    let users_env = resolved_environment(service(&doc, "users"));
    let database_url = users_env.get("DATABASE_URL").expect("users: DATABASE_URL");
    let url = Url::parse(database_url).unwrap_or_else(|e| panic!("DATABASE_URL: {e}"));
    assert!(
        matches!(url.scheme(), "postgres" | "postgresql"),
        "DATABASE_URL {database_url}"
    );
    assert_eq!(url.host_str(), Some("postgres"), "DATABASE_URL host");
    assert_eq!(url.port().unwrap_or(5432), 5432, "DATABASE_URL port");
    assert_eq!(url.username(), user, "DATABASE_URL user vs POSTGRES_USER");
    assert_eq!(
        url.password(),
        Some(password.as_str()),
        "DATABASE_URL password vs POSTGRES_PASSWORD"
    );
    assert_eq!(
        url.path(),
        format!("/{db}"),
        "DATABASE_URL database vs POSTGRES_DB"
    );

    // The healthcheck asks for that user and database.
    let check = healthcheck_command(pg, "postgres");
    let words: Vec<&str> = check.split_whitespace().collect();
    assert!(
        words.contains(&"pg_isready"),
        "postgres healthcheck: {check}"
    );
    let flag = |f: &str| {
        words
            .windows(2)
            .find(|w| w[0] == f)
            .map(|w| {
                let v = w[1].trim_matches(|c| c == '"' || c == '\'');
                match v
                    .trim_start_matches('$')
                    .trim_matches(|c| c == '{' || c == '}')
                {
                    var @ ("POSTGRES_USER" | "POSTGRES_DB") => {
                        pg_env.get(var).cloned().unwrap_or_default()
                    }
                    _ => v.to_owned(),
                }
            })
            .unwrap_or_else(|| panic!("postgres healthcheck lacks {f}: {check}"))
    };
    assert_eq!(flag("-U"), user, "pg_isready -U");
    assert_eq!(flag("-d"), db, "pg_isready -d");
}

#[test]
fn compose_smtp_url_points_at_mailpit() {
    let doc = compose();
    let env = resolved_environment(service(&doc, "users"));
    let smtp = env.get("SMTP_URL").expect("users: SMTP_URL");
    let url = Url::parse(smtp).unwrap_or_else(|e| panic!("SMTP_URL: {e}"));
    assert_eq!(url.scheme(), "smtp", "SMTP_URL {smtp}");
    assert_eq!(url.host_str(), Some("mailpit"), "SMTP_URL {smtp}");
    assert_eq!(url.port(), Some(1025), "SMTP_URL {smtp}");
}

// ---- Dockerfile -----------------------------------------------------------------------

/// The instructions of the Dockerfile's final stage, continuation lines joined.
struct Dockerfile {
    instructions: Vec<(String, String)>,
}

fn dockerfile() -> Dockerfile {
    let (_, text) = repo_file("Dockerfile");
    let mut all = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        if let Some(cont) = trimmed.strip_suffix('\\') {
            current.push_str(cont);
            current.push(' ');
            continue;
        }
        current.push_str(trimmed);
        let (keyword, args) = current
            .split_once(char::is_whitespace)
            .unwrap_or((&current, ""));
        all.push((keyword.to_ascii_uppercase(), args.trim().to_owned()));
        current.clear();
    }
    let last_from = all
        .iter()
        .rposition(|(k, _)| k == "FROM")
        .expect("Dockerfile has no FROM");
    Dockerfile {
        instructions: all.split_off(last_from),
    }
}

impl Dockerfile {
    fn all(&self, keyword: &str) -> impl Iterator<Item = &str> {
        let keyword = keyword.to_owned();
        self.instructions
            .iter()
            .filter(move |(k, _)| *k == keyword)
            .map(|(_, a)| a.as_str())
    }

    fn last(&self, keyword: &str) -> Option<&str> {
        self.all(keyword).last()
    }

    /// `ENV K=V [K2=V2…]` and `ENV K V` (values without spaces, optionally quoted).
    fn env(&self) -> BTreeMap<String, String> {
        let unquote = |v: &str| v.trim_matches('"').to_owned();
        let mut vars = BTreeMap::new();
        for args in self.all("ENV") {
            if args
                .split_whitespace()
                .next()
                .is_some_and(|w| w.contains('='))
            {
                for pair in args.split_whitespace() {
                    let (k, v) = pair.split_once('=').expect("ENV K=V");
                    vars.insert(k.to_owned(), unquote(v));
                }
            } else if let Some((k, v)) = args.split_once(char::is_whitespace) {
                vars.insert(k.to_owned(), unquote(v.trim()));
            }
        }
        vars
    }

    fn bind_port(&self) -> u16 {
        let env = self.env();
        let bind = env
            .get("BIND_ADDR")
            .expect("the Dockerfile must set ENV BIND_ADDR=0.0.0.0:PORT");
        assert!(
            bind.starts_with("0.0.0.0:") || bind.starts_with("[::]:"),
            "Dockerfile BIND_ADDR `{bind}` would not be reachable from outside"
        );
        port_of_addr(bind)
    }

    fn exposed(&self) -> Vec<u16> {
        self.all("EXPOSE")
            .flat_map(str::split_whitespace)
            .map(|p| {
                let p = p.split('/').next().unwrap_or(p);
                p.parse()
                    .unwrap_or_else(|_| panic!("EXPOSE `{p}` is not a port"))
            })
            .collect()
    }
}

#[test]
fn dockerfile_runs_unprivileged_exposes_and_checks_health_on_bind_addr_port() {
    let docker = dockerfile();

    let user = docker
        .last("USER")
        .expect("the Dockerfile's final stage must set USER (not root)");
    let name = user.split(':').next().unwrap_or(user).trim();
    assert!(
        !name.is_empty() && name != "root" && name != "0",
        "USER `{user}` runs as root"
    );

    let port = docker.bind_port();
    assert_eq!(port, CONTAINER_PORT, "Dockerfile ENV BIND_ADDR");
    assert!(
        docker.exposed().contains(&port),
        "EXPOSE {:?} lacks the BIND_ADDR port {port}",
        docker.exposed()
    );

    let healthcheck = docker
        .last("HEALTHCHECK")
        .expect("the Dockerfile must have a HEALTHCHECK");
    let (options, command) = healthcheck
        .split_once("CMD")
        .unwrap_or_else(|| panic!("HEALTHCHECK without CMD: {healthcheck}"));
    assert_checks_healthz(command, port, "HEALTHCHECK");
    let interval = options
        .split_whitespace()
        .find_map(|o| o.strip_prefix("--interval="))
        .expect("HEALTHCHECK --interval= (Docker's default is 30 s)");
    assert_is_short(interval, "HEALTHCHECK --interval");

    // Its environment names only the service's variables (and a few of the system's),
    // with values the service accepts.
    let env = docker.env();
    const SYSTEM: &[&str] = &[
        "PATH",
        "TZ",
        "LANG",
        "LC_ALL",
        "RUST_BACKTRACE",
        "RUST_LIB_BACKTRACE",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
    ];
    for name in env.keys() {
        assert!(
            is_known(name) || SYSTEM.contains(&name.as_str()),
            "Dockerfile ENV {name} is not a variable the service reads"
        );
    }
    let service_env: BTreeMap<String, String> =
        env.into_iter().filter(|(k, _)| is_known(k)).collect();
    if let Err(e) = settings_from(&service_env) {
        panic!("the Dockerfile's ENV is refused by the service: {e}");
    }
}

// ---- .env.example ---------------------------------------------------------------------

/// One `NAME=value` line of .env.example (commented out or not).
struct EnvLine {
    name: String,
    value: String,
    /// The line above ends with "Example:": the value illustrates, it is no default.
    example: bool,
}

fn env_example() -> (String, Vec<EnvLine>) {
    let (_, text) = repo_file(".env.example");
    let mut lines = Vec::new();
    let mut previous = "";
    for line in text.lines() {
        let body = line.trim().trim_start_matches('#').trim_start();
        let is_assignment = body.split_once('=').is_some_and(|(name, _)| {
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        });
        if is_assignment {
            let (name, value) = body.split_once('=').unwrap_or_default();
            lines.push(EnvLine {
                name: name.to_owned(),
                value: value.trim().to_owned(),
                example: previous.trim_end().ends_with("Example:"),
            });
        }
        previous = line;
    }
    (text, lines)
}

#[test]
fn env_example_lists_every_known_variable_once_and_nothing_else() {
    let (text, lines) = env_example();
    let mut seen = BTreeSet::new();
    for line in &lines {
        assert!(
            is_known(&line.name) && !line.name.ends_with("_FILE"),
            ".env.example names {}, which the service does not read",
            line.name
        );
        assert!(
            seen.insert(line.name.as_str()),
            ".env.example lists {} twice",
            line.name
        );
    }
    // every row of the table, a pattern (OIDC_<NAME>_…) by a line of some provider
    let missing: Vec<&str> = variables()
        .filter(|row| !lines.iter().any(|l| variable(&l.name) == Some(*row)))
        .map(|row| row.name)
        .collect();
    assert!(missing.is_empty(), ".env.example lacks {missing:?}");

    // Variable names mentioned in its prose are real too (NAME_FILE stands for the pattern).
    for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        let looks_like_a_variable = word.contains('_')
            && word.starts_with(|c: char| c.is_ascii_uppercase())
            && word
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        // NAME_FILE and OIDC_<NAME>_… stand for patterns.
        if looks_like_a_variable && word != "NAME_FILE" && word != "OIDC_" {
            assert!(
                is_known(word),
                ".env.example mentions {word}, which the service does not read"
            );
        }
    }
}

/// Each line against its row of the service's table of variables: a variable with a
/// default value shows exactly that value, one without (a default made from other
/// variables, a feature left off, a required value) shows an example, marked so.
#[test]
fn env_example_shows_the_tables_defaults() {
    let (_, lines) = env_example();
    for line in &lines {
        let Some(row) = variable(&line.name) else {
            continue; // the test above names it
        };
        match row.shown_default() {
            Some(default) => assert!(
                !line.example && line.value == default,
                ".env.example: {} defaults to `{default}` (the table of variables in \
                 users_server::settings); show #{}={default}, without \"Example:\" above, \
                 and give examples in the comment",
                line.name,
                line.name
            ),
            None => assert!(
                line.example,
                ".env.example: {} has no default value ({:?}), so #{}={} is an example: \
                 end the line above with \"Example:\"",
                line.name, row.when_unset, line.name, line.value
            ),
        }
    }
}

#[test]
fn env_example_shows_the_real_defaults_and_valid_examples() {
    let (_, lines) = env_example();
    // Google's and GitHub's settings are read only when a client is configured, an
    // OpenID provider's only when OIDC_PROVIDERS names it: the example provider of the
    // file (every OIDC_ line of it) is configured for all the checks. Webhook URLs need
    // a secret.
    let mut base: BTreeMap<String, String> = [
        ("GOOGLE_CLIENT_ID", "client-id"),
        ("GOOGLE_CLIENT_SECRET", "client-secret"),
        ("GITHUB_CLIENT_ID", "client-id"),
        ("GITHUB_CLIENT_SECRET", "client-secret"),
        ("WEBHOOK_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    for line in lines.iter().filter(|l| l.name.starts_with("OIDC_")) {
        base.insert(line.name.clone(), line.value.clone());
    }
    let defaults = format!("{:?}", settings_from(&base).expect("defaults"));
    for line in &lines {
        if line.example && line.value.is_empty() {
            continue; // a blank to fill in
        }
        let mut vars = base.clone();
        vars.insert(line.name.clone(), line.value.clone());
        let settings = settings_from(&vars).unwrap_or_else(|e| {
            panic!(".env.example: {}={} is refused: {e}", line.name, line.value)
        });
        if !line.example {
            assert_eq!(
                format!("{settings:?}"),
                defaults,
                ".env.example shows {}={} as the default, but it is not (mark the line \
                 above with \"Example:\" if it is an illustration)",
                line.name,
                line.value
            );
        }
    }
}
