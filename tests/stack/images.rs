//! The base images, made on this machine from Debian's packages since no registry is
//! reachable: `debootstrap --variant=minbase bookworm` from the mirror apt uses, cleaned
//! as Debian's slim images are (no docs, man pages, translations or apt lists), then
//! `docker import`ed under the names the Dockerfile and the compose files use.
//!
//! Each image carries a label with the key of its recipe (suite, mirror, packages,
//! toolchain): an image with the right key in the engine's data root is used as it is;
//! otherwise the debootstrapped folder kept under `target/` for that key is imported
//! again; otherwise debootstrap runs.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};

use crate::engine::Engine;
use crate::{run, tail_of};

/// Bump when the way a root file system is made changes, so that cached ones are remade.
const RECIPE: &str = "stack-test rootfs 1";
const SUITE: &str = "bookworm";
const KEY_LABEL: &str = "users.stack-test.key";

/// The host's active Rust toolchain, copied into the builder image.
pub struct Toolchain {
    pub sysroot: PathBuf,
    /// `rustc -vV`
    pub description: String,
    /// e.g. `1.95` (the tag of the official image, `rust:1.95-bookworm`)
    pub minor_version: String,
}

impl Toolchain {
    pub fn active() -> Toolchain {
        let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
        let sysroot = run(Command::new(&rustc).args(["--print", "sysroot"]))
            .trim()
            .to_owned();
        let description = run(Command::new(&rustc).arg("-vV"));
        let release = description
            .lines()
            .find_map(|l| l.strip_prefix("release: "))
            .expect("rustc -vV names its release");
        let minor_version = release.splitn(3, '.').take(2).collect::<Vec<_>>().join(".");
        Toolchain {
            sysroot: PathBuf::from(sysroot),
            description,
            minor_version,
        }
    }
}

/// One base image: Debian plus `packages` (plus the toolchain).
pub struct BaseImage<'a> {
    pub tag: String,
    pub packages: &'static [&'static str],
    pub toolchain: Option<&'a Toolchain>,
    /// `docker import --change` instructions.
    pub changes: Vec<String>,
}

/// What it took to have the image.
pub enum Made {
    /// In the data root already.
    Cached,
    /// Imported from the folder kept under target/.
    Imported,
    /// Debootstrapped and imported.
    Debootstrapped,
}

impl BaseImage<'_> {
    fn key(&self, mirror: &str) -> String {
        let mut recipe = format!(
            "{RECIPE}\n{SUITE}\n{mirror}\n{:?}\n{:?}\n",
            self.packages, self.changes
        );
        if let Some(t) = self.toolchain {
            recipe.push_str(&t.description);
        }
        let digest = Sha256::digest(recipe.as_bytes());
        let mut hex = String::new();
        for b in &digest[..8] {
            let _ = write!(hex, "{b:02x}");
        }
        hex
    }

    /// Makes sure the engine has the image with this recipe.
    pub fn ensure(&self, engine: &Engine, rootfs_dir: &Path, mirror: &str) -> Made {
        let key = self.key(mirror);
        let label = run_lossy(engine.docker().args([
            "image",
            "inspect",
            "--format",
            &format!("{{{{index .Config.Labels \"{KEY_LABEL}\"}}}}"),
            &self.tag,
        ]));
        if label.trim() == key {
            return Made::Cached;
        }
        let slug: String = self
            .tag
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let folder = rootfs_dir.join(format!("{slug}-{key}"));
        let complete = rootfs_dir.join(format!("{slug}-{key}.complete"));
        let made = if complete.exists() {
            Made::Imported
        } else {
            self.debootstrap(&folder, mirror);
            std::fs::write(&complete, &self.tag).unwrap();
            Made::Debootstrapped
        };
        self.import(engine, &folder, &key);
        made
    }

    fn debootstrap(&self, folder: &Path, mirror: &str) {
        if folder.exists() {
            std::fs::remove_dir_all(folder).unwrap();
        }
        std::fs::create_dir_all(folder).unwrap();
        let log = folder.with_extension("debootstrap.log");
        let mut command = Command::new("debootstrap");
        command.arg("--variant=minbase");
        if !self.packages.is_empty() {
            command.arg(format!("--include={}", self.packages.join(",")));
        }
        command
            .arg(SUITE)
            .arg(folder)
            .arg(mirror)
            .stdin(Stdio::null());
        let log_file = std::fs::File::create(&log).unwrap();
        command
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file);
        let status = command.status().expect("run debootstrap");
        assert!(
            status.success(),
            "debootstrap of {} failed ({status}):\n{}",
            self.tag,
            tail_of(&log, 30)
        );
        slim_down(folder);
        if let Some(toolchain) = self.toolchain {
            let rust = folder.join("usr/local/rust");
            std::fs::create_dir_all(&rust).unwrap();
            std::fs::create_dir_all(folder.join("usr/local/cargo/bin")).unwrap();
            for part in ["bin", "lib", "libexec"] {
                let from = toolchain.sysroot.join(part);
                if from.exists() {
                    run(Command::new("cp").arg("-a").arg(&from).arg(&rust));
                }
            }
        }
    }

    fn import(&self, engine: &Engine, folder: &Path, key: &str) {
        let mut tar = Command::new("tar")
            .arg("--numeric-owner")
            .arg("-C")
            .arg(folder)
            .args(["-c", "."])
            .stdout(Stdio::piped())
            .spawn()
            .expect("run tar");
        let mut import = engine.docker();
        import.arg("import");
        import.args(["--change", &format!("LABEL {KEY_LABEL}={key}")]);
        for change in &self.changes {
            import.args(["--change", change]);
        }
        import
            .args(["-", &self.tag])
            .stdin(tar.stdout.take().unwrap())
            .stdout(Stdio::null());
        let status = import.status().expect("run docker import");
        let tar_status = tar.wait().unwrap();
        assert!(
            status.success() && tar_status.success(),
            "importing {} failed (docker import: {status}, tar: {tar_status})",
            self.tag
        );
    }
}

/// What Debian's slim images leave out, and apt's downloads.
fn slim_down(root: &Path) {
    for folder in [
        "usr/share/doc",
        "usr/share/man",
        "usr/share/info",
        "usr/share/locale",
        "var/cache/apt/archives",
        "var/lib/apt/lists",
    ] {
        let Ok(entries) = std::fs::read_dir(root.join(folder)) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            // apt's own folders (partial/) stay.
            if folder.starts_with("var/") && is_dir {
                continue;
            }
            if is_dir {
                std::fs::remove_dir_all(&path).unwrap();
            } else {
                std::fs::remove_file(&path).unwrap();
            }
        }
    }
    for cache in ["pkgcache.bin", "srcpkgcache.bin"] {
        let _ = std::fs::remove_file(root.join("var/cache/apt").join(cache));
    }
}

/// `command`'s stdout, or "" when it fails.
fn run_lossy(command: &mut Command) -> String {
    command
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// The Debian mirror apt uses for bookworm's main component, from
/// /etc/apt/sources.list and /etc/apt/sources.list.d (one-line and deb822 forms).
pub fn debian_mirror() -> Option<String> {
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(entries) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut more: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        more.sort();
        files.extend(more);
    }
    files.iter().find_map(|file| {
        let text = std::fs::read_to_string(file).ok()?;
        if file.extension().is_some_and(|e| e == "sources") {
            mirror_in_deb822(&text)
        } else {
            mirror_in_one_line_form(&text)
        }
    })
}

fn fits(uri: &str, suites: &[&str], components: &[&str]) -> bool {
    (uri.starts_with("http://") || uri.starts_with("https://"))
        && suites.contains(&SUITE)
        && components.contains(&"main")
}

fn mirror_in_one_line_form(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let line = line.split('#').next().unwrap_or_default();
        let mut words = line.split_whitespace().peekable();
        if words.next()? != "deb" {
            return None;
        }
        if words.peek()?.starts_with('[') {
            // options: [arch=amd64 signed-by=…]
            for w in words.by_ref() {
                if w.ends_with(']') {
                    break;
                }
            }
        }
        let uri = words.next()?;
        let suite = words.next()?;
        let components: Vec<&str> = words.collect();
        fits(uri, &[suite], &components).then(|| uri.to_owned())
    })
}

fn mirror_in_deb822(text: &str) -> Option<String> {
    text.split("\n\n").find_map(|stanza| {
        let field = |name: &str| -> Vec<&str> {
            stanza
                .lines()
                .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
                .map(|v| v.split_whitespace().collect())
                .unwrap_or_default()
        };
        if !field("Types").contains(&"deb") || field("Enabled") == ["no"] {
            return None;
        }
        let (suites, components) = (field("Suites"), field("Components"));
        field("URIs")
            .into_iter()
            .find(|uri| fits(uri, &suites, &components))
            .map(str::to_owned)
    })
}

#[test]
fn finds_the_mirror_in_both_forms_of_apt_sources() {
    let deb822 = "Types: deb\n# a comment\nURIs: http://deb.example.org/debian\n\
                  Suites: bookworm bookworm-updates\nComponents: main\n\n\
                  Types: deb\nURIs: https://other.example.org/apt\nSuites: nodistro\n\
                  Components: main\n";
    assert_eq!(
        mirror_in_deb822(deb822).as_deref(),
        Some("http://deb.example.org/debian")
    );
    let lines = "deb https://packages.example.org/apt cloud-sdk-bookworm main\n\
                 deb [arch=amd64 signed-by=/k.gpg] http://ftp.example.org/debian bookworm main contrib\n";
    assert_eq!(
        mirror_in_one_line_form(lines).as_deref(),
        Some("http://ftp.example.org/debian")
    );
    assert_eq!(
        mirror_in_one_line_form("deb http://x/debian trixie main\n"),
        None
    );
}
