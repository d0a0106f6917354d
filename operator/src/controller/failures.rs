//! How failed Kubernetes calls are told to people: one line with the API server's own message
//! (kube's `Display` of an API error appends a debug dump of the whole `Status`), a hint when a
//! namespace the operator was pointed at does not exist, and each distinct failure logged once
//! while it lasts rather than on every retry.

/// One line for `error`: the server's message and code, plus what to do when it is a namespace
/// that does not exist.
pub fn describe(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(s) => {
            let missing_namespace = s.is_not_found() && s.details.as_ref().is_some_and(|d| d.kind == "namespaces");
            let hint = if missing_namespace {
                ": create it, or point --config-map-namespace / --leader-election-namespace at one that exists"
            } else {
                ""
            };
            format!("{} (HTTP {}){hint}", s.message, s.code)
        }
        other => other.to_string(),
    }
}

/// The failure last reported, so one repeated on every retry is logged once.
#[derive(Debug, Default)]
pub struct Repeats {
    last: Option<String>,
}

impl Repeats {
    /// Whether `message` is news: not the failure reported last. Remembers it.
    pub fn is_new(&mut self, message: &str) -> bool {
        if self.last.as_deref() == Some(message) {
            return false;
        }
        self.last = Some(message.to_string());
        true
    }

    /// The call succeeded: the next failure is news again.
    pub fn clear(&mut self) {
        self.last = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::response::{Status, StatusDetails};

    #[test]
    fn a_missing_namespace_is_one_line_with_what_to_do() {
        let status = Status {
            code: 404,
            message: "namespaces \"tally\" not found".into(),
            reason: "NotFound".into(),
            details: Some(StatusDetails {
                name: "tally".into(),
                group: String::new(),
                kind: "namespaces".into(),
                uid: String::new(),
                causes: vec![],
                retry_after_seconds: 0,
            }),
            ..Default::default()
        };
        let line = describe(&kube::Error::Api(Box::new(status)));
        assert_eq!(
            line,
            "namespaces \"tally\" not found (HTTP 404): create it, or point --config-map-namespace / \
             --leader-election-namespace at one that exists"
        );
        assert!(!line.contains("Status {"), "no debug dump");
    }

    #[test]
    fn a_failure_is_news_once_until_it_changes_or_clears() {
        let mut r = Repeats::default();
        assert!(r.is_new("a"));
        assert!(!r.is_new("a"));
        assert!(r.is_new("b"));
        r.clear();
        assert!(r.is_new("b"));
    }
}
