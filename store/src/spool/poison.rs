//! Which store errors condemn the record being replayed rather than the moment.
//!
//! A replay pass stops at an outage (the store unreachable, slow, loading, failing over,
//! out of memory) and keeps every record for the next pass. It sets a record aside only
//! when the store answered and refused that record for what it is, so retrying it
//! could never succeed and would only hold back the ones behind it. When in doubt the
//! answer is "transient": a misjudged outage costs a delay, a misjudged poison costs a
//! quarantined record an operator has to settle by hand.

use redis::{ErrorKind, ServerErrorKind};

use crate::StoreError;

/// Error codes of a store that refuses every write for reasons of its own (an outage or
/// its configuration: memory, replication, persistence, ACL), whatever the record.
const STORE_WIDE: [&str; 12] = [
    "OOM",
    "BUSY",
    "LOADING",
    "READONLY",
    "MASTERDOWN",
    "NOREPLICAS",
    "MISCONF",
    "TRYAGAIN",
    "CLUSTERDOWN",
    "NOPERM",
    "NOAUTH",
    "WRONGPASS",
];

/// Whether `e` says the record itself can never be settled.
pub fn rejects_record(e: &StoreError) -> bool {
    match e {
        // The settle script answered something other than "ok" or "dup": what it
        // made of this record, not a connection problem.
        StoreError::Protocol(_) => true,
        StoreError::Redis(r) => match r.kind() {
            // Keys of one record spread over slots, or a reply of the wrong shape for it.
            ErrorKind::Server(ServerErrorKind::CrossSlot) | ErrorKind::UnexpectedReturnType => true,
            // `ERR` is also "max number of clients reached": only a script error is the record's,
            // and not one that wraps a store-wide refusal (as Redis 6 reports OOM or NOPERM
            // inside a script).
            ErrorKind::Server(ServerErrorKind::ResponseError) => r
                .detail()
                .is_some_and(|d| d.contains("script") && !STORE_WIDE.iter().any(|c| d.contains(c))),
            // A counter key holding something else than a hash (Redis 7 keeps the code
            // from inside the script); other extension codes (OOM, BUSY, MISCONF) pass.
            ErrorKind::Extension => r.code() == Some("WRONGTYPE"),
            _ => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redis(kind: ErrorKind, detail: &str) -> StoreError {
        StoreError::Redis((kind, "test", detail.to_string()).into())
    }

    #[test]
    fn outages_keep_the_record() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        for e in [
            StoreError::Timeout { op: "settle" },
            StoreError::Redis(io.into()),
            redis(ErrorKind::Server(ServerErrorKind::BusyLoading), "loading"),
            redis(ErrorKind::Server(ServerErrorKind::ReadOnly), "replica"),
            redis(ErrorKind::Server(ServerErrorKind::ClusterDown), "down"),
            redis(
                ErrorKind::Server(ServerErrorKind::ResponseError),
                "max number of clients reached",
            ),
            redis(ErrorKind::Extension, "OOM command not allowed"),
            redis(
                ErrorKind::Server(ServerErrorKind::ResponseError),
                "Error running script (call to f_1): @user_script:3: OOM command not allowed when used memory > 'maxmemory'",
            ),
            redis(
                ErrorKind::Server(ServerErrorKind::ResponseError),
                "Error running script (call to f_1): @user_script:9: NOPERM this user has no permissions to run the 'expire' command",
            ),
            redis(
                ErrorKind::Server(ServerErrorKind::NoPerm),
                "no permissions to run the 'expire' command",
            ),
            StoreError::Spool("disk".into()),
        ] {
            assert!(!rejects_record(&e), "{e} must not quarantine a record");
        }
    }

    #[test]
    fn refusals_of_the_record_set_it_aside() {
        for e in [
            StoreError::Protocol("[\"what\"]".into()),
            redis(
                ErrorKind::Server(ServerErrorKind::CrossSlot),
                "keys in request don't hash to the same slot",
            ),
            redis(ErrorKind::UnexpectedReturnType, "not a list"),
            redis(
                ErrorKind::Server(ServerErrorKind::ResponseError),
                "Error running script (call to f_1): @user_script:4: WRONGTYPE",
            ),
        ] {
            assert!(rejects_record(&e), "{e} must quarantine the record");
        }
    }
}
