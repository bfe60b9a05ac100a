//! The repository explains itself: README.md stays a short entry point that links every
//! page of docs/, docs/configuration.md lists every setting the service reads, relative
//! links between the pages lead to files that exist, and no source file cites the old
//! specification (CONTRACT, a file that was never in the repository). No server needed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use users_server::settings::{variables, WhenUnset};

/// README.md must stay under this many bytes: an entry point, not the manual.
const README_LIMIT_BYTES: usize = 16_000;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The pages of docs/ (`*.md`), as their file names, sorted.
fn docs_pages() -> Vec<String> {
    let dir = repo_root().join("docs");
    let mut pages: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| {
            entry
                .expect("docs/ entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name.ends_with(".md"))
        .collect();
    pages.sort();
    pages
}

/// The targets of the Markdown links `[text](target)` in `text`.
fn link_targets(text: &str) -> Vec<String> {
    let mut targets = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("](") {
        rest = &rest[at + 2..];
        if let Some(end) = rest.find(')') {
            targets.push(rest[..end].to_owned());
        }
    }
    targets
}

#[test]
fn readme_is_short_and_links_every_docs_page() {
    let readme = read(&repo_root().join("README.md"));
    assert!(
        readme.len() < README_LIMIT_BYTES,
        "README.md is {} bytes; keep it under {README_LIMIT_BYTES} and move details into docs/",
        readme.len()
    );
    let pages = docs_pages();
    assert!(!pages.is_empty(), "docs/ has no pages");
    let links: BTreeSet<String> = link_targets(&readme).into_iter().collect();
    let unlinked: Vec<&String> = pages
        .iter()
        .filter(|page| {
            !links
                .iter()
                .any(|l| l.split('#').next() == Some(format!("docs/{page}").as_str()))
        })
        .collect();
    assert!(
        unlinked.is_empty(),
        "README.md does not link these pages of docs/: {unlinked:?}"
    );
}

#[test]
fn relative_links_of_the_readme_and_docs_lead_to_files() {
    let root = repo_root();
    let mut files = vec![root.join("README.md"), root.join("bench/README.md")];
    files.extend(docs_pages().iter().map(|p| root.join("docs").join(p)));
    for file in files {
        let dir = file.parent().expect("a folder");
        for target in link_targets(&read(&file)) {
            let path = target.split('#').next().unwrap_or_default();
            if path.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            assert!(
                dir.join(path).exists(),
                "{} links {target}, which does not exist",
                file.display()
            );
        }
    }
}

/// The backticked spans of a Markdown table cell.
fn spans(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// A row of docs/configuration.md's table: the variables of its first cell, the text
/// of its second (the default).
struct ConfigurationRow {
    names: Vec<String>,
    default: String,
}

fn configuration_table() -> Vec<ConfigurationRow> {
    let text = read(&repo_root().join("docs/configuration.md"));
    let mut rows = Vec::new();
    for line in text.lines() {
        let Some(cells) = line.strip_prefix('|') else {
            continue;
        };
        let mut cells = cells.split('|');
        let names = spans(cells.next().unwrap_or_default());
        if names.is_empty() {
            continue; // the header and the rule below it
        }
        rows.push(ConfigurationRow {
            names,
            default: cells.next().unwrap_or_default().trim().to_owned(),
        });
    }
    rows
}

/// The page's table against the service's table of variables
/// (`users_server::settings::variables`): the same names, the patterns
/// (`OIDC_<NAME>_SCOPES`) written as they are, and the same defaults where the row's
/// default is a value. A row of several variables shows one default for each, in
/// order, or one for all.
#[test]
fn configuration_page_lists_every_setting_and_nothing_else() {
    let rows = configuration_table();
    let mut listed = BTreeSet::new();
    for row in &rows {
        for name in &row.names {
            let Some(variable) = variables().find(|v| v.name == name.as_str()) else {
                panic!(
                    "docs/configuration.md lists {name}, which is not in the table of \
                     variables (users_server::settings); the service does not read it"
                );
            };
            assert!(
                listed.insert(variable.name),
                "docs/configuration.md lists {name} twice"
            );
        }
        let shown = spans(&row.default);
        for (i, name) in row.names.iter().enumerate() {
            let Some(variable) = variables().find(|v| v.name == name.as_str()) else {
                continue;
            };
            if variable.when_unset == WhenUnset::Required {
                assert!(
                    row.default.starts_with("required"),
                    "docs/configuration.md: {name} must be set; its default should say \
                     \"required\", not `{}`",
                    row.default
                );
            }
            let Some(default) = variable.shown_default() else {
                continue;
            };
            let documented = match shown.len() {
                n if n == row.names.len() => &shown[i],
                1 => &shown[0],
                _ => panic!(
                    "docs/configuration.md: the row of {:?} shows {} defaults in `{}`; \
                     show one for each variable, or one for all",
                    row.names,
                    shown.len(),
                    row.default
                ),
            };
            assert_eq!(
                documented, &default,
                "docs/configuration.md shows `{documented}` as the default of {name}; \
                 the service's is `{default}`"
            );
        }
    }
    let missing: Vec<&str> = variables()
        .map(|v| v.name)
        .filter(|k| !listed.contains(k))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/configuration.md's table lacks {missing:?}"
    );
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

#[test]
fn no_source_file_cites_a_specification_outside_the_repository() {
    // Spelled in two halves so that this file does not match itself.
    let needle = concat!("CONTRACT", ".md");
    let root = repo_root();
    let mut files = Vec::new();
    for dir in ["crates", "tests", "migrations"] {
        files_under(&root.join(dir), &mut files);
    }
    assert!(
        !files.is_empty(),
        "no source files found under {}",
        root.display()
    );
    let citing: Vec<String> = files
        .iter()
        .filter(|f| {
            // Binary files (screenshots, fixtures) cannot hold a comment.
            std::fs::read_to_string(f).is_ok_and(|text| text.contains(needle))
        })
        .map(|f| f.strip_prefix(&root).unwrap_or(f).display().to_string())
        .collect();
    assert!(
        citing.is_empty(),
        "these files cite {needle}, which is not in the repository; cite the page of docs/ \
         that describes the thing instead: {citing:?}"
    );
}
