#!/usr/bin/env python3
"""Generate interop JWTs for keyward's tests with independent JOSE libraries.

For each of RS256..RS512, PS256..PS512, ES256/384/512 and EdDSA (Ed25519),
and for each of PyJWT and jwcrypto, a fresh key pair is generated, a JWT is
signed, and the public key is exported with that library's own JWK exporter.
Everything goes into one JSON file:

    {"generated_by": {...versions...}, "now": <iat>,
     "jwks": {"keys": [...]},
     "tokens": [{"library", "alg", "kid", "token", "claims"}, ...]}

`--merge FILE` adds the keys and tokens of a file with the same layout
(for example the one written by gen.mjs with node `jose`); it must have been
made with the same `--now`.

Before writing, every token (merged ones included) is verified with both
PyJWT and jwcrypto against the public JWK from the output JWKS, so a broken
file is never written.

Usage (from the repo root):
    pip install 'pyjwt[crypto]' jwcrypto
    python3 interop/gen.py [--now 1767225600] [--out PATH] [--merge FILE ...]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import sys
import time
from importlib import metadata
from pathlib import Path

import jwt as pyjwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwcrypto import jwk as jc_jwk
from jwcrypto import jws as jc_jws
from jwcrypto import jwt as jc_jwt

ISSUER = "https://idp.example.test"
AUDIENCE = "keyward-interop"
LIFETIME = 3600

ALGORITHMS = [
    "RS256", "RS384", "RS512",
    "PS256", "PS384", "PS512",
    "ES256", "ES384", "ES512",
    "EdDSA",
]

EC_CURVES = {
    "ES256": ("P-256", ec.SECP256R1),
    "ES384": ("P-384", ec.SECP384R1),
    "ES512": ("P-521", ec.SECP521R1),
}

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "crates/keyward/tests/data/interop/tokens.json"


def claims_for(library: str, alg: str, now: int) -> dict:
    """A realistic claim set; distinct per token so mix-ups are visible."""
    return {
        "iss": ISSUER,
        "sub": f"user-{library}-{alg.lower()}",
        "aud": AUDIENCE,
        "iat": now,
        "nbf": now,
        "exp": now + LIFETIME,
        "jti": f"{library}-{alg}-{now}",
        "scope": "openid profile email keyward:read",
        "name": "Zoë Ångström",
        "email_verified": True,
        "ctx": {
            "tenant": "acme",
            "roles": ["reader", "auditor"],
            "mfa": {"method": "totp", "age_s": 42},
            "library": library,
            "alg": alg,
        },
    }


def b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def decode_segment(token: str, index: int) -> dict:
    return json.loads(b64url_decode(token.split(".")[index]))


def public_jwk_meta(jwk: dict, kid: str, alg: str) -> dict:
    out = dict(jwk)
    out["kid"] = kid
    out["alg"] = alg
    out["use"] = "sig"
    return out


# --------------------------------------------------------------------------
# PyJWT
# --------------------------------------------------------------------------

def pyjwt_keypair(alg: str):
    """Generate a private key (via cryptography, which PyJWT builds on) and
    export the public half with PyJWT's own JWK exporter."""
    algs = pyjwt.algorithms
    if alg.startswith(("RS", "PS")):
        priv = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = algs.RSAAlgorithm.to_jwk(priv.public_key(), as_dict=True)
    elif alg in EC_CURVES:
        priv = ec.generate_private_key(EC_CURVES[alg][1]())
        jwk = algs.ECAlgorithm.to_jwk(priv.public_key(), as_dict=True)
    elif alg == "EdDSA":
        priv = ed25519.Ed25519PrivateKey.generate()
        jwk = algs.OKPAlgorithm.to_jwk(priv.public_key(), as_dict=True)
    else:
        raise ValueError(alg)
    return priv, dict(jwk)


def pyjwt_token(alg: str, now: int) -> tuple[dict, dict]:
    kid = f"pyjwt-{alg}"
    priv, jwk = pyjwt_keypair(alg)
    claims = claims_for("pyjwt", alg, now)
    token = pyjwt.encode(claims, priv, algorithm=alg, headers={"kid": kid, "typ": "JWT"})
    return public_jwk_meta(jwk, kid, alg), {
        "library": "pyjwt", "alg": alg, "kid": kid, "token": token, "claims": claims,
    }


# --------------------------------------------------------------------------
# jwcrypto
# --------------------------------------------------------------------------

def jwcrypto_keypair(alg: str, kid: str) -> jc_jwk.JWK:
    if alg.startswith(("RS", "PS")):
        return jc_jwk.JWK.generate(kty="RSA", size=2048, kid=kid)
    if alg in EC_CURVES:
        return jc_jwk.JWK.generate(kty="EC", crv=EC_CURVES[alg][0], kid=kid)
    if alg == "EdDSA":
        return jc_jwk.JWK.generate(kty="OKP", crv="Ed25519", kid=kid)
    raise ValueError(alg)


def jwcrypto_token(alg: str, now: int) -> tuple[dict, dict]:
    kid = f"jwcrypto-{alg}"
    key = jwcrypto_keypair(alg, kid)
    claims = claims_for("jwcrypto", alg, now)
    tok = jc_jwt.JWT(header={"alg": alg, "kid": kid, "typ": "JWT"}, claims=claims)
    tok.make_signed_token(key)
    token = tok.serialize()
    jwk = key.export_public(as_dict=True)
    return public_jwk_meta(jwk, kid, alg), {
        "library": "jwcrypto", "alg": alg, "kid": kid, "token": token, "claims": claims,
    }


# --------------------------------------------------------------------------
# Self-check: every token must verify with both Python libraries.
# --------------------------------------------------------------------------

def self_check(doc: dict) -> None:
    keys = {k["kid"]: k for k in doc["jwks"]["keys"]}
    if len(keys) != len(doc["jwks"]["keys"]):
        raise SystemExit("duplicate kid in JWKS")
    seen = set()
    for entry in doc["tokens"]:
        tag = f"{entry['library']}/{entry['alg']}"
        if (entry["library"], entry["alg"]) in seen:
            raise SystemExit(f"{tag}: duplicate token")
        seen.add((entry["library"], entry["alg"]))
        token = entry["token"]
        header = decode_segment(token, 0)
        if header.get("alg") != entry["alg"] or header.get("kid") != entry["kid"]:
            raise SystemExit(f"{tag}: header {header} does not match entry")
        if header.get("typ") != "JWT":
            raise SystemExit(f"{tag}: header typ is {header.get('typ')!r}")
        if decode_segment(token, 1) != entry["claims"]:
            raise SystemExit(f"{tag}: payload differs from recorded claims")
        jwk = keys.get(entry["kid"])
        if jwk is None:
            raise SystemExit(f"{tag}: kid {entry['kid']} not in JWKS")
        if jwk.get("alg") != entry["alg"] or jwk.get("use") != "sig":
            raise SystemExit(f"{tag}: JWK alg/use mismatch: {jwk}")
        if any(p in jwk for p in ("d", "p", "q", "dp", "dq", "qi")):
            raise SystemExit(f"{tag}: JWKS contains private key material")

        # PyJWT, key imported from the published JWK.
        pk = pyjwt.PyJWK.from_dict(jwk)
        got = pyjwt.decode(
            token, pk.key, algorithms=[entry["alg"]], audience=AUDIENCE, issuer=ISSUER,
            options={"verify_exp": False, "verify_nbf": False, "verify_iat": False},
        )
        if got != entry["claims"]:
            raise SystemExit(f"{tag}: PyJWT-decoded claims differ")

        # jwcrypto, key imported from the published JWK.
        jk = jc_jwk.JWK(**jwk)
        sig = jc_jws.JWS()
        sig.deserialize(token)
        sig.verify(jk, alg=entry["alg"])
        if json.loads(sig.payload) != entry["claims"]:
            raise SystemExit(f"{tag}: jwcrypto-decoded claims differ")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT,
                    help=f"output file (default: {DEFAULT_OUT.relative_to(REPO_ROOT)})")
    ap.add_argument("--now", type=int, default=None,
                    help="unix seconds used for iat/nbf (default: current time)")
    ap.add_argument("--merge", type=Path, action="append", default=[],
                    help="also include keys and tokens from this file (same layout, same --now)")
    args = ap.parse_args()

    now = int(time.time()) if args.now is None else args.now

    doc = {
        "generated_by": {
            "python": platform.python_version(),
            "pyjwt": metadata.version("PyJWT"),
            "jwcrypto": metadata.version("jwcrypto"),
            "cryptography": metadata.version("cryptography"),
        },
        "now": now,
        "jwks": {"keys": []},
        "tokens": [],
    }
    for maker in (pyjwt_token, jwcrypto_token):
        for alg in ALGORITHMS:
            jwk, entry = maker(alg, now)
            doc["jwks"]["keys"].append(jwk)
            doc["tokens"].append(entry)

    for path in args.merge:
        other = json.loads(path.read_text(encoding="utf-8"))
        if other.get("now") != now:
            raise SystemExit(
                f"{path}: made with now={other.get('now')}, this run uses now={now}; "
                "pass the same --now to both generators")
        for name, version in other.get("generated_by", {}).items():
            doc["generated_by"].setdefault(name, version)
        doc["jwks"]["keys"].extend(other["jwks"]["keys"])
        doc["tokens"].extend(other["tokens"])

    self_check(doc)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    per_lib: dict[str, int] = {}
    for t in doc["tokens"]:
        per_lib[t["library"]] = per_lib.get(t["library"], 0) + 1
    summary = ", ".join(f"{lib}={n}" for lib, n in per_lib.items())
    print(f"wrote {len(doc['tokens'])} tokens ({summary}), {len(doc['jwks']['keys'])} keys, "
          f"now={now} -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
