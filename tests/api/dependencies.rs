//! Which library holds the private keys of tokens. The `rsa` crate's private-key
//! operations leak timing (RUSTSEC-2023-0071, the Marvin attack, unfixed), so access
//! tokens and every other signature of this service are made by aws-lc-rs, and
//! jsonwebtoken runs on its `aws_lc_rs` backend. A dependency added or changed later
//! could bring either back without a line of our code changing; this reads the resolved
//! graph (`cargo metadata`, no server needed) and refuses it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

/// The only package allowed to depend on `rsa`: webauthn-rs's crypto-glue, which only
/// verifies passkey signatures with it (public-key operations, which the attack is not
/// about).
const RSA_ALLOWED_IN: &[&str] = &[
    "crypto-glue",
    // the tests' independent OpenID relying party (a dev-dependency only): it verifies
    // RS256 signatures with public keys, no private-key operation
    "openidconnect",
];

/// `cargo metadata` of the whole workspace, every target platform.
fn metadata() -> Value {
    // CARGO is set when cargo runs the tests; the one that built them otherwise.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml");
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--locked",
            "--manifest-path",
        ])
        .arg(&manifest)
        .output()
        .expect("cannot run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("cargo metadata printed no JSON")
}

/// Package id → (name, version).
fn packages(meta: &Value) -> BTreeMap<&str, (&str, &str)> {
    meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| {
            (
                p["id"].as_str().expect("id"),
                (
                    p["name"].as_str().expect("name"),
                    p["version"].as_str().expect("version"),
                ),
            )
        })
        .collect()
}

fn nodes(meta: &Value) -> &Vec<Value> {
    meta["resolve"]["nodes"]
        .as_array()
        .expect("cargo metadata resolved no graph")
}

/// (a) `rsa` is a normal or build dependency of nothing but crypto-glue; a
/// dev-dependency (a test's software authenticator) may still have it.
#[test]
fn rsa_is_used_by_no_one_but_passkey_verification() {
    let meta = metadata();
    let packages = packages(&meta);
    let mut offenders = Vec::new();
    for node in nodes(&meta) {
        let (holder, holder_version) = packages[node["id"].as_str().expect("node id")];
        for dep in node["deps"].as_array().expect("deps") {
            let (name, version) = packages[dep["pkg"].as_str().expect("dep pkg")];
            if name != "rsa" || RSA_ALLOWED_IN.contains(&holder) {
                continue;
            }
            // kind: null for a normal dependency, "build", or "dev"
            let not_dev = dep["dep_kinds"]
                .as_array()
                .expect("dep_kinds")
                .iter()
                .any(|k| k["kind"].as_str() != Some("dev"));
            if not_dev {
                offenders.push(format!("{holder} {holder_version} → rsa {version}"));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "the rsa crate (RUSTSEC-2023-0071, timing of private-key operations) is a \
         dependency of {offenders:?}; sign with aws-lc-rs instead"
    );
}

/// (b) jsonwebtoken signs with aws-lc-rs: its `aws_lc_rs` feature on, `rust_crypto` off
/// (both on would also leave it without a provider: it panics on the first token).
#[test]
fn jsonwebtoken_signs_with_aws_lc_rs() {
    let meta = metadata();
    let packages = packages(&meta);
    let mut seen = 0;
    for node in nodes(&meta) {
        let (name, version) = packages[node["id"].as_str().expect("node id")];
        if name != "jsonwebtoken" {
            continue;
        }
        seen += 1;
        let features: Vec<&str> = node["features"]
            .as_array()
            .expect("features")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(
            !features.contains(&"rust_crypto"),
            "jsonwebtoken {version} is built with its rust_crypto feature ({features:?}): \
             its RS256 signatures would go through the rsa crate (RUSTSEC-2023-0071)"
        );
        assert!(
            features.contains(&"aws_lc_rs"),
            "jsonwebtoken {version} is built without its aws_lc_rs feature ({features:?})"
        );
    }
    assert!(
        seen > 0,
        "jsonwebtoken is not in the graph: is this check still needed?"
    );
}

/// The arrows ARCHITECTURE.md draws between the workspace's crates, and no other: each
/// crate's normal dependencies on crates of the workspace (dev-dependencies are the
/// tests' business). users-domain is below everything and any crate may use it
/// (users-mail needs nothing of ours).
const ARROWS: &[(&str, &[&str])] = &[
    ("users-domain", &[]),
    ("users-db", &["users-domain"]),
    ("users-upstream", &["users-domain"]),
    ("users-mail", &[]),
    (
        "users-core",
        &["users-db", "users-upstream", "users-mail", "users-domain"],
    ),
    ("users-server", &["users-core", "users-domain"]),
    // the tests' stand-ins of the outside world: a dev-dependency, knowing none of ours
    ("users-testkit", &[]),
];

#[test]
fn the_crates_depend_on_one_another_as_architecture_md_draws() {
    let meta = metadata();
    let ours: Vec<&str> = ARROWS.iter().map(|(name, _)| *name).collect();
    let mut found: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for package in meta["packages"].as_array().expect("packages") {
        let name = package["name"].as_str().expect("name");
        if !name.starts_with("users-") {
            continue;
        }
        let mut deps: Vec<String> = package["dependencies"]
            .as_array()
            .expect("dependencies")
            .iter()
            .filter(|d| d["kind"].is_null())
            .map(|d| d["name"].as_str().expect("name").to_owned())
            .filter(|d| d.starts_with("users-"))
            .collect();
        deps.sort();
        found.insert(name.to_owned(), deps);
    }
    let drawn: BTreeMap<String, Vec<String>> = ARROWS
        .iter()
        .map(|(name, deps)| {
            let mut deps: Vec<String> = deps.iter().map(|d| (*d).to_owned()).collect();
            deps.sort();
            ((*name).to_owned(), deps)
        })
        .collect();
    let unknown: Vec<&String> = found
        .keys()
        .filter(|k| !ours.contains(&k.as_str()))
        .collect();
    assert!(
        unknown.is_empty(),
        "crates not in ARCHITECTURE.md's drawing (add them there and here): {unknown:?}"
    );
    assert_eq!(
        found, drawn,
        "the crates' dependencies differ from the arrows of ARCHITECTURE.md (a crate that \
         needs what it may not reach asks the crate it may reach to pass it on)"
    );
}
