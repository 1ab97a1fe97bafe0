//! The desk's catalogs, per queue or global: dispositions ("tabulações"), custom fields of the
//! protocol form, canned responses.

use super::*;

// ---------------------------------------------------------------------------- configuration

#[derive(Deserialize)]
pub struct QueueFilter {
    queue_id: Option<i64>,
}

pub async fn list_dispositions(
    State(app): State<AppState>,
    who: Principal,
    Query(q): Query<QueueFilter>,
) -> ApiResult<Json<Value>> {
    who.require(STAFF)?;
    Ok(Json(
        json!({ "dispositions": app.store.dispositions(q.queue_id).await? }),
    ))
}

#[derive(Deserialize)]
pub struct DispositionRequest {
    label: String,
    queue_id: Option<i64>,
}

pub async fn create_disposition(
    State(app): State<AppState>,
    who: Principal,
    Json(req): Json<DispositionRequest>,
) -> ApiResult<Response> {
    who.require(ADMIN)?;
    let label = checked_text("label", &req.label, 100)?;
    known_queue(&app, req.queue_id).await?;
    let d = app.store.create_disposition(req.queue_id, &label).await?;
    Ok((StatusCode::CREATED, Json(json!({ "disposition": d }))).into_response())
}

pub async fn delete_disposition(
    State(app): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
) -> ApiResult<Json<Value>> {
    who.require(ADMIN)?;
    removed(app.store.deactivate_disposition(id).await?)
}

/// The answer to a DELETE: 404 when there was nothing to remove.
pub(super) fn removed(found: bool) -> ApiResult<Json<Value>> {
    if found {
        Ok(Json(json!({ "ok": true })))
    } else {
        Err(ApiError::NotFound)
    }
}

/// 400 unless the queue a piece of configuration is for exists (`None`: every queue).
pub(super) async fn known_queue(app: &AppState, queue_id: Option<i64>) -> ApiResult<()> {
    match queue_id {
        Some(q) if app.store.queue(q).await?.is_none() => {
            Err(ApiError::bad_request(format!("no queue with id {q}")))
        }
        _ => Ok(()),
    }
}

/// 403 unless the caller may write the canned responses of `queue_id` (`None`: the global ones,
/// offered in every queue). Admins (and integrations) write any; a supervisor only those of the
/// queues they supervise, since the global ones reach every other queue's customers.
pub(super) async fn may_write_canned(
    app: &AppState,
    who: &Principal,
    queue_id: Option<i64>,
) -> ApiResult<()> {
    match (who.role(), queue_id) {
        (Role::Admin, _) => Ok(()),
        (Role::Supervisor, Some(q)) => {
            let me = who.user_id().unwrap_or(0);
            if app.store.user_queue_ids(me).await?.contains(&q) {
                Ok(())
            } else {
                Err(ApiError::Forbidden(
                    "a supervisor writes only the canned responses of the queues they supervise"
                        .into(),
                ))
            }
        }
        (Role::Supervisor, None) => Err(ApiError::Forbidden(
            "canned responses for every queue (no queue_id) are written by admins".into(),
        )),
        (Role::Agent, _) => Err(ApiError::Forbidden(
            "Seu perfil não permite esta ação.".into(),
        )),
    }
}

pub(super) fn checked_text(what: &str, text: &str, max: usize) -> ApiResult<String> {
    let text = text.trim();
    if text.is_empty() || text.chars().count() > max {
        return Err(ApiError::bad_request(format!(
            "{what} must have 1 to {max} characters"
        )));
    }
    Ok(text.to_owned())
}

pub async fn list_custom_fields(
    State(app): State<AppState>,
    who: Principal,
    Query(q): Query<QueueFilter>,
) -> ApiResult<Json<Value>> {
    who.require(STAFF)?;
    let fields = app.store.custom_fields(q.queue_id).await?;
    Ok(Json(
        json!({ "custom_fields": fields.iter().map(field_view).collect::<Vec<_>>() }),
    ))
}

#[derive(Deserialize)]
pub struct CustomFieldRequest {
    queue_id: Option<i64>,
    key: Option<String>,
    label: String,
    kind: Option<String>,
    #[serde(default)]
    options: Vec<String>,
    #[serde(default)]
    required: bool,
    #[serde(default)]
    position: i64,
}

pub(super) fn checked_field(
    req: CustomFieldRequest,
    existing: Option<&CustomFieldRecord>,
) -> ApiResult<NewCustomField> {
    let key = match existing {
        Some(f) => f.key.clone(),
        None => req.key.unwrap_or_default().trim().to_owned(),
    };
    let key_ok = !key.is_empty()
        && key.len() <= 40
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !key_ok {
        return Err(ApiError::bad_request(
            "key must have 1 to 40 characters among a-z, 0-9 and '_'",
        ));
    }
    let kind = match existing {
        Some(f) => f.kind.clone(),
        None => req.kind.unwrap_or_else(|| "text".into()),
    };
    if !["text", "number", "date", "choice"].contains(&kind.as_str()) {
        return Err(ApiError::bad_request(
            "kind must be text, number, date or choice",
        ));
    }
    let options: Vec<String> = req
        .options
        .iter()
        .map(|o| o.trim().to_owned())
        .filter(|o| !o.is_empty())
        .collect();
    if kind == "choice" && options.is_empty() {
        return Err(ApiError::bad_request("a choice field needs options"));
    }
    Ok(NewCustomField {
        queue_id: existing.map_or(req.queue_id, |f| f.queue_id),
        key,
        label: checked_text("label", &req.label, 100)?,
        kind,
        options,
        required: req.required,
        position: req.position,
    })
}

pub async fn create_custom_field(
    State(app): State<AppState>,
    who: Principal,
    Json(req): Json<CustomFieldRequest>,
) -> ApiResult<Response> {
    who.require(ADMIN)?;
    let new = checked_field(req, None)?;
    known_queue(&app, new.queue_id).await?;
    let taken = app
        .store
        .custom_fields(new.queue_id.or(Some(0)))
        .await?
        .iter()
        .any(|f| f.key == new.key && f.queue_id == new.queue_id);
    if taken {
        return Err(ApiError::Conflict(
            "conflict",
            format!("the field {:?} already exists", new.key),
        ));
    }
    let f = app.store.create_custom_field(&new).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "custom_field": field_view(&f) })),
    )
        .into_response())
}

pub async fn update_custom_field(
    State(app): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
    Json(req): Json<CustomFieldRequest>,
) -> ApiResult<Json<Value>> {
    who.require(ADMIN)?;
    let existing = app
        .store
        .custom_field(id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let new = checked_field(req, Some(&existing))?;
    let f = app.store.update_custom_field(id, &new).await?;
    Ok(Json(json!({ "custom_field": field_view(&f) })))
}

pub async fn delete_custom_field(
    State(app): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
) -> ApiResult<Json<Value>> {
    who.require(ADMIN)?;
    removed(app.store.deactivate_custom_field(id).await?)
}

#[derive(Deserialize)]
pub struct CannedQuery {
    conversation_id: Option<i64>,
}

/// `GET /api/canned-responses?conversation_id=`: with a conversation, each response also comes
/// `rendered` for it, and only those of its queue (and the global ones).
pub async fn list_canned(
    State(app): State<AppState>,
    who: Principal,
    Query(q): Query<CannedQuery>,
) -> ApiResult<Json<Value>> {
    who.require(STAFF)?;
    let all = app.store.canned_responses().await?;
    let Some(id) = q.conversation_id else {
        return Ok(Json(json!({ "canned_responses": all })));
    };
    let (conversation, _) = visible_conversation(&app, &who, id).await?;
    let mut vars = template_vars(&conversation, None);
    if let Principal::User(u) = &who {
        vars.insert("agente".into(), u.name.clone());
    }
    let list: Vec<Value> = all
        .into_iter()
        .filter(|c| c.queue_id.is_none() || c.queue_id == conversation.queue_id)
        .map(|c| {
            let rendered = domain::text::render_template(&c.body, &vars);
            let mut v = serde_json::to_value(&c).unwrap_or_else(|_| json!({}));
            v["rendered"] = rendered.into();
            v
        })
        .collect();
    Ok(Json(json!({ "canned_responses": list })))
}

#[derive(Deserialize)]
pub struct CannedRequest {
    shortcut: String,
    title: String,
    body: String,
    queue_id: Option<i64>,
}

pub(super) async fn save_canned(
    app: &AppState,
    id: Option<i64>,
    req: CannedRequest,
) -> ApiResult<Value> {
    let shortcut = req.shortcut.trim().trim_start_matches('/').to_lowercase();
    if shortcut.is_empty() || shortcut.len() > 30 || shortcut.contains(char::is_whitespace) {
        return Err(ApiError::bad_request(
            "shortcut must have 1 to 30 characters and no spaces",
        ));
    }
    let title = checked_text("title", &req.title, 100)?;
    let body = checked_text("body", &req.body, 4096)?;
    let saved = app
        .store
        .save_canned_response(id, &shortcut, &title, &body, req.queue_id)
        .await?;
    Ok(json!({ "canned_response": saved }))
}

pub async fn create_canned(
    State(app): State<AppState>,
    who: Principal,
    Json(req): Json<CannedRequest>,
) -> ApiResult<Response> {
    who.require(MANAGERS)?;
    known_queue(&app, req.queue_id).await?;
    may_write_canned(&app, &who, req.queue_id).await?;
    let saved = save_canned(&app, None, req).await?;
    Ok((StatusCode::CREATED, Json(saved)).into_response())
}

pub async fn update_canned(
    State(app): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
    Json(req): Json<CannedRequest>,
) -> ApiResult<Json<Value>> {
    who.require(MANAGERS)?;
    let existing = app
        .store
        .canned_response(id)
        .await?
        .ok_or(ApiError::NotFound)?;
    // Both where it is and where it would go: a supervisor may neither edit a global or another
    // queue's response nor move their own to every queue.
    may_write_canned(&app, &who, existing.queue_id).await?;
    known_queue(&app, req.queue_id).await?;
    may_write_canned(&app, &who, req.queue_id).await?;
    Ok(Json(save_canned(&app, Some(id), req).await?))
}

pub async fn delete_canned(
    State(app): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
) -> ApiResult<Json<Value>> {
    who.require(MANAGERS)?;
    let existing = app
        .store
        .canned_response(id)
        .await?
        .ok_or(ApiError::NotFound)?;
    may_write_canned(&app, &who, existing.queue_id).await?;
    removed(app.store.delete_canned_response(id).await?)
}
