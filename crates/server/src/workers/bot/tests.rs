//! Unit tests of flow definitions and turn planning.

use super::*;

fn ctx() -> FlowContext {
    FlowContext {
        vars: BTreeMap::from([("protocolo".to_owned(), "20261125000001".to_owned())]),
        ..FlowContext::default()
    }
}

#[test]
fn default_flow_is_valid_and_greets_returning_customers_by_name() {
    let loaded = LoadedFlow {
        flow: default_flow(),
        extras: FlowExtras::default(),
    };
    let normalized = normalized_definition(&loaded);
    assert_eq!(check_definition(&normalized).expect("valid"), loaded);
    let mut known = ctx();
    known.vars.insert("nome".into(), "Ana".into());
    known.contact_known = true;
    let out = plan_turn(&loaded, &known, None, None, &HashMap::new());
    assert_eq!(
        out.actions[1],
        Action::SendText(
            "Olá, Ana! Que bom falar com você de novo. Seu protocolo é 20261125000001.".into()
        )
    );
    let out = plan_turn(&loaded, &ctx(), None, None, &HashMap::new());
    assert_eq!(
        out.actions[1],
        Action::SendText("Olá! Bem-vindo ao atendimento. Seu protocolo é 20261125000001.".into())
    );
}

#[test]
fn a_known_document_is_not_asked_again() {
    let loaded = LoadedFlow {
        flow: default_flow(),
        extras: FlowExtras::default(),
    };
    let mut c = ctx();
    c.vars.insert("contact.code".into(), "52998224725".into());
    let state = BotState {
        step: "menu".into(),
        invalid_attempts: 0,
        protocol_sent: true,
    };
    let names = HashMap::from([("suporte".to_owned(), "Suporte".to_owned())]);
    let out = plan_turn(
        &loaded,
        &c,
        Some(&state),
        Some(&BotInput::Text("1".into())),
        &names,
    );
    assert!(
        !out.actions
            .iter()
            .any(|a| matches!(a, Action::SendText(t) if t.contains("CPF"))),
        "{:?}",
        out.actions
    );
    assert!(out.actions.contains(&Action::Handoff {
        queue: "suporte".into(),
        priority: 0
    }));
    // Without the flag the question is asked.
    let asking = LoadedFlow {
        extras: FlowExtras {
            skip_known_answers: false,
            ..FlowExtras::default()
        },
        ..loaded
    };
    let out = plan_turn(
        &asking,
        &c,
        Some(&state),
        Some(&BotInput::Text("1".into())),
        &names,
    );
    assert_eq!(out.state.map(|s| s.step), Some("suporte_documento".into()));
}

#[test]
fn fila_names_the_queue_the_turn_hands_off_to() {
    let mut flow = flow::demo_flow();
    if let Some(Step::Handoff { text, .. }) = flow.steps.get_mut("financeiro") {
        *text = Some("Transferindo para {{fila}}.".into());
    }
    let loaded = LoadedFlow {
        flow,
        extras: FlowExtras::default(),
    };
    let state = BotState {
        step: "menu".into(),
        invalid_attempts: 0,
        protocol_sent: true,
    };
    let names = HashMap::from([("financeiro".to_owned(), "Financeiro e cobrança".to_owned())]);
    let out = plan_turn(
        &loaded,
        &ctx(),
        Some(&state),
        Some(&BotInput::Text("financeiro".into())),
        &names,
    );
    assert!(
        out.actions.contains(&Action::SendText(
            "Transferindo para Financeiro e cobrança.".into()
        )),
        "{:?}",
        out.actions
    );
}

#[test]
fn definitions_are_checked_with_pt_br_messages() {
    let mut bad = serde_json::to_value(flow::demo_flow()).unwrap();
    bad["start"] = "nada".into();
    bad["inactivity"] = serde_json::json!({"reminder_after_secs": 60, "close_after_secs": 30});
    let errors = check_definition(&bad).unwrap_err();
    let codes: Vec<&str> = errors.iter().map(|e| e.code.as_str()).collect();
    assert!(codes.contains(&"unknown_start"), "{codes:?}");
    assert!(codes.contains(&"invalid_inactivity"), "{codes:?}");
    assert!(errors.iter().all(|e| !e.message.is_empty()));
    let errors = check_definition(&serde_json::json!({"steps": 1})).unwrap_err();
    assert_eq!(errors[0].code, "invalid_json");
}

#[test]
fn phases() {
    assert_eq!(message_phase(None, 5), "human");
    let running = BotPhase {
        running: true,
        last_bot_message_id: None,
    };
    assert_eq!(message_phase(Some(running), 5), "bot");
    let done = BotPhase {
        running: false,
        last_bot_message_id: Some(5),
    };
    assert_eq!(message_phase(Some(done), 5), "bot");
    assert_eq!(message_phase(Some(done), 6), "human");
}
