//! The bindings as JS sees them, run by wasm-bindgen-test under Node and (with
//! `WASM_BINDGEN_USE_BROWSER=1`) in headless Chromium: ingest results, bad
//! input reported and never thrown, object identity of unchanged messages,
//! and a connection's client routing mixed messages.

use js_sys::{Array, Object, Reflect};
use stream_wasm::{ClientEngine, SessionEngine};
use wasm_bindgen::JsValue;
use wasm_bindgen_test::wasm_bindgen_test;

fn delta(seq: u64, id: &str, text: &str) -> String {
    format!(r#"{{"type":"delta","channel":"s","epoch":"e","seq":{seq},"message_id":"{id}","content":"{text}"}}"#)
}

fn field(object: &JsValue, name: &str) -> JsValue {
    Reflect::get(object, &JsValue::from_str(name)).expect("field")
}

#[wasm_bindgen_test]
fn ingest_reports_counts_and_changes() {
    let mut engine = SessionEngine::new("s");
    let result =
        engine.ingest(JsValue::from_str(&format!("[{},{}]", delta(2, "a", "b"), delta(1, "a", "a"))), Some(0.0));
    assert_eq!(result.applied(), 2);
    assert!(result.changed());
    assert!(result.need_resync().is_null());
    assert_eq!(Array::from(&result.errors()).length(), 0);
    let messages = engine.messages();
    assert_eq!(field(&messages.get(0), "content").as_string().as_deref(), Some("ab"));
    assert_eq!(field(&engine.cursor(), "seq").as_f64(), Some(2.0));
    assert_eq!(engine.state_hash().len(), 16);
}

#[wasm_bindgen_test]
fn an_array_of_messages_is_one_call_and_non_strings_are_errors() {
    let mut engine = SessionEngine::new("s");
    let input = Array::of3(
        &JsValue::from_str(&delta(1, "a", "x")),
        &JsValue::from_f64(5.0),
        &JsValue::from_str(&delta(2, "a", "y")),
    );
    let result = engine.ingest(input.into(), Some(0.0));
    assert_eq!(result.applied(), 2);
    let errors = Array::from(&result.errors());
    assert_eq!(field(&errors.get(0), "code").as_string().as_deref(), Some("not_text"));
}

#[wasm_bindgen_test]
fn bad_input_is_reported_not_thrown_and_changes_nothing() {
    let mut engine = SessionEngine::new("s");
    engine.ingest(JsValue::from_str(&delta(1, "a", "x")), Some(0.0));
    let hash = engine.state_hash();
    for bad in [
        JsValue::from_str("{nope"),
        JsValue::from_str(&delta(2, "a", "y").replace("\"s\"", "\"t\"")),
        JsValue::NULL,
        JsValue::from_str(""),
    ] {
        let result = engine.ingest(bad, Some(0.0));
        assert_eq!(Array::from(&result.errors()).length(), 1);
        assert_eq!(result.applied(), 0);
    }
    assert_eq!(engine.state_hash(), hash);
}

#[wasm_bindgen_test]
fn unchanged_messages_keep_their_identity() {
    let mut engine = SessionEngine::new("s");
    engine.ingest(JsValue::from_str(&format!("[{},{}]", delta(1, "a", "x"), delta(2, "b", "y"))), Some(0.0));
    let first = engine.messages();
    assert!(Object::is(&first, &engine.messages()), "nothing changed: the same array");
    engine.ingest(JsValue::from_str(&delta(3, "b", "z")), Some(0.0));
    let second = engine.messages();
    assert!(Object::is(&first.get(0), &second.get(0)), "a is unchanged: the same object");
    assert!(!Object::is(&first.get(1), &second.get(1)), "b changed: a new object");
    assert_eq!(field(&second.get(1), "content").as_string().as_deref(), Some("yz"));
    assert!(Object::is(&engine.message("b"), &second.get(1)), "one message read is the list's object");
}

#[wasm_bindgen_test]
fn the_id_list_is_new_only_when_a_message_comes_or_goes() {
    let mut engine = SessionEngine::new("s");
    engine.ingest(JsValue::from_str(&delta(1, "a", "x")), Some(0.0));
    let ids = engine.message_ids();
    engine.ingest(JsValue::from_str(&delta(2, "a", "y")), Some(0.0));
    assert!(Object::is(&ids, &engine.message_ids()), "a delta: the same ids");
    engine.ingest(JsValue::from_str(&delta(3, "b", "z")), Some(0.0));
    let ids = engine.message_ids();
    assert_eq!(ids.length(), 2);
    assert_eq!(ids.get(1).as_string().as_deref(), Some("b"));
}

#[wasm_bindgen_test]
fn local_sends_show_at_once_and_the_echo_replaces_them() {
    let mut engine = SessionEngine::new("s");
    assert_eq!(engine.send_local("hi", "c1", Some(0.0)), "added");
    assert_eq!(engine.send_local("hi", "c1", Some(0.0)), "duplicate");
    assert_eq!(field(&engine.messages().get(0), "status").as_string().as_deref(), Some("pending"));
    let echo = r#"{"type":"message_started","channel":"s","epoch":"e","seq":1,"message_id":"m1","role":"user","created_at":1,"client_message_id":"c1","content":"hi"}"#;
    engine.ingest(JsValue::from_str(echo), Some(1.0));
    let messages = engine.messages();
    assert_eq!(messages.length(), 1);
    assert_eq!(field(&messages.get(0), "id").as_string().as_deref(), Some("m1"));
}

#[wasm_bindgen_test]
fn the_client_routes_a_mixed_message_and_follows_runs() {
    let mut client = ClientEngine::new();
    client.open("s");
    client.open("t");
    let started =
        r#"{"type":"run_started","channel":"s","epoch":"e","seq":1,"run_id":"r1","provider":"demo","started_at":5}"#;
    let other = delta(1, "b", "q").replace("\"s\"", "\"t\"");
    let hello = r#"{"type":"hello","protocol":1,"connection_id":"k","heartbeat_ms":500}"#;
    let result = client.ingest(JsValue::from_str(&format!("[{started},{other},{hello}]")), Some(0.0));
    assert_eq!(Array::from(&field(&result, "touched")).length(), 2);
    assert_eq!(field(&result, "heartbeat_ms").as_f64(), Some(500.0));
    assert_eq!(field(&result, "running_changed").as_bool(), Some(true));
    assert!(client.is_running("s"));
    let entries = client.running_sessions();
    assert!(Object::is(&entries, &client.running_sessions()), "unchanged: the same object");
    assert_eq!(field(&client.refresh("t"), "all").as_bool(), Some(true), "the first message: all of them");
    client.ingest(JsValue::from_str(&delta(2, "b", "r").replace("\"s\"", "\"t\"")), Some(0.0));
    let change = client.refresh("t");
    assert_eq!(Array::from(&field(&change, "messages")).get(0).as_string().as_deref(), Some("b"));
    assert!(client.refresh("t").is_null(), "nothing since");
    let finished = r#"{"type":"run_finished","channel":"s","epoch":"e","seq":2,"run_id":"r1","status":"complete","aborted":false}"#;
    client.ingest(JsValue::from_str(finished), Some(0.0));
    assert!(!client.is_running("s"));
    // A late list describing the channel before the finish is not believed.
    let stale =
        r#"{"rev":9,"sessions":[{"session_id":"s","run_id":"r1","provider":"demo","started_at":5,"last_seq":1}]}"#;
    assert!(!client.sync_running(JsValue::from_str(stale), Some(0.0)));
    assert!(!client.is_running("s"));
    assert!(!client.sync_running(JsValue::from_str("not json"), Some(0.0)));
}
