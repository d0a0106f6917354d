//! What an exchange tells Envoy, as domain data: `server` converts it to
//! protobuf in one place, so nothing here knows the ext_proc messages.

/// Which body mode to ask Envoy for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyMode {
    None,
    Buffered,
    Streamed,
}

/// The complete processing mode for the rest of the exchange (an override
/// replaces the whole mode, so it is always sent whole).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode {
    pub request_body: BodyMode,
    pub response_headers: bool,
    pub response_body: BodyMode,
}

impl Mode {
    /// Not a Bedrock call we meter: nothing more of this exchange.
    pub const SKIP_REST: Mode = Mode {
        request_body: BodyMode::None,
        response_headers: false,
        response_body: BodyMode::None,
    };
    /// Headers both ways and no bodies: the mode after admission from the headers.
    pub const HEADERS_ONLY: Mode = Mode {
        request_body: BodyMode::None,
        response_headers: true,
        response_body: BodyMode::None,
    };
    /// Read the request body (its `max_tokens` bounds the worst case); the
    /// response phases are set once the status and content type are known.
    pub const READ_REQUEST_BODY: Mode = Mode {
        request_body: BodyMode::Buffered,
        response_headers: true,
        response_body: BodyMode::None,
    };
    /// An event stream: decode it as it passes.
    pub const STREAM_RESPONSE: Mode = Mode {
        request_body: BodyMode::None,
        response_headers: true,
        response_body: BodyMode::Streamed,
    };
    /// The usage is in the JSON body: Envoy holds the headers until it is read.
    pub const BUFFER_RESPONSE: Mode = Mode {
        request_body: BodyMode::None,
        response_headers: true,
        response_body: BodyMode::Buffered,
    };
}

/// What to tell Envoy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Continue {
        set_headers: Vec<(String, String)>,
        remove_headers: Vec<String>,
        mode: Option<Mode>,
        metadata: Vec<(&'static str, String)>,
    },
    Respond {
        status: u16,
        error_type: &'static str,
        message: String,
        headers: Vec<(String, String)>,
        metadata: Vec<(&'static str, String)>,
    },
}

impl Reply {
    pub fn pass() -> Reply {
        Reply::Continue {
            set_headers: vec![],
            remove_headers: vec![],
            mode: None,
            metadata: vec![],
        }
    }

    /// Continue, setting `set_headers`, switching to `mode`, with dynamic metadata.
    pub fn proceed(
        set_headers: Vec<(String, String)>,
        mode: Option<Mode>,
        metadata: Vec<(&'static str, String)>,
    ) -> Reply {
        Reply::Continue {
            set_headers,
            remove_headers: vec![],
            mode,
            metadata,
        }
    }

    /// The same reply, also removing `names` from the request (a refusal removes nothing).
    pub fn removing(self, names: Vec<String>) -> Reply {
        match self {
            Reply::Continue {
                set_headers,
                mode,
                metadata,
                ..
            } => Reply::Continue {
                set_headers,
                remove_headers: names,
                mode,
                metadata,
            },
            respond => respond,
        }
    }
}

/// A header list with lowercase names, as Envoy sends them.
pub struct Headers(pub Vec<(String, String)>);

impl Headers {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}
