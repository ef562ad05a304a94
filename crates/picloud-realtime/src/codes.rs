//! The realtime protocol's error codes (docs/protocol.md) as the wire spells them: the
//! answers before a stream opens, the final `event: error` of one, and the errors a
//! WebSocket request is answered with. `@picloud/client`
//! mirrors them in `clients/typescript/src/codes.ts`; a test keeps the two lists equal.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    // Answers before the stream.
    InvalidTopic,
    TooManyTopics,
    InvalidLastEventId,
    UnknownHost,
    NotFound,
    Unauthorized,
    /// 429: the app's connection or topics-per-connection quota (`Retry-After`).
    QuotaExceeded,
    // Final `event: error` codes (`Unavailable` also answers 503 before the stream).
    TokenExpired,
    TokenRevoked,
    TopicClosed,
    ServerShutdown,
    SlowConsumer,
    Unavailable,
    // Answers to WebSocket requests (the connection stays open).
    BadRequest,
    Forbidden,
    AlreadySubscribed,
    PayloadTooLarge,
    RateLimited,
}

impl Code {
    pub const ALL: [Code; 18] = [
        Code::InvalidTopic,
        Code::TooManyTopics,
        Code::InvalidLastEventId,
        Code::UnknownHost,
        Code::NotFound,
        Code::Unauthorized,
        Code::QuotaExceeded,
        Code::TokenExpired,
        Code::TokenRevoked,
        Code::TopicClosed,
        Code::ServerShutdown,
        Code::SlowConsumer,
        Code::Unavailable,
        Code::BadRequest,
        Code::Forbidden,
        Code::AlreadySubscribed,
        Code::PayloadTooLarge,
        Code::RateLimited,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Code::InvalidTopic => "invalid_topic",
            Code::TooManyTopics => "too_many_topics",
            Code::InvalidLastEventId => "invalid_last_event_id",
            Code::UnknownHost => "unknown_host",
            Code::NotFound => "not_found",
            Code::Unauthorized => "unauthorized",
            Code::QuotaExceeded => "quota_exceeded",
            Code::TokenExpired => "token_expired",
            Code::TokenRevoked => "token_revoked",
            Code::TopicClosed => "topic_closed",
            Code::ServerShutdown => "server_shutdown",
            Code::SlowConsumer => "slow_consumer",
            Code::Unavailable => "unavailable",
            Code::BadRequest => "bad_request",
            Code::Forbidden => "forbidden",
            Code::AlreadySubscribed => "already_subscribed",
            Code::PayloadTooLarge => "payload_too_large",
            Code::RateLimited => "rate_limited",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Code;

    /// The client's list of server codes is this list: a code added on one side only fails
    /// here.
    #[test]
    fn the_client_knows_every_code_and_no_other() {
        let ts = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../clients/typescript/src/codes.ts"
        ))
        .unwrap();
        let start = ts
            .find("export const ErrorCode = {")
            .expect("ErrorCode in codes.ts");
        let end = ts[start..]
            .find("// The client's own.")
            .expect("the client's own codes")
            + start;
        let mut client: Vec<&str> = ts[start..end]
            .lines()
            .filter_map(|l| l.split('\'').nth(1))
            .collect();
        let mut server: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
        client.sort_unstable();
        server.sort_unstable();
        assert_eq!(client, server);
    }
}
