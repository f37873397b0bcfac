//! The key sets a diagnosis compares: the live one (fetched once, or a file) and the
//! application's cached copy (a JWKS file or keyward's warm-start cache file).

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use keyward::jwk::{JwkSet, JwksError, VerifyingKey};
use keyward::source::{FetchReport, FetchTarget, SourceSettings, fetch, read_cache_file};
use serde_json::Value;

use crate::input;
use crate::keys::{self, KeyFile};
use crate::wire::DoctorKey;

/// True for an `http://` or `https://` argument (anything else is a file).
pub(crate) fn is_url(text: &str) -> bool {
    text.starts_with("https://") || text.starts_with("http://")
}

/// Where the live key set came from.
#[derive(Debug, Clone)]
pub(crate) enum Origin {
    /// A file given with `--jwks FILE`.
    File(String),
    /// `--jwks URL`.
    Url(String),
    /// Discovered from `--issuer`.
    Issuer(String),
}

impl Origin {
    /// `file`, `url` or `discovery`.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::File(_) => "file",
            Self::Url(_) => "url",
            Self::Issuer(_) => "discovery",
        }
    }

    /// The path, URL or issuer.
    pub(crate) fn text(&self) -> &str {
        match self {
            Self::File(s) | Self::Url(s) | Self::Issuer(s) => s,
        }
    }
}

/// The IdP's key set as it is now.
#[derive(Debug)]
pub(crate) struct Live {
    /// Where it came from.
    pub(crate) origin: Origin,
    /// Everything the one fetch saw (remote only); its `set` has been moved to [`Live::set`].
    pub(crate) report: Option<FetchReport>,
    /// The parsed set; `None` when the fetch failed.
    pub(crate) set: Option<JwkSet>,
    /// A file holding one key without `kid` (a PEM key or a bare JWK): it answers any kid.
    pub(crate) any_kid: bool,
}

impl Live {
    /// Loads the file or fetches once (`--jwks URL`, or discovery from `--issuer`). A file that
    /// holds no keys is a usage error; a failed fetch is a fact, kept in the report.
    pub(crate) async fn get(jwks: Option<&str>, issuer: Option<&str>, insecure: bool) -> Result<Self> {
        let (origin, target) = match (jwks, issuer) {
            (Some(path), _) if !is_url(path) => return Self::file(path),
            (Some(url), _) => (Origin::Url(url.to_owned()), FetchTarget::JwksUri(url.to_owned())),
            (None, Some(issuer)) => {
                (Origin::Issuer(issuer.to_owned()), FetchTarget::Issuer(issuer.to_owned()))
            }
            (None, None) => bail!("give --jwks FILE|URL, or --issuer to discover the key set"),
        };
        let mut settings = SourceSettings::default();
        settings.http.allow_insecure_http = insecure;
        let mut report = fetch(&target, &settings).await?;
        let set = report.set.take();
        Ok(Self { origin, report: Some(report), set, any_kid: false })
    }

    fn file(path: &str) -> Result<Self> {
        let bytes = input::file(Path::new(path))?;
        let origin = Origin::File(path.to_owned());
        // A JWKS is read as is, so its warnings are doctor's to report (not logged by the loader).
        if let Ok(set) = JwkSet::from_json(&bytes) {
            return Ok(Self { origin, report: None, set: Some(set), any_kid: false });
        }
        match keys::load(path)? {
            KeyFile::Set(set) => Ok(Self { origin, report: None, set: Some(set), any_kid: false }),
            KeyFile::AnyKid { set, .. } => Ok(Self { origin, report: None, set: Some(set), any_kid: true }),
        }
    }
}

/// The application's cached copy of the key set.
#[derive(Debug)]
pub(crate) struct Cached {
    /// The file given.
    pub(crate) path: PathBuf,
    /// The set.
    pub(crate) set: JwkSet,
    /// For a keyward warm-start cache file: when the set was saved.
    pub(crate) saved_at: Option<i64>,
    /// For a keyward warm-start cache file: the URL it was fetched from.
    pub(crate) jwks_uri: Option<String>,
}

impl Cached {
    /// Reads a JWKS file, or else a keyward warm-start cache file; anything else is a usage error.
    pub(crate) fn load(path: &Path, now: i64) -> Result<Self> {
        let bytes = input::file(path)?;
        let as_jwks = match JwkSet::from_json(&bytes) {
            Ok(set) => return Ok(Self { path: path.to_owned(), set, saved_at: None, jwks_uri: None }),
            Err(e) => e,
        };
        if matches!(as_jwks, JwksError::NotAKeySet(_)) {
            match read_cache_file(path, now) {
                Ok(cached) => {
                    return Ok(Self {
                        path: path.to_owned(),
                        set: cached.set,
                        saved_at: Some(cached.saved_at_unix),
                        jwks_uri: Some(cached.jwks_uri).filter(|u| !u.is_empty()),
                    });
                }
                Err(e) => bail!(
                    "cannot use {} as --cached-jwks: it is neither a JWKS ({as_jwks}) nor a keyward cache file ({e})",
                    path.display()
                ),
            }
        }
        bail!("cannot use {} as --cached-jwks: {as_jwks}", path.display())
    }
}

/// A usable key as the JSON and the checklist describe it.
pub(crate) fn describe_key(key: &VerifyingKey) -> DoctorKey {
    let jwk = key.public_jwk();
    let text = |name: &str| jwk.get(name).and_then(Value::as_str).map(str::to_owned);
    DoctorKey {
        kid: key.kid().map(str::to_owned),
        kty: text("kty"),
        crv: text("crv"),
        bits: Some(key.bits()),
        alg: text("alg"),
        r#use: text("use"),
        key_ops: jwk
            .get("key_ops")
            .and_then(Value::as_array)
            .map(|ops| ops.iter().filter_map(Value::as_str).map(str::to_owned).collect()),
        thumbprint: Some(key.thumbprint_b64()),
        problem: None,
        detail: key.describe(),
    }
}

/// The set's usable keys and the keys it set aside, for the JSON.
pub(crate) fn describe_set(set: &JwkSet) -> Vec<DoctorKey> {
    let mut keys: Vec<DoctorKey> = set.keys().iter().map(|k| describe_key(k)).collect();
    keys.extend(set.set_aside().iter().map(|aside| DoctorKey {
        kid: aside.kid.clone(),
        kty: aside.kty.clone(),
        crv: None,
        bits: None,
        alg: None,
        r#use: None,
        key_ops: None,
        thumbprint: None,
        problem: Some(aside.problem.as_str()),
        detail: aside.detail.clone(),
    }));
    keys
}

/// The kids of a set's usable keys, in document order (`(no kid)` for a key without one).
pub(crate) fn kids(set: &JwkSet) -> Vec<String> {
    set.keys().iter().map(|k| k.kid().unwrap_or("(no kid)").to_owned()).collect()
}
