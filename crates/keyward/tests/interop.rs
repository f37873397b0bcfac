//! Interop: JWTs signed, and public JWKs exported, by independent JOSE implementations (PyJWT,
//! jwcrypto, node `jose`; see `interop/`) must verify with keyward, and yield exactly the claims
//! the generator signed; one flipped signature byte must be `invalid_signature`.
//!
//! The token file is `$KEYWARD_INTEROP_FILE` when set (CI regenerates it), else the committed
//! `tests/data/interop/tokens.json`. This is a `harness = false` test (libtest-mimic) so that
//! WHICH tokens were used is in the test summary itself, not only under `--nocapture`: every
//! trial's name ends with the source, e.g.
//! `interop::pyjwt::RS256 [tokens: committed fallback; regenerate with interop/gen.py] ... ok`,
//! and `interop::source [...]` lists the token count per library.
//!
//! Under `CI=true` the file must be the regenerated one and must hold all 10 algorithms from
//! each of the three libraries; a missing library fails its `interop::coverage::<library>`
//! trial. Outside CI a library missing from a hand-made file is reported as an IGNORED trial
//! whose name says so (the committed fallback has all three).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keyward::jwk::JwkSet;
use keyward::{FixedClock, Policy, Reason, Verifier};
use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::Value;

const ISSUER: &str = "https://idp.example.test";
const AUDIENCE: &str = "keyward-interop";
const ALGORITHMS: [&str; 10] =
    ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"];
/// The `library` names the generators write, in the order `interop/` documents them.
const LIBRARIES: [&str; 3] = ["pyjwt", "jwcrypto", "jose"];
/// The committed fallback, relative to the crate.
const COMMITTED: &str = "tests/data/interop/tokens.json";

fn in_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// Where the tokens come from, and the words the trial names use for it.
struct Source {
    path: PathBuf,
    label: String,
    /// True for the committed fallback (no generator ran on this machine).
    fallback: bool,
}

fn source() -> Source {
    match std::env::var_os("KEYWARD_INTEROP_FILE") {
        Some(path) if !path.is_empty() => {
            let path = PathBuf::from(path);
            let label = format!("tokens: regenerated, {}", path.display());
            Source { path, label, fallback: false }
        }
        _ => Source {
            path: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(COMMITTED),
            label: "tokens: committed fallback; regenerate with interop/gen.py".to_owned(),
            fallback: true,
        },
    }
}

/// One token entry of the interop file.
#[derive(Clone, Debug)]
struct Entry {
    library: String,
    alg: String,
    kid: String,
    token: String,
    claims: Value,
}

/// The parsed interop file: the verifier built from its JWKS at its `now`, and its tokens.
struct Loaded {
    verifier: Arc<Verifier>,
    now: i64,
    entries: Vec<Entry>,
}

fn str_field(entry: &Value, name: &str) -> Result<String, String> {
    entry[name]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("token entry without string field {name:?}: {entry}"))
}

fn load(source: &Source) -> Result<Loaded, String> {
    let path = source.path.display();
    let bytes = std::fs::read(&source.path).map_err(|e| format!("cannot read interop file {path}: {e}"))?;
    let doc: Value = serde_json::from_slice(&bytes).map_err(|e| format!("{path} is not JSON: {e}"))?;
    let now = doc["now"].as_i64().ok_or_else(|| format!("{path}: no integer `now`"))?;
    let jwks = serde_json::to_vec(&doc["jwks"]).map_err(|e| format!("{path}: jwks: {e}"))?;
    let set =
        JwkSet::from_json(&jwks).map_err(|e| format!("{path}: the generators' JWKS does not load: {e}"))?;
    if !set.set_aside().is_empty() {
        return Err(format!("{path}: keys set aside: {:?}", set.set_aside()));
    }
    let policy = Policy::builder().issuer(ISSUER).audience(AUDIENCE).build().map_err(|e| e.to_string())?;
    let verifier = Verifier::builder()
        .policy(policy)
        .keys(set)
        .clock(FixedClock::at(now))
        .build()
        .map_err(|e| e.to_string())?;
    let tokens = doc["tokens"].as_array().ok_or_else(|| format!("{path}: no `tokens` array"))?;
    let entries = tokens
        .iter()
        .map(|entry| {
            Ok(Entry {
                library: str_field(entry, "library")?,
                alg: str_field(entry, "alg")?,
                kid: str_field(entry, "kid")?,
                token: str_field(entry, "token")?,
                claims: entry["claims"].clone(),
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Loaded { verifier: Arc::new(verifier), now, entries })
}

/// Copies of the token with one byte of its decoded signature flipped: the first, a middle and
/// the last byte.
fn flipped_signatures(token: &str) -> Result<Vec<(&'static str, String)>, String> {
    let (signing_input, sig_b64) = token.rsplit_once('.').ok_or("not a compact JWS")?;
    let sig = URL_SAFE_NO_PAD.decode(sig_b64).map_err(|e| format!("signature is not base64url: {e}"))?;
    if sig.is_empty() {
        return Err("empty signature".to_owned());
    }
    Ok([("first", 0), ("middle", sig.len() / 2), ("last", sig.len() - 1)]
        .into_iter()
        .map(|(which, i)| {
            let mut flipped = sig.clone();
            flipped[i] ^= 0x01;
            (which, format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(&flipped)))
        })
        .collect())
}

/// The token verifies with exactly the generator's claims, alg and kid; each flipped signature
/// byte is rejected with `invalid_signature`.
async fn check_token(verifier: &Verifier, entry: &Entry) -> Result<(), String> {
    let mut failures = Vec::new();
    match verifier.verify(&entry.token).await {
        Ok(verified) => {
            let claims = Value::Object(verified.claims().clone());
            if claims != entry.claims {
                failures.push(format!("claims differ\n  keyward:   {claims}\n  generator: {}", entry.claims));
            }
            if verified.alg().as_str() != entry.alg {
                failures.push(format!("verified alg is {:?}", verified.alg()));
            }
            if verified.kid() != Some(entry.kid.as_str()) {
                failures.push(format!(
                    "verified kid is {:?}, generator's is {:?}",
                    verified.kid(),
                    entry.kid
                ));
            }
        }
        Err(err) => failures.push(format!("rejected ({}): {err}", err.reason().as_str())),
    }
    for (which, tampered) in flipped_signatures(&entry.token)? {
        match verifier.verify(&tampered).await {
            Ok(_) => failures.push(format!("accepted with the {which} signature byte flipped")),
            Err(err) if err.reason() == Reason::InvalidSignature => {}
            Err(err) => failures.push(format!(
                "{which} signature byte flipped: reason {} instead of invalid_signature ({err})",
                err.reason().as_str()
            )),
        }
    }
    if failures.is_empty() { Ok(()) } else { Err(failures.join("\n")) }
}

fn run_token(verifier: &Verifier, entry: &Entry) -> Result<(), Failed> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    runtime
        .block_on(check_token(verifier, entry))
        .map_err(|e| Failed::from(format!("{}/{} (kid {}): {e}", entry.library, entry.alg, entry.kid)))
}

/// The algorithms each library has tokens for, and the first duplicate (library, alg) if any.
fn per_library(entries: &[Entry]) -> (BTreeMap<&str, BTreeSet<&str>>, Option<String>) {
    let mut map: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut duplicate = None;
    for entry in entries {
        if !map.entry(entry.library.as_str()).or_default().insert(entry.alg.as_str()) {
            duplicate.get_or_insert_with(|| format!("{}/{}", entry.library, entry.alg));
        }
    }
    (map, duplicate)
}

/// All trials for one run: the source summary, one per library's coverage, one per token.
fn trials(ci: bool, source: &Source) -> Vec<Trial> {
    let label = source.label.clone();
    if ci && source.fallback {
        return vec![Trial::test(format!("interop::source [{label}]"), || {
            Err("CI=true but KEYWARD_INTEROP_FILE is not set: CI must regenerate the tokens with PyJWT, \
                 jwcrypto and node jose (.ci/run does; see interop/README.md)"
                .into())
        })];
    }
    let loaded = match load(source) {
        Ok(loaded) => loaded,
        Err(e) => return vec![Trial::test(format!("interop::source [{label}]"), move || Err(e.into()))],
    };
    let (algs_by_library, duplicate) = per_library(&loaded.entries);
    let counts: Vec<String> = LIBRARIES
        .iter()
        .map(|lib| format!("{lib} {}", algs_by_library.get(lib).map_or(0, BTreeSet::len)))
        .collect();
    let unknown: Vec<String> =
        algs_by_library.keys().filter(|lib| !LIBRARIES.contains(lib)).map(|lib| (*lib).to_owned()).collect();

    let mut trials = vec![Trial::test(
        format!("interop::source [{label}; now={}; tokens: {}]", loaded.now, counts.join(", ")),
        move || match (duplicate, unknown.is_empty()) {
            (Some(dup), _) => Err(format!("more than one token for {dup}").into()),
            (None, false) => {
                Err(format!("tokens from unknown libraries {unknown:?}; expected {LIBRARIES:?}").into())
            }
            (None, true) => Ok(()),
        },
    )];

    for library in LIBRARIES {
        let algs = algs_by_library.get(library).cloned().unwrap_or_default();
        let missing: Vec<&str> = ALGORITHMS.iter().copied().filter(|a| !algs.contains(a)).collect();
        let name = if missing.is_empty() {
            format!("interop::coverage::{library} [all {} algorithms; {label}]", ALGORITHMS.len())
        } else if algs.is_empty() {
            format!("interop::coverage::{library} [NO {library} TOKENS, required in CI; {label}]")
        } else {
            format!("interop::coverage::{library} [MISSING {}: {missing:?}; {label}]", missing.len())
        };
        let trial = Trial::test(name, move || {
            if missing.is_empty() {
                Ok(())
            } else {
                Err(format!("{library} lacks {missing:?}; CI requires all three libraries").into())
            }
        });
        // Only outside CI may a hand-made file lack a library, and then the summary says so.
        trials.push(trial.with_ignored_flag(!ci && algs.is_empty()));
    }

    for entry in loaded.entries {
        let verifier = Arc::clone(&loaded.verifier);
        let name = format!("interop::{}::{} [{label}]", entry.library, entry.alg);
        trials.push(Trial::test(name, move || run_token(&verifier, &entry)));
    }
    trials
}

fn main() {
    let args = Arguments::from_args();
    let source = source();
    libtest_mimic::run(&args, trials(in_ci(), &source)).exit();
}
