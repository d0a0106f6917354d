//! Checks the SigV4 signature of a received request, as Bedrock would.
//!
//! The signature is recomputed with `aws-sigv4` from what arrived: the method,
//! the path as sent (double-encoded in the canonical request, like every
//! non-S3 service), the headers named in `SignedHeaders`, the `X-Amz-Date`
//! time and the body (or the `x-amz-content-sha256` it declares, which must
//! then match the body). Service name `bedrock`.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use sha2::{Digest, Sha256};

/// The identity the simulator accepts.
#[derive(Debug, Clone)]
pub struct SigV4Verifier {
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
}

/// Why a request's signature was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureError {
    /// No `Authorization` header (`MissingAuthenticationTokenException`).
    Missing,
    /// Present but wrong (`InvalidSignatureException`), with the reason.
    Invalid(String),
}

impl SignatureError {
    pub fn code(&self) -> &'static str {
        match self {
            SignatureError::Missing => "MissingAuthenticationTokenException",
            SignatureError::Invalid(_) => "InvalidSignatureException",
        }
    }

    pub fn message(&self) -> String {
        match self {
            SignatureError::Missing => "Missing Authentication Token".into(),
            SignatureError::Invalid(why) => {
                format!("The request signature we calculated does not match: {why}")
            }
        }
    }
}

struct Authorization<'a> {
    access_key: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

fn parse_authorization(value: &str) -> Option<Authorization<'_>> {
    let rest = value.strip_prefix("AWS4-HMAC-SHA256")?.trim_start();
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        match k {
            "Credential" => credential = Some(v),
            "SignedHeaders" => signed = Some(v),
            "Signature" => signature = Some(v),
            _ => {}
        }
    }
    let mut scope = credential?.split('/');
    let access_key = scope.next()?;
    let _date = scope.next()?;
    let region = scope.next()?;
    let service = scope.next()?;
    Some(Authorization {
        access_key,
        region,
        service,
        signed_headers: signed?.split(';').collect(),
        signature: signature?,
    })
}

fn parse_amz_date(value: &str) -> Option<SystemTime> {
    // 20240101T120000Z
    let ts: jiff::Timestamp = jiff::civil::DateTime::strptime("%Y%m%dT%H%M%SZ", value)
        .ok()?
        .to_zoned(jiff::tz::TimeZone::UTC)
        .ok()?
        .timestamp();
    Some(SystemTime::from(ts))
}

fn invalid(why: &str) -> SignatureError {
    SignatureError::Invalid(why.to_string())
}

/// The body as the signature covers it: its hash as declared in `x-amz-content-sha256`
/// (which must then match), unsigned, or the bytes themselves.
fn signable_body<'a>(declared_hash: Option<&'a str>, body: &'a [u8]) -> Result<SignableBody<'a>, SignatureError> {
    let body_hash = hex::encode(Sha256::digest(body));
    Ok(match declared_hash {
        Some("UNSIGNED-PAYLOAD") => SignableBody::UnsignedPayload,
        Some(h) if h != body_hash => return Err(invalid("x-amz-content-sha256 does not match the body")),
        Some(h) => SignableBody::Precomputed(h.to_string()),
        None => SignableBody::Bytes(body),
    })
}

/// The values of the headers the client signed; host and x-amz-date are added by the signer.
fn signed_headers<'a>(
    parts: &http::request::Parts,
    auth: &Authorization<'a>,
) -> Result<Vec<(&'a str, String)>, SignatureError> {
    let mut headers = Vec::new();
    for name in &auth.signed_headers {
        if *name == "host" || *name == "x-amz-date" {
            continue;
        }
        let values: Vec<&str> = parts
            .headers
            .get_all(*name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if values.is_empty() {
            return Err(SignatureError::Invalid(format!("signed header {name:?} is missing")));
        }
        headers.push((*name, values.join(",")));
    }
    Ok(headers)
}

impl SigV4Verifier {
    /// The identity `access_key`/`secret_key` signing for us-east-1, where every test runs.
    pub fn us_east_1(access_key: &str, secret_key: &str) -> SigV4Verifier {
        SigV4Verifier {
            access_key: access_key.into(),
            secret_key: secret_key.into(),
            region: "us-east-1".into(),
        }
    }

    /// Verifies `parts` + `body`; `Ok(())` when the signature is the one the secret key produces.
    pub fn verify(&self, parts: &http::request::Parts, body: &[u8]) -> Result<(), SignatureError> {
        let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
        let auth_value = header("authorization").ok_or(SignatureError::Missing)?;
        let auth = parse_authorization(auth_value).ok_or_else(|| invalid("malformed Authorization header"))?;
        self.check_scope(&auth)?;
        let time = header("x-amz-date")
            .and_then(parse_amz_date)
            .ok_or_else(|| invalid("missing or bad X-Amz-Date"))?;
        let host = header("host")
            .map(str::to_string)
            .or_else(|| parts.uri.authority().map(|a| a.to_string()))
            .ok_or_else(|| invalid("no Host"))?;
        let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let uri = format!("http://{host}{path_and_query}");
        let body = signable_body(header("x-amz-content-sha256"), body)?;
        let headers = signed_headers(parts, &auth)?;
        let session_token = header("x-amz-security-token").map(str::to_string);
        let request = SignableRequest::new(
            parts.method.as_str(),
            &uri,
            headers.iter().map(|(k, v)| (*k, v.as_str())),
            body,
        )
        .map_err(|e| SignatureError::Invalid(e.to_string()))?;
        if self.signature(request, time, session_token)? == auth.signature {
            Ok(())
        } else {
            Err(invalid("signature mismatch"))
        }
    }

    /// Refuses a signature by another key, for another service or another region.
    fn check_scope(&self, auth: &Authorization<'_>) -> Result<(), SignatureError> {
        if auth.access_key != self.access_key {
            return Err(invalid("unknown access key id"));
        }
        if auth.service != "bedrock" {
            return Err(SignatureError::Invalid(format!(
                "signed for service {:?}, expected \"bedrock\"",
                auth.service
            )));
        }
        if auth.region != self.region {
            return Err(SignatureError::Invalid(format!(
                "signed for region {:?}, expected {:?}",
                auth.region, self.region
            )));
        }
        Ok(())
    }

    /// The signature this identity's secret key gives `request` at `time`.
    fn signature(
        &self,
        request: SignableRequest<'_>,
        time: SystemTime,
        session_token: Option<String>,
    ) -> Result<String, SignatureError> {
        let identity = Credentials::new(&self.access_key, &self.secret_key, session_token, None, "bedrock-sim").into();
        let mut settings = SigningSettings::default();
        // Sign exactly what the client listed, nothing the default exclusions would drop.
        settings.excluded_headers = Some(vec![]);
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("bedrock")
            .time(time)
            .settings(settings)
            .build()
            .map_err(|e| SignatureError::Invalid(e.to_string()))?
            .into();
        let (_, signature) = sign(request, &params)
            .map_err(|e| SignatureError::Invalid(e.to_string()))?
            .into_parts();
        Ok(signature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verifier() -> SigV4Verifier {
        SigV4Verifier::us_east_1("AKIDSIM", "sim-secret")
    }

    fn signed(secret: &str, body: &[u8]) -> http::Request<Vec<u8>> {
        let identity = Credentials::new("AKIDSIM", secret, None, None, "test").into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name("bedrock")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let mut req = http::Request::post("http://127.0.0.1:9/model/anthropic.claude%3A0/invoke")
            .header("host", "127.0.0.1:9")
            .header("content-type", "application/json")
            .body(body.to_vec())
            .unwrap();
        let headers: Vec<(String, String)> = req
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string()))
            .collect();
        let signable = SignableRequest::new(
            "POST",
            req.uri().to_string(),
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            SignableBody::Bytes(body),
        )
        .unwrap();
        let (instructions, _) = sign(signable, &params).unwrap().into_parts();
        instructions.apply_to_request_http1x(&mut req);
        req
    }

    #[test]
    fn accepts_a_good_signature_and_refuses_a_bad_one() {
        let body = br#"{"prompt":"hi"}"#;
        let (parts, b) = signed("sim-secret", body).into_parts();
        assert_eq!(verifier().verify(&parts, &b), Ok(()));
        let (parts, b) = signed("other-secret", body).into_parts();
        assert_eq!(
            verifier().verify(&parts, &b),
            Err(SignatureError::Invalid("signature mismatch".into()))
        );
        let (parts, _) = signed("sim-secret", body).into_parts();
        assert!(verifier().verify(&parts, b"tampered").is_err());
        let (mut parts, b) = signed("sim-secret", body).into_parts();
        parts.headers.remove("authorization");
        assert_eq!(verifier().verify(&parts, &b), Err(SignatureError::Missing));
    }
}
