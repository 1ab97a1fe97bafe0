//! What the desk records about a conversation: its transfers, private notes, the protocol form
//! (Código, custom fields) and the contact's earlier conversations.

use super::*;

/// `GET /api/conversations/{id}/transfers`.
pub async fn list_transfers(
    State(app): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
) -> ApiResult<Json<Value>> {
    visible_conversation(&app, &who, id).await?;
    Ok(Json(json!({ "transfers": app.store.transfers(id).await? })))
}

/// `GET /api/conversations/{id}/notes`.
pub async fn list_notes(
    State(app): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
) -> ApiResult<Json<Value>> {
    visible_conversation(&app, &who, id).await?;
    Ok(Json(json!({ "notes": app.store.notes(id).await? })))
}

#[derive(Deserialize)]
pub struct NoteRequest {
    body: String,
}

/// `POST /api/conversations/{id}/notes`: private, for staff only.
pub async fn add_note(
    State(app): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
    Json(req): Json<NoteRequest>,
) -> ApiResult<Response> {
    let (_, access) = visible_conversation(&app, &who, id).await?;
    access.require(Access::Take)?;
    let user_id = who.user_id().ok_or_else(|| {
        ApiError::Forbidden("notes are written by people; use a user session".into())
    })?;
    let body = req.body.trim();
    if body.is_empty() || body.chars().count() > 4000 {
        return Err(ApiError::bad_request("a note has 1 to 4000 characters"));
    }
    let note_id = app.store.add_note(id, user_id, body).await?;
    app.live.publish(Notice::DeskChanged);
    Ok((StatusCode::CREATED, Json(json!({ "id": note_id }))).into_response())
}

/// `GET /api/conversations/{id}/form`.
pub async fn get_form(
    State(app): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
) -> ApiResult<Json<Value>> {
    visible_conversation(&app, &who, id).await?;
    Ok(Json(form_view(&app, id).await?))
}

pub(super) async fn form_view(app: &AppState, id: i64) -> ApiResult<Value> {
    let form = app.store.form(id).await?.ok_or(ApiError::NotFound)?;
    let values = app.store.conversation_fields(id).await?;
    let value_of = |key: &str| {
        values
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    let definitions = app.store.custom_fields(form.queue_id.or(Some(0))).await?;
    let definitions: Vec<&CustomFieldRecord> = definitions
        .iter()
        .filter(|f| f.queue_id.is_none_or(|q| Some(q) == form.queue_id))
        .collect();
    let mut custom = Map::new();
    for f in &definitions {
        if let Some(v) = value_of(&format!("custom.{}", f.key)) {
            custom.insert(f.key.clone(), v.into());
        }
    }
    let document = form.code.as_deref().and_then(|c| Document::parse(c).ok());
    Ok(json!({
        "conversation_id": form.conversation_id,
        "protocol": form.protocol,
        "contact_id": form.contact_id,
        "name": form.name.or(form.profile_name),
        "code": form.code,
        "code_formatted": document.as_ref().map(Document::formatted),
        "code_kind": document.as_ref().map(|d| d.kind().as_str()),
        "email": form.email,
        "phone": form.phone,
        "subject": form.subject,
        "notes": value_of("protocol.notes"),
        "custom": custom,
        "fields": definitions.iter().map(|f| field_view(f)).collect::<Vec<_>>(),
    }))
}

pub(super) fn field_view(f: &CustomFieldRecord) -> Value {
    json!({
        "id": f.id, "queue_id": f.queue_id, "key": f.key, "label": f.label, "kind": f.kind,
        "options": f.option_list(), "required": f.required, "position": f.position,
    })
}

#[derive(Deserialize)]
pub struct FormRequest {
    name: Option<String>,
    code: Option<String>,
    email: Option<String>,
    subject: Option<String>,
    notes: Option<String>,
    #[serde(default)]
    custom: Map<String, Value>,
}

/// `PATCH /api/conversations/{id}/form`: saves what was sent; the Código is validated (CPF,
/// CNPJ, alphanumeric CNPJ) and stored normalized.
pub async fn patch_form(
    State(app): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
    Json(req): Json<FormRequest>,
) -> ApiResult<Json<Value>> {
    let (conversation, access) = visible_conversation(&app, &who, id).await?;
    if conversation.closed_at.is_some() {
        return Err(ApiError::Conflict(
            "conversation_closed",
            "a finalized conversation is read-only".into(),
        ));
    }
    access.require(Access::Work)?;
    let code = match req.code.as_deref().map(str::trim) {
        None => None,
        Some("") => Some(String::new()),
        Some(raw) => Some(
            Document::parse(raw)
                .map_err(|e| ApiError::BadRequest("invalid_document", e.message_pt_br().into()))?
                .normalized()
                .to_owned(),
        ),
    };
    let email = req.email.as_deref().map(str::trim).map(str::to_owned);
    if let Some(e) = email.as_deref().filter(|e| !e.is_empty())
        && !plausible_email(e)
    {
        return Err(ApiError::BadRequest(
            "invalid_email",
            "E-mail inválido.".into(),
        ));
    }
    let mut fields = Vec::new();
    if let Some(notes) = req.notes {
        fields.push(("protocol.notes".to_owned(), notes));
    }
    let definitions = app
        .store
        .custom_fields(conversation.queue_id.or(Some(0)))
        .await?;
    for (key, value) in req.custom {
        let def = definitions.iter().find(|f| f.key == key).ok_or_else(|| {
            ApiError::bad_request(format!("no custom field {key:?} in this queue"))
        })?;
        let value = custom_value(def, &value)?;
        fields.push((format!("custom.{key}"), value));
    }
    let patch = FormPatch {
        name: req.name.map(|n| n.trim().to_owned()),
        code,
        email,
        subject: req.subject.map(|s| s.trim().to_owned()),
        fields,
    };
    app.store.save_form(id, &patch).await?;
    app.live.publish(Notice::DeskChanged);
    Ok(Json(form_view(&app, id).await?))
}

pub(super) fn plausible_email(e: &str) -> bool {
    let Some((local, domain)) = e.split_once('@') else {
        return false;
    };
    !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !e.contains(' ')
}

/// A custom field's value as stored (text), checked against its kind.
pub(super) fn custom_value(def: &CustomFieldRecord, value: &Value) -> ApiResult<String> {
    let text = match value {
        Value::Null => String::new(),
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    };
    if text.is_empty() {
        return Ok(text);
    }
    let bad = |what: &str| ApiError::BadRequest("invalid_field", format!("{}: {what}", def.label));
    match def.kind.as_str() {
        "number" => text
            .replace(',', ".")
            .parse::<f64>()
            .map(|_| text.clone())
            .map_err(|_| bad("informe um número")),
        "date" => text
            .parse::<jiff::civil::Date>()
            .map(|_| text.clone())
            .map_err(|_| bad("informe uma data (AAAA-MM-DD)")),
        "choice" if !def.option_list().contains(&text) => Err(bad("escolha uma das opções")),
        _ => Ok(text),
    }
}

/// `GET /api/contacts/{id}/conversations`: the contact's history, for whoever may see one of
/// its conversations.
pub async fn contact_conversations(
    State(app): State<AppState>,
    who: Principal,
    Path(contact_id): Path<i64>,
) -> ApiResult<Json<Value>> {
    who.require(STAFF)?;
    let all = app.store.contact_conversations(contact_id).await?;
    let mut visible = Vec::new();
    for c in all {
        if crate::access::access(&app, &who, &c).await? != Access::Hidden {
            visible.push(c);
        }
    }
    if visible.is_empty() {
        return Err(ApiError::NotFound);
    }
    Ok(Json(json!({ "conversations": visible })))
}
