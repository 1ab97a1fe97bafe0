use super::*;
use proptest::prelude::*;

const PROTOCOL: &str = "20261125000042";

fn ctx() -> FlowContext {
    FlowContext {
        vars: BTreeMap::from([
            ("protocolo".to_owned(), PROTOCOL.to_owned()),
            ("nome".to_owned(), "Ana".to_owned()),
        ]),
        ..FlowContext::default()
    }
}

fn text(s: &str) -> BotInput {
    BotInput::Text(s.to_owned())
}

fn state(step: &str, attempts: u32, protocol_sent: bool) -> BotState {
    BotState {
        step: step.to_owned(),
        invalid_attempts: attempts,
        protocol_sent,
    }
}

fn handoff(queue: &str) -> Action {
    Action::Handoff {
        queue: queue.to_owned(),
        priority: 0,
    }
}

fn say(s: &str) -> Action {
    Action::SendText(s.to_owned())
}

fn handoff_queue(outcome: &Outcome) -> Option<&str> {
    outcome.actions.iter().find_map(|a| match a {
        Action::Handoff { queue, .. } => Some(queue.as_str()),
        _ => None,
    })
}

/// Plays a conversation from `start`, feeding inputs while the bot waits.
fn play(flow: &Flow, inputs: &[BotInput]) -> (Vec<Action>, Option<BotState>) {
    let c = ctx();
    let first = start(flow, &c);
    let mut actions = first.actions;
    let mut st = first.state;
    for input in inputs {
        let Some(s) = st.as_ref() else { break };
        let out = on_input(flow, s, input, &c);
        actions.extend(out.actions);
        st = out.state;
    }
    (actions, st)
}

/// The SAC rule: the customer learns the protocol before any handoff, and
/// `SendProtocol` is always followed by the text that carries the number.
fn assert_protocol_before_handoff(actions: &[Action]) {
    assert_protocol_rules(actions, false);
}

/// `already_sent`: an earlier turn informed it, so this one must not again.
fn assert_protocol_rules(actions: &[Action], already_sent: bool) {
    let protocol_at = actions.iter().position(|a| *a == Action::SendProtocol);
    let handoff_at = actions
        .iter()
        .position(|a| matches!(a, Action::Handoff { .. }));
    if already_sent {
        assert_eq!(protocol_at, None, "protocol informed again: {actions:?}");
    } else if let Some(h) = handoff_at {
        let p = protocol_at.unwrap_or_else(|| panic!("handoff without protocol: {actions:?}"));
        assert!(p < h, "protocol after handoff: {actions:?}");
    }
    if let Some(p) = protocol_at {
        match actions.get(p + 1) {
            Some(Action::SendText(t)) => assert!(t.contains(PROTOCOL), "{t}"),
            other => panic!("SendProtocol followed by {other:?}"),
        }
    }
    assert!(
        actions
            .iter()
            .filter(|a| **a == Action::SendProtocol)
            .count()
            <= 1,
        "protocol informed twice: {actions:?}"
    );
}

fn menu_step(options: &[(&str, &str, &str)]) -> Step {
    Step::Menu {
        text: "Escolha:".into(),
        options: options
            .iter()
            .map(|(id, title, next)| MenuOption {
                id: (*id).into(),
                title: (*title).into(),
                description: None,
                next: (*next).into(),
            })
            .collect(),
        invalid_text: "Opção inválida.".into(),
        button_label: None,
        send_protocol: false,
        on_fail: None,
    }
}

fn flow_of(start: &str, steps: Vec<(&str, Step)>) -> Flow {
    Flow {
        steps: steps.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        start: start.to_owned(),
        human_keywords: default_human_keywords(),
        human_queue: "humanos".into(),
        human_priority: 0,
        human_text: None,
        protocol_text: default_protocol_text(),
        max_invalid_attempts: 3,
    }
}

fn hand(queue: &str) -> Step {
    Step::Handoff {
        queue: queue.into(),
        priority: 0,
        text: None,
    }
}

fn msg(text: &str, next: Option<&str>) -> Step {
    Step::Message {
        text: text.into(),
        next: next.map(Into::into),
        send_protocol: false,
    }
}

fn ask(validator: Validator, save_to: &str, next: &str, on_fail: &str) -> Step {
    Step::Ask {
        text: "Informe:".into(),
        validator,
        save_to: save_to.into(),
        invalid_text: String::new(),
        next: next.into(),
        on_fail: on_fail.into(),
    }
}

// ---------------------------------------------------------------- demo flow

#[test]
fn demo_flow_is_valid() {
    assert_eq!(validate_flow(&demo_flow()), Ok(()));
}

#[test]
fn demo_start_greets_with_protocol_and_shows_the_list() {
    let out = start(&demo_flow(), &ctx());
    assert_eq!(out.actions.len(), 3, "{:?}", out.actions);
    assert_eq!(out.actions[0], Action::SendProtocol);
    assert_eq!(
        out.actions[1],
        say("Olá! Bem-vindo ao atendimento. Seu protocolo é 20261125000042.")
    );
    let Action::SendList {
        body,
        button_label,
        rows,
    } = &out.actions[2]
    else {
        panic!("expected a list: {:?}", out.actions[2]);
    };
    assert_eq!(body, "Como podemos ajudar? Escolha uma opção:");
    assert_eq!(button_label, "Ver opções");
    let ids: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(ids, ["suporte", "financeiro", "reclamacao", "atendente"]);
    assert!(
        rows.iter()
            .all(|r| r.1.chars().count() <= MAX_LIST_ROW_TITLE_CHARS)
    );
    // The decree wants complaint and cancellation in the first menu.
    let titles = fold_for_match(
        &rows
            .iter()
            .map(|r| r.1.as_str())
            .collect::<Vec<_>>()
            .join(" "),
    );
    assert!(
        titles.contains("reclamacao")
            && titles.contains("cancelamento")
            && titles.contains("atendente")
    );
    assert_eq!(out.state, Some(state("menu", 0, true)));
}

#[test]
fn happy_path_support_with_cpf() {
    let flow = demo_flow();
    let c = ctx();
    let at_menu = state("menu", 0, true);
    let reply = BotInput::ListReply {
        id: "suporte".into(),
        title: "Suporte".into(),
    };
    let out = on_input(&flow, &at_menu, &reply, &c);
    assert_eq!(out.state, Some(state("suporte_documento", 0, true)));
    assert!(matches!(&out.actions[..], [Action::SendText(t)] if t.contains("CPF ou CNPJ")));

    let out = on_input(
        &flow,
        &state("suporte_documento", 0, true),
        &text(" 529.982.247-25 "),
        &c,
    );
    assert_eq!(
        out.actions,
        vec![
            Action::SaveField {
                field: "contact.code".into(),
                value: "52998224725".into()
            },
            say("Obrigado! Você será atendido pela equipe de Suporte em instantes."),
            handoff("suporte"),
        ]
    );
    assert_eq!(out.state, None);
}

#[test]
fn invalid_then_valid_cpf() {
    let flow = demo_flow();
    let c = ctx();
    let out = on_input(
        &flow,
        &state("suporte_documento", 0, true),
        &text("529.982.247-24"),
        &c,
    );
    assert_eq!(
        out.actions,
        vec![say(
            "CPF ou CNPJ inválido: dígitos verificadores não conferem.\nDigite novamente: CPF com 11 dígitos ou CNPJ com 14 caracteres."
        )]
    );
    assert_eq!(out.state, Some(state("suporte_documento", 1, true)));
    let out = on_input(
        &flow,
        &state("suporte_documento", 1, true),
        &text("111.111.111-11"),
        &c,
    );
    assert!(
        matches!(&out.actions[..], [Action::SendText(t)] if t.starts_with("CPF ou CNPJ inválido: todos os dígitos são iguais."))
    );
    assert_eq!(out.state, Some(state("suporte_documento", 2, true)));
    let out = on_input(
        &flow,
        &state("suporte_documento", 2, true),
        &text("52998224725"),
        &c,
    );
    assert_eq!(handoff_queue(&out), Some("suporte"));
    assert!(out.actions.contains(&Action::SaveField {
        field: "contact.code".into(),
        value: "52998224725".into()
    }));
}

#[test]
fn alphanumeric_cnpj_is_saved_normalized() {
    let out = on_input(
        &demo_flow(),
        &state("suporte_documento", 0, true),
        &text("12.abc.345/01de-35"),
        &ctx(),
    );
    assert_eq!(
        out.actions[0],
        Action::SaveField {
            field: "contact.code".into(),
            value: "12ABC34501DE35".into()
        }
    );
    assert_eq!(handoff_queue(&out), Some("suporte"));
}

#[test]
fn max_invalid_attempts_goes_to_on_fail() {
    let flow = demo_flow();
    let (actions, st) = play(
        &flow,
        &[
            text("1"),
            text("123"),
            text("abc"),
            text("00000000000000"),
            text("never read"),
        ],
    );
    assert_eq!(st, None);
    // Two re-asks, then on_fail (the support queue: data never blocks a human).
    let reasks = actions
        .iter()
        .filter(|a| matches!(a, Action::SendText(t) if t.starts_with("CPF ou CNPJ inválido")))
        .count();
    assert_eq!(reasks, 2);
    assert_eq!(actions.last(), Some(&handoff("suporte")));
    assert!(
        !actions
            .iter()
            .any(|a| matches!(a, Action::SaveField { .. }))
    );
    assert_protocol_before_handoff(&actions);
}

#[test]
fn human_keyword_at_every_step_of_the_demo() {
    let flow = demo_flow();
    let c = ctx();
    let waiting: Vec<&String> = flow
        .steps
        .iter()
        .filter(|(_, s)| s.waits_for_input())
        .map(|(k, _)| k)
        .collect();
    assert_eq!(waiting.len(), 2);
    for step in flow
        .steps
        .keys()
        .chain(std::iter::once(&"removida".to_owned()))
    {
        for input in [
            "atendente",
            "HUMANO",
            "Quero falar com um atendente, por favor!",
            "Atendênte",
        ] {
            for sent in [true, false] {
                let out = on_input(&flow, &state(step, 1, sent), &text(input), &c);
                assert_eq!(
                    handoff_queue(&out),
                    Some("atendimento"),
                    "step {step} input {input}"
                );
                assert_eq!(out.state, None);
                assert_eq!(
                    out.actions.contains(&Action::SendProtocol),
                    !sent,
                    "step {step}: {:?}",
                    out.actions
                );
                assert_protocol_rules(&out.actions, sent);
                assert!(out.actions.contains(&say(
                    "Certo! Vou te transferir para um de nossos atendentes."
                )));
            }
        }
    }
}

#[test]
fn keyword_inside_other_words_does_not_trigger() {
    let flow = demo_flow();
    let out = on_input(
        &flow,
        &state("menu", 0, true),
        &text("recursos humanos"),
        &ctx(),
    );
    assert_eq!(out.state, Some(state("menu", 1, true)));
}

#[test]
fn typed_numbers_pick_options() {
    let flow = demo_flow();
    for (input, queue) in [
        ("2", "financeiro"),
        ("2.", "financeiro"),
        ("02", "financeiro"),
        (" 2) ", "financeiro"),
        ("opção 2", "financeiro"),
        ("2\u{fe0f}\u{20e3}", "financeiro"),
        ("3", "reclamacoes"),
        ("4", "atendimento"),
    ] {
        let out = on_input(&flow, &state("menu", 0, true), &text(input), &ctx());
        assert_eq!(handoff_queue(&out), Some(queue), "{input}");
    }
    let out = on_input(&flow, &state("menu", 0, true), &text("1"), &ctx());
    assert_eq!(out.state, Some(state("suporte_documento", 0, true)));
    for bad in ["0", "5", "99999999999999999999999", "2 3", "1,5"] {
        let out = on_input(&flow, &state("menu", 0, true), &text(bad), &ctx());
        assert_eq!(out.state, Some(state("menu", 1, true)), "{bad}");
    }
}

#[test]
fn typed_titles_with_accents_pick_options() {
    let flow = demo_flow();
    for (input, queue) in [
        ("Financeiro", "financeiro"),
        ("FINANCEIRO!", "financeiro"),
        ("reclamação/cancelamento", "reclamacoes"),
        ("Reclamação e cancelamento", "reclamacoes"),
        ("RECLAMACAO", "reclamacoes"),
        ("quero cancelar meu plano", "reclamacoes"),
        ("reclamar", "reclamacoes"),
        ("finanças", "financeiro"),
    ] {
        let out = on_input(&flow, &state("menu", 0, true), &text(input), &ctx());
        assert_eq!(handoff_queue(&out), Some(queue), "{input}");
    }
    let out = on_input(&flow, &state("menu", 0, true), &text("  suporte "), &ctx());
    assert_eq!(out.state, Some(state("suporte_documento", 0, true)));
    // Ambiguous sentences are not guessed.
    let out = on_input(
        &flow,
        &state("menu", 0, true),
        &text("suporte financeiro"),
        &ctx(),
    );
    assert_eq!(out.state, Some(state("menu", 1, true)));
}

#[test]
fn list_replies_use_the_id() {
    let flow = demo_flow();
    let reply = BotInput::ListReply {
        id: "reclamacao".into(),
        title: "texto qualquer".into(),
    };
    let out = on_input(&flow, &state("menu", 0, true), &reply, &ctx());
    assert_eq!(handoff_queue(&out), Some("reclamacoes"));
    // A reply from an older message with an unknown id falls back to its title.
    let stale = BotInput::ListReply {
        id: "old-id".into(),
        title: "Financeiro".into(),
    };
    let out = on_input(&flow, &state("menu", 0, true), &stale, &ctx());
    assert_eq!(handoff_queue(&out), Some("financeiro"));
}

#[test]
fn buttons_for_three_options_and_button_replies() {
    let flow = flow_of(
        "m",
        vec![
            (
                "m",
                menu_step(&[
                    ("a", "Vendas", "h1"),
                    ("b", "Suporte", "h2"),
                    ("c", "Atendente", "h3"),
                ]),
            ),
            ("h1", hand("vendas")),
            ("h2", hand("suporte")),
            ("h3", hand("humanos")),
        ],
    );
    assert_eq!(validate_flow(&flow), Ok(()));
    let out = start(&flow, &ctx());
    assert_eq!(
        out.actions,
        vec![Action::SendButtons {
            body: "Escolha:".into(),
            buttons: vec![
                ("a".into(), "Vendas".into()),
                ("b".into(), "Suporte".into()),
                ("c".into(), "Atendente".into())
            ]
        }]
    );
    assert_eq!(out.state, Some(state("m", 0, false)));
    let reply = BotInput::ButtonReply {
        id: "b".into(),
        title: "Suporte".into(),
    };
    let out = on_input(&flow, &state("m", 0, false), &reply, &ctx());
    // No step informed the protocol yet: the handoff does it first.
    assert_eq!(
        out.actions,
        vec![
            Action::SendProtocol,
            say("Seu número de protocolo é 20261125000042."),
            handoff("suporte")
        ]
    );
    // A button of the menu wins over a keyword in its title.
    let reply = BotInput::ButtonReply {
        id: "c".into(),
        title: "Atendente".into(),
    };
    let out = on_input(&flow, &state("m", 0, true), &reply, &ctx());
    assert_eq!(out.actions, vec![handoff("humanos")]);
}

#[test]
fn menu_rendering_by_size_and_limits() {
    let opts = |n: usize, title: &str| -> Vec<MenuOption> {
        (1..=n)
            .map(|i| MenuOption {
                id: format!("o{i}"),
                title: format!("{title} {i}"),
                description: None,
                next: "x".into(),
            })
            .collect()
    };
    assert!(matches!(
        render_menu("b".into(), &opts(1, "Op"), None),
        Action::SendButtons { .. }
    ));
    assert!(matches!(
        render_menu("b".into(), &opts(3, "Op"), None),
        Action::SendButtons { .. }
    ));
    assert!(matches!(
        render_menu("b".into(), &opts(4, "Op"), None),
        Action::SendList { .. }
    ));
    assert!(matches!(
        render_menu("b".into(), &opts(10, "Op"), None),
        Action::SendList { .. }
    ));
    let Action::SendText(t) = render_menu("Escolha:".into(), &opts(11, "Op"), None) else {
        panic!("expected text");
    };
    assert!(t.starts_with("Escolha:\n\n1. Op 1\n2. Op 2\n"));
    assert!(t.contains("\n11. Op 11\n"));
    assert!(t.ends_with("Responda com o número da opção."));
    // 21-character title: too long for a button, fine for a list row.
    assert!(matches!(
        render_menu("b".into(), &opts(2, "Um título bem longo"), None),
        Action::SendList { .. }
    ));
    // 25 characters: too long for a list row too.
    assert!(matches!(
        render_menu("b".into(), &opts(2, "Reclamação e cancelamento"), None),
        Action::SendText(_)
    ));
    // Interactive messages need a body.
    assert!(matches!(
        render_menu("  ".into(), &opts(2, "Op"), None),
        Action::SendText(_)
    ));
    assert_eq!(render_menu("Nada".into(), &[], None), say("Nada"));
    // Oversized list label falls back to the default.
    let Action::SendList { button_label, .. } = render_menu(
        "b".into(),
        &opts(5, "Op"),
        Some("um rótulo grande demais para o botão".into()),
    ) else {
        panic!()
    };
    assert_eq!(button_label, DEFAULT_LIST_BUTTON_LABEL);
}

#[test]
fn invalid_menu_answer_reasks_then_hands_off() {
    let flow = demo_flow();
    let c = ctx();
    let out = on_input(&flow, &state("menu", 0, true), &text("banana"), &c);
    assert_eq!(out.state, Some(state("menu", 1, true)));
    assert_eq!(
        out.actions[0],
        say("Não entendi. Escolha uma das opções da lista ou digite o número (1 a 4).")
    );
    assert!(matches!(out.actions[1], Action::SendList { .. }));
    let out = on_input(&flow, &state("menu", 2, true), &text("banana"), &c);
    assert_eq!(out.state, None);
    assert_eq!(handoff_queue(&out), Some("atendimento"));
}

#[test]
fn menu_on_fail_is_used_when_set() {
    let mut m = menu_step(&[("a", "Atendente", "h")]);
    if let Step::Menu { on_fail, .. } = &mut m {
        *on_fail = Some("fim".into());
    }
    let flow = flow_of(
        "m",
        vec![
            ("m", m),
            ("h", hand("q")),
            (
                "fim",
                Step::End {
                    text: Some("Tchau".into()),
                },
            ),
        ],
    );
    assert_eq!(validate_flow(&flow), Ok(()));
    let out = on_input(&flow, &state("m", 2, true), &text("xyz"), &ctx());
    assert_eq!(out.actions, vec![say("Tchau"), Action::End]);
    assert_eq!(out.state, None);
}

#[test]
fn protocol_is_informed_before_every_handoff_of_the_demo() {
    let flow = demo_flow();
    let doc_answers: Vec<Vec<BotInput>> = vec![
        vec![text("529.982.247-25")],
        vec![text("12ABC34501DE35")],
        vec![text("x"), text("y"), text("z")],
        vec![text("x"), text("atendente")],
        vec![text("humano")],
    ];
    let mut paths: Vec<Vec<BotInput>> = Vec::new();
    for pick in [
        text("1"),
        text("suporte"),
        BotInput::ListReply {
            id: "suporte".into(),
            title: "Suporte".into(),
        },
    ] {
        for answers in &doc_answers {
            let mut p = vec![pick.clone()];
            p.extend(answers.iter().cloned());
            paths.push(p);
        }
    }
    for pick in [
        "2",
        "3",
        "4",
        "financeiro",
        "Reclamação",
        "falar com atendente",
        "humano",
    ] {
        paths.push(vec![text(pick)]);
    }
    paths.push(vec![text("?"), text("?"), text("?")]);
    paths.push(vec![text("a"), text("2")]);
    for id in ["financeiro", "reclamacao", "atendente"] {
        paths.push(vec![BotInput::ListReply {
            id: id.into(),
            title: String::new(),
        }]);
    }
    for path in &paths {
        let (actions, st) = play(&flow, path);
        assert_eq!(st, None, "path {path:?} did not finish: {actions:?}");
        assert!(
            actions.iter().any(|a| matches!(a, Action::Handoff { .. })),
            "{path:?}"
        );
        assert_protocol_before_handoff(&actions);
        assert_eq!(
            actions[0],
            Action::SendProtocol,
            "protocol must come first: {path:?}"
        );
    }
}

#[test]
fn flow_without_greeting_protocol_informs_it_at_handoff() {
    let mut flow = flow_of("h", vec![("h", hand("fila"))]);
    flow.protocol_text = "Anote seu protocolo: {{protocolo}}".into();
    let out = start(&flow, &ctx());
    assert_eq!(
        out.actions,
        vec![
            Action::SendProtocol,
            say("Anote seu protocolo: 20261125000042"),
            handoff("fila")
        ]
    );
}

#[test]
fn protocol_flag_on_a_menu_and_not_repeated() {
    let mut m = menu_step(&[("a", "Atendente", "h")]);
    if let Step::Menu {
        send_protocol,
        text,
        ..
    } = &mut m
    {
        *send_protocol = true;
        *text = "Protocolo {{protocolo}}. Escolha:".into();
    }
    let flow = flow_of("m", vec![("m", m), ("h", hand("q"))]);
    let out = start(&flow, &ctx());
    assert_eq!(out.actions[0], Action::SendProtocol);
    assert_eq!(out.state, Some(state("m", 0, true)));
    // Coming back to it later does not announce the protocol again.
    let out = on_input(&flow, &state("gone", 0, true), &text("oi"), &ctx());
    assert!(!out.actions.contains(&Action::SendProtocol));
}

#[test]
fn messages_chain_until_input_and_media_is_sent() {
    let flow = flow_of(
        "a",
        vec![
            ("a", msg("Olá, {{nome}}!", Some("b"))),
            (
                "b",
                Step::SendMedia {
                    media_url_or_id: "https://exemplo.com.br/cardapio.pdf".into(),
                    kind: MediaKind::Document,
                    caption: Some("Cardápio de {{nome}}".into()),
                    filename: Some("cardapio.pdf".into()),
                    next: Some("c".into()),
                },
            ),
            ("c", msg("", Some("m"))),
            ("m", menu_step(&[("x", "Atendente", "h")])),
            ("h", hand("q")),
        ],
    );
    assert_eq!(validate_flow(&flow), Ok(()));
    let out = start(&flow, &ctx());
    assert_eq!(out.actions.len(), 3, "{:?}", out.actions);
    assert_eq!(out.actions[0], say("Olá, Ana!"));
    assert_eq!(
        out.actions[1],
        Action::SendMedia {
            media_url_or_id: "https://exemplo.com.br/cardapio.pdf".into(),
            kind: MediaKind::Document,
            caption: Some("Cardápio de Ana".into()),
            filename: Some("cardapio.pdf".into()),
        }
    );
    assert!(matches!(out.actions[2], Action::SendButtons { .. }));
    assert_eq!(out.state, Some(state("m", 0, false)));
}

#[test]
fn message_without_next_and_end_finish_the_bot() {
    let flow = flow_of("a", vec![("a", msg("Até logo", None))]);
    let out = start(&flow, &ctx());
    assert_eq!(out.actions, vec![say("Até logo"), Action::End]);
    assert_eq!(out.state, None);
    let flow = flow_of("e", vec![("e", Step::End { text: None })]);
    assert_eq!(start(&flow, &ctx()).actions, vec![Action::End]);
}

#[test]
fn chaining_guard_stops_bad_flows() {
    let flow = flow_of(
        "a",
        vec![("a", msg("a", Some("b"))), ("b", msg("b", Some("a")))],
    );
    assert!(validate_flow(&flow).is_err());
    let out = start(&flow, &ctx());
    let texts = out
        .actions
        .iter()
        .filter(|a| matches!(a, Action::SendText(_)))
        .count();
    assert!(texts <= MAX_CHAIN_STEPS + 1, "{texts}");
    assert_eq!(handoff_queue(&out), Some("humanos"));
    assert_eq!(out.state, None);
    assert_protocol_before_handoff(&out.actions);
}

#[test]
fn dangling_references_at_runtime_go_to_a_human() {
    let flow = flow_of("a", vec![("a", msg("oi", Some("nao-existe")))]);
    let out = start(&flow, &ctx());
    assert_eq!(handoff_queue(&out), Some("humanos"));
    let flow = flow_of("inexistente", vec![]);
    assert_eq!(handoff_queue(&start(&flow, &ctx())), Some("humanos"));
}

#[test]
fn unknown_state_restarts_the_flow() {
    let flow = demo_flow();
    let out = on_input(
        &flow,
        &state("etapa-removida", 0, true),
        &text("oi"),
        &ctx(),
    );
    assert!(!out.actions.contains(&Action::SendProtocol));
    assert_eq!(out.state, Some(state("menu", 0, true)));
}

#[test]
fn conditions() {
    let flow = flow_of(
        "horario",
        vec![
            (
                "horario",
                Step::Condition {
                    check: Check::BusinessHours {
                        queue: "suporte".into(),
                    },
                    then_next: "aberto".into(),
                    else_next: "fechado".into(),
                },
            ),
            ("aberto", hand("suporte")),
            (
                "fechado",
                Step::End {
                    text: Some("Fechado".into()),
                },
            ),
        ],
    );
    assert_eq!(validate_flow(&flow), Ok(()));
    let mut c = ctx();
    assert_eq!(
        start(&flow, &c).actions.last(),
        Some(&Action::End),
        "unknown queue counts as closed"
    );
    c.business_hours_open.insert("suporte".into(), false);
    assert_eq!(start(&flow, &c).actions.last(), Some(&Action::End));
    c.business_hours_open.insert("suporte".into(), true);
    assert_eq!(handoff_queue(&start(&flow, &c)), Some("suporte"));

    let known = flow_of(
        "k",
        vec![
            (
                "k",
                Step::Condition {
                    check: Check::ContactKnown,
                    then_next: "sim".into(),
                    else_next: "nao".into(),
                },
            ),
            ("sim", hand("a")),
            ("nao", hand("b")),
        ],
    );
    let mut c = ctx();
    assert_eq!(handoff_queue(&start(&known, &c)), Some("b"));
    c.contact_known = true;
    assert_eq!(handoff_queue(&start(&known, &c)), Some("a"));
}

#[test]
fn field_equals_sees_fields_saved_in_the_same_turn() {
    let flow = flow_of(
        "m",
        vec![
            (
                "m",
                menu_step(&[("a", "Atendente", "h"), ("b", "Plano", "plano")]),
            ),
            ("h", hand("q")),
            (
                "plano",
                ask(Validator::FreeText, "custom.plano", "cond", "h"),
            ),
            (
                "cond",
                Step::Condition {
                    check: Check::FieldEquals {
                        field: "custom.plano".into(),
                        value: "Empresarial".into(),
                    },
                    then_next: "empresas".into(),
                    else_next: "pessoas".into(),
                },
            ),
            ("empresas", hand("empresas")),
            ("pessoas", hand("pessoas")),
        ],
    );
    assert_eq!(validate_flow(&flow), Ok(()));
    let out = on_input(
        &flow,
        &state("plano", 0, true),
        &text("  EMPRESARIAL "),
        &ctx(),
    );
    assert_eq!(handoff_queue(&out), Some("empresas"));
    let out = on_input(&flow, &state("plano", 0, true), &text("básico"), &ctx());
    assert_eq!(handoff_queue(&out), Some("pessoas"));
    let mut c = ctx();
    c.fields.insert("custom.plano".into(), "empresarial".into());
    let out = on_input(&flow, &state("m", 0, true), &text("2"), &c);
    assert_eq!(out.state, Some(state("plano", 0, true)));
}

#[test]
fn free_text_only_hands_off_on_an_exact_keyword() {
    let flow = flow_of(
        "m",
        vec![
            (
                "m",
                menu_step(&[("a", "Atendente", "h"), ("b", "Relato", "relato")]),
            ),
            ("h", hand("q")),
            (
                "relato",
                ask(Validator::FreeText, "protocol.subject", "h", "h"),
            ),
        ],
    );
    let out = on_input(
        &flow,
        &state("relato", 0, true),
        &text("O atendente não resolveu meu problema"),
        &ctx(),
    );
    assert_eq!(
        out.actions[0],
        Action::SaveField {
            field: "protocol.subject".into(),
            value: "O atendente não resolveu meu problema".into()
        }
    );
    assert_eq!(handoff_queue(&out), Some("q"));
    let out = on_input(
        &flow,
        &state("relato", 0, true),
        &text("Atendente!"),
        &ctx(),
    );
    assert!(
        !out.actions
            .iter()
            .any(|a| matches!(a, Action::SaveField { .. }))
    );
    assert_eq!(handoff_queue(&out), Some("humanos"));
    // Empty text (e.g. a sticker) is re-asked with the default message.
    let out = on_input(&flow, &state("relato", 0, true), &text("  "), &ctx());
    assert_eq!(
        out.actions,
        vec![say("Não recebi nenhum texto. Pode escrever sua mensagem?")]
    );
    assert_eq!(out.state, Some(state("relato", 1, true)));
}

#[test]
fn stale_button_at_an_ask_step() {
    let reply = BotInput::ButtonReply {
        id: "atendente".into(),
        title: "Falar com atendente".into(),
    };
    let out = on_input(
        &demo_flow(),
        &state("suporte_documento", 0, true),
        &reply,
        &ctx(),
    );
    assert_eq!(handoff_queue(&out), Some("atendimento"));
}

#[test]
fn other_validators_in_ask_steps() {
    let flow = flow_of(
        "m",
        vec![
            ("m", menu_step(&[("a", "Atendente", "h")])),
            ("h", hand("q")),
            ("email", ask(Validator::Email, "contact.email", "h", "h")),
            ("tel", ask(Validator::Phone, "contact.phone", "h", "h")),
            ("data", ask(Validator::Date, "custom.nascimento", "h", "h")),
        ],
    );
    assert_eq!(validate_flow(&flow), Ok(()));
    let saved = |step: &str, input: &str| -> Option<String> {
        on_input(&flow, &state(step, 0, true), &text(input), &ctx())
            .actions
            .into_iter()
            .find_map(|a| match a {
                Action::SaveField { value, .. } => Some(value),
                _ => None,
            })
    };
    assert_eq!(
        saved("email", " Ana.Silva@Exemplo.COM.br ").as_deref(),
        Some("Ana.Silva@exemplo.com.br")
    );
    assert_eq!(
        saved("email", "humano@exemplo.com").as_deref(),
        Some("humano@exemplo.com")
    );
    assert_eq!(
        saved("tel", "(11) 98765-4321").as_deref(),
        Some("5511987654321")
    );
    assert_eq!(saved("data", "5/3/1990").as_deref(), Some("1990-03-05"));
    let out = on_input(&flow, &state("email", 0, true), &text("ana@"), &ctx());
    assert_eq!(
        out.actions,
        vec![say(
            "E-mail inválido. Digite um endereço como nome@exemplo.com.br."
        )]
    );
    let out = on_input(&flow, &state("data", 0, true), &text("31/02/2020"), &ctx());
    assert_eq!(
        out.actions,
        vec![say("Data inválida. Use o formato DD/MM/AAAA.")]
    );
    // An invalid answer that asks for a person is a request for a person.
    let out = on_input(
        &flow,
        &state("tel", 0, true),
        &text("quero um atendente"),
        &ctx(),
    );
    assert_eq!(handoff_queue(&out), Some("humanos"));
}

#[test]
fn validators() {
    use Validator::*;
    let ok = |v, s: &str| validate_answer(v, s).ok();
    assert_eq!(
        ok(CpfCnpj, "529.982.247-25").as_deref(),
        Some("52998224725")
    );
    assert_eq!(
        validate_answer(CpfCnpj, ""),
        Err("Informe o CPF ou o CNPJ.".to_owned())
    );
    for good in [
        "a@b.co",
        "nome.sobrenome+tag@sub.exemplo.com.br",
        "x_y@dominio-ok.org",
    ] {
        assert!(ok(Email, good).is_some(), "{good}");
    }
    for bad in [
        "",
        "a",
        "a@b",
        "a@@b.com",
        "a b@c.com",
        "@b.com",
        "a@b.c",
        "a@-b.com",
        "a@b..com",
        "a@b.c0m",
        "á@b.com",
        ".a@b.com",
    ] {
        assert!(ok(Email, bad).is_none(), "{bad}");
    }
    for (input, want) in [
        ("11987654321", "5511987654321"),
        ("(11) 3456-7890", "551134567890"),
        ("011 98765-4321", "5511987654321"),
        ("+55 11 98765-4321", "5511987654321"),
        ("5511987654321", "5511987654321"),
        ("+1 (415) 555-0100", "14155550100"),
    ] {
        assert_eq!(ok(Phone, input).as_deref(), Some(want), "{input}");
    }
    for bad in [
        "",
        "123",
        "98765-4321",
        "+0123456789",
        "11 98765-432a",
        "+1234567890123456",
        "0011987654321",
    ] {
        assert!(ok(Phone, bad).is_none(), "{bad}");
    }
    for (input, want) in [
        ("25/11/2026", "2026-11-25"),
        ("25-11-2026", "2026-11-25"),
        ("25.11.2026", "2026-11-25"),
        ("2026-11-25", "2026-11-25"),
        ("25112026", "2026-11-25"),
        ("29/02/2024", "2024-02-29"),
    ] {
        assert_eq!(ok(Date, input).as_deref(), Some(want), "{input}");
    }
    for bad in [
        "",
        "25/11/26",
        "29/02/2025",
        "32/01/2026",
        "00/01/2026",
        "2026/13/01",
        "hoje",
        "25/11",
        "1/1/1/2000",
        "99999999",
    ] {
        assert!(ok(Date, bad).is_none(), "{bad}");
    }
    assert_eq!(ok(FreeText, "  oi  ").as_deref(), Some("oi"));
}

// ---------------------------------------------------------------- validation

fn errors(flow: &Flow) -> Vec<FlowError> {
    validate_flow(flow).err().unwrap_or_default()
}

#[test]
fn refuses_unknown_start_and_dangling_references() {
    let flow = flow_of("nada", vec![("m", menu_step(&[("a", "A", "sumiu")]))]);
    let errs = errors(&flow);
    assert!(errs.contains(&FlowError::UnknownStart {
        start: "nada".into()
    }));
    assert!(errs.contains(&FlowError::DanglingReference {
        step: "m".into(),
        target: "sumiu".into()
    }));
    let flow = flow_of(
        "a",
        vec![
            ("a", msg("x", Some("b"))),
            (
                "b",
                Step::Condition {
                    check: Check::ContactKnown,
                    then_next: "h".into(),
                    else_next: "z".into(),
                },
            ),
            ("h", hand("q")),
            ("k", ask(Validator::Email, "contact.email", "y", "h")),
        ],
    );
    let errs = errors(&flow);
    assert!(errs.contains(&FlowError::DanglingReference {
        step: "b".into(),
        target: "z".into()
    }));
    assert!(errs.contains(&FlowError::DanglingReference {
        step: "k".into(),
        target: "y".into()
    }));
}

#[test]
fn refuses_loops_without_input_but_allows_loops_through_menus() {
    let flow = flow_of(
        "a",
        vec![
            ("a", msg("a", Some("b"))),
            (
                "b",
                Step::Condition {
                    check: Check::ContactKnown,
                    then_next: "c".into(),
                    else_next: "h".into(),
                },
            ),
            (
                "c",
                Step::SendMedia {
                    media_url_or_id: "id".into(),
                    kind: MediaKind::Image,
                    caption: None,
                    filename: None,
                    next: Some("a".into()),
                },
            ),
            ("h", hand("q")),
            ("self", msg("eu", Some("self"))),
        ],
    );
    let cycles: Vec<FlowError> = errors(&flow)
        .into_iter()
        .filter(|e| matches!(e, FlowError::AutomaticCycle { .. }))
        .collect();
    assert_eq!(
        cycles,
        vec![
            FlowError::AutomaticCycle {
                steps: vec!["a".into(), "b".into(), "c".into()]
            },
            FlowError::AutomaticCycle {
                steps: vec!["self".into()]
            },
        ]
    );
    let ok = flow_of(
        "m",
        vec![
            (
                "m",
                menu_step(&[("a", "Atendente", "h"), ("b", "Info", "info")]),
            ),
            ("info", msg("Horário: 8h às 18h", Some("m"))),
            ("h", hand("q")),
        ],
    );
    assert_eq!(validate_flow(&ok), Ok(()));
}

#[test]
fn refuses_a_first_menu_without_a_data_free_path_to_a_human() {
    let flow = flow_of(
        "oi",
        vec![
            ("oi", msg("Olá", Some("m"))),
            (
                "m",
                menu_step(&[("a", "Suporte", "cpf"), ("b", "Sair", "fim")]),
            ),
            ("cpf", ask(Validator::CpfCnpj, "contact.code", "h", "h")),
            ("h", hand("q")),
            ("fim", Step::End { text: None }),
        ],
    );
    assert_eq!(
        errors(&flow),
        vec![FlowError::NoHumanFromFirstMenu { menu: "m".into() }]
    );
    // Through a sub-menu is fine: choosing options is not giving data.
    let flow = flow_of(
        "m",
        vec![
            (
                "m",
                menu_step(&[("a", "Suporte", "cpf"), ("b", "Outros", "sub")]),
            ),
            ("sub", menu_step(&[("x", "Atendente", "h")])),
            ("cpf", ask(Validator::CpfCnpj, "contact.code", "h", "h")),
            ("h", hand("q")),
        ],
    );
    assert_eq!(validate_flow(&flow), Ok(()));
    // Each menu a Condition can lead to first is checked.
    let flow = flow_of(
        "c",
        vec![
            (
                "c",
                Step::Condition {
                    check: Check::BusinessHours { queue: "q".into() },
                    then_next: "m1".into(),
                    else_next: "m2".into(),
                },
            ),
            ("m1", menu_step(&[("a", "Atendente", "h")])),
            ("m2", menu_step(&[("a", "Sair", "fim")])),
            ("h", hand("q")),
            ("fim", Step::End { text: None }),
        ],
    );
    assert_eq!(
        errors(&flow),
        vec![FlowError::NoHumanFromFirstMenu { menu: "m2".into() }]
    );
}

#[test]
fn refuses_asking_data_before_a_human_is_offered() {
    let flow = flow_of(
        "oi",
        vec![
            ("oi", msg("Olá", Some("cpf"))),
            ("cpf", ask(Validator::CpfCnpj, "contact.code", "m", "m")),
            ("m", menu_step(&[("a", "Atendente", "h")])),
            ("h", hand("q")),
        ],
    );
    assert_eq!(
        errors(&flow),
        vec![FlowError::DataBeforeHuman { step: "cpf".into() }]
    );
}

#[test]
fn refuses_duplicate_and_empty_option_ids_but_not_empty_or_long_menus() {
    let flow = flow_of(
        "m",
        vec![
            (
                "m",
                menu_step(&[
                    ("a", "Atendente", "h"),
                    ("a", "Outro", "h"),
                    (" ", "Vazio", "h"),
                ]),
            ),
            ("h", hand("q")),
        ],
    );
    assert_eq!(
        errors(&flow),
        vec![
            FlowError::DuplicateOptionId {
                step: "m".into(),
                id: "a".into()
            },
            FlowError::EmptyOptionId { step: "m".into() },
        ]
    );
    let many: Vec<(String, String)> = (1..=12)
        .map(|i| (format!("o{i}"), format!("Opção {i}")))
        .collect();
    let refs: Vec<(&str, &str, &str)> = many
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str(), "h"))
        .collect();
    let flow = flow_of(
        "m",
        vec![
            ("m", menu_step(&refs)),
            ("vazio", menu_step(&[])),
            ("h", hand("q")),
        ],
    );
    assert_eq!(validate_flow(&flow), Ok(()));
}

#[test]
fn refuses_missing_queues_and_bad_save_targets() {
    let mut flow = flow_of(
        "m",
        vec![
            (
                "m",
                menu_step(&[("a", "Atendente", "h"), ("b", "Dados", "k")]),
            ),
            ("h", hand(" ")),
            ("k", ask(Validator::Email, "email", "h", "h")),
            ("k2", ask(Validator::Email, "custom.", "h", "h")),
            ("k3", ask(Validator::Email, "custom.área", "h", "h")),
            ("k4", ask(Validator::Email, "contact.email", "h", "h")),
        ],
    );
    flow.human_queue = String::new();
    let errs = errors(&flow);
    assert!(errs.contains(&FlowError::MissingHumanQueue));
    assert!(errs.contains(&FlowError::EmptyHandoffQueue { step: "h".into() }));
    for bad in ["k", "k2", "k3"] {
        assert!(
            errs.iter()
                .any(|e| matches!(e, FlowError::InvalidSaveTo { step, .. } if step == bad)),
            "{bad}: {errs:?}"
        );
    }
    assert!(
        !errs
            .iter()
            .any(|e| matches!(e, FlowError::InvalidSaveTo { step, .. } if step == "k4"))
    );
}

#[test]
fn flow_errors_have_pt_br_messages() {
    let e = FlowError::NoHumanFromFirstMenu { menu: "m".into() };
    assert!(e.message_pt_br().contains("Decreto 11.034/2022"));
    assert!(e.to_string().contains("first menu"));
    let json = serde_json::to_value(FlowError::DanglingReference {
        step: "a".into(),
        target: "b".into(),
    })
    .unwrap();
    assert_eq!(json["error"], "dangling_reference");
    assert_eq!(
        FlowError::AutomaticCycle {
            steps: vec!["a".into(), "b".into()]
        }
        .message_pt_br(),
        "As etapas a → b formam um ciclo sem nenhuma pergunta ao cliente; o robô ficaria em laço."
    );
}

// ---------------------------------------------------------------- serde

#[test]
fn demo_flow_round_trips_through_json() {
    let flow = demo_flow();
    let json = serde_json::to_string_pretty(&flow).unwrap();
    let back: Flow = serde_json::from_str(&json).unwrap();
    assert_eq!(back, flow);
}

#[test]
fn hand_written_json_with_defaults() {
    let json = r#"{
        "start": "oi",
        "human_queue": "atendimento",
        "steps": {
            "oi": {"type": "message", "text": "Olá! Protocolo {{protocolo}}", "next": "menu", "send_protocol": true},
            "menu": {"type": "menu", "text": "Escolha", "options": [
                {"id": "h", "title": "Atendente", "next": "fila"},
                {"id": "d", "title": "Documento", "next": "doc"}
            ]},
            "doc": {"type": "ask", "text": "CPF?", "validator": "cpf_cnpj", "save_to": "contact.code",
                    "next": "fila", "on_fail": "fila"},
            "cond": {"type": "condition", "check": {"type": "business_hours", "queue": "atendimento"},
                     "then_next": "fila", "else_next": "fim"},
            "midia": {"type": "send_media", "media_url_or_id": "123", "kind": "image", "next": "fim"},
            "fila": {"type": "handoff", "queue": "atendimento"},
            "fim": {"type": "end"}
        }
    }"#;
    let flow: Flow = serde_json::from_str(json).unwrap();
    assert_eq!(flow.human_keywords, vec!["atendente", "humano"]);
    assert_eq!(flow.max_invalid_attempts, 3);
    assert_eq!(flow.protocol_text, DEFAULT_PROTOCOL_TEXT);
    assert_eq!(validate_flow(&flow), Ok(()));
    let out = start(&flow, &ctx());
    assert_eq!(out.actions[0], Action::SendProtocol);
}

#[test]
fn runtime_types_serialize() {
    let st: BotState = serde_json::from_str(r#"{"step":"menu"}"#).unwrap();
    assert_eq!(st, state("menu", 0, false));
    let input: BotInput =
        serde_json::from_str(r#"{"button_reply":{"id":"a","title":"A"}}"#).unwrap();
    assert_eq!(
        input,
        BotInput::ButtonReply {
            id: "a".into(),
            title: "A".into()
        }
    );
    assert_eq!(
        serde_json::to_string(&text("oi")).unwrap(),
        r#"{"text":"oi"}"#
    );
    assert_eq!(
        serde_json::to_string(&Action::SendProtocol).unwrap(),
        r#""send_protocol""#
    );
    assert_eq!(
        serde_json::to_string(&say("x")).unwrap(),
        r#"{"send_text":"x"}"#
    );
    let out = start(&demo_flow(), &ctx());
    let back: Outcome = serde_json::from_str(&serde_json::to_string(&out).unwrap()).unwrap();
    assert_eq!(back, out);
    let c: FlowContext = serde_json::from_str("{}").unwrap();
    assert_eq!(c, FlowContext::default());
}

// ---------------------------------------------------------------- properties

fn any_input() -> impl Strategy<Value = BotInput> {
    let words = prop::sample::select(vec![
        "1",
        "2",
        "3",
        "4",
        "5",
        "0",
        "suporte",
        "Financeiro",
        "reclamação",
        "cancelar",
        "atendente",
        "humano",
        "529.982.247-25",
        "12ABC34501DE35",
        "529.982.247-24",
        "oi",
        "",
        "😀",
        "quero falar com atendente",
    ]);
    let ids = prop::sample::select(vec![
        "suporte",
        "financeiro",
        "reclamacao",
        "atendente",
        "velho",
    ]);
    prop_oneof![
        words.prop_map(|w| BotInput::Text(w.to_owned())),
        ".{0,30}".prop_map(BotInput::Text),
        (ids.clone(), ".{0,10}").prop_map(|(id, title)| BotInput::ButtonReply {
            id: id.to_owned(),
            title
        }),
        (ids, ".{0,10}").prop_map(|(id, title)| BotInput::ListReply {
            id: id.to_owned(),
            title
        }),
    ]
}

proptest! {
    /// Whatever the customer types, the demo never panics, only rests on
    /// input steps, and informs the protocol exactly once before any handoff.
    #[test]
    fn demo_conversations_keep_the_sac_rules(inputs in prop::collection::vec(any_input(), 0..12)) {
        let flow = demo_flow();
        let (actions, st) = play(&flow, &inputs);
        if let Some(s) = &st {
            prop_assert!(flow.steps.get(&s.step).is_some_and(Step::waits_for_input));
            prop_assert!(s.invalid_attempts < flow.max_invalid_attempts);
            prop_assert!(s.protocol_sent);
        }
        assert_protocol_before_handoff(&actions);
        let handoffs = actions.iter().filter(|a| matches!(a, Action::Handoff { .. })).count();
        prop_assert!(handoffs <= 1);
        prop_assert_eq!(handoffs == 1, st.is_none());
        for a in &actions {
            if let Action::SaveField { value, .. } = a {
                prop_assert!(Document::parse(value).is_ok());
            }
        }
    }

    #[test]
    fn any_state_and_input_is_handled(step in prop::sample::select(vec!["inicio", "menu", "suporte_documento", "financeiro", "x"]),
                                      attempts in 0u32..10, sent in any::<bool>(), input in any_input()) {
        let flow = demo_flow();
        let out = on_input(&flow, &state(step, attempts, sent), &input, &ctx());
        prop_assert!(!out.actions.is_empty());
        if out.actions.iter().any(|a| matches!(a, Action::Handoff { .. })) && !sent {
            prop_assert_eq!(out.actions.iter().filter(|a| **a == Action::SendProtocol).count(), 1);
        }
    }

    #[test]
    fn match_option_never_panics(answer in ".{0,40}") {
        let Step::Menu { options, .. } = &demo_flow().steps["menu"] else { unreachable!() };
        if let Some(i) = match_option(options, &answer) {
            prop_assert!(i < options.len());
        }
    }

    #[test]
    fn validators_never_panic(input in ".{0,40}") {
        for v in [Validator::CpfCnpj, Validator::Email, Validator::Phone, Validator::Date, Validator::FreeText] {
            let _ = validate_answer(v, &input);
        }
    }
}

fn reminder(date_field: Option<&str>, delay: Option<u32>, next: Option<&str>) -> Step {
    Step::ScheduleReminder {
        template: "lembrete".into(),
        language: "pt_BR".into(),
        delay_minutes: delay,
        date_field: date_field.map(str::to_owned),
        time: None,
        days_before: 1,
        variables: BTreeMap::from([("1".to_owned(), "{{nome}}".to_owned())]),
        text: Some("Combinado, vamos lembrar você.".into()),
        next: next.map(str::to_owned),
    }
}

#[test]
fn a_reminder_is_scheduled_on_the_collected_date_and_the_flow_goes_on() {
    let flow = flow_of(
        "data",
        vec![
            (
                "data",
                ask(Validator::Date, "custom.vencimento", "agendar", "fim"),
            ),
            (
                "agendar",
                reminder(Some("custom.vencimento"), None, Some("fim")),
            ),
            (
                "fim",
                Step::End {
                    text: Some("Até logo!".into()),
                },
            ),
        ],
    );
    let (actions, state) = play(&flow, &[text("25/12/2030")]);
    assert_eq!(state, None);
    let scheduled = actions.iter().find_map(|a| match a {
        Action::ScheduleReminder {
            template,
            when,
            variables,
            ..
        } => Some((template, when, variables)),
        _ => None,
    });
    let (template, when, variables) = scheduled.expect("a reminder");
    assert_eq!(template, "lembrete");
    assert_eq!(
        when,
        &ReminderWhen::OnDate {
            date: "2030-12-25".into(),
            time: "09:00".into(),
            days_before: 1
        }
    );
    assert_eq!(variables["1"], "Ana");
    assert!(actions.contains(&say("Combinado, vamos lembrar você.")));
    assert!(actions.contains(&say("Até logo!")));
}

#[test]
fn a_reminder_needs_a_template_and_a_time() {
    let flow = flow_of("agendar", vec![("agendar", reminder(None, None, None))]);
    let errors = validate_flow(&flow).unwrap_err();
    assert!(
        errors.contains(&FlowError::InvalidReminder {
            step: "agendar".into()
        }),
        "{errors:?}"
    );
    let ok = flow_of("agendar", vec![("agendar", reminder(None, Some(30), None))]);
    let (actions, _) = play(&ok, &[]);
    assert!(actions.iter().any(|a| matches!(
        a,
        Action::ScheduleReminder {
            when: ReminderWhen::AfterMinutes { minutes: 30 },
            ..
        }
    )));
}
