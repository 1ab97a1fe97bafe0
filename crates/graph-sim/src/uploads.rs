//! Meta's Resumable Upload API, which is how a template's media header example is uploaded:
//! `POST /{app-id}/uploads?file_name&file_length&file_type` opens a session
//! (`{"id":"upload:..."}`), `POST /upload:{id}` with `file_offset: N` sends bytes from that offset
//! and, once the file is complete, answers the handle (`{"h":"4::..."}`) that goes into
//! `example.header_handle`; `GET /upload:{id}` tells how far an interrupted upload got.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::json;

use crate::errors::GraphError;
use crate::graph::{Kill, gate, valid_version};
use crate::{Endpoint, GraphSim, StoredMedia, ids};

/// Types Meta accepts for template header examples.
const FILE_TYPES: &[&str] = &[
    "application/pdf",
    "image/jpeg",
    "image/jpg",
    "image/png",
    "video/mp4",
];

/// Largest file a session takes (Meta: 100 MB for documents).
const MAX_FILE: u64 = 100 * 1024 * 1024;

#[derive(Debug, Clone)]
pub(crate) struct UploadSession {
    pub file_name: String,
    pub file_type: String,
    pub file_length: u64,
    pub bytes: Vec<u8>,
    pub handle: Option<String>,
}

/// Graph takes the token in the header or, as Meta's upload guide shows, in the query.
fn authorize_upload(
    sim: &GraphSim,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
) -> Result<(), GraphError> {
    if let Some(t) = query.get("access_token")
        && crate::graph::bearer(headers).is_none()
    {
        return if sim.shared.access_tokens.iter().any(|a| a == t) {
            Ok(())
        } else {
            Err(GraphError::invalid_token(false))
        };
    }
    crate::graph::authorize(sim, headers)
}

pub(crate) async fn start(
    State(sim): State<GraphSim>,
    Path((version, app)): Path<(String, String)>,
    uri: OriginalUri,
    kill: Kill,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if !valid_version(&version) {
        return GraphError::unknown_path(uri.path()).into_response();
    }
    if let Err(r) = gate(&sim, Endpoint::Uploads, &kill).await {
        return r;
    }
    if let Err(e) = authorize_upload(&sim, &headers, &q) {
        return e.into_response();
    }
    if app != sim.shared.app_id {
        return GraphError::unknown_object("post", &app).into_response();
    }
    let Some(length) = q.get("file_length") else {
        return GraphError::param_required("file_length").into_response();
    };
    let Some(length) = length
        .parse::<u64>()
        .ok()
        .filter(|l| (1..=MAX_FILE).contains(l))
    else {
        return GraphError::invalid_param(&format!(
            "Param file_length must be a number between 1 and {MAX_FILE}"
        ))
        .into_response();
    };
    let Some(file_type) = q.get("file_type") else {
        return GraphError::param_required("file_type").into_response();
    };
    let file_type = file_type.trim().to_ascii_lowercase();
    if !FILE_TYPES.contains(&file_type.as_str()) {
        return GraphError::invalid_param(&format!(
            "Param file_type must be one of {{{}}} - got \"{file_type}\"",
            FILE_TYPES.join(", ")
        ))
        .into_response();
    }
    let id = URL_SAFE_NO_PAD.encode(format!("graph-sim:upload:{}", ids::hex_id(12)));
    let session = UploadSession {
        file_name: q.get("file_name").cloned().unwrap_or_default(),
        file_type,
        file_length: length,
        bytes: Vec::new(),
        handle: None,
    };
    sim.shared
        .update(|s| s.upload_sessions.insert(id.clone(), session));
    Json(json!({"id": format!("upload:{id}")})).into_response()
}

/// `POST /upload:{id}`: appends the body at `file_offset`.
pub(crate) fn upload(sim: &GraphSim, node: &str, headers: &HeaderMap, body: &[u8]) -> Response {
    let id = node.trim_start_matches("upload:");
    let Some(offset) = headers
        .get("file_offset")
        .and_then(|h| h.to_str().ok())
        .and_then(|s| s.trim().parse::<u64>().ok())
    else {
        return GraphError::param_required("file_offset").into_response();
    };
    let result = sim.shared.update(|s| {
        let session = s
            .upload_sessions
            .get_mut(id)
            .ok_or_else(|| GraphError::unknown_object("post", node))?;
        let have = session.bytes.len() as u64;
        if offset != have {
            return Err(GraphError::invalid_param(&format!(
                "file_offset {offset} does not match the bytes received so far ({have})"
            )));
        }
        if have + body.len() as u64 > session.file_length {
            return Err(GraphError::invalid_param(&format!(
                "More bytes than file_length ({})",
                session.file_length
            )));
        }
        session.bytes.extend_from_slice(body);
        if session.bytes.len() as u64 == session.file_length && session.handle.is_none() {
            let handle = format!(
                "4::{}:{}",
                STANDARD.encode(&session.file_type),
                URL_SAFE_NO_PAD.encode(ids::hex_id(24))
            );
            session.handle = Some(handle.clone());
            s.upload_handles.insert(handle, id.to_owned());
        }
        Ok(session.clone())
    });
    match result {
        Ok(UploadSession {
            handle: Some(h), ..
        }) => Json(json!({"h": h})).into_response(),
        Ok(session) => Json(json!({
            "id": format!("upload:{id}"),
            "file_offset": session.bytes.len(),
        }))
        .into_response(),
        Err(e) => e.into_response(),
    }
}

/// `GET /upload:{id}`: how many bytes arrived, to resume from there.
pub(crate) fn status(sim: &GraphSim, node: &str) -> Response {
    let id = node.trim_start_matches("upload:");
    let offset = sim
        .shared
        .lock()
        .upload_sessions
        .get(id)
        .map(|s| s.bytes.len());
    match offset {
        Some(o) => Json(json!({"id": node, "file_offset": o})).into_response(),
        None => GraphError::unknown_object("get", node).into_response(),
    }
}

/// The uploaded file behind a handle and its type, for template header examples.
pub(crate) fn resolve_handle(sim: &GraphSim, handle: &str) -> Option<StoredMedia> {
    let st = sim.shared.lock();
    let session = st
        .upload_handles
        .get(handle)
        .and_then(|id| st.upload_sessions.get(id))?;
    let name = (!session.file_name.is_empty()).then(|| session.file_name.clone());
    Some(StoredMedia::new(
        session.bytes.clone().into(),
        &session.file_type,
        name,
    ))
}

pub(crate) fn is_upload_node(node: &str) -> bool {
    node.starts_with("upload:")
}

/// Handlers are also reached with the token only in the query (GET/POST /upload:{id}).
pub(crate) fn authorize_node(
    sim: &GraphSim,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
) -> Result<(), GraphError> {
    authorize_upload(sim, headers, query)
}
