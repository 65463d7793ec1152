//! The Bot Framework's signing keys and the JWTs it puts on inbound activities.
//!
//! Keys are RSA 2048, made when the fake starts (and on [`super::FakeTeamsBot::rotate_keys`]);
//! no private key is ever written down. They are served as Microsoft serves them at
//! `login.botframework.com/v1/.well-known/keys`: JWK with `kid`, `x5t` (here the base64url
//! SHA-1 of the public key, the same shape as a certificate thumbprint), `n`, `e` and
//! `endorsements`, the channel ids the key may sign for.
//!
//! [`TokenSpec`] says what token to mint, including every way a token can be wrong, so host
//! tests can prove each one is refused. This module must never mint a bad token that looks
//! like a good one by accident: a spec without flaws verifies against the served JWKS.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::RsaPrivateKey;
use rsa::pkcs1::{EncodeRsaPrivateKey, EncodeRsaPublicKey};
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};

/// The issuer of every token the Bot Connector sends a bot.
pub const BOT_FRAMEWORK_ISSUER: &str = "https://api.botframework.com";
/// The endorsement a key needs to sign activities whose `channelId` is Teams'.
pub const TEAMS_CHANNEL_ID: &str = "msteams";
/// How far the clock may be off either way when validating, per Microsoft's guide
/// ("within the validity period, allowing for 5 minutes of clock skew").
pub const CLOCK_SKEW_SECS: u64 = 5 * 60;

/// One RSA signing key: its private half (as the DER `jsonwebtoken` signs with) and its JWK.
#[derive(Clone)]
pub(super) struct SigningKey {
    pub(super) kid: String,
    encoding: EncodingKey,
    n: String,
    e: String,
    pub(super) endorsements: Vec<String>,
}

impl SigningKey {
    /// Makes a fresh 2048-bit key. Takes a fraction of a second with dependencies optimised.
    pub(super) fn generate(endorsements: &[&str]) -> SigningKey {
        let mut rng = rsa::rand_core::OsRng;
        let private = RsaPrivateKey::new(&mut rng, 2048).expect("generate an RSA 2048 key");
        let der = private
            .to_pkcs1_der()
            .expect("encode the RSA key as PKCS#1 DER");
        let public_der = private
            .to_public_key()
            .to_pkcs1_der()
            .expect("encode the RSA public key as PKCS#1 DER");
        let thumb = ring::digest::digest(
            &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
            public_der.as_bytes(),
        );
        SigningKey {
            kid: B64URL.encode(thumb.as_ref()),
            encoding: EncodingKey::from_rsa_der(der.as_bytes()),
            n: B64URL.encode(private.n().to_bytes_be()),
            e: B64URL.encode(private.e().to_bytes_be()),
            endorsements: endorsements.iter().map(|s| (*s).to_string()).collect(),
        }
    }

    /// The key as the JWKS document lists it.
    pub(super) fn jwk(&self) -> Value {
        json!({
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "x5t": self.kid,
            "n": self.n,
            "e": self.e,
            "x5c": [],
            "endorsements": self.endorsements,
        })
    }
}

/// A key no fake ever serves, shared by the whole process (made once, when first needed).
pub(super) fn foreign_key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| SigningKey::generate(&[TEAMS_CHANNEL_ID]))
}

/// Which key signs a minted token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signer {
    /// The fake's current signing key (the newest, always in the JWKS).
    Current,
    /// A key the fake made earlier, by `kid`: one kept through a rotation verifies, one
    /// dropped by it does not.
    Kid(String),
    /// A key in no fake's JWKS. With `claim_current_kid` the header names the current
    /// signing key's `kid`, so only the signature check can catch it; without, the header
    /// carries the foreign key's own `kid`, unknown to the JWKS (a host then refreshes its
    /// keys once and must still refuse).
    Foreign {
        /// Put the current key's `kid` in the header instead of the foreign key's.
        claim_current_kid: bool,
    },
    /// A key that is in the JWKS but not endorsed for `msteams` (endorsed for `webchat`
    /// only), so a host that checks endorsements against the activity's `channelId` refuses
    /// it. Made the first time it is used, which also adds it to the JWKS.
    Unendorsed,
}

/// What is wrong with a token after signing, if anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tamper {
    /// Nothing: the token is exactly as signed.
    None,
    /// The payload was changed after signing (its `serviceurl` and `exp`), signature kept.
    PayloadChanged,
    /// The header says `"alg":"none"` and the signature is empty.
    AlgNone,
    /// The header says `"alg":"HS256"` and the token is HMAC-signed with the signing key's
    /// public modulus as the secret: the classic RS256-to-HS256 confusion.
    AlgHs256,
}

/// What a minted inbound token says and how it is signed; see [`super::FakeTeamsBot::mint_token`].
///
/// Start from [`TokenSpec::new`] (a valid token) and spoil one thing with the builder
/// methods; [`TokenSpec::flawed_variants`] lists one spec per flaw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSpec {
    /// `aud`: the bot's Microsoft App ID.
    pub audience: String,
    /// `iss`; Microsoft's is [`BOT_FRAMEWORK_ISSUER`].
    pub issuer: String,
    /// `serviceurl` (lower case, as the Bot Connector writes it); `None` leaves it out.
    pub service_url: Option<String>,
    /// `nbf` and `iat` relative to now, in seconds (negative: in the past).
    pub not_before_offset_secs: i64,
    /// `exp` relative to now, in seconds.
    pub expires_offset_secs: i64,
    /// Which key signs it.
    pub signer: Signer,
    /// What is done to it after signing.
    pub tamper: Tamper,
}

impl TokenSpec {
    /// A valid token for the bot `app_id` on an activity whose `serviceUrl` is `service_url`:
    /// issued 5 minutes ago, expiring in an hour, signed by the current key.
    pub fn new(app_id: &str, service_url: &str) -> TokenSpec {
        TokenSpec {
            audience: app_id.to_string(),
            issuer: BOT_FRAMEWORK_ISSUER.to_string(),
            service_url: Some(service_url.to_string()),
            not_before_offset_secs: -300,
            expires_offset_secs: 3600,
            signer: Signer::Current,
            tamper: Tamper::None,
        }
    }

    /// A valid token for `activity`, addressed to the bot `app_id`, carrying the activity's
    /// own `serviceUrl`.
    pub fn for_activity(app_id: &str, activity: &Value) -> TokenSpec {
        let url = activity
            .get("serviceUrl")
            .and_then(Value::as_str)
            .unwrap_or_default();
        TokenSpec::new(app_id, url)
    }

    /// Expired well beyond the 5-minute clock skew (an hour and ten minutes old, expired
    /// ten minutes ago).
    pub fn expired(mut self) -> TokenSpec {
        self.not_before_offset_secs = -4200;
        self.expires_offset_secs = -600;
        self
    }

    /// Not valid for another ten minutes (`nbf` beyond the clock skew).
    pub fn not_yet_valid(mut self) -> TokenSpec {
        self.not_before_offset_secs = 600;
        self.expires_offset_secs = 4200;
        self
    }

    /// For another bot.
    pub fn audience(mut self, aud: &str) -> TokenSpec {
        self.audience = aud.to_string();
        self
    }

    /// From another issuer.
    pub fn issuer(mut self, iss: &str) -> TokenSpec {
        self.issuer = iss.to_string();
        self
    }

    /// With another `serviceurl` claim (`None`: without one).
    pub fn service_url(mut self, url: Option<&str>) -> TokenSpec {
        self.service_url = url.map(str::to_string);
        self
    }

    /// Signed by `signer`.
    pub fn signed_by(mut self, signer: Signer) -> TokenSpec {
        self.signer = signer;
        self
    }

    /// Tampered with after signing.
    pub fn tampered(mut self, tamper: Tamper) -> TokenSpec {
        self.tamper = tamper;
        self
    }

    /// One spec per way a token can be wrong, each named, all otherwise like
    /// `TokenSpec::new(app_id, service_url)`. A host must refuse every one of them.
    pub fn flawed_variants(app_id: &str, service_url: &str) -> Vec<(&'static str, TokenSpec)> {
        let ok = TokenSpec::new(app_id, service_url);
        vec![
            ("expired", ok.clone().expired()),
            ("not yet valid", ok.clone().not_yet_valid()),
            (
                "wrong audience",
                ok.clone().audience("00000000-0000-0000-0000-000000000bad"),
            ),
            (
                "wrong issuer",
                ok.clone().issuer("https://sts.windows.net/evil/"),
            ),
            (
                "other serviceurl",
                ok.clone()
                    .service_url(Some("https://evil.example.com/teams/")),
            ),
            ("no serviceurl", ok.clone().service_url(None)),
            (
                "foreign key, current kid",
                ok.clone().signed_by(Signer::Foreign {
                    claim_current_kid: true,
                }),
            ),
            (
                "foreign key, unknown kid",
                ok.clone().signed_by(Signer::Foreign {
                    claim_current_kid: false,
                }),
            ),
            (
                "key not endorsed for msteams",
                ok.clone().signed_by(Signer::Unendorsed),
            ),
            (
                "payload changed after signing",
                ok.clone().tampered(Tamper::PayloadChanged),
            ),
            ("alg none", ok.clone().tampered(Tamper::AlgNone)),
            (
                "alg HS256 with the public key",
                ok.tampered(Tamper::AlgHs256),
            ),
        ]
    }

    /// The claims as JSON, times taken from `now` (Unix seconds).
    fn claims(&self, now: i64) -> Value {
        let mut claims = json!({
            "iss": self.issuer,
            "aud": self.audience,
            "nbf": now + self.not_before_offset_secs,
            "iat": now + self.not_before_offset_secs,
            "exp": now + self.expires_offset_secs,
        });
        if let Some(url) = &self.service_url {
            claims["serviceurl"] = json!(url);
        }
        claims
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Signs `spec` with `key`, naming `kid` in the header, then applies its tampering.
pub(super) fn mint(spec: &TokenSpec, key: &SigningKey, kid: &str) -> String {
    let claims = spec.claims(unix_now());
    let header = Header {
        alg: Algorithm::RS256,
        kid: Some(kid.to_string()),
        typ: Some("JWT".to_string()),
        ..Header::default()
    };
    let token = jsonwebtoken::encode(&header, &claims, &key.encoding).expect("sign an RS256 JWT");
    match spec.tamper {
        Tamper::None => token,
        Tamper::PayloadChanged => {
            let mut parts = token.split('.');
            let (h, _, s) = (parts.next(), parts.next(), parts.next());
            let mut changed = claims;
            changed["serviceurl"] = json!("https://evil.example.com/teams/");
            changed["exp"] = json!(unix_now() + 10 * 365 * 24 * 3600);
            let p = B64URL.encode(serde_json::to_vec(&changed).expect("claims"));
            format!("{}.{p}.{}", h.unwrap_or(""), s.unwrap_or(""))
        }
        Tamper::AlgNone => {
            let h = B64URL.encode(br#"{"alg":"none","typ":"JWT"}"#);
            let p = B64URL.encode(serde_json::to_vec(&claims).expect("claims"));
            format!("{h}.{p}.")
        }
        Tamper::AlgHs256 => {
            let header = Header {
                alg: Algorithm::HS256,
                kid: Some(kid.to_string()),
                typ: Some("JWT".to_string()),
                ..Header::default()
            };
            let secret = EncodingKey::from_secret(key.n.as_bytes());
            jsonwebtoken::encode(&header, &claims, &secret).expect("sign an HS256 JWT")
        }
    }
}
