//! A flow's definition: the JSON an admin saves, checked (with pt-BR messages) and normalized, and
//! the pt-BR demo flow with its queues installed on a first start.

use super::*;

/// Per-flow settings stored beside the domain [`Flow`] in the same definition JSON (the
/// interpreter ignores them; the server reads them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FlowExtras {
    /// An Ask step whose field is already known and valid (the contact's CPF/CNPJ in "Código", a
    /// name, an answer saved earlier in the conversation) is answered with it instead of asked.
    pub skip_known_answers: bool,
    pub inactivity: InactivitySettings,
}

impl Default for FlowExtras {
    fn default() -> Self {
        FlowExtras {
            skip_known_answers: true,
            inactivity: InactivitySettings::default(),
        }
    }
}

/// Overrides of the server-wide inactivity timers for one flow.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct InactivitySettings {
    pub reminder_after_secs: Option<u64>,
    pub close_after_secs: Option<u64>,
    /// Template (`{{nome}}`, `{{protocolo}}`...) of the reminder.
    pub reminder_text: Option<String>,
    /// Template of the message sent when the bot closes the conversation.
    pub close_text: Option<String>,
}

/// A stored flow definition, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedFlow {
    pub flow: Flow,
    pub extras: FlowExtras,
}

/// One problem of a definition, for the editor.
#[derive(Debug, Clone, Serialize)]
pub struct DefinitionError {
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<Value>,
}

impl DefinitionError {
    fn new(code: &str, message: String) -> DefinitionError {
        DefinitionError {
            code: code.to_owned(),
            message,
            detail: None,
        }
    }
}

/// Parses and validates a definition (the domain flow plus [`FlowExtras`]); all problems at once,
/// in pt-BR.
pub fn check_definition(definition: &Value) -> Result<LoadedFlow, Vec<DefinitionError>> {
    if !definition.is_object() {
        return Err(vec![DefinitionError::new(
            "invalid_json",
            "A definição do fluxo deve ser um objeto JSON.".into(),
        )]);
    }
    let flow: Flow = serde_json::from_value(definition.clone()).map_err(|e| {
        vec![DefinitionError::new(
            "invalid_json",
            format!("A definição do fluxo não pôde ser lida: {e}."),
        )]
    })?;
    let extras: FlowExtras = serde_json::from_value(definition.clone()).map_err(|e| {
        vec![DefinitionError::new(
            "invalid_json",
            format!("As configurações do fluxo (skip_known_answers, inactivity) não puderam ser lidas: {e}."),
        )]
    })?;
    let mut errors: Vec<DefinitionError> = match flow::validate_flow(&flow) {
        Ok(()) => Vec::new(),
        Err(errs) => errs
            .into_iter()
            .map(|e| {
                let detail = serde_json::to_value(&e).ok();
                let code = detail
                    .as_ref()
                    .and_then(|d| d["error"].as_str())
                    .unwrap_or("invalid_flow")
                    .to_owned();
                DefinitionError {
                    code,
                    message: e.message_pt_br(),
                    detail,
                }
            })
            .collect(),
    };
    let i = &extras.inactivity;
    if i.reminder_after_secs == Some(0) || i.close_after_secs == Some(0) {
        errors.push(DefinitionError::new(
            "invalid_inactivity",
            "Os tempos de inatividade devem ser maiores que zero.".into(),
        ));
    }
    if let (Some(r), Some(c)) = (i.reminder_after_secs, i.close_after_secs)
        && r >= c
    {
        errors.push(DefinitionError::new(
            "invalid_inactivity",
            "O lembrete de inatividade deve vir antes do encerramento automático.".into(),
        ));
    }
    if errors.is_empty() {
        Ok(LoadedFlow { flow, extras })
    } else {
        Err(errors)
    }
}

/// The definition as stored: the flow with every default spelled out, plus the extras.
pub fn normalized_definition(loaded: &LoadedFlow) -> Value {
    let mut value = serde_json::to_value(&loaded.flow).unwrap_or(Value::Null);
    if let (Some(obj), Ok(Value::Object(extras))) =
        (value.as_object_mut(), serde_json::to_value(&loaded.extras))
    {
        obj.extend(extras);
    }
    value
}

/// Queue keys a flow hands off to (or checks the hours of), for warnings about missing queues.
pub fn referenced_queues(flow: &Flow) -> Vec<String> {
    let mut keys = vec![flow.human_queue.clone()];
    for step in flow.steps.values() {
        match step {
            Step::Handoff { queue, .. } => keys.push(queue.clone()),
            Step::Condition {
                check: Check::BusinessHours { queue },
                ..
            } => keys.push(queue.clone()),
            _ => {}
        }
    }
    keys.sort();
    keys.dedup();
    keys
}

/// The flow seeded on a first start: the domain's demo flow, greeting returning customers by name.
pub fn default_flow() -> Flow {
    let mut flow = flow::demo_flow();
    let first = flow.start.clone();
    flow.steps.insert(
        "boas_vindas".into(),
        Step::Condition {
            check: Check::ContactKnown,
            then_next: "boas_vindas_cliente".into(),
            else_next: first,
        },
    );
    flow.steps.insert(
        "boas_vindas_cliente".into(),
        Step::Message {
            text: "Olá{{#nome}}, {{nome}}{{/nome}}! Que bom falar com você de novo. Seu protocolo é {{protocolo}}.".into(),
            next: Some("menu".into()),
            send_protocol: true,
        },
    );
    flow.start = "boas_vindas".into();
    flow
}

/// The queues the default flow names, with pt-BR names: "atendimento" 24/7, the others Monday to
/// Friday 08:00–18:00 (São Paulo), waiting for the next shift outside it.
pub fn default_queues() -> Vec<NewQueue> {
    let hours = |h: hours::BusinessHours| serde_json::to_string(&h).ok();
    let business = |key: &str, name: &str| NewQueue {
        key: key.into(),
        name: name.into(),
        priority: 0,
        business_hours: hours(hours::BusinessHours::weekdays("08:00-18:00")),
        outside_hours_message: Some(format!(
            "Nossa equipe de {name} atende de segunda a sexta, das 8h às 18h. Sua solicitação foi registrada com o protocolo {{{{protocolo}}}} e será atendida no próximo horário de atendimento."
        )),
        outside_hours_action: "wait".into(),
    };
    vec![
        business("suporte", "Suporte"),
        business("financeiro", "Financeiro"),
        business("reclamacoes", "Reclamações e cancelamentos"),
        NewQueue {
            key: "atendimento".into(),
            name: "Atendimento".into(),
            priority: 0,
            business_hours: hours(hours::BusinessHours::always()),
            outside_hours_message: None,
            outside_hours_action: "wait".into(),
        },
    ]
}

/// On a first start without any flow: the default flow for every channel and its queues.
pub async fn seed_demo_flow(store: &Store) -> anyhow::Result<()> {
    if store.flow_count().await? > 0 {
        return Ok(());
    }
    for queue in default_queues() {
        store.ensure_queue(&queue).await?;
    }
    let loaded = LoadedFlow {
        flow: default_flow(),
        extras: FlowExtras::default(),
    };
    let definition = normalized_definition(&loaded).to_string();
    match store
        .create_flow(None, "Atendimento (padrão)", &definition, None)
        .await
    {
        Ok(_) => crate::workers::routing::seed_desk_defaults(store).await,
        // Another instance seeded it at the same moment.
        Err(store::StoreError::Conflict(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
