//! Importing a fastapi-users database (docs/migrating-from-fastapi-users.md): same ids,
//! emails, flags and password hashes; OAuth accounts become linked identities (`google`
//! stays `google`, any other `oauth_name` becomes `oidc:<oauth_name>`, keyed on
//! `account_id`).
//!
//! Two passes over the source. The first reads every id and email, to find the emails
//! that differ only in case (fastapi-users compares them case-insensitively, so such
//! rows were never its own doing and neither can be told to be the owner). The second
//! reads the users page by page in id order; each page is checked row by row and
//! written in one transaction of its own ([`users_db::import::import_batch`]), keyed
//! on the id, so a run that stops half-way is finished by the next one, and a second
//! run changes nothing.
//!
//! Blocking: it reads and writes through plain connections. Run it off any async
//! executor.

use std::collections::{HashMap, HashSet};
use std::fmt;

use users_db::fastapi_users::{
    translate_url, Page, Source, SourceAccount, SourceError, SourceUser,
};
use users_db::import::{self, AccountOutcome, ImportAccount, ImportUser, UserOutcome};
use users_db::users::NewUser;
use users_db::{Database, DatabaseUrl, DbConnection, DbError, PoolOptions, PooledConnection};
use users_domain::{EmailAddress, Timestamp, User, UserId};

use crate::hashing::is_supported_hash;

/// The two databases of an import, open: the fastapi-users source (read-only, checked)
/// and this service's database (`None` for a dry run when it has no tables yet).
pub struct Opened {
    source: Source,
    target: Option<PooledConnection>,
}

/// Why an import could not start. Nothing was written anywhere.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// `--from` is not a URL this command reads.
    #[error("--from: {0}")]
    Url(String),
    /// The source cannot be read (its URL without the password, and why).
    #[error("cannot import from {url}: {error}; nothing was written")]
    Source { url: String, error: SourceError },
    /// This service's database cannot be opened or migrated.
    #[error("this service's database {url}: {error}")]
    Target { url: String, error: DbError },
}

/// Opens the source named by `from` (the SQLAlchemy URL the app used) before this
/// service's database is touched, so an unreadable source writes nothing; then this
/// service's database at `url`, migrated (a dry run creates and migrates nothing).
pub fn open(
    from: &str,
    url: &DatabaseUrl,
    pool: &PoolOptions,
    dry_run: bool,
) -> Result<Opened, OpenError> {
    let source_url = translate_url(from).map_err(OpenError::Url)?;
    let source = Source::open(&source_url).map_err(|error| OpenError::Source {
        url: source_url.redacted(),
        error,
    })?;
    let target = open_target(url, pool, dry_run).map_err(|error| OpenError::Target {
        url: url.redacted(),
        error,
    })?;
    Ok(Opened { source, target })
}

fn open_target(
    url: &DatabaseUrl,
    pool: &PoolOptions,
    dry_run: bool,
) -> Result<Option<PooledConnection>, DbError> {
    let opts = PoolOptions {
        max_connections: 1,
        ..pool.clone()
    };
    if !dry_run {
        let db = Database::connect_and_migrate(url.clone(), &opts)?;
        return Ok(Some(db.get()?));
    }
    if let DatabaseUrl::Sqlite(path) = url {
        if !path.exists() {
            return Ok(None);
        }
    }
    let db = Database::connect_lazy(url.clone(), &opts)?;
    let mut conn = db.get()?;
    Ok(import::has_schema(&mut conn)?.then_some(conn))
}

impl Opened {
    /// Runs the import ([`import`]).
    pub fn run(
        &mut self,
        options: &ImportOptions,
        now: Timestamp,
        progress: &mut dyn ImportProgress,
    ) -> Result<ImportSummary, ImportError> {
        let target = match self.target.as_mut() {
            Some(c) => Target::Database(c),
            None => Target::Empty,
        };
        import(&mut self.source, target, options, now, progress)
    }
}

/// How an import runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportOptions {
    /// Users per page and per transaction.
    pub batch_size: usize,
    /// Check everything, write nothing.
    pub dry_run: bool,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            batch_size: 1000,
            dry_run: false,
        }
    }
}

/// Where the users go: a database with our schema, or, for a dry run, none yet (a
/// database nothing was migrated into: every row would be new).
pub enum Target<'a> {
    Database(&'a mut DbConnection),
    Empty,
}

/// Why a user row is not imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserProblem {
    InvalidId,
    /// The email validator's reason.
    InvalidEmail(String),
    /// Other rows of the source have the same email but for case.
    CaseDuplicate {
        others: Vec<String>,
    },
    UnknownHashFormat,
    /// A user of ours with another id has the email.
    EmailTaken {
        by: String,
    },
}

/// A row the import reports: never a password hash, never a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    User {
        id: String,
        problem: UserProblem,
    },
    /// An OAuth account already linked to another user of ours.
    AccountLinkedToAnother {
        /// The `oauth_account` row's id.
        id: String,
        oauth_name: String,
        user_id: String,
        other_user_id: String,
    },
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Report::User { id, problem } => {
                write!(f, "user {id}: ")?;
                match problem {
                    UserProblem::InvalidId => f.write_str("the id is not a UUID"),
                    UserProblem::InvalidEmail(reason) => write!(f, "invalid email: {reason}"),
                    UserProblem::CaseDuplicate { others } => write!(
                        f,
                        "the email differs only in case from that of user {}",
                        others.join(", user ")
                    ),
                    UserProblem::UnknownHashFormat => {
                        f.write_str("the password hash is in an unknown format (neither argon2 nor bcrypt)")
                    }
                    UserProblem::EmailTaken { by } => {
                        write!(f, "the email belongs to another user here ({by})")
                    }
                }
            }
            Report::AccountLinkedToAnother {
                id,
                oauth_name,
                user_id,
                other_user_id,
            } => write!(
                f,
                "oauth account {id} ({oauth_name}) of user {user_id}: linked to another user here ({other_user_id})"
            ),
        }
    }
}

/// How many rows went which way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub imported: u64,
    /// There already with the same id (users) or linked to the same user (accounts).
    pub skipped: u64,
    /// Reported and not imported.
    pub conflicts: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportSummary {
    pub users: Counts,
    pub accounts: Counts,
    pub dry_run: bool,
    /// The source has no `oauth_account` table (an app without the OAuth extension).
    pub without_oauth_table: bool,
}

/// Told what happens, as it happens (the command line draws a progress bar and prints
/// the reports).
pub trait ImportProgress {
    /// The source holds `users` users.
    fn started(&mut self, _users: u64) {}
    fn report(&mut self, _report: &Report) {}
    /// A page of `users` users is done (committed, unless it is a dry run).
    fn batch_done(&mut self, _users: u64) {}
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read the fastapi-users database: {0}")]
    Source(#[from] SourceError),
    #[error("writing to this service's database failed: {0}")]
    Target(#[from] DbError),
}

/// The identity key an `oauth_name` of fastapi-users becomes
/// (docs/migrating-from-fastapi-users.md).
pub fn identity_key(oauth_name: &str) -> String {
    if oauth_name == "google" {
        "google".to_owned()
    } else {
        format!("oidc:{oauth_name}")
    }
}

/// Imports every user of `source` into `target`; see the module documentation.
pub fn import(
    source: &mut Source,
    mut target: Target<'_>,
    options: &ImportOptions,
    now: Timestamp,
    progress: &mut dyn ImportProgress,
) -> Result<ImportSummary, ImportError> {
    let duplicates = case_duplicates(source)?;
    let mut summary = ImportSummary {
        dry_run: options.dry_run,
        without_oauth_table: !source.has_oauth_accounts(),
        ..ImportSummary::default()
    };
    progress.started(duplicates.total);
    // a dry run into an empty database: what the database would say, kept here
    let mut taken_keys: HashSet<String> = HashSet::new();
    let mut taken_accounts: HashSet<(String, String)> = HashSet::new();

    let batch_size = options.batch_size.max(1);
    let mut after: Option<String> = None;
    loop {
        let page = source.page(after.as_deref(), batch_size)?;
        let Some(last) = page.users.last() else { break };
        after = Some(last.id.clone());
        let fetched = page.users.len();

        let (rows, source_accounts) = rows_of(&page, &duplicates, now, &mut summary, progress);
        let outcomes = match &mut target {
            Target::Database(conn) => {
                import::import_batch(conn, &rows, !options.dry_run, now.millis())
                    .map_err(DbError::from)?
            }
            Target::Empty => rows
                .iter()
                .map(|row| would_import(row, &mut taken_keys, &mut taken_accounts))
                .collect(),
        };
        for ((row, accounts), outcome) in rows.iter().zip(&source_accounts).zip(outcomes) {
            tally(row, accounts, outcome, &mut summary, progress);
        }
        progress.batch_done(fetched as u64);
        if fetched < batch_size {
            break;
        }
    }
    Ok(summary)
}

/// The users of a page that can be ours, with their accounts (as read, and as they
/// are imported); those that cannot are counted and reported.
fn rows_of<'p>(
    page: &'p Page,
    duplicates: &Duplicates,
    now: Timestamp,
    summary: &mut ImportSummary,
    progress: &mut dyn ImportProgress,
) -> (Vec<ImportUser>, Vec<Vec<&'p SourceAccount>>) {
    let mut accounts_of: HashMap<&str, Vec<&SourceAccount>> = HashMap::new();
    for account in &page.accounts {
        accounts_of
            .entry(account.user_id.as_str())
            .or_default()
            .push(account);
    }
    let mut rows = Vec::with_capacity(page.users.len());
    let mut source_accounts = Vec::with_capacity(page.users.len());
    for user in &page.users {
        match check(user, &duplicates.others, now) {
            Ok(new) => {
                let accounts = accounts_of.remove(user.id.as_str()).unwrap_or_default();
                rows.push(ImportUser {
                    user: new,
                    accounts: accounts
                        .iter()
                        .map(|a| ImportAccount {
                            provider: identity_key(&a.oauth_name),
                            subject: a.account_id.clone(),
                            email: a.account_email.clone(),
                        })
                        .collect(),
                });
                source_accounts.push(accounts);
            }
            Err(problem) => {
                summary.users.conflicts += 1;
                progress.report(&Report::User {
                    id: user.id.clone(),
                    problem,
                });
            }
        }
    }
    (rows, source_accounts)
}

/// Counts (and reports) what became of a user and their accounts.
fn tally(
    row: &ImportUser,
    accounts: &[&SourceAccount],
    outcome: import::RowOutcome,
    summary: &mut ImportSummary,
    progress: &mut dyn ImportProgress,
) {
    match outcome.user {
        UserOutcome::Imported => summary.users.imported += 1,
        UserOutcome::AlreadyPresent => summary.users.skipped += 1,
        UserOutcome::EmailTaken { by } => {
            summary.users.conflicts += 1;
            progress.report(&Report::User {
                id: row.user.id.clone(),
                problem: UserProblem::EmailTaken { by },
            });
        }
    }
    for (account, outcome) in accounts.iter().zip(outcome.accounts) {
        match outcome {
            AccountOutcome::Imported => summary.accounts.imported += 1,
            AccountOutcome::AlreadyLinked => summary.accounts.skipped += 1,
            AccountOutcome::LinkedToAnother { user_id } => {
                summary.accounts.conflicts += 1;
                progress.report(&Report::AccountLinkedToAnother {
                    id: account.id.clone(),
                    oauth_name: account.oauth_name.clone(),
                    user_id: row.user.id.clone(),
                    other_user_id: user_id,
                });
            }
        }
    }
}

/// The rows of the first pass: how many users, and for each user whose email another
/// row has but for case, the ids of those other rows.
struct Duplicates {
    total: u64,
    others: HashMap<String, Vec<String>>,
}

fn case_duplicates(source: &mut Source) -> Result<Duplicates, SourceError> {
    let emails = source.emails()?;
    let total = emails.len() as u64;
    let mut by_key: HashMap<String, Vec<String>> = HashMap::new();
    for row in emails {
        // an invalid email is reported on its own
        if let Ok(email) = EmailAddress::parse(&row.email) {
            by_key.entry(email.key()).or_default().push(row.id);
        }
    }
    let mut others = HashMap::new();
    for ids in by_key.into_values().filter(|ids| ids.len() > 1) {
        for id in &ids {
            let mut rest: Vec<String> = ids.iter().filter(|o| *o != id).cloned().collect();
            rest.sort();
            others.insert(id.clone(), rest);
        }
    }
    Ok(Duplicates { total, others })
}

/// The row as our user, or why it cannot be one.
fn check(
    user: &SourceUser,
    duplicates: &HashMap<String, Vec<String>>,
    now: Timestamp,
) -> Result<NewUser, UserProblem> {
    let id = UserId::parse_str(&user.id).map_err(|_| UserProblem::InvalidId)?;
    let email =
        EmailAddress::parse(&user.email).map_err(|e| UserProblem::InvalidEmail(e.reason))?;
    if let Some(others) = duplicates.get(&user.id) {
        return Err(UserProblem::CaseDuplicate {
            others: others.clone(),
        });
    }
    if !is_supported_hash(&user.hashed_password) {
        return Err(UserProblem::UnknownHashFormat);
    }
    let ours = User {
        id,
        email: email.into_string(),
        is_active: user.is_active,
        is_superuser: user.is_superuser,
        is_verified: user.is_verified,
    };
    Ok(NewUser::new(
        &ours,
        user.hashed_password.clone(),
        now.millis(),
    ))
}

/// A dry run's outcome for a row when the target has no users at all.
fn would_import(
    row: &ImportUser,
    taken_keys: &mut HashSet<String>,
    taken_accounts: &mut HashSet<(String, String)>,
) -> import::RowOutcome {
    if !taken_keys.insert(row.user.email_key.clone()) {
        return import::RowOutcome {
            user: UserOutcome::EmailTaken {
                by: "another imported row".to_owned(),
            },
            accounts: Vec::new(),
        };
    }
    let accounts = row
        .accounts
        .iter()
        .map(|a| {
            if taken_accounts.insert((a.provider.clone(), a.subject.clone())) {
                AccountOutcome::Imported
            } else {
                AccountOutcome::LinkedToAnother {
                    user_id: "another imported row".to_owned(),
                }
            }
        })
        .collect();
    import::RowOutcome {
        user: UserOutcome::Imported,
        accounts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn google_keeps_its_key_and_other_providers_become_oidc() {
        assert_eq!(identity_key("google"), "google");
        assert_eq!(identity_key("github"), "oidc:github");
        assert_eq!(identity_key("keycloak"), "oidc:keycloak");
    }

    #[test]
    fn reports_name_the_row_and_the_reason_only() {
        let r = Report::User {
            id: "a".into(),
            problem: UserProblem::CaseDuplicate {
                others: vec!["b".into(), "c".into()],
            },
        };
        assert_eq!(
            r.to_string(),
            "user a: the email differs only in case from that of user b, user c"
        );
        let r = Report::User {
            id: "a".into(),
            problem: UserProblem::UnknownHashFormat,
        };
        assert_eq!(
            r.to_string(),
            "user a: the password hash is in an unknown format (neither argon2 nor bcrypt)"
        );
    }
}
