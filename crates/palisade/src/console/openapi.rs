//! The OpenAPI 3 document of `/api/v1`, served at `/api/v1/openapi.json`. Built from [`OPERATIONS`], which a
//! test keeps equal to the routes `api.rs` serves (and the e2e test calls every operation it lists).

use serde_json::{Map, Value, json};

/// One operation: method, path (relative to /api/v1), summary, request body schema (if any), success status.
pub struct Operation {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    pub body: Option<fn() -> Value>,
    pub success: u16,
    /// Query parameters.
    pub query: &'static [&'static str],
    /// The media type of a request body that is not JSON (an uploaded file).
    pub raw_body: Option<&'static str>,
    /// The media type of the success answer.
    pub answers: &'static str,
}

const fn op(method: &'static str, path: &'static str, summary: &'static str) -> Operation {
    Operation {
        method,
        path,
        summary,
        body: None,
        success: 200,
        query: &[],
        raw_body: None,
        answers: "application/json",
    }
}

fn new_extension() -> Value {
    json!({
        "type": "object", "required": ["number"], "additionalProperties": false,
        "properties": {
            "number": {"type": "string"}, "name": {"type": "string"}, "email": {"type": "string"},
            "require_tls": {"type": "boolean"},
            "srtp": {"type": "string", "enum": ["disabled", "enabled", "enforced"]}
        }
    })
}

fn ext_changes() -> Value {
    let b = json!({"type": "boolean"});
    let s = json!({"type": "string"});
    let mut p = Map::new();
    for k in [
        "enabled",
        "require_tls",
        "internal_only",
        "pin_protect",
        "lan_only",
        "block_remote_ws",
        "office_hours_only",
        "voicemail",
        "mwi_unsolicited",
    ] {
        p.insert(k.into(), b.clone());
    }
    for k in [
        "name",
        "email",
        "digest_algorithms",
        "srtp",
        "forward_always",
        "forward_busy",
        "forward_no_answer",
        "max_calls",
        "max_external_calls",
    ] {
        p.insert(k.into(), s.clone());
    }
    json!({"type": "object", "additionalProperties": false, "properties": p})
}

fn new_phone() -> Value {
    json!({
        "type": "object", "required": ["ext", "model"], "additionalProperties": false,
        "properties": {
            "mac": {"type": "string"}, "ext": {"type": "string"},
            "model": {"type": "string",
                      "enum": ["yealink", "snom", "grandstream", "polycom", "linphone", "generic"]},
            "host": {"type": "string"}
        }
    })
}

fn reprovision_body() -> Value {
    json!({"type": "object", "additionalProperties": false, "properties": {"host": {"type": "string"}}})
}

fn pin_body() -> Value {
    json!({"type": "object", "additionalProperties": false, "properties": {"pin": {"type": "string"}}})
}

fn list_entry() -> Value {
    json!({
        "type": "object", "required": ["prefix"], "additionalProperties": false,
        "properties": {
            "prefix": {"type": "string", "description": "address or CIDR prefix, IPv4 or IPv6"},
            "expires": {"description": "seconds until the entry is removed (1 to 1000000000)",
                        "oneOf": [{"type": "integer"}, {"type": "string"}]},
            "note": {"type": "string"}
        }
    })
}

fn trunk_fields(required: &[&str]) -> Value {
    let s = json!({"type": "string"});
    let mut p = Map::new();
    for k in [
        "host",
        "transport",
        "username",
        "caller_id",
        "auth_user",
        "ca_file",
        "tls_server_name",
    ] {
        p.insert(k.into(), s.clone());
    }
    p.insert(
        "password".into(),
        json!({"type": "string", "writeOnly": true, "description": "stored as given, never shown back"}),
    );
    p.insert(
        "srtp".into(),
        json!({"type": "string", "enum": ["disabled", "enabled", "enforced"]}),
    );
    p.insert(
        "port".into(),
        json!({"type": "integer", "minimum": 1, "maximum": 65535}),
    );
    p.insert("register".into(), json!({"type": "boolean"}));
    p.insert(
        "sources".into(),
        json!({"type": "array", "items": {"type": "string"}}),
    );
    p.insert(
        "max_calls".into(),
        json!({"oneOf": [{"type": "string"}, {"type": "integer"}]}),
    );
    if required.contains(&"name") {
        p.insert("name".into(), s);
    }
    object(required, p)
}

/// An object schema; OpenAPI 3.0 forbids an empty `required` list, so none is written then.
fn object(required: &[&str], properties: Map<String, Value>) -> Value {
    let mut o = json!({"type": "object", "additionalProperties": false, "properties": properties});
    if !required.is_empty() {
        o["required"] = json!(required);
    }
    o
}

fn new_trunk() -> Value {
    trunk_fields(&["name", "host"])
}

fn trunk_changes() -> Value {
    trunk_fields(&[])
}

fn rule_fields(required: &[&str]) -> Value {
    let s = json!({"type": "string"});
    let n = json!({"type": "integer", "minimum": 0});
    let list = json!({"type": "array", "items": {"type": "string"}});
    let properties = json!({
        "name": s, "prefix": s, "prepend": s, "min_len": n, "max_len": n, "strip": n,
        "position": {"type": "integer", "minimum": 1}, "extensions": list, "trunks": list,
    });
    object(
        required,
        properties.as_object().cloned().unwrap_or_default(),
    )
}

fn new_rule() -> Value {
    rule_fields(&["name", "trunks"])
}

fn rule_changes() -> Value {
    rule_fields(&[])
}

fn new_did() -> Value {
    json!({"type": "object", "required": ["number", "trunk", "extension"], "additionalProperties": false,
           "properties": {"number": {"type": "string"}, "trunk": {"type": "string"},
                          "extension": {"type": "string"}}})
}

fn did_changes() -> Value {
    json!({"type": "object", "additionalProperties": false,
           "properties": {"trunk": {"type": "string"}, "extension": {"type": "string"}}})
}

fn new_room() -> Value {
    json!({"type": "object", "required": ["number"], "additionalProperties": false,
           "properties": {"number": {"type": "string", "description": "1-20 digits, never an extension's"},
                          "pin": {"type": "string", "description": "4-10 digits (stored as a hash only)"},
                          "max": {"type": "integer", "minimum": 2, "maximum": 50}}})
}

fn recording_settings() -> Value {
    json!({"type": "object", "additionalProperties": false,
           "properties": {"announce": {"type": "string", "enum": ["on", "off"]},
                          "retention_days": {"type": "integer", "minimum": 0, "maximum": 36500,
                                             "description": "0: kept until deleted"}}})
}

fn music_setting() -> Value {
    json!({"type": "object", "required": ["music"], "additionalProperties": false,
           "properties": {"music": {"type": "string", "enum": ["default", "off"],
                                    "description": "a file is uploaded with POST /moh/{number}/upload"}}})
}

fn recording_mode() -> Value {
    json!({"type": "object", "required": ["mode"], "additionalProperties": false,
           "properties": {"mode": {"type": "string", "enum": ["always", "on-demand", "off"]}}})
}

fn group_body(required: bool) -> Value {
    let mut v = json!({"type": "object", "additionalProperties": false,
           "properties": {"number": {"type": "string"},
                          "members": {"type": "array", "items": {"type": "string"}},
                          "strategy": {"type": "string", "enum": ["all", "order", "round-robin"]},
                          "ring_seconds": {"type": "integer", "minimum": 5, "maximum": 300},
                          "fallback": {"type": "string", "description": "voicemail:EXT, ext:NUMBER or hangup"}}});
    if required {
        v["required"] = json!(["number", "members"]);
    }
    v
}

fn new_group() -> Value {
    group_body(true)
}

fn group_changes() -> Value {
    group_body(false)
}

fn queue_body(required: bool) -> Value {
    let mut v = json!({"type": "object", "additionalProperties": false,
           "properties": {"number": {"type": "string"},
                          "agents": {"type": "array", "items": {"type": "string"}},
                          "strategy": {"type": "string", "enum": ["longest-idle", "round-robin", "all"]},
                          "max_wait": {"type": "integer", "minimum": 5, "maximum": 3600},
                          "music": {"type": "string", "description": "default, or a WAV file the server can read"},
                          "fallback": {"type": "string", "description": "ext:NUMBER or hangup"}}});
    if required {
        v["required"] = json!(["number", "agents"]);
    }
    v
}

fn new_queue() -> Value {
    queue_body(true)
}

fn queue_changes() -> Value {
    queue_body(false)
}

fn settings_patch() -> Value {
    json!({"type": "object", "description": "SETTING: VALUE pairs, as `palisade security set` takes them",
           "additionalProperties": {"oneOf": [{"type": "string"}, {"type": "integer"}]}})
}

/// Every operation the API serves.
pub const OPERATIONS: &[Operation] = &[
    op("get", "/openapi.json", "This document"),
    Operation {
        query: &["after", "limit"],
        ..op(
            "get",
            "/extensions",
            "List extensions by number; page with limit and after=next_after",
        )
    },
    Operation {
        body: Some(new_extension),
        success: 201,
        ..op(
            "post",
            "/extensions",
            "Add an extension; its credentials are answered once",
        )
    },
    op(
        "get",
        "/extensions/{number}",
        "One extension with its mailbox and limits",
    ),
    Operation {
        body: Some(ext_changes),
        ..op(
            "patch",
            "/extensions/{number}",
            "Change an extension (as `palisade ext set`)",
        )
    },
    op("delete", "/extensions/{number}", "Remove an extension"),
    op(
        "post",
        "/extensions/{number}/reset-password",
        "A new random SIP password, answered once",
    ),
    Operation {
        body: Some(pin_body),
        ..op(
            "post",
            "/extensions/{number}/reset-pin",
            "A new voicemail PIN (random unless given)",
        )
    },
    Operation {
        query: &["extension"],
        ..op("get", "/registrations", "Registered contacts")
    },
    op("get", "/calls", "Calls in progress"),
    Operation {
        query: &["since", "ext", "limit", "format"],
        ..op(
            "get",
            "/cdr",
            "Call records, newest first; format=csv for a CSV file",
        )
    },
    Operation {
        query: &["since", "kind", "before", "limit"],
        ..op(
            "get",
            "/events",
            "Security events, newest first; page with before=next_before",
        )
    },
    op(
        "get",
        "/stream",
        "Live stream (Server-Sent Events): calls, registrations, security events, bans",
    ),
    op(
        "get",
        "/blacklist",
        "Blocked addresses and prefixes in force, with why",
    ),
    Operation {
        body: Some(list_entry),
        success: 201,
        ..op("post", "/blacklist", "Block an address or prefix")
    },
    op(
        "delete",
        "/blacklist/{prefix}",
        "Unblock (also lifts an automatic ban)",
    ),
    op(
        "get",
        "/whitelist",
        "Addresses and prefixes exempt from anti-hacking",
    ),
    Operation {
        body: Some(list_entry),
        success: 201,
        ..op("post", "/whitelist", "Exempt an address or prefix")
    },
    op("delete", "/whitelist/{prefix}", "Remove a whitelist entry"),
    op(
        "get",
        "/security",
        "Security settings with defaults and limits",
    ),
    Operation {
        body: Some(settings_patch),
        ..op(
            "patch",
            "/security",
            "Change security settings (all checked before any is written)",
        )
    },
    op("get", "/policy", "Call policy"),
    Operation {
        body: Some(settings_patch),
        ..op(
            "patch",
            "/policy",
            "Change call policy settings (as `palisade policy set`; all checked first)",
        )
    },
    op(
        "get",
        "/countries",
        "Country calling codes international calls may reach",
    ),
    op("get", "/hours", "Office hours and holidays"),
    op("get", "/rules", "Outbound rules, in order"),
    op(
        "get",
        "/trunks",
        "SIP trunks with their registration status",
    ),
    op(
        "get",
        "/dids",
        "Inbound numbers and the extension each rings",
    ),
    Operation {
        body: Some(new_trunk),
        success: 201,
        ..op(
            "post",
            "/trunks",
            "Add a trunk (as `palisade trunk add`); the password is write-only",
        )
    },
    op(
        "get",
        "/trunks/{name}",
        "One trunk with its DIDs and registration (never its password)",
    ),
    Operation {
        body: Some(trunk_changes),
        ..op(
            "patch",
            "/trunks/{name}",
            "Change a trunk (as `palisade trunk set`; \"\" clears)",
        )
    },
    op("delete", "/trunks/{name}", "Remove a trunk and its DIDs"),
    Operation {
        body: Some(new_rule),
        success: 201,
        ..op(
            "post",
            "/rules",
            "Add an outbound rule (as `palisade rule add`)",
        )
    },
    Operation {
        body: Some(rule_changes),
        ..op(
            "patch",
            "/rules/{name}",
            "Change an outbound rule in place; position moves it",
        )
    },
    op("delete", "/rules/{name}", "Remove an outbound rule"),
    Operation {
        body: Some(new_did),
        success: 201,
        ..op(
            "post",
            "/dids",
            "Map an inbound number to an extension (as `palisade did add`)",
        )
    },
    Operation {
        body: Some(did_changes),
        ..op(
            "patch",
            "/dids/{number}",
            "Change an inbound number's trunk or extension",
        )
    },
    op("delete", "/dids/{number}", "Remove an inbound number"),
    op("get", "/groups", "Ring groups"),
    Operation {
        body: Some(new_group),
        success: 201,
        ..op(
            "post",
            "/groups",
            "Add a ring group (as `palisade group add`)",
        )
    },
    op("get", "/groups/{number}", "One ring group"),
    Operation {
        body: Some(group_changes),
        ..op(
            "patch",
            "/groups/{number}",
            "Change a ring group (as `palisade group change`: only the fields given)",
        )
    },
    op("delete", "/groups/{number}", "Remove a ring group"),
    op(
        "get",
        "/queues",
        "Call queues, with their agents' login state",
    ),
    Operation {
        body: Some(new_queue),
        success: 201,
        ..op(
            "post",
            "/queues",
            "Add a call queue (as `palisade queue add`)",
        )
    },
    op("get", "/queues/{number}", "One call queue"),
    Operation {
        body: Some(queue_changes),
        ..op(
            "patch",
            "/queues/{number}",
            "Change a call queue (as `palisade queue change`: only the fields given)",
        )
    },
    op("delete", "/queues/{number}", "Remove a call queue"),
    op(
        "get",
        "/queues/{number}/stats",
        "Queue statistics: waiting now, answered, abandoned, timed out, average wait",
    ),
    op(
        "get",
        "/conferences",
        "Conference rooms and how many are in each",
    ),
    Operation {
        body: Some(new_room),
        success: 201,
        ..op(
            "post",
            "/conferences",
            "Add a conference room (as `palisade conference add`)",
        )
    },
    op(
        "get",
        "/conferences/{number}",
        "One room and who is in it now",
    ),
    op(
        "delete",
        "/conferences/{number}",
        "Remove a conference room",
    ),
    op(
        "post",
        "/conferences/{number}/unlock",
        "Lift a room's PIN lockout",
    ),
    op(
        "post",
        "/conferences/{number}/participants/{participant}/{action}",
        "Mute, unmute or kick (action) participant N of a room",
    ),
    Operation {
        query: &["extension"],
        ..op("get", "/recordings", "Call recordings, newest first")
    },
    op(
        "get",
        "/recordings/settings",
        "Recording settings: announcement, retention, recorded extensions",
    ),
    Operation {
        body: Some(recording_settings),
        ..op(
            "patch",
            "/recordings/settings",
            "Change the announcement or the retention (only the fields given)",
        )
    },
    Operation {
        body: Some(recording_mode),
        ..op(
            "put",
            "/recordings/extensions/{number}",
            "Record an extension's calls always, on demand (*1) or not",
        )
    },
    Operation {
        answers: "audio/wav",
        ..op(
            "get",
            "/recordings/{id}",
            "A recording as WAV (both parties mixed)",
        )
    },
    op("delete", "/recordings/{id}", "Delete a recording"),
    op(
        "get",
        "/moh",
        "Extensions whose music on hold is not the default",
    ),
    op(
        "get",
        "/moh/{number}",
        "What an extension's callers hear while it holds them",
    ),
    Operation {
        body: Some(music_setting),
        ..op(
            "put",
            "/moh/{number}",
            "Music on hold: the default melody or none (as `palisade moh set`)",
        )
    },
    Operation {
        raw_body: Some("audio/wav"),
        ..op(
            "post",
            "/moh/{number}/upload",
            "Upload an extension's music on hold: any PCM WAV, converted to 8 kHz mono (at most 10 minutes)",
        )
    },
    op("get", "/voicemail/{number}", "Messages of a mailbox"),
    op("get", "/voicemail/{number}/{id}", "A message as WAV"),
    op("delete", "/voicemail/{number}/{id}", "Delete a message"),
    op("get", "/cert", "The TLS certificate in use"),
    op(
        "get",
        "/phones",
        "Provisioned phones (never their URL tokens)",
    ),
    Operation {
        body: Some(new_phone),
        success: 201,
        ..op(
            "post",
            "/phones",
            "Provision a phone (as `palisade phone add`); the answer holds its URL, shown this once",
        )
    },
    op(
        "get",
        "/phones/{id}",
        "One phone (its web-admin password for write-scope tokens)",
    ),
    op(
        "delete",
        "/phones/{id}",
        "Remove a phone: its provisioning URL stops working",
    ),
    Operation {
        body: Some(reprovision_body),
        ..op(
            "post",
            "/phones/{id}/reprovision",
            "A new URL and window; the next fetch rotates the extension's password",
        )
    },
    Operation {
        query: &["before", "limit"],
        ..op("get", "/audit", "The audit log, newest first")
    },
    op(
        "get",
        "/backups",
        "Backups in the backup folder (scheduled, manual, uploaded), newest first",
    ),
    Operation {
        success: 201,
        ..op(
            "post",
            "/backups",
            "Back up now (a write token); answers the archive's name and the restore command",
        )
    },
    Operation {
        answers: "application/x-tar",
        ..op(
            "get",
            "/backups/{name}",
            "Download a backup (a write token: it holds password hashes and the TLS private key)",
        )
    },
    Operation {
        success: 201,
        raw_body: Some("application/x-tar"),
        ..op(
            "post",
            "/backups/upload",
            "Upload an archive: checked like `palisade restore` (manifest, checksums, database), kept in the \
             backup folder; answers the `palisade restore FILE --data NEW_DIR` command to run",
        )
    },
];

/// The document.
pub fn document() -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for o in OPERATIONS {
        let mut params: Vec<Value> = o
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        params.extend(
            o.query
                .iter()
                .map(|name| json!({"name": name, "in": "query", "required": false, "schema": {"type": "string"}})),
        );
        let err = |d: &str| json!({"description": d, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
        let mut responses = Map::new();
        responses.insert(
            o.success.to_string(),
            json!({"description": "success", "content": {o.answers: {"schema": {}}}}),
        );
        responses.insert(
            "400".into(),
            err("invalid input: the same message as the CLI"),
        );
        responses.insert(
            "401".into(),
            err("no valid bearer token (counts toward the console ban)"),
        );
        responses.insert("403".into(), err("a read token on a change"));
        responses.insert("404".into(), err("no such thing"));
        if o.body.is_some() {
            responses.insert(
                "409".into(),
                err("conflict, e.g. the extension exists already"),
            );
            responses.insert("422".into(), err("JSON of the wrong shape"));
        }
        let mut operation = json!({
            "summary": o.summary,
            "operationId": format!("{}{}", o.method, o.path.replace(['/', '{', '}', '.', '-'], "_")),
            "parameters": params,
            "responses": responses,
        });
        if let Some(body) = o.body {
            operation["requestBody"] =
                json!({"required": true, "content": {"application/json": {"schema": body()}}});
        }
        if let Some(media) = o.raw_body {
            operation["requestBody"] = json!({"required": true,
                "content": {media: {"schema": {"type": "string", "format": "binary"}}}});
        }
        let entry = paths.entry(o.path.to_string()).or_insert_with(|| json!({}));
        entry[o.method] = operation;
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Palisade REST API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Administration of a Palisade PBX. Bearer tokens from `palisade admin token create`."
        },
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": {"type": "object", "required": ["error"],
                                   "properties": {"error": {"type": "string"}}}}
        },
        "paths": paths,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The routes `api.rs` and the modules it merges register, as "METHOD PATH" (axum's `{*prefix}` written
    /// `{prefix}`).
    fn served() -> std::collections::BTreeSet<String> {
        let mut out = std::collections::BTreeSet::new();
        for src in API_SOURCES {
            routes_in(src, &mut out);
        }
        out
    }

    const API_SOURCES: [&str; 6] = [
        include_str!("api.rs"),
        include_str!("backups.rs"),
        include_str!("routing_api.rs"),
        include_str!("office_api.rs"),
        include_str!("media_api.rs"),
        include_str!("phones_api.rs"),
    ];

    fn routes_in(src: &str, out: &mut std::collections::BTreeSet<String>) {
        let mut rest = src;
        while let Some(i) = rest.find(".route(") {
            rest = &rest[i + 7..];
            // A route's text ends at the next route, or at the end of the function that registers them.
            let end = [
                rest.find(".route("),
                rest.find(".fallback("),
                rest.find("\n}\n"),
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(rest.len());
            let call = &rest[..end];
            let Some(path) = call.split('"').nth(1) else {
                continue;
            };
            let path = path.replace("{*", "{");
            for m in ["get", "post", "put", "patch", "delete"] {
                if call.contains(&format!("{m}(")) {
                    out.insert(format!("{} {path}", m.to_uppercase()));
                }
            }
        }
    }

    #[test]
    fn the_document_lists_exactly_what_is_served() {
        let documented: std::collections::BTreeSet<String> = OPERATIONS
            .iter()
            .map(|o| format!("{} {}", o.method.to_uppercase(), o.path))
            .collect();
        assert_eq!(documented, served());
    }

    #[test]
    fn no_schema_has_an_empty_required_list() {
        // OpenAPI 3.0 requires at least one item in `required` when it is present.
        let text = document().to_string();
        assert!(!text.contains(r#""required":[]"#), "{text}");
    }

    #[test]
    fn every_path_parameter_is_declared() {
        let doc = document();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (_, op) in item.as_object().unwrap() {
                let declared: Vec<&str> = op["parameters"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|p| p["in"] == "path")
                    .map(|p| p["name"].as_str().unwrap())
                    .collect();
                for seg in path.split('/').filter(|s| s.starts_with('{')) {
                    assert!(declared.contains(&seg.trim_matches(['{', '}'])), "{path}");
                }
            }
        }
    }
}
