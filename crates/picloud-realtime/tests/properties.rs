//! Property tests (proptest) of the realtime parsers clients reach: resume ids
//! (`Last-Event-ID`) and subscriber tokens. `PROPTEST_CASES` raises the count for a longer
//! run (docs/fuzzing.md).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use picloud_core::app::{NewApp, Slug};
use picloud_core::ids::AppId;
use picloud_core::topic::TopicName;
use picloud_realtime::position::{self, ParsedPosition};
use picloud_realtime::token::TokenService;
use picloud_store::testing::TestDatabase;
use picloud_store::Backend;
use proptest::prelude::*;

fn topic() -> impl Strategy<Value = TopicName> {
    "[a-z0-9_:@-]{1,8}(\\.[a-z0-9_:@-]{1,8}){0,2}".prop_map(|s| TopicName::parse(&s).unwrap())
}

/// One server-side token setup for every case: a real store, an app and a minted token.
struct Tokens {
    rt: tokio::runtime::Runtime,
    service: TokenService,
    app: AppId,
    token: String,
    _db: TestDatabase,
}

fn tokens() -> &'static Tokens {
    static TOKENS: OnceLock<Tokens> = OnceLock::new();
    TOKENS.get_or_init(|| {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let (db, service, app, token) = rt.block_on(async {
            let db = TestDatabase::new(Backend::Sqlite).await;
            let store = Arc::new(db.open().await);
            let app = picloud_core::store::AppStore::create_app(
                &*store,
                NewApp {
                    slug: Slug::parse("props").unwrap(),
                    name: "props".into(),
                },
            )
            .await
            .unwrap()
            .id;
            let service = TokenService::new(store.clone(), store, Duration::from_secs(60));
            let (token, _) = service
                .mint(&app, &["room.*".into()], 600, Some("u".into()), &[])
                .await
                .unwrap();
            (db, service, app, token)
        });
        Tokens {
            rt,
            service,
            app,
            token,
            _db: db,
        }
    })
}

/// A token's three segments as bytes, decoded leniently (trailing bits ignored).
fn segments(token: &str) -> Vec<Option<Vec<u8>>> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    use base64::Engine;
    let lenient = GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    token.split('.').map(|s| lenient.decode(s).ok()).collect()
}

fn verifies(token: &str) -> bool {
    let t = tokens();
    t.rt.block_on(t.service.verify(&t.app, token)).is_ok()
}

proptest! {
    #[test]
    fn resume_ids_round_trip(positions in proptest::collection::btree_map(topic(), 0i64..i64::MAX, 1..6)) {
        let id = position::render_multi(positions.iter().map(|(t, s)| (t, *s)));
        let ParsedPosition::Multi(parsed) = position::parse(&id).unwrap() else {
            panic!("{id} read as a single position");
        };
        let expected: std::collections::BTreeMap<String, i64> =
            positions.into_iter().map(|(t, s)| (t.as_str().to_owned(), s)).collect();
        prop_assert_eq!(parsed, expected);
    }

    #[test]
    fn any_resume_id_parses_or_is_refused(id in "[a-z0-9.=,:@ -]{0,40}|\\PC{0,40}") {
        match position::parse(&id) {
            Ok(ParsedPosition::Single(seq)) => prop_assert!(seq >= 0),
            Ok(ParsedPosition::Multi(m)) => {
                prop_assert!(!m.is_empty());
                for (name, seq) in m {
                    prop_assert!(TopicName::parse(&name).is_ok());
                    prop_assert!(seq >= 0);
                }
            }
            Err(_) => {}
        }
    }

    /// Any one-character change to a valid token makes it fail, unless the change is in the
    /// unused low bits of a segment's last base64 character: the token then still carries
    /// the same header, claims and signature bytes (JWS does not require canonical base64,
    /// and a token is never identified by its text).
    #[test]
    fn a_tampered_token_never_verifies(at in any::<prop::sample::Index>(), with in "[A-Za-z0-9_.=+/-]") {
        let token = &tokens().token;
        let i = at.index(token.len());
        let mut forged = token.clone();
        forged.replace_range(i..i + 1, &with);
        if forged == *token {
            return Ok(()); // the same character: nothing changed
        }
        if verifies(&forged) {
            prop_assert_eq!(segments(&forged), segments(token), "{}", forged);
        }
    }

    #[test]
    fn arbitrary_text_never_verifies(text in "\\PC{0,300}|[A-Za-z0-9_-]{1,80}\\.[A-Za-z0-9_-]{1,200}\\.[A-Za-z0-9_-]{0,60}") {
        prop_assert!(!verifies(&text));
    }
}

#[test]
fn the_untampered_token_verifies() {
    assert!(verifies(&tokens().token));
}
