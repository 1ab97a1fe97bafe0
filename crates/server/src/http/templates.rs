//! Message templates (HSM), managed with Meta: list, read, create (checked locally with
//! `domain::template::validate` first: nothing reaches Meta while a rule is broken), edit within
//! Meta's rules, delete one language or the whole name, validate with a preview, sync, the
//! Atende-side quick-reply actions, and the media upload for a header's example
//! ([`media`]). A channel's prerequisites live in [`prerequisites`].
//!
//! Who may call: managing (create, edit, delete, sync, validate, button actions, media) needs the
//! permission `manage_templates`; listing and reading the approved templates needs
//! `send_template` or `manage_templates` (those with only `send_template` see only APPROVED ones).

pub mod media;
pub mod prerequisites;
pub mod view;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use domain::permissions::Permission;
use domain::template::{Problem, TemplateDefinition, Values};
use serde::Deserialize;
use serde_json::{Value, json};
use store::auth::Role;
use store::templates::{TemplateChange, TemplateEdit, TemplateFilter, TemplateRecord};
use whatsapp::graph::management::DeleteScope;

use crate::access::{has_permission, require_permission};
use crate::channels::Channel;
use crate::error::{ApiError, ApiResult};
use crate::http::auth::Principal;
use crate::state::AppState;
use crate::workers::template_sync::{self, channel_for_waba, upsert_of};
use view::{meta_api_error, status_pt, template_view};

const STAFF: &[Role] = &[Role::Admin, Role::Supervisor, Role::Agent];
const DAY_MS: i64 = 24 * 3600 * 1000;
/// Meta refuses a deleted name for this long.
pub const NAME_REUSE_DAYS: i64 = 30;
/// Statuses Meta lets a template be edited in.
pub const EDITABLE: &[&str] = &["APPROVED", "REJECTED", "PAUSED"];
/// Meta: an approved template at most once per 24 h and ten times per 30 days.
pub const EDITS_PER_DAY: usize = 1;
pub const EDITS_PER_MONTH: usize = 10;

/// The channel a request is about: the one named, else the first enabled one.
pub fn channel_of(app: &AppState, channel_id: Option<i64>) -> ApiResult<Arc<Channel>> {
    match channel_id {
        Some(id) => app.channels.by_id(id).ok_or(ApiError::NotFound),
        None => app
            .channels
            .all()
            .into_iter()
            .find(|c| c.enabled)
            .ok_or_else(|| {
                ApiError::Conflict(
                    "no_channel",
                    "Nenhum canal do WhatsApp está ativo: cadastre ou ative um canal primeiro."
                        .into(),
                )
            }),
    }
}

/// The channel whose credentials speak for the template's WABA.
fn channel_of_template(app: &AppState, t: &TemplateRecord) -> ApiResult<Arc<Channel>> {
    channel_for_waba(&app.channels, &t.waba_id).ok_or_else(|| {
        ApiError::Conflict(
            "no_channel",
            format!(
                "Nenhum canal ativo usa a conta do WhatsApp Business {}.",
                t.waba_id
            ),
        )
    })
}

/// Staff with `send_template` or `manage_templates`; returns whether they manage.
async fn may_read(app: &AppState, who: &Principal) -> ApiResult<bool> {
    who.require(STAFF)?;
    if has_permission(app, who, Permission::ManageTemplates).await? {
        return Ok(true);
    }
    require_permission(app, who, Permission::SendTemplate).await?;
    Ok(false)
}

#[derive(Deserialize)]
pub struct ListQuery {
    channel_id: Option<i64>,
    status: Option<String>,
    q: Option<String>,
    language: Option<String>,
    category: Option<String>,
}

/// `GET /api/templates?channel_id&status&q&language&category`: the templates of the channel's
/// WABA (every status but DELETED unless asked). Staff with `send_template` see only APPROVED.
pub async fn list(
    State(app): State<AppState>,
    who: Principal,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let manager = may_read(&app, &who).await?;
    let channel = channel_of(&app, q.channel_id)?;
    let status = if manager {
        q.status.map(|s| s.trim().to_ascii_uppercase())
    } else {
        Some("APPROVED".to_owned())
    };
    let filter = TemplateFilter {
        status,
        q: q.q.filter(|s| !s.trim().is_empty()),
        language: q.language,
        category: q.category.map(|c| c.to_ascii_uppercase()),
    };
    let templates = app
        .store
        .templates_of_waba(&channel.waba_id, &filter)
        .await?;
    Ok(Json(json!({
        "channel_id": channel.id,
        "waba_id": channel.waba_id,
        "templates": templates.iter().map(template_view).collect::<Vec<_>>(),
    })))
}

/// The template, or 404 (also for a non-manager asking for one that is not APPROVED).
async fn readable(app: &AppState, who: &Principal, id: i64) -> ApiResult<(TemplateRecord, bool)> {
    let manager = may_read(app, who).await?;
    let t = app.store.template(id).await?.ok_or(ApiError::NotFound)?;
    if !manager && t.status != "APPROVED" {
        return Err(ApiError::NotFound);
    }
    Ok((t, manager))
}

/// `GET /api/templates/{id}`: the template; for managers also whether and when it may be
/// edited (`edit: {allowed, reason_pt, next_edit_at}`).
pub async fn get_one(
    State(app): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
) -> ApiResult<Json<Value>> {
    let (t, manager) = readable(&app, &who, id).await?;
    let mut view = template_view(&t);
    if manager {
        view["edit"] = edit_policy(&app, &t).await?.to_json();
    }
    Ok(Json(json!({ "template": view })))
}

/// What a template creation or validation carries.
#[derive(Debug, Deserialize)]
pub struct TemplateInput {
    pub channel_id: Option<i64>,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub language: String,
    #[serde(default)]
    pub category: String,
    pub parameter_format: Option<String>,
    #[serde(default)]
    pub components: Value,
    pub button_actions: Option<Value>,
    /// Validation only: values for the preview (missing ones show the examples).
    pub values: Option<Values>,
    /// Validation only: the simple form `{"1": "Ana", "buttons.0": "abc"}`.
    pub variables: Option<BTreeMap<String, String>>,
}

/// The input as Meta's template, or the problems that keep it from being one.
fn definition_of(input: &TemplateInput) -> Result<TemplateDefinition, Vec<Problem>> {
    let mut problems = Vec::new();
    let category = input.category.trim().to_ascii_uppercase();
    if !["MARKETING", "UTILITY", "AUTHENTICATION"].contains(&category.as_str()) {
        problems.push(Problem::new(
            "category",
            "category_invalid",
            "Escolha a categoria: MARKETING, UTILITY ou AUTHENTICATION.",
            "Choose the category: MARKETING, UTILITY or AUTHENTICATION.",
        ));
    }
    let format = input
        .parameter_format
        .as_deref()
        .unwrap_or("POSITIONAL")
        .trim()
        .to_ascii_uppercase();
    if format != "POSITIONAL" && format != "NAMED" {
        problems.push(Problem::new(
            "parameter_format",
            "parameter_format_invalid",
            "O formato das variáveis deve ser POSITIONAL ({{1}}) ou NAMED ({{nome}}).",
            "The parameter format must be POSITIONAL ({{1}}) or NAMED ({{name}}).",
        ));
    }
    if !input.components.is_array() {
        problems.push(Problem::new(
            "components",
            "components_missing",
            "Informe os componentes do template (cabeçalho, corpo, rodapé, botões).",
            "Give the template's components (header, body, footer, buttons).",
        ));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    serde_json::from_value(json!({
        "name": input.name.trim(),
        "language": input.language.trim(),
        "category": category,
        "parameter_format": format,
        "components": input.components,
    }))
    .map_err(|e| {
        vec![Problem::new(
            "components",
            "components_malformed",
            format!("Os componentes não estão no formato da Meta: {e}."),
            format!("The components are not in Meta's format: {e}."),
        )]
    })
}

/// Meta's rules and Atende's: every problem of the definition, the name taken or deleted in
/// the last 30 days, and the button actions.
async fn problems_of(
    app: &AppState,
    waba_id: &str,
    def: &TemplateDefinition,
    button_actions: Option<&Value>,
) -> ApiResult<Vec<Problem>> {
    let mut problems = domain::template::validate(def);
    if let Some(existing) = app
        .store
        .template_by_name(waba_id, &def.name, &def.language)
        .await?
        && existing.status != "DELETED"
    {
        problems.push(Problem::new(
            "name",
            "name_taken",
            format!(
                "Já existe um template «{}» no idioma {} (situação: {}).",
                def.name,
                def.language,
                status_pt(&existing.status)
            ),
            format!(
                "A template {:?} already exists in {}.",
                def.name, def.language
            ),
        ));
    }
    let since = store::now_ms() - NAME_REUSE_DAYS * DAY_MS;
    if let Some(at) = app
        .store
        .template_name_deleted_since(waba_id, &def.name, &def.language, since)
        .await?
    {
        let days_left = ((at + NAME_REUSE_DAYS * DAY_MS - store::now_ms()) / DAY_MS).max(1);
        problems.push(Problem::new(
            "name",
            "name_recently_deleted",
            format!(
                "O nome «{}» foi excluído há menos de 30 dias e a Meta não permite reutilizá-lo ainda (faltam cerca de {days_left} dias). Escolha outro nome.",
                def.name
            ),
            format!(
                "The name {:?} was deleted less than 30 days ago; Meta does not allow reusing it yet.",
                def.name
            ),
        ));
    }
    if let Some(actions) = button_actions
        && let Err(mut p) = button_actions_json(def, actions)
    {
        problems.append(&mut p);
    }
    Ok(problems)
}

/// `POST /api/templates/validate` (manage_templates): `{valid, problems:[{field, code,
/// message, message_en}], preview, parameters}`; nothing is sent to Meta.
pub async fn validate(
    State(app): State<AppState>,
    who: Principal,
    Json(input): Json<TemplateInput>,
) -> ApiResult<Json<Value>> {
    who.require(STAFF)?;
    require_permission(&app, &who, Permission::ManageTemplates).await?;
    // Without a channel yet, only the rules that need no WABA are checked.
    let waba_id = match channel_of(&app, input.channel_id) {
        Ok(c) => Some(c.waba_id.clone()),
        Err(ApiError::Conflict("no_channel", _)) => None,
        Err(e) => return Err(e),
    };
    let (problems, preview, parameters) = match definition_of(&input) {
        Ok(def) => {
            let problems = match &waba_id {
                Some(w) => problems_of(&app, w, &def, input.button_actions.as_ref()).await?,
                None => domain::template::validate(&def),
            };
            let values = match (&input.values, &input.variables) {
                (Some(v), _) => v.clone(),
                (None, Some(flat)) => Values::from_variables(&def, flat),
                (None, None) => Values::default(),
            };
            (
                problems,
                serde_json::to_value(domain::template::render(&def, &values))
                    .unwrap_or(Value::Null),
                serde_json::to_value(domain::template::parameters(&def)).unwrap_or(Value::Null),
            )
        }
        Err(problems) => (problems, Value::Null, Value::Null),
    };
    let ApiError::Unprocessable(_, _, details) = ApiError::problems("invalid_template", &problems)
    else {
        unreachable!("problems() builds a 422")
    };
    Ok(Json(json!({
        "valid": problems.is_empty(),
        "problems": details["problems"],
        "preview": preview,
        "parameters": parameters,
    })))
}

/// `POST /api/templates` (manage_templates): checks every rule locally (422 with the problems,
/// nothing sent), then submits to Meta; Meta's refusal is 422 `meta_refused` (502 when Meta
/// failed) with its error verbatim. 201 with the stored template in the state Meta gave it.
pub async fn create(
    State(app): State<AppState>,
    who: Principal,
    Json(input): Json<TemplateInput>,
) -> ApiResult<Response> {
    who.require(STAFF)?;
    require_permission(&app, &who, Permission::ManageTemplates).await?;
    let channel = channel_of(&app, input.channel_id)?;
    let def = definition_of(&input).map_err(|p| ApiError::problems("invalid_template", &p))?;
    let problems = problems_of(&app, &channel.waba_id, &def, input.button_actions.as_ref()).await?;
    if !problems.is_empty() {
        return Err(ApiError::problems("invalid_template", &problems));
    }
    let body = serde_json::to_value(&def).map_err(|e| ApiError::Internal(e.into()))?;
    // Whatever Meta says of the template from now on (its answer, webhooks) is newer than this.
    let sent_at = store::now_ms();
    let created = app
        .graph
        .create_template(&channel.creds(), &channel.waba_id, &body)
        .await
        .map_err(|e| {
            tracing::info!(channel_id = channel.id, error = %e, "Meta refused a template");
            meta_api_error(&e)
        })?;
    let meta = whatsapp::graph::management::MetaTemplate {
        id: created.id.clone(),
        name: def.name.clone(),
        language: def.language.clone(),
        status: non_empty(&created.status).unwrap_or("PENDING").to_owned(),
        category: non_empty(&created.category)
            .unwrap_or(def.category.as_str())
            .to_owned(),
        parameter_format: body["parameter_format"]
            .as_str()
            .unwrap_or("POSITIONAL")
            .to_owned(),
        components: body["components"].clone(),
        quality: None,
        rejected_reason: None,
        previous_category: None,
    };
    let (mut record, _) = app
        .store
        .upsert_template(&upsert_of(&channel.waba_id, &meta, sent_at, who.user_id()))
        .await?;
    if let Some(actions) = &input.button_actions {
        let json = button_actions_json(&def, actions)
            .map_err(|p| ApiError::problems("invalid_button_actions", &p))?;
        record = app
            .store
            .set_template_button_actions(record.id, json.as_deref())
            .await?;
    }
    tracing::info!(template_id = record.id, meta_id = %created.id, status = %record.status, "template created");
    Ok((
        StatusCode::CREATED,
        Json(json!({ "template": template_view(&record) })),
    )
        .into_response())
}

fn non_empty(s: &str) -> Option<&str> {
    (!s.trim().is_empty()).then_some(s)
}

/// Whether a template may be edited now, by Meta's rules.
pub struct EditPolicy {
    pub allowed: bool,
    pub reason_pt: Option<String>,
    /// When the next edit is allowed, if the limit is what blocks it.
    pub next_edit_at: Option<i64>,
}

impl EditPolicy {
    fn to_json(&self) -> Value {
        json!({
            "allowed": self.allowed,
            "reason_pt": self.reason_pt,
            "next_edit_at": self.next_edit_at,
            "editable_statuses": EDITABLE,
        })
    }
}

async fn edit_policy(app: &AppState, t: &TemplateRecord) -> ApiResult<EditPolicy> {
    if !EDITABLE.contains(&t.status.as_str()) {
        return Ok(EditPolicy {
            allowed: false,
            reason_pt: Some(format!(
                "Só é possível editar templates aprovados, rejeitados ou pausados; este está «{}».",
                status_pt(&t.status)
            )),
            next_edit_at: None,
        });
    }
    if t.status != "APPROVED" {
        return Ok(EditPolicy {
            allowed: true,
            reason_pt: None,
            next_edit_at: None,
        });
    }
    let now = store::now_ms();
    let edits: Vec<i64> = app
        .store
        .template_edits_since(t.id, now - 30 * DAY_MS)
        .await?
        .into_iter()
        .filter(|e| e.status_before == "APPROVED")
        .map(|e| e.at)
        .collect();
    let last_day: Vec<i64> = edits
        .iter()
        .copied()
        .filter(|at| *at > now - DAY_MS)
        .collect();
    if last_day.len() >= EDITS_PER_DAY {
        let next = last_day.iter().min().map(|at| at + DAY_MS);
        return Ok(EditPolicy {
            allowed: false,
            reason_pt: Some(
                "A Meta permite editar um template aprovado só uma vez a cada 24 horas.".into(),
            ),
            next_edit_at: next,
        });
    }
    if edits.len() >= EDITS_PER_MONTH {
        let next = edits.iter().min().map(|at| at + 30 * DAY_MS);
        return Ok(EditPolicy {
            allowed: false,
            reason_pt: Some(
                "A Meta permite editar um template aprovado no máximo 10 vezes em 30 dias.".into(),
            ),
            next_edit_at: next,
        });
    }
    Ok(EditPolicy {
        allowed: true,
        reason_pt: None,
        next_edit_at: None,
    })
}

#[derive(Debug, Deserialize)]
pub struct EditInput {
    pub components: Option<Value>,
    pub category: Option<String>,
}

/// `PATCH /api/templates/{id}` (manage_templates) `{components?, category?}`: an edit within
/// Meta's rules (APPROVED, REJECTED or PAUSED; an approved one once per 24 h and ten times per 30
/// days, and not its category): 409 `not_editable` / `edit_limit` otherwise, 422 with the
/// problems of the new content. Answers the template in the state Meta put it in
/// (`status_before`, `status_after`, `message_pt`).
pub async fn edit(
    State(app): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
    Json(input): Json<EditInput>,
) -> ApiResult<Json<Value>> {
    who.require(STAFF)?;
    require_permission(&app, &who, Permission::ManageTemplates).await?;
    let t = app.store.template(id).await?.ok_or(ApiError::NotFound)?;
    if input.components.is_none() && input.category.is_none() {
        return Err(ApiError::bad_request(
            "Informe os novos componentes (components) e/ou a categoria (category).",
        ));
    }
    let policy = edit_policy(&app, &t).await?;
    if !policy.allowed {
        let code = if EDITABLE.contains(&t.status.as_str()) {
            "edit_limit"
        } else {
            "not_editable"
        };
        return Err(ApiError::Conflict(
            code,
            policy.reason_pt.unwrap_or_default(),
        ));
    }
    let category = input
        .category
        .as_deref()
        .map(|c| c.trim().to_ascii_uppercase())
        .unwrap_or_else(|| t.category.clone());
    let components = match &input.components {
        Some(c) => c.clone(),
        None => serde_json::from_str(&t.components).unwrap_or(Value::Array(Vec::new())),
    };
    let candidate = TemplateInput {
        channel_id: None,
        name: t.name.clone(),
        language: t.language.clone(),
        category: category.clone(),
        parameter_format: Some(t.parameter_format.clone()),
        components,
        button_actions: None,
        values: None,
        variables: None,
    };
    let def = definition_of(&candidate).map_err(|p| ApiError::problems("invalid_template", &p))?;
    let mut problems = domain::template::validate(&def);
    if t.status == "APPROVED" && category != t.category {
        problems.push(Problem::new(
            "category",
            "category_locked",
            "A categoria de um template aprovado não pode ser alterada.",
            "The category of an approved template cannot be changed.",
        ));
    }
    if !problems.is_empty() {
        return Err(ApiError::problems("invalid_template", &problems));
    }
    let channel = channel_of_template(&app, &t)?;
    let meta_id = t.meta_id.clone().ok_or_else(|| {
        ApiError::Conflict(
            "not_at_meta",
            "Este template não tem ID na Meta; sincronize os templates primeiro.".into(),
        )
    })?;
    let body = serde_json::to_value(&def).map_err(|e| ApiError::Internal(e.into()))?;
    let mut edit_body = json!({ "components": body["components"] });
    if category != t.category {
        edit_body["category"] = json!(category);
    }
    let sent_at = store::now_ms();
    app.graph
        .edit_template(&channel.creds(), &meta_id, &edit_body)
        .await
        .map_err(|e| meta_api_error(&e))?;
    // Meta answers only success; the state the edit put the template in is read back.
    let status_after = match app.graph.template(&channel.creds(), &meta_id).await {
        Ok(m) => m.status,
        Err(e) => {
            tracing::warn!(template_id = t.id, error = %e, "cannot read the edited template back");
            "PENDING".to_owned()
        }
    };
    let components_after = body["components"].to_string();
    let record = app
        .store
        .record_template_edit(
            &TemplateEdit {
                template_id: t.id,
                by_user_id: who.user_id(),
                status_before: t.status.clone(),
                status_after: status_after.clone(),
                category_before: Some(t.category.clone()),
                category_after: Some(category.clone()),
                components_before: Some(t.components.clone()),
                components_after: Some(components_after.clone()),
            },
            &TemplateChange {
                status: Some(status_after.clone()),
                category: Some(category),
                components: Some(components_after),
                rejected_reason: Some(None),
                rejection_recommendation: Some(None),
                status_at: Some(sent_at),
                ..Default::default()
            },
        )
        .await?;
    let message_pt = if status_after == "APPROVED" {
        "Edição aceita: o template continua aprovado.".to_owned()
    } else {
        format!(
            "Edição enviada: o template foi para «{}» até a Meta revisar.",
            status_pt(&status_after)
        )
    };
    Ok(Json(json!({
        "template": template_view(&record),
        "status_before": t.status,
        "status_after": status_after,
        "status_after_pt": status_pt(&status_after),
        "message_pt": message_pt,
    })))
}

#[derive(Deserialize)]
pub struct DeleteQuery {
    scope: Option<String>,
}

/// `DELETE /api/templates/{id}?scope=language|name` (manage_templates): deletes at Meta this
/// language (default) or every language of the name, then marks them DELETED here. Answers
/// `{deleted:[ids], scope, warning_pt, reusable_at}`: a deleted name cannot be used again for
/// 30 days. Meta's refusal is 422 with its error verbatim.
pub async fn delete(
    State(app): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
    Query(q): Query<DeleteQuery>,
) -> ApiResult<Json<Value>> {
    who.require(STAFF)?;
    require_permission(&app, &who, Permission::ManageTemplates).await?;
    let t = app.store.template(id).await?.ok_or(ApiError::NotFound)?;
    let whole_name = match q.scope.as_deref().unwrap_or("language") {
        "language" => false,
        "name" => true,
        _ => {
            return Err(ApiError::bad_request(
                "scope deve ser «language» (só este idioma) ou «name» (todos os idiomas).",
            ));
        }
    };
    if t.status == "DELETED" {
        return Err(ApiError::Conflict(
            "already_deleted",
            "Este template já foi excluído.".into(),
        ));
    }
    let channel = channel_of_template(&app, &t)?;
    let scope = match (&t.meta_id, whole_name) {
        (_, true) => Some(DeleteScope::Name),
        (Some(meta_id), false) => Some(DeleteScope::Language {
            template_id: meta_id,
        }),
        // Never accepted by Meta: nothing to delete there.
        (None, false) => None,
    };
    if let Some(scope) = scope {
        app.graph
            .delete_template(&channel.creds(), &t.waba_id, &t.name, scope)
            .await
            .map_err(|e| meta_api_error(&e))?;
    }
    let ids: Vec<i64> = if whole_name {
        app.store
            .templates_named(&t.waba_id, &t.name)
            .await?
            .into_iter()
            .filter(|x| x.status != "DELETED")
            .map(|x| x.id)
            .collect()
    } else {
        vec![t.id]
    };
    app.store.mark_templates_deleted(&ids).await?;
    let language = (!whole_name).then_some(t.language.as_str());
    app.store
        .record_template_name_deleted(&t.waba_id, &t.name, language, who.user_id())
        .await?;
    tracing::info!(
        template_id = t.id,
        whole_name,
        deleted = ids.len(),
        "template deleted"
    );
    let warning_pt = if whole_name {
        format!(
            "O template «{}» foi excluído em todos os idiomas. A Meta não permite criar outro template com este nome pelos próximos 30 dias.",
            t.name
        )
    } else {
        format!(
            "O idioma {} do template «{}» foi excluído. A Meta não permite recriar este nome neste idioma pelos próximos 30 dias.",
            t.language, t.name
        )
    };
    Ok(Json(json!({
        "deleted": ids,
        "scope": if whole_name { "name" } else { "language" },
        "name": t.name,
        "language": language,
        "warning_pt": warning_pt,
        "reusable_at": store::now_ms() + NAME_REUSE_DAYS * DAY_MS,
    })))
}

#[derive(Deserialize)]
pub struct SyncQuery {
    channel_id: Option<i64>,
}

/// `POST /api/templates/sync?channel_id` (manage_templates): imports every template of the
/// channel's WABA (every WABA without `channel_id`) now. `{reports:[{waba_id, seen, created,
/// updated, deleted}]}`.
pub async fn sync(
    State(app): State<AppState>,
    who: Principal,
    Query(q): Query<SyncQuery>,
) -> ApiResult<Json<Value>> {
    who.require(STAFF)?;
    require_permission(&app, &who, Permission::ManageTemplates).await?;
    let channels: Vec<Arc<Channel>> = match q.channel_id {
        Some(id) => vec![app.channels.by_id(id).ok_or(ApiError::NotFound)?],
        None => template_sync::wabas(&app.channels)
            .iter()
            .filter_map(|w| channel_for_waba(&app.channels, w))
            .collect(),
    };
    let mut reports = Vec::new();
    for channel in channels {
        match template_sync::sync_waba(&app.store, &app.graph, &channel).await {
            Ok(r) => reports.push(r),
            Err(template_sync::SyncError::Graph(e)) => return Err(meta_api_error(&e)),
            Err(template_sync::SyncError::Store(e)) => return Err(e.into()),
            Err(e) => return Err(ApiError::Internal(e.into())),
        }
    }
    Ok(Json(json!({ "reports": reports })))
}

/// Checks an admin's quick-reply actions against the template; the JSON to store (`None`: no
/// actions, every quick reply routes).
fn button_actions_json(
    def: &TemplateDefinition,
    actions: &Value,
) -> Result<Option<String>, Vec<Problem>> {
    let map = match actions {
        Value::Null => return Ok(None),
        Value::Object(m) => m,
        _ => {
            return Err(vec![Problem::new(
                "button_actions",
                "button_actions_invalid",
                "As ações dos botões devem ser um objeto {\"texto do botão\": {\"action\": ...}}.",
                "Button actions must be an object {\"button text\": {\"action\": ...}}.",
            )]);
        }
    };
    let quick_replies: Vec<&str> = def
        .buttons()
        .iter()
        .filter(|b| b.kind() == "QUICK_REPLY")
        .filter_map(|b| b.text())
        .collect();
    let mut problems = Vec::new();
    let mut clean = serde_json::Map::new();
    for (key, action) in map {
        let field = format!("button_actions.{key}");
        if !quick_replies.contains(&key.as_str()) {
            problems.push(Problem::new(
                field.clone(),
                "button_unknown",
                format!("O template não tem um botão de resposta rápida «{key}»."),
                format!("The template has no quick reply button {key:?}."),
            ));
            continue;
        }
        match action.get("action").and_then(Value::as_str) {
            Some("route") => {
                clean.insert(key.clone(), json!({"action": "route"}));
            }
            Some("reply") => {
                let text = action
                    .get("text")
                    .and_then(Value::as_str)
                    .map(str::trim)
                    .unwrap_or("");
                if text.is_empty() || text.chars().count() > 4096 {
                    problems.push(Problem::new(
                        format!("{field}.text"),
                        "reply_text_invalid",
                        "Escreva a resposta automática (até 4096 caracteres).",
                        "Write the automatic reply (up to 4096 characters).",
                    ));
                } else {
                    clean.insert(key.clone(), json!({"action": "reply", "text": text}));
                }
            }
            _ => problems.push(Problem::new(
                format!("{field}.action"),
                "action_invalid",
                "A ação deve ser «route» (encaminhar para atendimento) ou «reply» (responder automaticamente).",
                "The action must be \"route\" or \"reply\".",
            )),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok((!clean.is_empty()).then(|| Value::Object(clean).to_string()))
}

#[derive(Deserialize)]
pub struct ButtonActionsInput {
    #[serde(default)]
    button_actions: Value,
}

/// `PUT /api/templates/{id}/button_actions` (manage_templates) `{"button_actions": {"<quick reply
/// text>": {"action": "route"} | {"action": "reply", "text": "..."}} | null}`: what a tap on each
/// quick reply does in Atende (Meta knows nothing of it). A quick reply without an entry routes.
pub async fn set_button_actions(
    State(app): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
    Json(input): Json<ButtonActionsInput>,
) -> ApiResult<Json<Value>> {
    who.require(STAFF)?;
    require_permission(&app, &who, Permission::ManageTemplates).await?;
    let t = app.store.template(id).await?.ok_or(ApiError::NotFound)?;
    let def = t
        .definition()
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("stored template {id}: {e}")))?;
    let json = button_actions_json(&def, &input.button_actions)
        .map_err(|p| ApiError::problems("invalid_button_actions", &p))?;
    let record = app
        .store
        .set_template_button_actions(id, json.as_deref())
        .await?;
    Ok(Json(json!({ "template": template_view(&record) })))
}

/// The routes of this module, mounted under `/api` by `http::router`.
pub fn routes() -> axum::Router<AppState> {
    use axum::extract::DefaultBodyLimit;
    use axum::routing::{get, post, put};
    axum::Router::new()
        .route("/templates", get(list).post(create))
        .route("/templates/validate", post(validate))
        .route("/templates/sync", post(sync))
        .route(
            "/templates/media",
            post(media::upload).layer(DefaultBodyLimit::max(media::MAX_BODY)),
        )
        .route("/templates/{id}", get(get_one).patch(edit).delete(delete))
        .route("/templates/{id}/button_actions", put(set_button_actions))
        .route("/channels/{id}/prerequisites", get(prerequisites::check))
        .route("/channels/{id}/subscribe", post(prerequisites::subscribe))
}
