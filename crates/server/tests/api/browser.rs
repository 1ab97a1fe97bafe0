//! The web app in a real browser: headless Chromium driven through chromedriver (WebDriver) with
//! `fantoccini`, one browser session per person (their own profile, cookies and WebSocket).
//!
//! - `agents_work_a_customer_from_the_simulator_to_finalize`: the customer writes from the
//!   `/simulator` page; the conversation appears live on Ana's desk; she answers (the answer and
//!   its read ticks reach the phone), receives a picture, attaches a PDF, fills the protocol form
//!   with an invalid then a valid CPF and transfers the conversation to Bia, signed in in a second
//!   browser; Bia sees the whole history and finalizes it (disposition, required field), and the
//!   customer gets the closing message.
//! - `the_admin_changes_the_first_password_edits_a_flow_and_reads_english`: the forced password
//!   dialog of a first sign-in, the bot flow editor and the English translation.
//!
//! Every step waits for a condition of the page with a deadline (the DOM is polled), never for a
//! fixed time. Chromium and chromedriver come from Debian (`apt-get install chromium
//! chromium-driver`, done by `.ci/run`). Without chromedriver the tests print a NOTICE and pass,
//! except under `CI=true`, where they fail. When a test fails, each of its browsers is saved as
//! `target/browser-screenshots/<test>-<browser>.png` (and `.html`); with
//! `ATENDE_BROWSER_SCREENSHOTS=1` they are saved on success too.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail, ensure};
use fantoccini::elements::Element;
use fantoccini::error::{CmdError, ErrorStatus};
use fantoccini::{Client, ClientBuilder, Locator};
use futures::FutureExt;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::desk::{agent, conversation};
use crate::helpers::{Backend, PERSON_PASSWORD, Person, TestApp, free_port, spawn_app_with};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
/// Longest wait for anything a page should show. Live updates take milliseconds; the slowest
/// steps are the simulator's poll (1 s), the form's autosave (0.7 s) and media downloads.
const STEP_TIMEOUT: Duration = Duration::from_secs(15);
/// The simulator's default customer.
const CUSTOMER: &str = "5511987654321";
/// A 1x1 PNG, the picture the customer sends.
const PNG_1X1: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0b, 0x49, 0x44, 0x41, 0x54, 0x78, 0xda, 0x63, 0x60, 0x00, 0x02, 0x00,
    0x00, 0x05, 0x00, 0x01, 0xe9, 0xfa, 0xdc, 0xd8, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44,
    0xae, 0x42, 0x60, 0x82,
];
/// A small but well-formed PDF, the document the agent attaches.
const PDF: &[u8] = b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n\
2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\n\
trailer << /Root 1 0 R >>\n%%EOF\n";

// ---------- chromedriver and browser sessions ----------

/// One chromedriver process; every browser session of a test goes through it. Killed when
/// dropped (the sessions are closed before, which quits their Chromium).
pub(crate) struct Chromedriver {
    url: String,
    _process: Child,
}

impl Chromedriver {
    /// Starts chromedriver, or returns None (after a NOTICE) when it is not installed and this is
    /// not CI; under CI=true a missing chromedriver fails the test.
    pub(crate) async fn start_or_skip() -> Option<Chromedriver> {
        if !Path::new(CHROMEDRIVER).exists() {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!(
                    "{CHROMEDRIVER} is required under CI=true (apt-get install chromium chromium-driver)"
                );
            }
            eprintln!(
                "NOTICE: skipping a browser test: {CHROMEDRIVER} is not installed (apt-get install chromium chromium-driver)"
            );
            return None;
        }
        Some(
            Self::start()
                .await
                .unwrap_or_else(|e| panic!("cannot start chromedriver: {e:#}")),
        )
    }

    async fn start() -> anyhow::Result<Chromedriver> {
        // The port was free a moment ago; if chromedriver cannot take it, it exits and we try another.
        let mut last_error = anyhow!("chromedriver did not start");
        for _ in 0..3 {
            let port = free_port();
            let mut process = Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .context("cannot start chromedriver")?;
            let url = format!("http://127.0.0.1:{port}");
            match wait_driver_ready(&mut process, &url).await {
                Ok(()) => {
                    return Ok(Chromedriver {
                        url,
                        _process: process,
                    });
                }
                Err(e) => last_error = e,
            }
        }
        Err(last_error)
    }

    /// A new Chromium session (its own profile) on a 1366x768 page, named for its screenshots.
    pub(crate) async fn open(&self, name: &'static str, base: &str) -> anyhow::Result<Page> {
        let profile = tempfile::tempdir()?;
        let args = [
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--no-first-run".to_owned(),
            "--window-size=1366,768".to_owned(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("browserName".into(), json!("chrome"));
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({ "binary": CHROMIUM, "args": args }),
        );
        let client = ClientBuilder::rustls()
            .context("cannot build the WebDriver client")?
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .with_context(|| format!("cannot open {name}'s Chromium session"))?;
        // A 1366x768 laptop screen: the page itself gets that size, whatever the window's frame takes.
        let frame = client
            .execute("return [window.outerWidth - window.innerWidth, window.outerHeight - window.innerHeight]", vec![])
            .await?;
        let extra = |i: usize| frame[i].as_u64().unwrap_or(0).min(400) as u32;
        client
            .set_window_size(1366 + extra(0), 768 + extra(1))
            .await?;
        Ok(Page {
            name,
            base: base.to_owned(),
            client,
            _profile: profile,
        })
    }
}

/// Polls chromedriver's `/status` until it says ready (bounded).
async fn wait_driver_ready(driver: &mut Child, url: &str) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()?;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = driver.try_wait()? {
            bail!("chromedriver exited early: {status}");
        }
        if let Ok(resp) = http.get(format!("{url}/status")).send().await
            && let Ok(body) = resp.json::<Value>().await
            && body["value"]["ready"] == true
        {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("chromedriver was not ready within 15 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One person's browser: a WebDriver session on Atende (`base` is its address). Every wait polls
/// the page until a condition holds, failing after `STEP_TIMEOUT` with what the page showed.
pub(crate) struct Page {
    name: &'static str,
    base: String,
    client: Client,
    _profile: tempfile::TempDir,
}

/// Errors of a click that a re-rendered or not yet usable element explains: worth a retry.
fn retriable(e: &CmdError) -> bool {
    e.is_stale_element_reference()
        || e.is_element_not_interactable()
        || e.is_no_such_element()
        || matches!(e, CmdError::Standard(w) if w.error == ErrorStatus::ElementClickIntercepted)
}

fn truthy(v: &Value) -> bool {
    !matches!(v, Value::Null | Value::Bool(false))
}

impl Page {
    pub(crate) async fn goto(&self, path: &str) -> anyhow::Result<()> {
        self.client.goto(&format!("{}{path}", self.base)).await?;
        Ok(())
    }

    pub(crate) async fn eval(&self, script: &str, args: Vec<Value>) -> anyhow::Result<Value> {
        Ok(self.client.execute(script, args).await?)
    }

    /// Runs `script` until it returns something other than null or false, and returns that.
    pub(crate) async fn wait_js(
        &self,
        what: &str,
        script: &str,
        args: Vec<Value>,
    ) -> anyhow::Result<Value> {
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            let v = self.eval(script, args.clone()).await?;
            if truthy(&v) {
                return Ok(v);
            }
            if Instant::now() >= deadline {
                bail!("[{}] {what}: not within {STEP_TIMEOUT:?}", self.name);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The texts of the elements matching `css` (what the page shows, for error messages).
    async fn texts(&self, css: &str) -> Vec<String> {
        let script = "return [...document.querySelectorAll(arguments[0])].map(e => e.innerText);";
        match self.eval(script, vec![json!(css)]).await {
            Ok(Value::Array(items)) => items
                .iter()
                .map(|t| t.as_str().unwrap_or_default().replace('\n', " "))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Waits for an element matching `css` and returns it.
    pub(crate) async fn wait_for(&self, css: &str) -> anyhow::Result<Element> {
        self.wait_js(
            &format!("{css:?} to appear"),
            "return document.querySelector(arguments[0]) !== null;",
            vec![json!(css)],
        )
        .await?;
        Ok(self.client.find(Locator::Css(css)).await?)
    }

    async fn wait_gone(&self, css: &str) -> anyhow::Result<()> {
        self.wait_js(
            &format!("{css:?} to go away"),
            "return document.querySelector(arguments[0]) === null;",
            vec![json!(css)],
        )
        .await
        .map(drop)
    }

    /// Waits until an element matching `css` shows `text` (in its rendered text).
    pub(crate) async fn wait_text(&self, css: &str, text: &str) -> anyhow::Result<()> {
        let script = "return [...document.querySelectorAll(arguments[0])].some(e => e.innerText.includes(arguments[1]));";
        let found = self
            .wait_js(
                &format!("{css:?} to show {text:?}"),
                script,
                vec![json!(css), json!(text)],
            )
            .await;
        match found {
            Ok(_) => Ok(()),
            Err(e) => bail!("{e}; it shows {:?}", self.texts(css).await),
        }
    }

    /// Waits until the form field `css` holds exactly `value`.
    pub(crate) async fn wait_value(&self, css: &str, value: &str) -> anyhow::Result<()> {
        let script = "const e = document.querySelector(arguments[0]); return !!e && e.value === arguments[1];";
        let found = self
            .wait_js(
                &format!("{css:?} to hold {value:?}"),
                script,
                vec![json!(css), json!(value)],
            )
            .await;
        match found {
            Ok(_) => Ok(()),
            Err(e) => bail!("{e}; it holds {:?}", self.value(css).await),
        }
    }

    async fn value(&self, css: &str) -> String {
        let script = "const e = document.querySelector(arguments[0]); return e ? e.value : null;";
        match self.eval(script, vec![json!(css)]).await {
            Ok(Value::String(s)) => s,
            other => format!("{other:?}"),
        }
    }

    /// The rendered text of the first element matching `css` (waiting for it).
    async fn text(&self, css: &str) -> anyhow::Result<String> {
        Ok(self.wait_for(css).await?.text().await?)
    }

    /// An attribute of the first element matching `css` (waiting for it).
    async fn attr(&self, css: &str, name: &str) -> anyhow::Result<String> {
        let element = self.wait_for(css).await?;
        element
            .attr(name)
            .await?
            .ok_or_else(|| anyhow!("[{}] {css:?} has no {name}", self.name))
    }

    /// Clicks the first element matching `css` once it exists and can be clicked. Lists are
    /// re-rendered by live updates, so a click that met a replaced element is tried again.
    pub(crate) async fn click(&self, css: &str) -> anyhow::Result<()> {
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            let last = match self.try_click(css).await? {
                None => return Ok(()),
                Some(why) => why,
            };
            if Instant::now() >= deadline {
                bail!("[{}] cannot click {css:?}: {last}", self.name);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// One attempt: None when clicked, else why not (when worth another attempt).
    async fn try_click(&self, css: &str) -> anyhow::Result<Option<String>> {
        let Some(element) = self
            .client
            .find_all(Locator::Css(css))
            .await?
            .into_iter()
            .next()
        else {
            return Ok(Some("no such element".into()));
        };
        match element.click().await {
            Ok(()) => Ok(None),
            Err(e) if retriable(&e) => Ok(Some(e.to_string())),
            Err(e) => Err(e.into()),
        }
    }

    /// Types `text` into the field `css` (waiting for it), as keystrokes.
    pub(crate) async fn type_into(&self, css: &str, text: &str) -> anyhow::Result<()> {
        self.wait_for(css).await?.send_keys(text).await?;
        Ok(())
    }

    /// Empties the field `css`, then types `text` into it.
    pub(crate) async fn replace_text(&self, css: &str, text: &str) -> anyhow::Result<()> {
        let field = self.wait_for(css).await?;
        field.clear().await?;
        field.send_keys(text).await?;
        Ok(())
    }

    /// Chooses the option `value` of the select `css`, as a click on it does (input and change
    /// events), once the option is there.
    pub(crate) async fn select(&self, css: &str, value: &str) -> anyhow::Result<()> {
        self.wait_for(&format!("{css} option[value='{value}']"))
            .await?;
        self.client
            .find(Locator::Css(css))
            .await?
            .select_by_value(value)
            .await?;
        Ok(())
    }

    /// Waits until a picture (`img.media-image`) inside `css` has been loaded by the browser.
    async fn wait_loaded_image(&self, css: &str) -> anyhow::Result<()> {
        let script = "return [...document.querySelectorAll(arguments[0] + ' img.media-image')]
            .some(i => i.complete && i.naturalWidth > 0);";
        self.wait_js(
            &format!("a loaded picture in {css:?}"),
            script,
            vec![json!(css)],
        )
        .await
        .map(drop)
    }

    /// Signs in with the login form already on the page and waits for the shell.
    pub(crate) async fn submit_login(&self, email: &str, password: &str) -> anyhow::Result<()> {
        self.replace_text("#login-email", email).await?;
        self.replace_text("#login-password", password).await?;
        self.click("#login-submit").await?;
        self.wait_for("#user-name").await?;
        Ok(())
    }

    /// Sets presence with the top bar's switch (`available`, `paused:<reason>`, `offline`).
    async fn set_presence(&self, value: &str) -> anyhow::Result<()> {
        self.select("#presence-select", value).await?;
        let presence = value.split(':').next().unwrap_or(value);
        self.wait_for(&format!(
            "#presence[data-presence={presence}] #presence-select:not([disabled])"
        ))
        .await?;
        Ok(())
    }

    /// Marks the document, to prove later that the page was never reloaded (updates came live).
    async fn mark_document(&self) -> anyhow::Result<()> {
        self.eval("window.__sameDocument = true; return null;", vec![])
            .await?;
        Ok(())
    }

    async fn ensure_same_document(&self) -> anyhow::Result<()> {
        let same = self
            .eval("return window.__sameDocument === true;", vec![])
            .await?;
        ensure!(
            same == json!(true),
            "[{}] the page was reloaded: updates must arrive live",
            self.name
        );
        Ok(())
    }

    /// Saves the page as `<test>-<name>.png` and `.html` under target/browser-screenshots/.
    async fn save(&self, test: &str) -> anyhow::Result<PathBuf> {
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!("{test}-{}.png", self.name));
        std::fs::write(&path, self.client.screenshot().await?)?;
        if let Ok(html) = self.client.source().await {
            std::fs::write(path.with_extension("html"), html)?;
        }
        Ok(path)
    }
}

fn screenshot_dir() -> PathBuf {
    // The workspace's target/ is two levels above this crate.
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("browser-screenshots")
}

/// Runs a scenario over `pages`; when it fails (error or panic), saves every page for
/// debugging. The browser sessions are closed either way (quitting their Chromium), then a
/// failure fails the test.
pub(crate) async fn run_scenario(
    test: &str,
    pages: &[&Page],
    scenario: impl Future<Output = anyhow::Result<()>>,
) {
    let started = Instant::now();
    let outcome = AssertUnwindSafe(scenario).catch_unwind().await;
    let failure = match outcome {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(format!("{e:#}")),
        Err(panic) => Some(
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "panic".into()),
        ),
    };
    if failure.is_some() || std::env::var_os("ATENDE_BROWSER_SCREENSHOTS").is_some() {
        for page in pages {
            match page.save(test).await {
                Ok(path) => eprintln!("screenshot of {}: {}", page.name, path.display()),
                Err(e) => eprintln!("no screenshot of {}: {e:#}", page.name),
            }
        }
    }
    for page in pages {
        let _ = page.client.clone().close().await;
    }
    if let Some(failure) = failure {
        panic!("browser scenario {test} failed: {failure}");
    }
    eprintln!("{test}: scenario took {:.1?}", started.elapsed());
}

// ---------- the agents' desk ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_work_a_customer_from_the_simulator_to_finalize() {
    const TEST: &str = "agents_work_a_customer_from_the_simulator_to_finalize";
    let Some(driver) = Chromedriver::start_or_skip().await else {
        return;
    };
    let app = spawn_app_with(Backend::Sqlite, |config| {
        config.demo = server::demo::DemoMode::On;
        // The pt-BR demo flow greets with the protocol and hands off to the "atendimento" queue.
        config.seed_demo_flow = true;
    })
    .await
    .expect("SQLite app");
    let desk = DeskSetup::create(&app).await;
    let (ana, bia, phone) = tokio::try_join!(
        driver.open("ana", &app.address),
        driver.open("bia", &app.address),
        driver.open("customer", &app.address),
    )
    .unwrap_or_else(|e| panic!("cannot open the browsers: {e:#}"));
    run_scenario(
        TEST,
        &[&ana, &bia, &phone],
        desk_scenario(&app, &desk, &ana, &bia, &phone),
    )
    .await;
}

/// What the admin prepares through the API before the agents sign in.
struct DeskSetup {
    ana: Person,
    bia: Person,
    /// The demo's admin, signed in on the customer's browser: the simulator is an admin's tool.
    demo_admin: Person,
    /// A disposition of the "suporte" queue: not offered for an "atendimento" conversation.
    foreign_disposition: &'static str,
}

impl DeskSetup {
    async fn create(app: &TestApp) -> DeskSetup {
        let queues = app.api_get("/api/queues").await;
        let queue_id = |key: &str| {
            queues["queues"]
                .as_array()
                .and_then(|qs| qs.iter().find(|q| q["key"] == key))
                .and_then(|q| q["id"].as_i64())
                .unwrap_or_else(|| panic!("no queue {key}: {queues}"))
        };
        let (atendimento, suporte) = (queue_id("atendimento"), queue_id("suporte"));
        let ana = agent(app, "Ana", 3, &[atendimento]).await;
        let bia = agent(app, "Bia", 3, &[atendimento]).await;
        let demo_admin = app.person(store::auth::Role::Admin, "Demo Admin").await;
        let field = json!({
            "queue_id": atendimento, "key": "pedido", "label": "Número do pedido",
            "kind": "number", "required": true,
        });
        let resp = app.api_post("/api/custom-fields", &field).await;
        assert_eq!(
            resp.status(),
            201,
            "{}",
            resp.text().await.unwrap_or_default()
        );
        let foreign_disposition = "Só do Suporte";
        let disposition = json!({ "label": foreign_disposition, "queue_id": suporte });
        let resp = app.api_post("/api/dispositions", &disposition).await;
        assert_eq!(
            resp.status(),
            201,
            "{}",
            resp.text().await.unwrap_or_default()
        );
        DeskSetup {
            ana,
            bia,
            demo_admin,
            foreign_disposition,
        }
    }
}

/// A conversation of the customer in one of the desk's lists (`mine` or `waiting`).
fn desk_item(list: &str) -> String {
    format!("#list-{list} [data-testid=conversation-item][data-wa-id='{CUSTOMER}']")
}

async fn desk_scenario(
    app: &TestApp,
    desk: &DeskSetup,
    ana: &Page,
    bia: &Page,
    phone: &Page,
) -> anyhow::Result<()> {
    // Ana opens the app: the login screen, in Brazilian Portuguese. A wrong password is refused
    // with a pt-BR message; the right one opens the desk, connected live, with Ana offline.
    // Bia signs in meanwhile, in her own browser.
    let ana_signs_in = async {
        ana.goto("/").await?;
        ana.wait_for("#login-email").await?;
        let url = ana.client.current_url().await?;
        ensure!(
            url.path() == "/app/",
            "/ should redirect to /app/, got {url}"
        );
        ensure!(ana.text("label[for=login-email]").await? == "E-mail");
        ensure!(ana.text("label[for=login-password]").await? == "Senha");
        ensure!(ana.text("#login-submit").await? == "Entrar");
        let lang = ana
            .eval("return document.documentElement.lang", vec![])
            .await?;
        ensure!(lang == "pt-BR", "<html lang> is {lang}");
        ana.type_into("#login-email", &desk.ana.email).await?;
        ana.type_into("#login-password", "not-the-password").await?;
        ana.click("#login-submit").await?;
        ana.wait_text("#login-error", "E-mail ou senha incorretos.")
            .await?;
        ana.submit_login(&desk.ana.email, PERSON_PASSWORD).await?;
        ensure!(ana.text("#user-name").await? == "Ana");
        ana.wait_for("#live-status[data-connected=true]").await?;
        ana.wait_for("#presence[data-presence=offline]").await?;
        ana.mark_document().await
    };
    let bia_signs_in = async {
        bia.goto("/app/").await?;
        bia.submit_login(&desk.bia.email, PERSON_PASSWORD).await?;
        bia.wait_for("#live-status[data-connected=true]").await?;
        bia.wait_for("#presence[data-presence=offline]").await?;
        bia.mark_document().await
    };
    tokio::try_join!(ana_signs_in, bia_signs_in)?;

    // The customer writes "Oi" from the simulator's phone; the bot answers with the protocol
    // number and its menu; the customer taps "Falar com atendente". The simulator plays
    // customers, so it asks for an admin's session first.
    phone.goto("/simulator").await?;
    phone.wait_for("#sim-signin").await?;
    phone.goto("/app/").await?;
    phone
        .submit_login(&desk.demo_admin.email, PERSON_PASSWORD)
        .await?;
    phone.goto("/simulator").await?;
    phone
        .wait_text(".sim-title", "Simulador de WhatsApp")
        .await?;
    phone.wait_value("#sim-number", CUSTOMER).await?;
    phone.type_into("#sim-input", "Oi").await?;
    phone.click("#sim-send").await?;
    phone.wait_text("#sim-chat [data-own]", "Oi").await?;
    phone
        .wait_text("#sim-chat .from-business", "Seu protocolo é")
        .await?;
    // The phone redraws its chat when anything changes (which folds the list up again), so
    // opening the list and tapping the option are retried together.
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        phone.click("#sim-chat .list-opener").await?;
        let option = "#sim-chat .list-row[data-option-id=atendente]";
        match phone.try_click(option).await? {
            None => break,
            Some(why) if Instant::now() >= deadline => bail!("cannot tap {option}: {why}"),
            Some(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    phone
        .wait_text("#sim-chat [data-own]", "Falar com atendente")
        .await?;
    // Nobody is available: the customer waits in the queue and is told the position.
    phone
        .wait_text("#sim-chat .from-business", "posição 1")
        .await?;

    // On Ana's desk the conversation shows up live among the waiting ones (no reload).
    let waiting = desk_item("waiting");
    ana.wait_for(&waiting).await?;
    ana.wait_text("#count-waiting", "1").await?;
    ana.wait_text(&waiting, "Maria").await?;
    let id: i64 = ana
        .attr(&waiting, "data-id")
        .await?
        .parse()
        .context("conversation id")?;
    // Ana makes herself available with the presence switch: routing gives it to her at once.
    ana.set_presence("available").await?;
    let ana_item = format!("{}[data-id='{id}']", desk_item("mine"));
    ana.wait_for(&ana_item).await?;
    ana.wait_gone(&waiting).await?;
    ana.wait_text("#count-mine", "1").await?;

    // She opens it: the customer's name, the same protocol number the customer got, the bot
    // part of the history, and an open 24-hour window.
    ana.click(&ana_item).await?;
    ana.wait_text("#conv-title", "Maria").await?;
    ana.wait_for("#conv-state[data-state=assigned]").await?;
    let protocol = ana.attr("#conv-protocol", "data-protocol").await?;
    ensure!(
        protocol.len() >= 9,
        "the header shows the protocol: {protocol:?}"
    );
    phone
        .wait_text(
            "#sim-chat .from-business",
            &format!("Seu protocolo é {protocol}"),
        )
        .await?;
    let customer_says = "#messages [data-testid=message][data-author=customer]";
    ana.wait_text(customer_says, "Oi").await?;
    ana.wait_text(customer_says, "Falar com atendente").await?;
    ana.wait_for("#messages [data-testid=phase-bot]").await?;
    ana.wait_for("#window-state[data-state=open]").await?;

    // She answers; the phone shows it, and its read receipt turns her ticks blue.
    let ana_says = "#messages [data-testid=message][data-author=you]";
    ana.type_into(
        "#composer-input",
        "Olá, Maria! Sou a Ana, como posso ajudar?",
    )
    .await?;
    ana.click("#composer-send").await?;
    ana.wait_text(ana_says, "Sou a Ana").await?;
    ana.wait_value("#composer-input", "").await?;
    phone
        .wait_text("#sim-chat .from-business", "Sou a Ana")
        .await?;
    ana.wait_for(&format!("{ana_says}[data-status=read] .ticks-read"))
        .await?;

    // The customer sends a picture with a caption: it arrives live in the open conversation and
    // is shown once Atende has downloaded it from "WhatsApp".
    let files = tempfile::tempdir()?;
    let picture = files.path().join("boleto.png");
    std::fs::write(&picture, PNG_1X1)?;
    phone.type_into("#sim-input", "Foto do boleto").await?;
    phone
        .wait_for("#sim-file")
        .await?
        .send_keys(&picture.display().to_string())
        .await?;
    phone
        .wait_text("#sim-chat [data-own]", "Foto do boleto")
        .await?;
    ana.wait_text(customer_says, "Foto do boleto").await?;
    ana.wait_loaded_image(customer_says).await?;

    // Ana attaches a PDF (the file input, as the attach button opens it) with a caption: it
    // uploads, goes out as a document, and the phone receives it.
    let pdf = files.path().join("contrato.pdf");
    std::fs::write(&pdf, PDF)?;
    ana.wait_for("#attach-input")
        .await?
        .send_keys(&pdf.display().to_string())
        .await?;
    ana.wait_for("[data-testid=attachment][data-name='contrato.pdf'][data-state=ready]")
        .await?;
    ana.type_into("#composer-input", "Segue o contrato").await?;
    ana.click("#composer-send").await?;
    ana.wait_gone("[data-testid=attachment]").await?;
    let document = format!("{ana_says}:has([data-testid=file-link])");
    ana.wait_text(
        &format!("{document} [data-testid=file-link]"),
        "contrato.pdf",
    )
    .await?;
    ana.wait_text(&format!("{document} .bubble-text"), "Segue o contrato")
        .await?;
    phone
        .wait_text("#sim-chat .from-business", "contrato.pdf")
        .await?;
    phone
        .wait_text("#sim-chat .from-business", "Segue o contrato")
        .await?;

    // The protocol form: an invalid CPF is flagged as typed and never saved; a valid one is
    // formatted, accepted and saved (normalized) without a save button.
    ana.wait_value("#form-protocol", &protocol).await?;
    ana.type_into("#form-code", "123.456.789-00").await?;
    ana.wait_for("#form-code[data-state=invalid]").await?;
    ana.wait_text("#form-code-error", "CPF inválido").await?;
    let save_state = ana.attr("#form-save-state", "data-state").await?;
    ensure!(
        save_state == "idle",
        "an invalid CPF is not saved: {save_state}"
    );
    let form_path = format!("/api/conversations/{id}/form");
    ensure!(app.api_get(&form_path).await["code"].is_null());
    ana.replace_text("#form-code", "52998224725").await?;
    ana.wait_for("#form-code[data-state=valid]").await?;
    ana.wait_value("#form-code", "529.982.247-25").await?;
    ana.wait_text("#form-code-hint", "CPF válido").await?;
    ana.wait_js(
        "the CPF error to clear",
        "return document.querySelector('#form-code-error').innerText === '';",
        vec![],
    )
    .await?;
    ana.wait_for("#form-save-state[data-state=saved]").await?;
    let form = app.api_get(&form_path).await;
    ensure!(
        form["code"] == "52998224725",
        "the CPF is saved normalized: {form}"
    );

    // Bia, in the second browser, becomes available; Ana transfers the conversation to her with
    // a note. It leaves Ana's desk and appears, live, on Bia's.
    bia.set_presence("available").await?;
    ana.click("#transfer-button").await?;
    ana.wait_for("#transfer-dialog").await?;
    let bia_option = format!("#transfer-agent option[value='{}']", desk.bia.id);
    ana.wait_for(&format!("{bia_option}[data-presence=available]"))
        .await?;
    ana.select("#transfer-agent", &desk.bia.id.to_string())
        .await?;
    ana.type_into("#transfer-note", "Cliente quer a segunda via do boleto")
        .await?;
    ana.click("#transfer-submit").await?;
    ana.wait_gone("#transfer-dialog").await?;
    ana.wait_gone(&ana_item).await?;
    ana.wait_for("#conv-pane .empty-state").await?;
    let bia_item = format!("{}[data-id='{id}']", desk_item("mine"));
    bia.wait_for(&bia_item).await?;
    bia.click(&bia_item).await?;
    bia.wait_text("#conv-title", "Maria").await?;
    // The whole history came along, the form too, and the transfer with its note.
    bia.wait_text(customer_says, "Oi").await?;
    bia.wait_text(customer_says, "Foto do boleto").await?;
    let ana_for_bia = "#messages [data-testid=message][data-author=agent]";
    bia.wait_text(ana_for_bia, "Sou a Ana").await?;
    let document = format!("{ana_for_bia}:has([data-testid=file-link])");
    bia.wait_text(
        &format!("{document} [data-testid=file-link]"),
        "contrato.pdf",
    )
    .await?;
    bia.wait_text(&format!("{document} .bubble-text"), "Segue o contrato")
        .await?;
    bia.wait_loaded_image(customer_says).await?;
    bia.wait_value("#form-code", "529.982.247-25").await?;
    bia.click("#tab-notes").await?;
    bia.wait_text("#transfer-history", "segunda via do boleto")
        .await?;
    bia.click("#tab-messages").await?;

    // Bia finalizes: a disposition is required, only this queue's (and global) ones are
    // offered, and the queue's required field must be filled first.
    bia.click("#finalize-button").await?;
    bia.wait_for("#finalize-dialog #finalize-disposition option[value]:not([value=''])")
        .await?;
    let labels = bia
        .eval(
            "return [...document.querySelectorAll('#finalize-disposition option')].map(o => o.textContent);",
            vec![],
        )
        .await?;
    ensure!(
        labels.to_string().contains("Problema resolvido")
            && !labels.to_string().contains(desk.foreign_disposition),
        "dispositions offered: {labels}"
    );
    bia.click("#finalize-submit").await?;
    bia.wait_text("#finalize-error", "Escolha a tabulação.")
        .await?;
    let resolved = bia
        .eval(
            "return [...document.querySelectorAll('#finalize-disposition option')].find(o => o.textContent === arguments[0]).value;",
            vec![json!("Problema resolvido")],
        )
        .await?;
    let resolved = resolved.as_str().unwrap_or_default().to_owned();
    bia.select("#finalize-disposition", &resolved).await?;
    bia.click("#finalize-submit").await?;
    bia.wait_text("#finalize-missing-list", "Número do pedido")
        .await?;
    bia.wait_for("#protocol-form .field-missing[data-field=pedido]")
        .await?;
    bia.click("#finalize-cancel").await?;
    bia.wait_gone("#finalize-dialog").await?;
    bia.type_into("#form-custom-pedido", "4521").await?;
    bia.wait_for("#form-save-state[data-state=saved]").await?;
    bia.click("#finalize-button").await?;
    bia.select("#finalize-disposition", &resolved).await?;
    bia.type_into("#finalize-note", "Segunda via enviada")
        .await?;
    bia.click("#finalize-submit").await?;
    bia.wait_gone("#finalize-dialog").await?;
    bia.wait_gone(&bia_item).await?;
    bia.wait_for("#conv-pane .empty-state").await?;

    // The customer gets the queue's closing message with the protocol; the conversation is
    // closed with Bia's disposition.
    phone
        .wait_text(
            "#sim-chat .from-business",
            &format!("Atendimento finalizado. Seu protocolo é {protocol}"),
        )
        .await?;
    let closed = conversation(app, id).await;
    ensure!(
        closed["state"] == "closed"
            && closed["close_reason"] == "finalized"
            && closed["disposition_id"] == resolved.parse::<i64>()?
            && closed["agent_id"] == desk.bia.id,
        "finalized by Bia: {closed}"
    );
    let form = app.api_get(&form_path).await;
    ensure!(
        form["custom"]["pedido"] == "4521",
        "the custom field: {form}"
    );
    // Everything above reached both desks live: neither page was ever reloaded.
    ana.ensure_same_document().await?;
    bia.ensure_same_document().await
}

// ---------- the admin ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_changes_the_first_password_edits_a_flow_and_reads_english() {
    const TEST: &str = "the_admin_changes_the_first_password_edits_a_flow_and_reads_english";
    let Some(driver) = Chromedriver::start_or_skip().await else {
        return;
    };
    let app = spawn_app_with(Backend::Sqlite, |config| config.seed_demo_flow = true)
        .await
        .expect("SQLite app");
    let admin = driver
        .open("admin", &app.address)
        .await
        .unwrap_or_else(|e| panic!("cannot open the browser: {e:#}"));
    run_scenario(TEST, &[&admin], admin_scenario(&app, &admin)).await;
}

async fn admin_scenario(app: &TestApp, page: &Page) -> anyhow::Result<()> {
    // The first admin signs in with the generated password and must replace it before anything
    // else: a dialog that cannot be dismissed, checking what is typed.
    page.goto("/app/").await?;
    page.submit_login(&app.admin_email, &app.admin_password)
        .await?;
    page.wait_for("#password-dialog[data-forced=true]").await?;
    ensure!(
        page.client
            .find_all(Locator::Css(
                "#password-dialog .dialog-close, #password-cancel"
            ))
            .await?
            .is_empty(),
        "a forced password change cannot be dismissed"
    );
    let new_password = "uma-senha-nova-e-longa";
    page.type_into("#password-current", &app.admin_password)
        .await?;
    page.type_into("#password-new", new_password).await?;
    page.type_into("#password-confirm", "outra-senha-qualquer")
        .await?;
    page.click("#password-submit").await?;
    page.wait_text("#password-error", "As duas senhas novas não são iguais.")
        .await?;
    page.replace_text("#password-confirm", new_password).await?;
    page.click("#password-submit").await?;
    page.wait_gone("#password-dialog").await?;
    page.wait_for("#live-status[data-connected=true]").await?;
    let login = |password: &str| {
        app.http
            .post(format!("{}/api/auth/login", app.address))
            .json(&json!({ "email": app.admin_email, "password": password }))
            .send()
    };
    ensure!(
        login(new_password).await?.status() == 200,
        "the new password works"
    );
    ensure!(
        login(&app.admin_password).await?.status() == 401,
        "the old one no longer does"
    );

    // The bot flow editor: the seeded flow validates, and its preview shows the customer's menu.
    page.click(".nav-link[data-nav=flows]").await?;
    page.click(".flow-item").await?;
    page.wait_js(
        "the flow's JSON in the editor",
        "const e = document.querySelector('#flow-json'); return !!e && e.value.includes('\"steps\"');",
        vec![],
    )
    .await?;
    page.click("#flow-validate").await?;
    page.wait_text("#flow-preview", "Falar com atendente")
        .await?;
    // Saving makes a new version, listed in the history.
    page.click("#flow-save").await?;
    page.wait_text("#flow-saved", "Versão 2 salva.").await?;
    page.wait_text("#flow-history", "versão 2").await?;
    // A broken flow is refused on save, with the server's pt-BR reasons.
    let broken =
        json!({ "start": "nowhere", "human_queue": "atendimento", "steps": {} }).to_string();
    page.eval(
        "const e = document.querySelector('#flow-json'); e.value = arguments[0]; e.dispatchEvent(new Event('input')); return null;",
        vec![json!(broken)],
    )
    .await?;
    page.click("#flow-save").await?;
    page.wait_text("#flow-errors", "não existe").await?;

    // English on request: labels change (the narrow nav keeps them as titles) and <html lang>
    // follows.
    page.select("#lang-select", "en").await?;
    page.wait_text("#logout", "Sign out").await?;
    page.wait_text("#flow-validate", "Validate").await?;
    page.wait_for(".nav-link[data-nav=flows][title='Bot flows']")
        .await?;
    page.wait_for(".nav-link[data-nav=conversations][title='Desk']")
        .await?;
    let lang = page
        .eval("return document.documentElement.lang", vec![])
        .await?;
    ensure!(lang == "en", "<html lang> is {lang}");
    Ok(())
}
