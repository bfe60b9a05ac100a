//! The Python venvs that some tests run tools from (docs/development.md): each is made
//! once under the target folder from a requirements file of `tests/fixtures/` (as
//! `.ci/run` makes it before the tests) and remade when that file changes. Where one
//! cannot be made (no `python3 -m venv`, no PyPI), its tests say SKIPPED, except in
//! CI, where they fail.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures");

/// A venv: `target/<name>`, from `tests/fixtures/<requirements>`.
pub struct Venv {
    /// Its folder's name under the target folder.
    name: &'static str,
    /// Its requirements file, relative to `tests/fixtures/`.
    requirements: &'static str,
    /// The tests that need it, for the SKIPPED message.
    needed_by: &'static str,
    made: OnceLock<Result<PathBuf, String>>,
}

/// The real fastapi-users 15, for the import tests' source databases.
pub static FASTAPI_USERS: Venv = Venv::new(
    "fastapi-users-venv",
    "fastapi_users/requirements.txt",
    "the import tests",
);

/// Authlib's OpenID Connect client, the Python relying party of the provider's tests.
pub static RELYING_PARTY: Venv = Venv::new(
    "relying-party-venv",
    "relying_party/requirements.txt",
    "the Python relying party's tests",
);

/// The target folder (the parent of cargo's tmp folder for integration tests).
pub fn target_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).to_path_buf()
}

impl Venv {
    const fn new(name: &'static str, requirements: &'static str, needed_by: &'static str) -> Self {
        Venv {
            name,
            requirements,
            needed_by,
            made: OnceLock::new(),
        }
    }

    /// The venv's python, made on first use; `None` (with a SKIPPED message) where it
    /// cannot be made, outside CI. Blocks while it is made: call it off the executor.
    pub fn python(&self) -> Option<PathBuf> {
        match self.made.get_or_init(|| self.make()) {
            Ok(venv) => Some(venv.join("bin").join("python")),
            Err(e) => {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "the venv {} must be made in CI (.ci/run makes it): {e}",
                    self.name
                );
                eprintln!(
                    "SKIPPED: cannot make the venv {} ({e}); {} need python3 -m venv and PyPI",
                    self.name, self.needed_by
                );
                None
            }
        }
    }

    /// `target/<name>`, holding a copy of the requirements it was made from (as
    /// `.ci/run` makes it). A stale or missing one is made beside it and renamed into
    /// place, so two test processes at once never see a half-made venv.
    fn make(&self) -> Result<PathBuf, String> {
        let requirements_path = Path::new(FIXTURES).join(self.requirements);
        let requirements =
            std::fs::read_to_string(&requirements_path).map_err(|e| e.to_string())?;
        let venv = target_dir().join(self.name);
        let stamp = |dir: &Path| std::fs::read_to_string(dir.join("requirements.txt")).ok();
        if stamp(&venv).as_deref() == Some(requirements.as_str()) {
            return Ok(venv);
        }
        let building = target_dir().join(format!("{}.{}", self.name, std::process::id()));
        let _ = std::fs::remove_dir_all(&building);
        let run = |cmd: &mut std::process::Command| -> Result<(), String> {
            let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "{cmd:?}: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
        };
        run(std::process::Command::new("python3")
            .args(["-m", "venv"])
            .arg(&building))?;
        run(
            std::process::Command::new(building.join("bin").join("python"))
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "-r",
                ])
                .arg(&requirements_path),
        )?;
        std::fs::write(building.join("requirements.txt"), &requirements)
            .map_err(|e| e.to_string())?;
        if stamp(&venv).as_deref() != Some(requirements.as_str()) {
            let _ = std::fs::remove_dir_all(&venv);
        }
        if std::fs::rename(&building, &venv).is_err() {
            // another process put a fresh one there first
            let _ = std::fs::remove_dir_all(&building);
        }
        if stamp(&venv).as_deref() == Some(requirements.as_str()) {
            Ok(venv)
        } else {
            Err(format!("{} was not made", venv.display()))
        }
    }
}
