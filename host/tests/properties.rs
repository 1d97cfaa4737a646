//! Property tests: arbitrary input to the parameter converters (JSON → PostgreSQL and back), the
//! statement scanner, the manifest parser and the request path splitter gives a value or a clear
//! error, never a panic or an abort. Random inputs rarely find the few that matter
//! (`1e100000000000000`), so each property is seeded with every case the review found. The
//! process runs under an address-space limit (RLIMIT_AS): an allocation blow-up fails the test
//! (the allocation fails, the process aborts) instead of taking the machine's memory.

use std::path::Path;
use std::sync::Once;

use bytes::BytesMut;
use host::db::convert::{self, Numeric};
use host::db::statement;
use host::http::{percent_decode, split_module};
use host::manifest::Manifest;
use proptest::prelude::*;
use serde_json::{Value, json};
use tokio_postgres::types::{FromSql, ToSql, Type};

/// The address space the test process may use: its code, its threads' stacks and arenas, and
/// room for the tests; far below what an exponent expanded into zeros asks for.
const ADDRESS_SPACE: u64 = 2 << 30;

fn limit_memory() {
    static LIMIT: Once = Once::new();
    LIMIT.call_once(|| {
        rlimit::setrlimit(rlimit::Resource::AS, ADDRESS_SPACE, ADDRESS_SPACE)
            .expect("set RLIMIT_AS");
    });
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

#[test]
fn the_address_space_limit_holds() {
    limit_memory();
    // What `1e3000000000` once asked for, per request.
    let mut huge: Vec<u8> = Vec::new();
    assert!(
        huge.try_reserve_exact(3_000_000_000).is_err(),
        "3 GB could be reserved: the limit is not in force"
    );
}

/// Decimal texts the review found, and their neighbours at numeric's limits.
const NUMERIC_SEEDS: &[&str] = &[
    "1e100000000000000",
    "1e3000000000",
    "-1e100000000000000",
    "1e-100000000000000",
    "1e9223372036854775807",
    "1e-9223372036854775808",
    "1e99999999999999999999",
    "9e131071",
    "9e131072",
    "1e-16383",
    "1e-16384",
    "0e100000000000000",
    "0.000e-100000000000000",
    "1.5e",
    "e5",
    ".",
    "-.5e-3",
    "+1",
    "NaN",
    "nan",
    "",
    "-",
    "1e+5",
    "00000.000e5",
];

fn numeric_text() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(NUMERIC_SEEDS).prop_map(str::to_owned),
        "[-+]?[0-9]{0,30}(\\.[0-9]{0,30})?([eE][-+]?[0-9]{1,22})?",
        ".{0,40}",
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn a_decimal_text_is_a_numeric_or_an_error(text in numeric_text()) {
        limit_memory();
        if let Ok(numeric) = Numeric::parse(&text) {
            // What is accepted is encoded, and decodes to itself.
            let mut out = BytesMut::new();
            numeric.to_sql(&Type::NUMERIC, &mut out).expect("encode an accepted numeric");
            let back = Numeric::from_sql(&Type::NUMERIC, &out).expect("decode what was encoded");
            prop_assert_eq!(back, numeric);
        }
    }

    #[test]
    fn numeric_bytes_from_the_server_decode_or_fail(raw in proptest::collection::vec(any::<u8>(), 0..64)) {
        limit_memory();
        let _ = Numeric::from_sql(&Type::NUMERIC, &raw);
    }
}

#[test]
fn numeric_headers_at_their_limits_decode_or_fail() {
    limit_memory();
    // ndigits, weight, sign, scale at their extremes, with and without the digits they promise.
    for header in [
        [0xff, 0xff, 0x7f, 0xff, 0x00, 0x00, 0xff, 0xff],
        [0x00, 0x00, 0x7f, 0xff, 0x00, 0x00, 0x3f, 0xff],
        [0x00, 0x01, 0x80, 0x00, 0x40, 0x00, 0x3f, 0xff],
        [0x00, 0x00, 0x80, 0x00, 0x00, 0x00, 0xff, 0xff],
    ] {
        let _ = Numeric::from_sql(&Type::NUMERIC, &header);
        let mut with_digits = header.to_vec();
        with_digits.extend([0x27, 0x0f].repeat(4));
        let _ = Numeric::from_sql(&Type::NUMERIC, &with_digits);
    }
}

/// The types the gateway converts parameters to, and a few it does not.
const TYPES: &[Type] = &[
    Type::BOOL,
    Type::INT2,
    Type::INT4,
    Type::INT8,
    Type::FLOAT4,
    Type::FLOAT8,
    Type::NUMERIC,
    Type::TEXT,
    Type::VARCHAR,
    Type::UUID,
    Type::DATE,
    Type::TIMESTAMP,
    Type::TIMESTAMPTZ,
    Type::JSON,
    Type::JSONB,
    Type::BYTEA,
    Type::INT4_ARRAY,
    Type::TEXT_ARRAY,
    Type::NUMERIC_ARRAY,
    Type::BYTEA_ARRAY,
    Type::POINT,
    Type::INTERVAL,
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        numeric_text().prop_map(Value::String),
        ".{0,24}".prop_map(Value::String),
        "[A-Za-z0-9+/=]{0,24}".prop_map(Value::String),
        "[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})?)?"
            .prop_map(Value::String),
        "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(".{0,6}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// JSON parameters the review found, or that sit at a converter's edge.
fn seeded_params() -> Vec<Value> {
    let mut seeds: Vec<Value> = NUMERIC_SEEDS.iter().map(|s| json!(s)).collect();
    seeds.extend([
        json!(i64::MAX),
        json!(u64::MAX),
        json!(-0.0),
        json!(1.7976931348623157e308),
        json!("9999-12-31T23:59:59.999999999+14:00"),
        json!("-262144-01-01"),
        json!("====="),
        json!("A".repeat(10_000)),
        json!([[[["1e100000000000000"]]]]),
        json!([1, "x", null, [2]]),
    ]);
    seeds
}

fn convert_and_encode(ty: &Type, value: &Value) {
    if let Ok(param) = convert::param(1, ty, value) {
        let mut out = BytesMut::new();
        let _ = param.to_sql(ty, &mut out);
    }
}

#[test]
fn seeded_parameters_convert_or_fail_for_every_type() {
    limit_memory();
    for value in seeded_params() {
        for ty in TYPES {
            convert_and_encode(ty, &value);
        }
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_json_parameter_converts_or_fails(value in json_value(), ty in proptest::sample::select(TYPES)) {
        limit_memory();
        convert_and_encode(&ty, &value);
    }
}

/// Statements the review found past the scanner, and lexer edges.
const STATEMENT_SEEDS: &[&str] = &[
    "INSERT INTO dbfix_items (title) VALUES (E'it\\'s'); COMMIT; CREATE TABLE x(id int);",
    "ROLLBACK /* back to the start */",
    "SELECT 1; -- note\rCOMMIT; CREATE TABLE x(id int);",
    r#"SELECT U&"set\005fconfig"('statement_timeout', '0', false)"#,
    r#"SELECT U&"\+01F600" FROM t"#,
    r#"SELECT U&"\" UESCAPE '!'"#,
    r#"SELECT U&"!0073et_config" UESCAPE '!'"#,
    "UPDATE pg_settings SET setting = '' WHERE name = 'search_path'",
    "SELECT * INTO TEMP scratch FROM t",
    "DO $$ BEGIN CREATE TABLE invoices(id int); EXCEPTION WHEN duplicate_table THEN NULL; END $$;",
    "SAVEPOINT s; CREATE TABLE invoices(id int); RELEASE SAVEPOINT s;",
    "SELECT $tag$ unterminated",
    "SELECT $1$ text $1$",
    "SELECT 'unterminated",
    "SELECT E'\\",
    "/* /* nested */ still a comment",
    "SELECT \"",
    "U&'",
    "$",
    "--",
    "\r",
    "",
    ";;;",
    "SELECT set_config(",
];

fn statement_text() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(STATEMENT_SEEDS).prop_map(str::to_owned),
        ".{0,80}",
        "([a-zA-Z_ ;'\"$()\\\\/*\r\n&-]|E'|U&|--|/\\*|\\*/|\\$\\$|set_config|COMMIT|SELECT|INTO){0,30}",
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn the_scanner_answers_any_text(text in statement_text()) {
        limit_memory();
        let _ = statement::refusal(&text);
        let _ = statement::ends_transaction(&text);
        let _ = statement::changes_role(&text);
        let _ = statement::first_keyword(&text);
        prop_assert!(statement::tokens(&text).len() <= text.len());
        // The statements are pieces of the text, in order.
        let mut rest = text.as_str();
        for piece in statement::split(&text) {
            let at = rest.find(piece);
            prop_assert!(at.is_some(), "{:?} is not in what follows of {:?}", piece, text);
            rest = &rest[at.unwrap_or(0) + piece.len()..];
        }
    }
}

/// Manifests at the parser's edges.
fn manifest_seeds() -> Vec<String> {
    vec![
        format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)),
        format!("{{\"name\": \"x\", \"version\": \"1.0.0\", \"config\": {}}}", "[".repeat(10_000)),
        r#"{"name": "x", "version": "1.0.0", "config": {"n": 1e100000000000000}}"#.to_owned(),
        r#"{"name": "x", "version": "1.10", "enabled": true}"#.to_owned(),
        r#"{"name": "x", "version": "1.0.0", "dependencies": {"y": ">=1, <"}}"#.to_owned(),
        r#"{"name": "x", "version": "1.0.0", "dependencies": {"y": "^1"}, "uses": {"y": "write", "z": "read"}}"#.to_owned(),
        r#"{"name": "x", "version": "1.0.0", "table_prefix": ""}"#.to_owned(),
        r#"{"name": "../x", "version": "1.0.0"}"#.to_owned(),
        "{\"name\": \"x\u{0}\", \"version\": \"1.0.0\"}".to_owned(),
        r#"{"name": "x", "version": "99999999999999999999999.0.0"}"#.to_owned(),
        "\u{feff}{}".to_owned(),
        String::new(),
    ]
}

fn manifest_text() -> impl Strategy<Value = String> {
    let field = prop_oneof![
        Just("name"),
        Just("version"),
        Just("enabled"),
        Just("library"),
        Just("dependencies"),
        Just("uses"),
        Just("hub_api"),
        Just("config"),
        Just("safety"),
        Just("table_prefix"),
        Just("description"),
    ];
    prop_oneof![
        ".{0,60}",
        proptest::collection::btree_map(field, json_value(), 0..8).prop_map(|m| Value::Object(
            m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
        )
        .to_string()),
    ]
}

#[test]
fn seeded_manifests_parse_or_fail() {
    limit_memory();
    for text in manifest_seeds() {
        let _ = Manifest::parse(Path::new("plugins/x/module.json"), "x", &text);
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_manifest_text_parses_or_fails(text in manifest_text()) {
        limit_memory();
        if let Err(error) = Manifest::parse(Path::new("plugins/x/module.json"), "x", &text) {
            // A clear error names the file.
            prop_assert!(error.to_string().contains("plugins/x/module.json"), "{}", error);
        }
    }

    #[test]
    fn any_request_path_splits_into_module_and_route(path in prop_oneof![
        ".{0,60}",
        "(/|%2[fF]|%|%[0-9a-fA-F]{0,2}|[a-z_]{1,8}|%[cC][0-3]|%[eE]2%82%[aA][cC]|\\.\\.){0,12}",
    ]) {
        limit_memory();
        let (module, route) = split_module(&path);
        prop_assert_eq!(format!("{module}{route}"), path.clone());
        prop_assert!(!module.contains('/'));
        prop_assert!(route.is_empty() || route.starts_with('/'));
        let name = percent_decode(module);
        prop_assert!(name.len() <= module.len() * 3);
    }
}
