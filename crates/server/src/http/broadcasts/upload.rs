//! `POST /api/broadcasts/{id}/audience`: the audience of a draft (or scheduled) broadcast, from
//!
//! - a CSV upload (`multipart/form-data`, part `file`, optional part `mapping` with the JSON
//!   mapping; without one the suggested mapping is used),
//! - `{"mapping": {...}}` alone: the stored CSV (or contacts filter) again with another mapping,
//! - `{"contacts_filter": {"code", "name", "fields": {"<key>": "<value>"}}, "mapping"?}`: the
//!   channel's contacts matching every condition.
//!
//! The answer, also in `GET /api/broadcasts/{id}` as `audience`: `{columns, mapping_suggestion,
//! mapping, rows, accepted, invalid: [{row, phone, code, reason}], invalid_count, duplicates,
//! duplicate_rows: [...], opted_out, opted_out_rows: [{row, phone}], preview: [{row, wa_id, name,
//! rendered, text}]}` (lists: the first 200). `row` is the line in the file (the header is 1).

use std::collections::HashMap;

use axum::Json;
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::header;
use domain::template::{MediaValue, TemplateDefinition};
use serde::Deserialize;
use serde_json::{Value, json};
use store::broadcasts::{AudienceCounts, AudienceSpec, BroadcastRecord, ContactFilter, Rejection};

use super::audience::{
    Checked, ContactRow, CsvRow, Mapping, contact_columns, parse_csv, suggest_contact_mapping,
    suggest_mapping,
};
use super::visible;
use crate::error::{ApiError, ApiResult};
use crate::http::auth::Principal;
use crate::state::AppState;
use crate::workers::broadcasts::compose::{RecipientVariables, compose};

/// Largest upload (a 200,000-row CSV with a few columns).
pub const MAX_BODY: usize = 32 * 1024 * 1024;
/// Rows listed in an answer (the counts are complete; the export has every row).
const LISTED: usize = 200;
const CONTACTS_PAGE: i64 = 5_000;

#[derive(Debug, Deserialize, Default)]
struct JsonAudience {
    mapping: Option<Mapping>,
    contacts_filter: Option<FilterRequest>,
}

#[derive(Debug, Deserialize, Default, Clone, serde::Serialize)]
struct FilterRequest {
    code: Option<String>,
    name: Option<String>,
    #[serde(default)]
    fields: std::collections::BTreeMap<String, String>,
}

impl FilterRequest {
    /// `reach_of`: the supervisor whose queues' customers alone may be chosen.
    fn filter(&self, reach_of: Option<i64>) -> ContactFilter {
        let clean = |s: &Option<String>| {
            s.as_ref()
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        ContactFilter {
            code: clean(&self.code),
            name: clean(&self.name),
            fields: self
                .fields
                .iter()
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                .collect(),
            reach_of,
        }
    }
}

/// Where the rows come from.
enum Source {
    Csv {
        text: String,
        mapping: Option<Mapping>,
    },
    Contacts {
        filter: FilterRequest,
        mapping: Option<Mapping>,
    },
}

fn unprocessable(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::Unprocessable(code, message.into(), json!({}))
}

pub async fn audience(
    State(app): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
    request: Request,
) -> ApiResult<Json<Value>> {
    let broadcast = visible(&app, &who, id).await?;
    if broadcast.status != store::broadcasts::DRAFT
        && broadcast.status != store::broadcasts::SCHEDULED
    {
        return Err(ApiError::Conflict(
            "broadcast_started",
            "O público de um disparo já iniciado não pode mudar.".into(),
        ));
    }
    let multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let source = if multipart {
        read_multipart(
            Multipart::from_request(request, &app)
                .await
                .map_err(|e| ApiError::bad_request(e.body_text()))?,
        )
        .await?
    } else {
        let Json(body) = Json::<JsonAudience>::from_request(request, &app)
            .await
            .map_err(|e| ApiError::bad_request(e.body_text()))?;
        match (body.contacts_filter, body.mapping) {
            (Some(filter), mapping) => Source::Contacts { filter, mapping },
            (None, Some(mapping)) => match broadcast.audience_source.as_deref() {
                Some("csv") => Source::Csv {
                    text: app.store.audience_csv(id).await?.unwrap_or_default(),
                    mapping: Some(mapping),
                },
                Some("contacts") => Source::Contacts {
                    filter: broadcast
                        .audience_filter
                        .as_deref()
                        .and_then(|f| serde_json::from_str(f).ok())
                        .unwrap_or_default(),
                    mapping: Some(mapping),
                },
                _ => {
                    return Err(unprocessable(
                        "no_audience",
                        "Envie primeiro um CSV ou escolha contatos.",
                    ));
                }
            },
            (None, None) => {
                return Err(unprocessable(
                    "no_audience",
                    "Envie um CSV (multipart, campo «file») ou {\"contacts_filter\": {...}}.",
                ));
            }
        }
    };
    let (def, header_media) = template_of(&app, &broadcast).await?;
    let started = std::time::Instant::now();
    // Supervisors reach their queues' customers only, whatever the source.
    let reach_of = match who.role() {
        store::auth::Role::Admin => None,
        _ => who.user_id(),
    };
    let mut built = match source {
        Source::Csv { text, mapping } => from_csv(text, mapping, &def, header_media.as_ref())?,
        Source::Contacts { filter, mapping } => {
            from_contacts(
                &app,
                &broadcast,
                filter.filter(reach_of),
                filter,
                mapping,
                &def,
                header_media.as_ref(),
            )
            .await?
        }
    };
    if let Some(me) = reach_of {
        let outside = app
            .store
            .wa_ids_out_of_reach(broadcast.channel_id, me)
            .await?;
        built.checked.reject_out_of_reach(&outside);
    }
    let counts = app
        .store
        .replace_audience(
            id,
            &built.spec,
            &built.checked.recipients,
            &built.checked.rejections,
        )
        .await?;
    tracing::info!(
        broadcast_id = id,
        rows = built.spec.rows,
        accepted = counts.accepted,
        invalid = counts.invalid,
        duplicates = counts.duplicates,
        opted_out = counts.opted_out,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "broadcast audience stored"
    );
    let answer = answer(
        &app,
        id,
        &built.columns,
        Some(&built.suggestion),
        &built.mapping,
        built.spec.rows,
        counts,
        &built.checked.rejections,
        &def,
        header_media.as_ref(),
    )
    .await?;
    Ok(Json(answer))
}

async fn read_multipart(mut form: Multipart) -> ApiResult<Source> {
    let mut text = None;
    let mut mapping = None;
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| ApiError::bad_request(e.body_text()))?
    {
        match field.name() {
            Some("file") => {
                let bytes = field
                    .bytes()
                    .await
                    .map_err(|e| ApiError::bad_request(e.body_text()))?;
                text = Some(bytes);
            }
            Some("mapping") => {
                let raw = field
                    .text()
                    .await
                    .map_err(|e| ApiError::bad_request(e.body_text()))?;
                if !raw.trim().is_empty() {
                    mapping = Some(serde_json::from_str(&raw).map_err(|e| {
                        unprocessable("invalid_mapping", format!("Mapeamento inválido: {e}"))
                    })?);
                }
            }
            _ => {}
        }
    }
    let bytes = text.ok_or_else(|| unprocessable("no_file", "Envie o CSV no campo «file»."))?;
    // Tens of megabytes of parsing: off the async workers, so other requests go on meanwhile.
    let table = tokio::task::spawn_blocking(move || parse_csv(&bytes))
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
        .map_err(|m| unprocessable("invalid_csv", m))?;
    // Kept decoded, so a later re-mapping reads the same text.
    let mut text = String::new();
    {
        let mut w = csv::WriterBuilder::new()
            .delimiter(b';')
            .from_writer(Vec::new());
        let _ = w.write_record(&table.columns);
        for (_, cells) in &table.rows {
            let _ = w.write_record(cells);
        }
        if let Ok(bytes) = w.into_inner() {
            text = String::from_utf8(bytes).unwrap_or_default();
        }
    }
    Ok(Source::Csv { text, mapping })
}

async fn template_of(
    app: &AppState,
    broadcast: &BroadcastRecord,
) -> ApiResult<(TemplateDefinition, Option<MediaValue>)> {
    let template = app
        .store
        .template(broadcast.template_id)
        .await?
        .ok_or_else(|| unprocessable("unknown_template", "Template inexistente."))?;
    let def = template
        .definition()
        .map_err(|e| ApiError::Internal(e.into()))?;
    let media = broadcast
        .header_media
        .as_deref()
        .and_then(|j| serde_json::from_str(j).ok());
    Ok((def, media))
}

struct Built {
    columns: Vec<String>,
    suggestion: Mapping,
    mapping: Mapping,
    spec: AudienceSpec,
    checked: Checked,
}

fn check_mapping(mapping: &Mapping, columns: &[String]) -> ApiResult<()> {
    match mapping.get("phone") {
        None => Err(unprocessable(
            "mapping_missing_phone",
            "Escolha a coluna do telefone.",
        )),
        Some(c) if !columns.contains(c) => Err(unprocessable(
            "mapping_unknown_column",
            format!("A coluna «{c}» não existe."),
        )),
        Some(_) => match mapping.values().find(|c| !columns.contains(c)) {
            Some(c) => Err(unprocessable(
                "mapping_unknown_column",
                format!("A coluna «{c}» não existe."),
            )),
            None => Ok(()),
        },
    }
}

fn from_csv(
    text: String,
    mapping: Option<Mapping>,
    def: &TemplateDefinition,
    header_media: Option<&MediaValue>,
) -> ApiResult<Built> {
    let table = parse_csv(text.as_bytes()).map_err(|m| unprocessable("invalid_csv", m))?;
    let suggestion = suggest_mapping(&table.columns, def);
    let mapping = mapping.unwrap_or_else(|| suggestion.clone());
    check_mapping(&mapping, &table.columns)?;
    let index: HashMap<&str, usize> = table
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i))
        .collect();
    let mut checked = Checked::default();
    for (line, cells) in &table.rows {
        let row = CsvRow {
            line: *line,
            cells,
            index: &index,
        };
        checked.add(&row, &mapping, def, header_media);
    }
    let spec = AudienceSpec {
        source: "csv".into(),
        columns: serde_json::to_string(&table.columns).ok(),
        mapping: serde_json::to_string(&mapping).ok(),
        filter: None,
        rows: table.rows.len() as i64,
        csv: Some(text),
    };
    Ok(Built {
        columns: table.columns,
        suggestion,
        mapping,
        spec,
        checked,
    })
}

async fn from_contacts(
    app: &AppState,
    broadcast: &BroadcastRecord,
    contact_filter: ContactFilter,
    filter: FilterRequest,
    mapping: Option<Mapping>,
    def: &TemplateDefinition,
    header_media: Option<&MediaValue>,
) -> ApiResult<Built> {
    let mut fields: Vec<String> = app
        .store
        .custom_fields(None)
        .await?
        .into_iter()
        .map(|f| f.key)
        .collect();
    fields.sort();
    fields.dedup();
    let columns = contact_columns(&fields);
    let suggestion = suggest_contact_mapping(def, &fields);
    let mapping = mapping.unwrap_or_else(|| suggestion.clone());
    check_mapping(&mapping, &columns)?;
    let mut checked = Checked::default();
    let (mut after, mut line) = (0, 1);
    loop {
        let page = app
            .store
            .audience_contacts(broadcast.channel_id, &contact_filter, after, CONTACTS_PAGE)
            .await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        for contact in &page {
            line += 1;
            checked.add(&ContactRow { line, contact }, &mapping, def, header_media);
        }
        if checked.recipients.len() + checked.rejections.len() > super::audience::MAX_ROWS {
            return Err(unprocessable(
                "audience_too_large",
                format!(
                    "Mais de {} contatos: refine o filtro.",
                    super::audience::MAX_ROWS
                ),
            ));
        }
    }
    let spec = AudienceSpec {
        source: "contacts".into(),
        columns: serde_json::to_string(&columns).ok(),
        mapping: serde_json::to_string(&mapping).ok(),
        filter: serde_json::to_string(&filter).ok(),
        rows: line - 1,
        csv: None,
    };
    Ok(Built {
        columns,
        suggestion,
        mapping,
        spec,
        checked,
    })
}

#[allow(clippy::too_many_arguments)]
async fn answer(
    app: &AppState,
    id: i64,
    columns: &[String],
    suggestion: Option<&Mapping>,
    mapping: &Mapping,
    rows: i64,
    counts: AudienceCounts,
    rejections: &[Rejection],
    def: &TemplateDefinition,
    header_media: Option<&MediaValue>,
) -> ApiResult<Value> {
    let listed = |dup: bool| -> Vec<Value> {
        rejections
            .iter()
            .filter(|r| (r.code == "duplicate") == dup)
            .take(LISTED)
            .map(|r| json!({ "row": r.row_number, "phone": r.phone, "code": r.code, "reason": r.reason }))
            .collect()
    };
    let opted_out: Vec<Value> = app
        .store
        .audience_opted_out(id, LISTED as i64)
        .await?
        .into_iter()
        .map(|(row, phone)| json!({ "row": row, "phone": phone }))
        .collect();
    let mut preview = Vec::new();
    for r in app.store.audience_sample(id, 3).await? {
        let variables: RecipientVariables = serde_json::from_str(&r.variables).unwrap_or_default();
        if let Ok(c) = compose(def, header_media, &variables) {
            preview.push(json!({
                "row": r.row_number, "wa_id": r.wa_id, "name": r.name,
                "rendered": c.rendered, "text": c.body,
            }));
        }
    }
    Ok(json!({
        "columns": columns,
        "mapping_suggestion": suggestion,
        "mapping": mapping,
        "rows": rows,
        "accepted": counts.accepted,
        "invalid": listed(false),
        "invalid_count": counts.invalid,
        "duplicates": counts.duplicates,
        "duplicate_rows": listed(true),
        "opted_out": counts.opted_out,
        "opted_out_rows": opted_out,
        "preview": preview,
    }))
}

/// The stored audience of a broadcast in the same shape (without a suggestion), for
/// `GET /api/broadcasts/{id}`; `null` before one was given.
pub async fn summary(app: &AppState, broadcast: &BroadcastRecord) -> ApiResult<Value> {
    if broadcast.audience_source.is_none() {
        return Ok(Value::Null);
    }
    let (def, header_media) = template_of(app, broadcast).await?;
    let columns: Vec<String> = broadcast
        .audience_columns
        .as_deref()
        .and_then(|c| serde_json::from_str(c).ok())
        .unwrap_or_default();
    let mapping: Mapping = broadcast
        .audience_mapping
        .as_deref()
        .and_then(|c| serde_json::from_str(c).ok())
        .unwrap_or_default();
    let rejections = app
        .store
        .audience_rejections(broadcast.id, 10 * LISTED as i64)
        .await?;
    let counts = AudienceCounts {
        accepted: broadcast.accepted_rows,
        opted_out: broadcast.opted_out_rows,
        invalid: broadcast.invalid_rows,
        duplicates: broadcast.duplicate_rows,
    };
    answer(
        app,
        broadcast.id,
        &columns,
        None,
        &mapping,
        broadcast.audience_rows,
        counts,
        &rejections,
        &def,
        header_media.as_ref(),
    )
    .await
}
