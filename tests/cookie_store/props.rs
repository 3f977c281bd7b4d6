//! Property tests through the store and the layer's codec path.

use proptest::prelude::*;
use serde_json::Map;
use sessio::Store;

use super::*;

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(f)
}

fn layers() -> [SessionLayer<CookieStore>; 2] {
    let clock = ManualClock::new(start());
    [
        layer_on(CookieStore::new(), key(1), &clock),
        layer_on(CookieStore::signed_only(), key(1), &clock),
    ]
}

/// Arbitrary JSON: every kind of leaf (integers of both signs, any finite
/// float, any Unicode string) in nested arrays and objects.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((".{0,6}", inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A `Cookie` header for `value` under the session name, when it is a valid
/// header value at all (a client cannot send one that is not).
fn cookie_header(value: &[u8]) -> Option<HeaderValue> {
    let mut header = b"__Host-id=".to_vec();
    header.extend_from_slice(value);
    HeaderValue::from_bytes(&header).ok()
}

/// Sends `value` as the session cookie through both layers; each must answer
/// a fresh session.
async fn never_opens(value: &[u8]) {
    let Some(header) = cookie_header(value) else {
        return;
    };
    for layer in &layers() {
        exchange(layer, "/read", Some(header.clone()), None)
            .await
            .assert_fresh(&format!("{header:?}"));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    // SECURITY C10 / C19: arbitrary text as the session cookie never panics
    // and never opens: a fresh session, answered 200.
    #[test]
    fn arbitrary_text_never_opens(s in "\\PC{0,300}") {
        block_on(never_opens(s.as_bytes()));
    }

    // SECURITY C10 / C19: arbitrary bytes (not UTF-8 included), and the same
    // as well-formed base64url, alone and with a signature-shaped tail, so
    // the input reaches the tag check: none ever opens.
    #[test]
    fn arbitrary_bytes_never_open(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let b64 = B64.encode(&bytes);
        let signed = format!("{b64}.{}", B64.encode(&bytes[..bytes.len().min(32)]));
        block_on(async {
            never_opens(&bytes).await;
            never_opens(b64.as_bytes()).await;
            never_opens(signed.as_bytes()).await;
        });
    }

    // The store on its own: loading any text never fails or panics; what it
    // accepts is exactly a JSON object, and it round-trips.
    #[test]
    fn store_load_of_arbitrary_text_never_fails(s in "\\PC{0,200}") {
        let got = block_on(CookieStore::new().load(&s)).expect("never an error");
        let is_object = serde_json::from_str::<Value>(&s).is_ok_and(|v| v.is_object());
        prop_assert_eq!(got.is_some(), is_object);
    }

    // SECURITY C19: seal then open round-trips any JSON value through the
    // store and the layer's codec, encrypted and signed-only, exactly (floats
    // included, to the last bit).
    #[test]
    fn any_json_value_round_trips(value in json_value()) {
        let size = serde_json::to_string(&value).expect("serializable").len();
        prop_assume!(size < 2800, "would not fit in a cookie");
        block_on(async {
            for layer in &layers() {
                let set = send_with(layer, "/set", None, Some(value.clone())).await;
                assert_eq!(set.status, StatusCode::OK, "{set:?}");
                let got = send(layer, "/read", Some(&set.pair())).await;
                assert_eq!(got.data.as_ref(), Some(&value));
            }
        });
    }
}
