//! The client against the server's own OpenAPI document (`shared::web::openapi::document()`):
//! every operation the client calls exists with that method, path and query parameters;
//! its request and response bodies name the same schemas; every request type serialises to
//! a body the schema accepts; and every response type decodes what the schema allows (a
//! minimal instance: required members only, nullable ones null; and a full one). A server
//! change that breaks the client fails here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use arca_client::endpoints::{self, Endpoint, Example, Shape, Visitor, Wire};
use serde::Serialize;
use serde_json::{json, Map, Value};

fn document() -> Value {
    serde_json::to_value(shared::web::openapi::document()).expect("the document serialises")
}

fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let name = r.trim_start_matches("#/components/schemas/");
            let target = &doc["components"]["schemas"][name];
            assert!(!target.is_null(), "dangling reference {r}");
            resolve(doc, target)
        }
        None => schema,
    }
}

/// The shape a document schema has, in the client's terms.
fn shape_of(schema: &Value) -> Shape {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.trim_start_matches("#/components/schemas/");
        return Shape::Named(Box::leak(name.to_owned().into_boxed_str()));
    }
    if schema["type"] == "array" {
        return Shape::Array(Box::new(shape_of(&schema["items"])));
    }
    Shape::Any
}

fn types_of(schema: &Value) -> Vec<&str> {
    match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Required members only; nullable values null; arrays and maps empty.
    Minimal,
    /// Every member, nothing null, one element in every array and map.
    Full,
}

/// An instance of `schema`.
fn sample(doc: &Value, schema: &Value, mode: Mode) -> Value {
    let schema = resolve(doc, schema);
    if let Some(parts) = schema["allOf"].as_array() {
        let mut merged = Map::new();
        for part in parts {
            if let Value::Object(o) = sample(doc, part, mode) {
                merged.extend(o);
            }
        }
        return Value::Object(merged);
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(variants) = schema[key].as_array() {
            let is_null = |v: &&Value| types_of(v) == ["null"];
            if mode == Mode::Minimal && variants.iter().any(|v| is_null(&v)) {
                return Value::Null;
            }
            let first = variants.iter().find(|v| !is_null(v)).expect("a non-null variant");
            return sample(doc, first, mode);
        }
    }
    if let Some(values) = schema["enum"].as_array() {
        return values.iter().find(|v| !v.is_null()).cloned().unwrap_or(Value::Null);
    }
    let types = types_of(schema);
    if mode == Mode::Minimal && types.contains(&"null") {
        return Value::Null;
    }
    match types.iter().find(|t| **t != "null").copied() {
        Some("string") => json!("x"),
        Some("integer") => json!(schema["minimum"].as_i64().unwrap_or(1).max(1)),
        Some("number") => json!(1.5),
        Some("boolean") => json!(true),
        Some("array") => match mode {
            Mode::Minimal => json!([]),
            Mode::Full => json!([sample(doc, &schema["items"], mode)]),
        },
        Some("object") | None => {
            let mut out = Map::new();
            let required: BTreeSet<&str> =
                schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            for (name, property) in schema["properties"].as_object().into_iter().flatten() {
                if mode == Mode::Full || required.contains(name.as_str()) {
                    out.insert(name.clone(), sample(doc, property, mode));
                }
            }
            if let (Mode::Full, Some(additional)) = (mode, schema.get("additionalProperties")) {
                if additional.is_object() {
                    out.insert("key".into(), sample(doc, additional, mode));
                }
            }
            Value::Object(out)
        }
        Some(other) => panic!("unknown schema type {other}"),
    }
}

/// Why `value` does not match `schema` (empty: it does).
fn validate(doc: &Value, schema: &Value, value: &Value, at: &str) -> Vec<String> {
    let schema = resolve(doc, schema);
    let mut errors = Vec::new();
    if let Some(parts) = schema["allOf"].as_array() {
        // One object: the members of every part (serde's `flatten`).
        let mut merged = json!({"type": "object", "properties": {}, "required": []});
        for part in parts {
            let part = resolve(doc, part);
            for (name, property) in part["properties"].as_object().into_iter().flatten() {
                merged["properties"][name] = property.clone();
            }
            for required in part["required"].as_array().into_iter().flatten() {
                merged["required"].as_array_mut().unwrap().push(required.clone());
            }
        }
        return validate(doc, &merged, value, at);
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(variants) = schema[key].as_array() {
            if variants.iter().any(|v| validate(doc, v, value, at).is_empty()) {
                return errors;
            }
            return vec![format!("{at}: {value} matches no variant of {key}")];
        }
    }
    if let Some(values) = schema["enum"].as_array() {
        if !values.contains(value) {
            errors.push(format!("{at}: {value} is not one of {values:?}"));
        }
        return errors;
    }
    let types = types_of(schema);
    let kind_ok = |t: &str| match t {
        "null" => value.is_null(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        _ => false,
    };
    if !types.is_empty() && !types.iter().any(|t| kind_ok(t)) {
        errors.push(format!("{at}: {value} is not of type {types:?}"));
        return errors;
    }
    match value {
        Value::Object(object) => {
            let properties = schema["properties"].as_object();
            for (key, member) in object {
                match properties.and_then(|p| p.get(key)) {
                    Some(property) => errors.extend(validate(doc, property, member, &format!("{at}.{key}"))),
                    None => match schema.get("additionalProperties") {
                        Some(extra) if extra.is_object() => {
                            errors.extend(validate(doc, extra, member, &format!("{at}.{key}")))
                        }
                        _ => errors.push(format!("{at}: the schema has no member '{key}'")),
                    },
                }
            }
            for required in schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str) {
                if !object.contains_key(required) {
                    errors.push(format!("{at}: the required member '{required}' is missing"));
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                errors.extend(validate(doc, &schema["items"], item, &format!("{at}[{i}]")));
            }
        }
        _ => {}
    }
    errors
}

/// Members of `sent` that `kept` lacks (recursively; first elements of arrays).
fn lost(sent: &Value, kept: &Value, at: &str) -> Vec<String> {
    match (sent, kept) {
        (Value::Object(a), Value::Object(b)) => a
            .iter()
            .flat_map(|(k, v)| match b.get(k) {
                Some(w) => lost(v, w, &format!("{at}.{k}")),
                None => vec![format!("{at}.{k}")],
            })
            .collect(),
        (Value::Array(a), Value::Array(b)) => match (a.first(), b.first()) {
            (Some(v), Some(w)) => lost(v, w, &format!("{at}[0]")),
            (Some(_), None) => vec![format!("{at}[0]")],
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

fn operation<'a>(doc: &'a Value, method: &str, path: &str) -> &'a Value {
    let op = &doc["paths"][path][method.to_ascii_lowercase()];
    assert!(op.is_object(), "{method} {path}: the server has no such operation");
    op
}

struct Check<'a> {
    doc: &'a Value,
    failures: Vec<String>,
    visited: usize,
}

impl Check<'_> {
    fn fail(&mut self, id: &str, message: String) {
        self.failures.push(format!("{id}: {message}"));
    }
}

impl Visitor for Check<'_> {
    fn visit<Req, Resp>(&mut self, endpoint: &Endpoint<Req, Resp>)
    where
        Req: Wire + Serialize + Example,
        Resp: Wire + Serialize,
    {
        self.visited += 1;
        let doc = self.doc;
        let id = endpoint.operation_id;
        let op = operation(doc, endpoint.method.as_str(), endpoint.path);
        if op["operationId"] != id {
            self.fail(id, format!("the server calls {} {} '{}'", endpoint.method, endpoint.path, op["operationId"]));
        }
        // Query parameters the client sends must be declared.
        let declared: BTreeSet<&str> = op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "query")
            .filter_map(|p| p["name"].as_str())
            .collect();
        for q in endpoint.query {
            if !declared.contains(q) {
                self.fail(id, format!("query parameter '{q}' is not declared (declared: {declared:?})"));
            }
        }
        // Path parameters.
        let path_params: BTreeSet<&str> = op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "path")
            .filter_map(|p| p["name"].as_str())
            .collect();
        let in_template: BTreeSet<&str> =
            endpoint.path.split('{').skip(1).filter_map(|s| s.split_once('}').map(|(n, _)| n)).collect();
        if path_params != in_template {
            self.fail(id, format!("path parameters {in_template:?}, the server declares {path_params:?}"));
        }
        // The request body.
        let content = &op["requestBody"]["content"];
        match Req::shape() {
            Shape::None => {
                if op["requestBody"].is_object() && op["requestBody"]["required"] == true {
                    self.fail(id, "the server requires a body the client does not send".into());
                }
            }
            Shape::Bytes => {
                if !content["application/octet-stream"].is_object() {
                    self.fail(id, format!("the server takes no octet-stream body: {content}"));
                }
            }
            shape => {
                let schema = &content["application/json"]["schema"];
                if shape_of(schema) != shape {
                    self.fail(id, format!("request body {shape:?}, the server's is {:?}", shape_of(schema)));
                }
                let body = serde_json::to_value(Req::example()).unwrap();
                for e in validate(doc, schema, &body, "request") {
                    self.fail(id, e);
                }
            }
        }
        // The success response.
        let responses = op["responses"].as_object().expect("responses");
        let Some((status, response)) = responses.iter().find(|(s, _)| s.starts_with('2')) else {
            self.fail(id, "no success response".into());
            return;
        };
        let content = &response["content"];
        match Resp::shape() {
            Shape::None => {
                if content.as_object().is_some_and(|c| !c.is_empty()) {
                    self.fail(id, format!("{status} has a body the client ignores: {content}"));
                }
            }
            Shape::Bytes => {
                if !content["application/octet-stream"].is_object() {
                    self.fail(id, format!("{status} is not a byte stream: {content}"));
                }
            }
            shape => {
                let schema = &content["application/json"]["schema"];
                if !schema.is_object() {
                    self.fail(id, format!("{status} has no JSON body: {content}"));
                    return;
                }
                if shape != Shape::Any && shape_of(schema) != shape {
                    self.fail(id, format!("response {shape:?}, the server's is {:?}", shape_of(schema)));
                }
                for mode in [Mode::Minimal, Mode::Full] {
                    let instance = sample(doc, schema, mode);
                    match Resp::decode(instance.to_string().as_bytes()) {
                        Err(e) => self.fail(id, format!("cannot decode {instance}: {e}")),
                        // Nothing the server sends is lost on the way through the client.
                        Ok(decoded) if mode == Mode::Full && shape != Shape::Any => {
                            let again = serde_json::to_value(&decoded).unwrap();
                            for member in lost(&instance, &again, "response") {
                                self.fail(id, format!("the client drops {member}"));
                            }
                        }
                        Ok(_) => {}
                    }
                }
            }
        }
    }
}

#[test]
fn every_operation_the_client_calls_exists_with_its_shapes() {
    let doc = document();
    let mut ids = BTreeSet::new();
    for (id, method, path) in endpoints::ALL {
        assert!(ids.insert(*id), "{id} twice in the client's table");
        let op = operation(&doc, method, path);
        assert_eq!(op["operationId"], *id, "{method} {path}");
    }
    let mut check = Check { doc: &doc, failures: Vec::new(), visited: 0 };
    endpoints::visit_all(&mut check);
    assert_eq!(check.visited, endpoints::ALL.len());
    assert!(check.failures.is_empty(), "the client does not match the server:\n{}", check.failures.join("\n"));
}

/// The client's status enum is the server's.
#[test]
fn statuses_are_the_servers() {
    let doc = document();
    let server: BTreeSet<String> = doc["components"]["schemas"]["Status"]["enum"]
        .as_array()
        .expect("Status is an enum")
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    let client: BTreeSet<String> = arca_client::Status::ALL.iter().map(|s| s.as_str().to_owned()).collect();
    assert_eq!(client, server);
}

/// Error bodies decode into `Problem`: every member the client reads is in the schema.
#[test]
fn problems_decode() {
    let doc = document();
    let schema = &doc["components"]["schemas"]["Problem"];
    for member in ["status", "code", "title", "detail", "retry_after"] {
        assert!(schema["properties"][member].is_object(), "Problem has no '{member}'");
    }
    let instance = sample(&doc, schema, Mode::Full);
    let problem = arca_client::Problem::from_body(429, None, instance.to_string().as_bytes());
    assert_eq!(problem.code, instance["code"].as_str().unwrap());
    assert_eq!(problem.retry_after, Some(1));
    // Not a problem document (a proxy's page, an object store's XML).
    let other = arca_client::Problem::from_body(502, Some(3), b"<Error>SlowDown</Error>");
    assert_eq!((other.status, other.code.as_str(), other.retry_after), (502, "", Some(3)));
    assert!(other.detail.contains("SlowDown"));
}

/// The samples the checks rely on are themselves valid (the generator is not lenient).
#[test]
fn samples_validate() {
    let doc = document();
    for name in ["Artifact", "Created", "ScanResults", "Stats", "ArtifactSignature", "AuditPage"] {
        let schema = json!({ "$ref": format!("#/components/schemas/{name}") });
        for mode in [Mode::Minimal, Mode::Full] {
            let errors = validate(&doc, &schema, &sample(&doc, &schema, mode), name);
            assert!(errors.is_empty(), "{errors:?}");
        }
    }
    let errors = validate(&doc, &json!({"$ref": "#/components/schemas/NewArtifact"}), &json!({"nme": 1}), "x");
    assert!(errors.len() >= 2, "{errors:?}");
}
