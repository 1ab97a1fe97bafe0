//! The bot end to end through graph-sim webhooks: triage to queues, protocol informed before every
//! hand-off, CPF/CNPJ identification, the human keyword, typed and interactive answers, business
//! hours, inactivity, flow versions, returning customers, the flow and queue API, and protocol
//! numbers unique across two instances on PostgreSQL.

use std::collections::BTreeMap;
use std::time::Duration;

use graph_sim::{Customer, SentMessage};
use serde_json::{Value, json};
use store::conversations::{InboundItem, InboundMessageRecord};

use crate::helpers::{APP_SECRET, Backend, TestApp, spawn_app, spawn_app_with, wait_until};
use crate::on_both_backends;

on_both_backends!(
    happy_path_to_a_person_informs_the_protocol_first,
    support_with_an_invalid_then_a_valid_cpf,
    alphanumeric_cnpj_is_saved_normalized,
    the_human_keyword_works_at_the_greeting_and_mid_identification,
    typed_numbers_and_titles_pick_options,
    interactive_button_and_list_replies,
    too_many_invalid_answers_go_to_a_person,
    outside_business_hours_the_queue_message_is_sent,
    a_flow_edited_mid_conversation_keeps_running_conversations_on_their_version,
    bad_flow_definitions_are_refused_with_clear_errors,
    a_returning_customer_is_greeted_by_name_and_not_asked_again,
    a_customer_is_recognized_by_codigo_on_another_number,
);

const VALID_CPF: &str = "529.982.247-25";
const TIMEOUT: Duration = Duration::from_secs(20);

// ------------------------------------------------------------------------------------- helpers

/// Installs `definition` as the default flow through the API; returns the flow.
async fn install_flow(app: &TestApp, definition: &Value) -> Value {
    let resp = app
        .api_post(
            "/api/flows",
            &json!({ "name": "Teste", "definition": definition }),
        )
        .await;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    assert_eq!(status, 201, "create flow: {body}");
    body["flow"].clone()
}

async fn install_default_flow(app: &TestApp) -> Value {
    install_flow(
        app,
        &serde_json::to_value(server::workers::bot::default_flow()).unwrap(),
    )
    .await
}

async fn create_queue(app: &TestApp, body: Value) -> Value {
    let resp = app.api_post("/api/queues", &body).await;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    assert_eq!(status, 201, "create queue: {body}");
    body["queue"].clone()
}

async fn api_send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: &Value,
) -> (u16, Value) {
    let resp = app
        .http
        .request(method, format!("{}{path}", app.address))
        .bearer_auth(&app.token)
        .json(body)
        .send()
        .await
        .expect("api request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// One customer talking to the bot.
struct Chat<'a> {
    app: &'a TestApp,
    customer: Customer,
}

impl<'a> Chat<'a> {
    fn new(app: &'a TestApp, wa_id: &str, name: &str) -> Chat<'a> {
        Chat {
            app,
            customer: Customer::new(wa_id, name),
        }
    }

    async fn post(&self, payload: Value) {
        assert_eq!(self.app.post_webhook(&payload).await.status(), 200);
    }

    async fn say(&self, text: &str) {
        let (_, payload) = self.app.builder.text(&self.customer, text);
        self.post(payload).await;
    }

    async fn tap_button(&self, id: &str, title: &str) {
        let (_, payload) = self.app.builder.button_reply(&self.customer, id, title);
        self.post(payload).await;
    }

    async fn pick_row(&self, id: &str, title: &str) {
        let (_, payload) = self.app.builder.list_reply(&self.customer, id, title, None);
        self.post(payload).await;
    }

    /// Everything sent to this customer so far.
    fn received(&self) -> Vec<SentMessage> {
        self.app
            .sim
            .sent_messages()
            .into_iter()
            .filter(|m| m.to == self.customer.wa_id)
            .collect()
    }

    /// Waits until `n` messages in total were sent to this customer; returns them all.
    async fn wait_received(&self, n: usize) -> Vec<SentMessage> {
        let what = format!("{n} messages to {}", self.customer.wa_id);
        wait_until(&what, TIMEOUT, || async { self.received().len() >= n }).await;
        let all = self.received();
        assert_eq!(
            all.len(),
            n,
            "more messages than expected: {:#?}",
            texts(&all)
        );
        all
    }

    /// Says `text` and waits for the bot's `n` new answers; returns those.
    async fn ask(&self, text: &str, n: usize) -> Vec<SentMessage> {
        let before = self.received().len();
        self.say(text).await;
        self.wait_received(before + n).await.split_off(before)
    }

    /// The customer's latest conversation as the API lists it.
    async fn conversation(&self) -> Value {
        let list = self.app.api_get("/api/conversations?limit=500").await;
        list["conversations"]
            .as_array()
            .and_then(|cs| {
                cs.iter()
                    .find(|c| c["contact_wa_id"] == self.customer.wa_id.as_str())
            })
            .cloned()
            .unwrap_or_else(|| panic!("no conversation for {}: {list}", self.customer.wa_id))
    }

    async fn wait_state(&self, state: &str) -> Value {
        let what = format!("{} in state {state}", self.customer.wa_id);
        wait_until(&what, TIMEOUT, || async {
            self.conversation().await["state"] == state
        })
        .await;
        self.conversation().await
    }

    /// `GET /api/protocols/{n}` of the latest conversation.
    async fn protocol_view(&self) -> Value {
        let protocol = self.conversation().await["protocol"]
            .as_str()
            .unwrap()
            .to_owned();
        self.app
            .api_get(&format!("/api/protocols/{protocol}"))
            .await
    }

    /// Waits until the bot handed the conversation to `queue`; returns the protocol view.
    async fn wait_queued_in(&self, queue: &str) -> Value {
        self.wait_state("queued").await;
        let view = self.protocol_view().await;
        assert_eq!(view["queue"]["key"], queue, "{view}");
        assert_eq!(view["bot"]["outcome"], "handoff", "{view}");
        view
    }
}

/// The text a customer reads in a sent message (text body or interactive body).
fn text(m: &SentMessage) -> String {
    let b = &m.body;
    b["text"]["body"]
        .as_str()
        .or(b["interactive"]["body"]["text"].as_str())
        .unwrap_or_default()
        .to_owned()
}

fn texts(ms: &[SentMessage]) -> Vec<String> {
    ms.iter().map(text).collect()
}

fn interactive_kind(m: &SentMessage) -> &str {
    m.body["interactive"]["type"].as_str().unwrap_or_default()
}

/// The greeting of the demo flow: the protocol, then the menu as a list of four options.
async fn greeted(chat: &Chat<'_>, first: &str) -> Vec<SentMessage> {
    let sent = chat.ask(first, 2).await;
    let protocol = chat.conversation().await["protocol"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        text(&sent[0]).contains(&protocol),
        "the greeting informs the protocol: {:?}",
        texts(&sent)
    );
    assert_eq!(interactive_kind(&sent[1]), "list", "{:?}", sent[1].body);
    let rows: Vec<&str> = sent[1].body["interactive"]["action"]["sections"][0]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(rows, ["suporte", "financeiro", "reclamacao", "atendente"]);
    sent
}

// ------------------------------------------------------------------------------------- scenarios

async fn happy_path_to_a_person_informs_the_protocol_first(app: TestApp) {
    install_default_flow(&app).await;
    let chat = Chat::new(&app, "5511980000001", "Maria Silva");
    greeted(&chat, "Oi, boa tarde").await;
    assert_eq!(chat.conversation().await["state"], "bot");

    chat.pick_row("atendente", "Falar com atendente").await;
    let all = chat.wait_received(3).await;
    assert_eq!(
        text(&all[2]),
        "Certo! Vou te transferir para um de nossos atendentes."
    );
    let view = chat.wait_queued_in("atendimento").await;
    let protocol = view["protocol"].as_str().unwrap();
    // The protocol went out (and was recorded) before the hand-off.
    let informed = all
        .iter()
        .position(|m| text(m).contains(protocol))
        .expect("protocol sent");
    assert!(informed < 2);
    let sent_at = view["conversation"]["protocol_sent_at"]
        .as_i64()
        .expect("protocol_sent_at");
    assert!(sent_at <= view["conversation"]["queued_at"].as_i64().unwrap());
    assert_eq!(view["conversation"]["subject"], "atendimento");
    assert_eq!(view["contact"]["wa_id"], "5511980000001");
    assert_eq!(view["contact"]["profile_name"], "Maria Silva");

    // The transcript: the bot part (both sides, the list and the choice) is marked "bot"; what the
    // customer writes after the hand-off is the human part, and the bot no longer answers.
    chat.say("Olá, alguém aí?").await;
    let id = chat.conversation().await["id"].as_i64().unwrap();
    let page_path = format!("/api/conversations/{id}/messages?limit=200");
    wait_until("the message after the hand-off", TIMEOUT, || async {
        app.api_get(&page_path).await["messages"]
            .as_array()
            .unwrap()
            .len()
            == 6
    })
    .await;
    let page = app.api_get(&page_path).await;
    let messages = page["messages"].as_array().unwrap();
    let phases: Vec<&str> = messages
        .iter()
        .map(|m| m["phase"].as_str().unwrap())
        .collect();
    assert_eq!(
        phases,
        ["bot", "bot", "bot", "bot", "bot", "human"],
        "{page}"
    );
    let authors: Vec<&str> = messages
        .iter()
        .map(|m| m["author"].as_str().unwrap())
        .collect();
    assert_eq!(
        authors,
        ["customer", "bot", "bot", "customer", "bot", "customer"]
    );
    assert_eq!(
        messages[3]["content"]["interactive"]["list_reply"]["id"],
        "atendente"
    );
    assert_eq!(
        messages[2]["content"]["type"], "list",
        "the list the customer saw is kept"
    );
    assert_eq!(chat.received().len(), 3, "no bot answer after the hand-off");

    // Unknown protocols are 404.
    let (status, _) = api_send(
        &app,
        reqwest::Method::GET,
        "/api/protocols/20000101999999",
        &Value::Null,
    )
    .await;
    assert_eq!(status, 404);
}

async fn support_with_an_invalid_then_a_valid_cpf(app: TestApp) {
    install_default_flow(&app).await;
    let chat = Chat::new(&app, "5511980000002", "João");
    greeted(&chat, "Oi").await;
    let ask = chat.ask("1", 1).await;
    assert!(text(&ask[0]).contains("CPF ou CNPJ"), "{:?}", texts(&ask));

    let retry = chat.ask("123.456.789-00", 1).await;
    let retry = text(&retry[0]);
    assert!(
        retry.contains("dígitos verificadores não conferem"),
        "a helpful reason: {retry}"
    );
    assert!(
        retry.contains("Digite novamente"),
        "and the retry hint: {retry}"
    );
    assert_eq!(
        chat.conversation().await["state"],
        "bot",
        "still identifying"
    );

    let done = chat.ask(VALID_CPF, 1).await;
    assert_eq!(
        text(&done[0]),
        "Obrigado! Você será atendido pela equipe de Suporte em instantes."
    );
    let view = chat.wait_queued_in("suporte").await;
    assert_eq!(view["contact"]["code"], "52998224725", "normalized");
    assert_eq!(view["contact"]["code_formatted"], VALID_CPF);
}

async fn alphanumeric_cnpj_is_saved_normalized(app: TestApp) {
    install_default_flow(&app).await;
    let chat = Chat::new(&app, "5511980000003", "Empresa ABC");
    greeted(&chat, "Olá").await;
    chat.pick_row("suporte", "Suporte").await;
    chat.wait_received(3).await;
    let done = chat.ask("12.abc.345/01de-35", 1).await;
    assert!(
        text(&done[0]).starts_with("Obrigado!"),
        "{:?}",
        texts(&done)
    );
    let view = chat.wait_queued_in("suporte").await;
    assert_eq!(view["contact"]["code"], "12ABC34501DE35");
    assert_eq!(view["contact"]["code_formatted"], "12.ABC.345/01DE-35");
}

async fn the_human_keyword_works_at_the_greeting_and_mid_identification(app: TestApp) {
    install_default_flow(&app).await;

    // Asking for a person in the very first message: greeting with the protocol, then transfer.
    let first = Chat::new(&app, "5511980000004", "Ana");
    let sent = first
        .ask("Quero falar com um ATENDENTE, por favor", 3)
        .await;
    let protocol = first.conversation().await["protocol"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(text(&sent[0]).contains(&protocol));
    assert_eq!(
        text(&sent[2]),
        "Certo! Vou te transferir para um de nossos atendentes."
    );
    first.wait_queued_in("atendimento").await;

    // At the menu.
    let menu = Chat::new(&app, "5511980000005", "Bia");
    greeted(&menu, "Oi").await;
    let sent = menu.ask("humano", 1).await;
    assert_eq!(
        text(&sent[0]),
        "Certo! Vou te transferir para um de nossos atendentes."
    );
    menu.wait_queued_in("atendimento").await;

    // While the bot asks for the CPF: no data is required to reach a person.
    let mid = Chat::new(&app, "5511980000006", "Caio");
    greeted(&mid, "Oi").await;
    mid.ask("suporte", 1).await;
    let sent = mid.ask("prefiro falar com atendente", 1).await;
    assert_eq!(
        text(&sent[0]),
        "Certo! Vou te transferir para um de nossos atendentes."
    );
    let view = mid.wait_queued_in("atendimento").await;
    assert!(view["contact"]["code"].is_null());
}

async fn typed_numbers_and_titles_pick_options(app: TestApp) {
    install_default_flow(&app).await;
    let cases = [
        ("5511980000010", "2", "financeiro"),
        ("5511980000011", "  FINANCEIRO ", "financeiro"),
        ("5511980000012", "Financeíro", "financeiro"),
        ("5511980000013", "opção 3", "reclamacoes"),
        ("5511980000014", "RECLAMAÇÃO/cancelamento", "reclamacoes"),
        ("5511980000015", "quero cancelar", "reclamacoes"),
    ];
    for (wa_id, answer, queue) in cases {
        let chat = Chat::new(&app, wa_id, "Cliente");
        greeted(&chat, "Bom dia").await;
        let sent = chat.ask(answer, 1).await;
        assert!(
            text(&sent[0]).starts_with("Certo! Vou te encaminhar"),
            "{answer}: {:?}",
            texts(&sent)
        );
        chat.wait_queued_in(queue).await;
    }
}

async fn interactive_button_and_list_replies(app: TestApp) {
    let flow = install_default_flow(&app).await;
    let list = Chat::new(&app, "5511980000020", "Lia");
    greeted(&list, "Oi").await;
    list.pick_row("financeiro", "Financeiro").await;
    let sent = list.wait_received(3).await;
    assert_eq!(
        text(&sent[2]),
        "Certo! Vou te encaminhar para a equipe do Financeiro."
    );
    list.wait_queued_in("financeiro").await;

    // Three short options render as reply buttons; a tap picks by id.
    let buttons = json!({
        "start": "menu",
        "human_queue": "atendimento",
        "steps": {
            "menu": {
                "type": "menu",
                "text": "Olá! Protocolo {{protocolo}}. Sobre o que quer falar?",
                "send_protocol": true,
                "options": [
                    {"id": "vendas", "title": "Vendas", "next": "fila_vendas"},
                    {"id": "entrega", "title": "Entrega", "next": "fila_vendas"},
                    {"id": "pessoa", "title": "Falar com pessoa", "next": "pessoa"}
                ]
            },
            "fila_vendas": {"type": "handoff", "queue": "vendas", "priority": 5, "text": "Um vendedor já vem."},
            "pessoa": {"type": "handoff", "queue": "atendimento"}
        }
    });
    let (status, body) = api_send(
        &app,
        reqwest::Method::PUT,
        &format!("/api/flows/{}", flow["id"]),
        &json!({ "definition": buttons }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let chat = Chat::new(&app, "5511980000021", "Rui");
    let sent = chat.ask("Oi", 1).await;
    assert_eq!(interactive_kind(&sent[0]), "button", "{:?}", sent[0].body);
    let protocol = chat.conversation().await["protocol"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(text(&sent[0]).contains(&protocol));
    let ids: Vec<&str> = sent[0].body["interactive"]["action"]["buttons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["reply"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["vendas", "entrega", "pessoa"]);
    chat.tap_button("vendas", "Vendas").await;
    let sent = chat.wait_received(2).await;
    assert_eq!(text(&sent[1]), "Um vendedor já vem.");
    let view = chat.wait_queued_in("vendas").await;
    assert_eq!(view["conversation"]["priority"], 5);
    assert_eq!(
        view["queue"]["name"], "vendas",
        "a queue named by a flow is created when missing"
    );
}

async fn too_many_invalid_answers_go_to_a_person(app: TestApp) {
    install_default_flow(&app).await;
    let menu = Chat::new(&app, "5511980000030", "Zé");
    greeted(&menu, "Oi").await;
    for _ in 0..2 {
        let again = menu.ask("banana", 2).await;
        assert!(
            text(&again[0]).starts_with("Não entendi."),
            "{:?}",
            texts(&again)
        );
        assert_eq!(interactive_kind(&again[1]), "list", "the menu again");
    }
    let sent = menu.ask("banana", 1).await;
    assert_eq!(
        text(&sent[0]),
        "Certo! Vou te transferir para um de nossos atendentes."
    );
    menu.wait_queued_in("atendimento").await;

    // At the CPF question the configured path is taken (the support queue, without a code).
    let ask = Chat::new(&app, "5511980000031", "Lu");
    greeted(&ask, "Oi").await;
    ask.ask("1", 1).await;
    ask.ask("111", 1).await;
    ask.ask("22222222222", 1).await;
    let sent = ask.ask("33", 1).await;
    assert!(
        text(&sent[0]).starts_with("Obrigado!"),
        "{:?}",
        texts(&sent)
    );
    let view = ask.wait_queued_in("suporte").await;
    assert!(view["contact"]["code"].is_null());
}

async fn outside_business_hours_the_queue_message_is_sent(app: TestApp) {
    install_default_flow(&app).await;
    // A queue whose week has no open interval is closed now, whatever the day.
    let closed = json!({ "time_zone": "America/Sao_Paulo", "weekly": {} });
    let financeiro = create_queue(
        &app,
        json!({
            "key": "financeiro",
            "name": "Financeiro",
            "business_hours": closed,
            "outside_hours_message": "O Financeiro atende de segunda a sexta, das 8h às 18h. Sua solicitação foi registrada com o protocolo {{protocolo}}.",
            "outside_hours_action": "wait"
        }),
    )
    .await;
    assert_eq!(financeiro["open_now"], false);
    create_queue(
        &app,
        json!({
            "key": "reclamacoes",
            "name": "Reclamações",
            "business_hours": closed,
            "outside_hours_message": "Estamos fechados. Protocolo {{protocolo}}; retornaremos no próximo dia útil.",
            "outside_hours_action": "end"
        }),
    )
    .await;

    // "wait": the message, and the demand waits in the queue for the next shift.
    let waits = Chat::new(&app, "5511980000040", "Ivo");
    greeted(&waits, "Oi").await;
    let sent = waits.ask("2", 2).await;
    let protocol = waits.conversation().await["protocol"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        text(&sent[1]).starts_with("O Financeiro atende"),
        "{:?}",
        texts(&sent)
    );
    assert!(text(&sent[1]).contains(&protocol));
    waits.wait_queued_in("financeiro").await;

    // "end": the message, and the conversation is closed with its protocol registered.
    let ends = Chat::new(&app, "5511980000041", "Eva");
    greeted(&ends, "Oi").await;
    let sent = ends.ask("3", 2).await;
    assert!(
        text(&sent[1]).starts_with("Estamos fechados."),
        "{:?}",
        texts(&sent)
    );
    ends.wait_state("closed").await;
    let view = ends.protocol_view().await;
    assert_eq!(view["bot"]["outcome"], "outside_hours");
    assert!(view["conversation"]["closed_at"].is_i64());

    // Opening the queue (PATCH) takes effect for the next hand-off; bad schedules are refused.
    let (status, body) = api_send(
        &app,
        reqwest::Method::PATCH,
        &format!("/api/queues/{}", financeiro["id"]),
        &json!({ "business_hours": { "weekly": { "monday": ["08:00-18:00"] } } }),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Dia da semana"),
        "{body}"
    );
    let (status, body) = api_send(
        &app,
        reqwest::Method::PATCH,
        &format!("/api/queues/{}", financeiro["id"]),
        &json!({ "business_hours": null }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["queue"]["open_now"], true);
    let open = Chat::new(&app, "5511980000042", "Léo");
    greeted(&open, "Oi").await;
    let sent = open.ask("2", 1).await;
    assert_eq!(
        text(&sent[0]),
        "Certo! Vou te encaminhar para a equipe do Financeiro."
    );
    open.wait_queued_in("financeiro").await;
}

async fn inactivity_closes_as_abandoned(app: TestApp) {
    install_default_flow(&app).await;
    let chat = Chat::new(&app, "5511980000050", "Dora");
    greeted(&chat, "Oi").await;
    let first_protocol = chat.conversation().await["protocol"]
        .as_str()
        .unwrap()
        .to_owned();
    let reminder = chat.wait_received(3).await;
    assert!(
        text(&reminder[2]).starts_with("Você ainda está aí?"),
        "{:?}",
        texts(&reminder)
    );
    assert_eq!(
        chat.conversation().await["state"],
        "bot",
        "a reminder does not close"
    );
    let closing = chat.wait_received(4).await;
    assert!(
        text(&closing[3]).contains(&first_protocol),
        "{:?}",
        texts(&closing)
    );
    chat.wait_state("closed").await;
    let view = chat.protocol_view().await;
    assert_eq!(view["bot"]["outcome"], "abandoned_in_bot");

    // A new message is a new demand: a new conversation with a new protocol.
    chat.ask("Oi de novo", 2).await;
    let again = chat.conversation().await;
    assert_ne!(again["protocol"], first_protocol.as_str());
    assert_eq!(again["state"], "bot");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_inactivity_reminds_then_closes() {
    let short = |c: &mut server::config::Config| {
        c.bot_reminder_after_secs = 1;
        c.bot_close_after_secs = 2;
    };
    if let Some(app) = spawn_app_with(Backend::Sqlite, short).await {
        inactivity_closes_as_abandoned(app).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_inactivity_reminds_then_closes() {
    let short = |c: &mut server::config::Config| {
        c.bot_reminder_after_secs = 1;
        c.bot_close_after_secs = 2;
    };
    if let Some(app) = spawn_app_with(Backend::Postgres, short).await {
        inactivity_closes_as_abandoned(app).await;
    }
}

async fn a_flow_edited_mid_conversation_keeps_running_conversations_on_their_version(app: TestApp) {
    let flow = install_default_flow(&app).await;
    assert_eq!(flow["version"], 1);
    let running = Chat::new(&app, "5511980000060", "Gil");
    greeted(&running, "Oi").await;

    let mut v2 = flow["definition"].clone();
    v2["steps"]["inicio"]["text"] = json!("Versão 2! Seu protocolo é {{protocolo}}.");
    v2["steps"]["financeiro"]["text"] = json!("Financeiro, versão 2.");
    let (status, body) = api_send(
        &app,
        reqwest::Method::PUT,
        &format!("/api/flows/{}", flow["id"]),
        &json!({ "definition": v2 }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["flow"]["version"], 2);

    // The conversation that started on version 1 finishes on it.
    let sent = running.ask("2", 1).await;
    assert_eq!(
        text(&sent[0]),
        "Certo! Vou te encaminhar para a equipe do Financeiro."
    );
    running.wait_queued_in("financeiro").await;

    // A new one runs version 2.
    let fresh = Chat::new(&app, "5511980000061", "Hugo");
    let sent = fresh.ask("Oi", 2).await;
    assert!(
        text(&sent[0]).starts_with("Versão 2!"),
        "{:?}",
        texts(&sent)
    );
    let sent = fresh.ask("2", 1).await;
    assert_eq!(text(&sent[0]), "Financeiro, versão 2.");

    let detail = app.api_get(&format!("/api/flows/{}", flow["id"])).await;
    let versions: Vec<i64> = detail["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_i64().unwrap())
        .collect();
    assert_eq!(versions, [2, 1]);
    assert_eq!(
        detail["flow"]["definition"]["steps"]["financeiro"]["text"],
        "Financeiro, versão 2."
    );

    // A disabled flow: new conversations go straight to the desk, without the bot.
    let (status, body) = api_send(
        &app,
        reqwest::Method::PUT,
        &format!("/api/flows/{}", flow["id"]),
        &json!({ "enabled": false }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["flow"]["enabled"], false);
    assert_eq!(body["flow"]["version"], 2, "no definition, no new version");
    let off = Chat::new(&app, "5511980000062", "Ivo");
    off.say("Oi").await;
    app.inbox_drained().await;
    assert_eq!(off.conversation().await["state"], "queued");
    assert!(off.received().is_empty());
}

async fn bad_flow_definitions_are_refused_with_clear_errors(app: TestApp) {
    let refused = |definition: Value| {
        let app = &app;
        async move {
            let resp = app
                .api_post("/api/flows", &json!({ "definition": definition }))
                .await;
            let status = resp.status();
            let body: Value = resp.json().await.unwrap();
            assert_eq!(status, 400, "{body}");
            assert_eq!(body["error"]["code"], "invalid_flow");
            body["error"]["errors"].as_array().unwrap().clone()
        }
    };
    let codes = |errors: &[Value]| -> Vec<String> {
        errors
            .iter()
            .map(|e| e["code"].as_str().unwrap().to_owned())
            .collect()
    };
    let menu_to = |first: &str| {
        json!({
            "type": "menu", "text": "Escolha:",
            "options": [
                {"id": "a", "title": "Assunto", "next": first},
                {"id": "h", "title": "Atendente", "next": "humano"}
            ]
        })
    };

    // Steps that loop without ever waiting for the customer.
    let cycle = json!({
        "start": "menu", "human_queue": "atendimento",
        "steps": {
            "menu": menu_to("a"),
            "a": {"type": "message", "text": "A", "next": "b"},
            "b": {"type": "message", "text": "B", "next": "a"},
            "humano": {"type": "handoff", "queue": "atendimento"}
        }
    });
    let errors = refused(cycle).await;
    assert_eq!(codes(&errors), ["automatic_cycle"]);
    assert!(
        errors[0]["message"].as_str().unwrap().contains("ciclo"),
        "{errors:?}"
    );

    // A step pointing nowhere.
    let dangling = json!({
        "start": "menu", "human_queue": "atendimento",
        "steps": { "menu": menu_to("sumiu"), "humano": {"type": "handoff", "queue": "atendimento"} }
    });
    let errors = refused(dangling).await;
    assert_eq!(codes(&errors), ["dangling_reference"]);
    assert!(
        errors[0]["message"].as_str().unwrap().contains("\"sumiu\""),
        "{errors:?}"
    );

    // A first menu whose only way to a person asks for the CPF first (Decreto 11.034, art. 4º §4º).
    let no_human = json!({
        "start": "menu", "human_queue": "atendimento",
        "steps": {
            "menu": {"type": "menu", "text": "Escolha:", "options": [{"id": "s", "title": "Suporte", "next": "cpf"}]},
            "cpf": {"type": "ask", "text": "CPF?", "validator": "cpf_cnpj", "save_to": "contact.code",
                    "next": "fila", "on_fail": "fila"},
            "fila": {"type": "handoff", "queue": "suporte"}
        }
    });
    let errors = refused(no_human).await;
    assert_eq!(codes(&errors), ["no_human_from_first_menu"]);
    assert!(
        errors[0]["message"].as_str().unwrap().contains("atendente"),
        "{errors:?}"
    );

    // Not a flow at all.
    let errors = refused(json!({"steps": 3})).await;
    assert_eq!(codes(&errors), ["invalid_json"]);
    assert!(
        app.api_get("/api/flows").await["flows"]
            .as_array()
            .unwrap()
            .is_empty(),
        "nothing saved"
    );

    // The editor's validate + preview.
    let resp = app
        .api_post(
            "/api/flows/validate",
            &json!({ "definition": {"start": "x", "human_queue": "", "steps": {}} }),
        )
        .await;
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["valid"], false);
    assert_eq!(
        codes(body["errors"].as_array().unwrap()),
        ["missing_human_queue", "unknown_start"]
    );
    let definition = serde_json::to_value(server::workers::bot::default_flow()).unwrap();
    let resp = app
        .api_post("/api/flows/validate", &json!({ "definition": definition }))
        .await;
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["valid"], true, "{body}");
    let preview = &body["preview"];
    assert!(
        preview["messages"][0]["body"]
            .as_str()
            .unwrap()
            .starts_with("Olá! Bem-vindo ao atendimento. Seu protocolo é ")
    );
    assert_eq!(preview["messages"][1]["type"], "list");
    assert_eq!(preview["messages"][1]["rows"].as_array().unwrap().len(), 4);
    assert_eq!(preview["then"]["waits_at"], "menu");
    assert_eq!(
        body["warnings"].as_array().unwrap().len(),
        4,
        "the four queues do not exist yet: {body}"
    );

    // Writes are for admins; agents may read.
    let agent = app.person(store::auth::Role::Agent, "Pessoa").await;
    assert_eq!(agent.get("/api/flows").await.0, 200);
    let (status, _) = agent
        .post("/api/flows", &json!({ "definition": definition }))
        .await;
    assert_eq!(status, 403);
}

async fn a_returning_customer_is_greeted_by_name_and_not_asked_again(app: TestApp) {
    install_default_flow(&app).await;
    let chat = Chat::new(&app, "5511980000070", "Ana Souza");
    let sent = greeted(&chat, "Oi").await;
    assert!(
        text(&sent[0]).starts_with("Olá! Bem-vindo ao atendimento."),
        "a first contact: {:?}",
        texts(&sent)
    );
    chat.ask("suporte", 1).await;
    chat.ask(VALID_CPF, 1).await;
    chat.wait_queued_in("suporte").await;
    // The desk finalizes the demand.
    let first = chat.conversation().await;
    assert!(
        app.store
            .close_conversation(first["id"].as_i64().unwrap(), "finalized")
            .await
            .unwrap()
    );

    let sent = greeted(&chat, "Oi, sou eu de novo").await;
    let second = chat.conversation().await;
    assert_ne!(
        second["protocol"], first["protocol"],
        "a new demand, a new protocol"
    );
    assert_eq!(
        text(&sent[0]),
        format!(
            "Olá, Ana Souza! Que bom falar com você de novo. Seu protocolo é {}.",
            second["protocol"].as_str().unwrap()
        )
    );
    // Support does not ask the CPF the customer already gave.
    let sent = chat.ask("1", 1).await;
    assert_eq!(
        text(&sent[0]),
        "Obrigado! Você será atendido pela equipe de Suporte em instantes."
    );
    let view = chat.wait_queued_in("suporte").await;
    assert_eq!(view["contact"]["code"], "52998224725");
}

async fn a_customer_is_recognized_by_codigo_on_another_number(app: TestApp) {
    let flow = json!({
        "start": "menu", "human_queue": "atendimento",
        "steps": {
            "menu": {"type": "menu", "text": "Protocolo {{protocolo}}. Escolha:", "send_protocol": true,
                     "options": [{"id": "s", "title": "Suporte", "next": "cpf"},
                                 {"id": "h", "title": "Atendente", "next": "humano"}]},
            "cpf": {"type": "ask", "text": "Qual o seu CPF?", "validator": "cpf_cnpj", "save_to": "contact.code",
                    "next": "nome", "on_fail": "fila"},
            "nome": {"type": "ask", "text": "Qual o seu nome?", "validator": "free_text", "save_to": "contact.name",
                     "next": "fila", "on_fail": "fila"},
            "fila": {"type": "handoff", "queue": "suporte", "text": "Obrigado, {{contact.name}}!"},
            "humano": {"type": "handoff", "queue": "atendimento"}
        }
    });
    install_flow(&app, &flow).await;
    let old_phone = Chat::new(&app, "5511980000080", "Ana");
    old_phone.ask("Oi", 1).await;
    old_phone.ask("1", 1).await;
    let sent = old_phone.ask(VALID_CPF, 1).await;
    assert_eq!(text(&sent[0]), "Qual o seu nome?");
    let sent = old_phone.ask("Ana Souza", 1).await;
    assert_eq!(text(&sent[0]), "Obrigado, Ana Souza!");
    old_phone.wait_queued_in("suporte").await;

    // Same person, new number: the Código brings the name, so it is not asked.
    let new_phone = Chat::new(&app, "5521990000081", "Ana S.");
    new_phone.ask("Oi", 1).await;
    new_phone.ask("1", 1).await;
    let sent = new_phone.ask("52998224725", 1).await;
    assert_eq!(text(&sent[0]), "Obrigado, Ana Souza!");
    let view = new_phone.wait_queued_in("suporte").await;
    assert_eq!(view["contact"]["name"], "Ana Souza");
    assert_eq!(view["contact"]["code"], "52998224725");
}

async fn the_demo_flow_and_its_queues_are_seeded(app: TestApp) {
    let flows = app.api_get("/api/flows").await;
    let flows = flows["flows"].as_array().unwrap();
    assert_eq!(flows.len(), 1);
    assert!(
        flows[0]["channel_id"].is_null(),
        "the default of every channel"
    );
    assert_eq!(flows[0]["definition"]["start"], "boas_vindas");
    let queues = app.api_get("/api/queues").await;
    let by_key: BTreeMap<&str, &Value> = queues["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| (q["key"].as_str().unwrap(), q))
        .collect();
    assert_eq!(
        by_key.keys().copied().collect::<Vec<_>>(),
        ["atendimento", "financeiro", "reclamacoes", "suporte"]
    );
    assert_eq!(by_key["atendimento"]["open_now"], true, "24/7");
    assert_eq!(by_key["reclamacoes"]["name"], "Reclamações e cancelamentos");
    assert_eq!(
        by_key["suporte"]["business_hours"]["weekly"]["mon"],
        json!(["08:00-18:00"])
    );
    assert!(by_key["suporte"]["business_hours"]["weekly"]["sat"].is_null());
    // The greeting does not depend on the hour.
    let chat = Chat::new(&app, "5511980000090", "Nina");
    greeted(&chat, "Oi").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_the_demo_flow_and_its_queues_are_seeded_on_first_start() {
    if let Some(app) = spawn_app_with(Backend::Sqlite, |c| c.seed_demo_flow = true).await {
        the_demo_flow_and_its_queues_are_seeded(app).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_the_demo_flow_and_its_queues_are_seeded_on_first_start() {
    if let Some(app) = spawn_app_with(Backend::Postgres, |c| c.seed_demo_flow = true).await {
        the_demo_flow_and_its_queues_are_seeded(app).await;
    }
}

// ----------------------------------------------------------------- protocol numbers, PostgreSQL

/// Protocol numbers stay unique and gap-free per day with concurrent first messages at two
/// instances on one PostgreSQL, and with two stores allocating at the same time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_protocols_are_unique_and_sequential_across_instances() {
    let Some(app) = spawn_app(Backend::Postgres).await else {
        return;
    };
    let second = app.spawn_second_instance().await;
    let first = app.address.clone();

    const CUSTOMERS: usize = 60;
    let mut tasks = Vec::new();
    for i in 0..CUSTOMERS {
        let target = if i % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        let customer = Customer::new(format!("55119870{i:05}"), format!("Cliente {i}"));
        let (_, payload) = app.builder.text(&customer, "Oi");
        let http = app.http.clone();
        tasks.push(tokio::spawn(async move {
            let body = graph_sim::to_meta_json(&payload);
            let resp = http
                .post(format!("{target}/webhooks/whatsapp"))
                .header("content-type", "application/json")
                .header("x-hub-signature-256", graph_sim::sign(APP_SECRET, &body))
                .body(body)
                .send()
                .await
                .expect("webhook");
            assert_eq!(resp.status(), 200);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    wait_until("every conversation", TIMEOUT, || async {
        app.api_get("/api/conversations?limit=500").await["conversations"]
            .as_array()
            .unwrap()
            .len()
            == CUSTOMERS
    })
    .await;

    // Two more stores on the same database allocate concurrently, outside the inbox lease.
    let stores = [
        store::Store::connect(&app.database_url).await.unwrap(),
        store::Store::connect(&app.database_url).await.unwrap(),
    ];
    let cfg = domain::protocol::ProtocolConfig::default();
    let mut tasks = Vec::new();
    for (n, s) in stores.iter().enumerate() {
        for i in 0..30 {
            let s = s.clone();
            let cfg = cfg.clone();
            let channel_id = app.channel_id;
            tasks.push(tokio::spawn(async move {
                let item = InboundItem::Message(InboundMessageRecord {
                    channel_id,
                    wa_id: format!("55219{n}{i:06}"),
                    profile_name: None,
                    wamid: format!("wamid.direct.{n}.{i}"),
                    kind: "text".into(),
                    body: Some("Oi".into()),
                    content_json: json!({"type": "text", "text": {"body": "Oi"}}).to_string(),
                    reply_to_wamid: None,
                    wa_timestamp_ms: None,
                    media: None,
                });
                // No inbox row: the final "mark done" touches nothing.
                s.apply_inbound(-1, &[item], &cfg)
                    .await
                    .unwrap()
                    .opened_conversations
                    .len()
            }));
        }
    }
    let mut opened = 0;
    for t in tasks {
        opened += t.await.unwrap();
    }
    assert_eq!(opened, 60);

    let all = app.api_get("/api/conversations?limit=500").await;
    let protocols: Vec<String> = all["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["protocol"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(protocols.len(), CUSTOMERS + 60);
    let mut per_day: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for p in &protocols {
        assert_eq!(p.len(), 14, "YYYYMMDD + 6 digits: {p}");
        per_day
            .entry(p[..8].to_owned())
            .or_default()
            .push(p[8..].parse().unwrap());
    }
    // A run across midnight splits into two days; each day's numbers are 1..=n.
    for (day, mut seqs) in per_day {
        seqs.sort();
        let expected: Vec<i64> = (1..=seqs.len() as i64).collect();
        assert_eq!(seqs, expected, "day {day}: unique and without gaps");
    }
    for s in stores {
        s.close().await;
    }
}
