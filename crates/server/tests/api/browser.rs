//! The web app in a real browser: headless Chromium driven through chromedriver (WebDriver) with
//! `fantoccini`. A customer writes from the simulator page, an agent sees the conversation in the
//! app, answers, and the answer reaches the simulator's phone.
//!
//! Chromium and chromedriver come from Debian (`apt-get install chromium chromium-driver`, done by
//! `.ci/run`). Without chromedriver the test prints a NOTICE and passes, except under `CI=true`,
//! where it fails. When a step fails, the current page is saved as
//! `target/browser-screenshots/<test>.png`; with `ATENDE_BROWSER_SCREENSHOTS=1` both pages are also
//! saved on success (`<test>-app.png`, `<test>-simulator.png`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::helpers::{Backend, TestApp, free_port, spawn_app_with};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
/// Longest wait for anything the page should show (the app polls every 2 s).
const STEP_TIMEOUT: Duration = Duration::from_secs(15);
const CUSTOMER: &str = "5511987654321";
/// The test's name, for its screenshots.
const TEST: &str = "customer_and_agent_talk_through_the_web_pages";
/// A 1x1 PNG, the picture the customer sends.
const PNG_1X1: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0b, 0x49, 0x44, 0x41, 0x54, 0x78, 0xda, 0x63, 0x60, 0x00, 0x02, 0x00,
    0x00, 0x05, 0x00, 0x01, 0xe9, 0xfa, 0xdc, 0xd8, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44,
    0xae, 0x42, 0x60, 0x82,
];

/// A chromedriver process and one browser session on it; both end when dropped.
struct Browser {
    client: Client,
    _driver: Child,
    _profile: tempfile::TempDir,
}

/// Whether the test can run: false (after a NOTICE) when chromedriver is not installed and this is
/// not CI; under CI=true a missing chromedriver fails the test.
fn browser_available() -> bool {
    if Path::new(CHROMEDRIVER).exists() {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "{CHROMEDRIVER} is required under CI=true (apt-get install chromium chromium-driver)"
        );
    }
    eprintln!(
        "NOTICE: skipping the browser test: {CHROMEDRIVER} is not installed (apt-get install chromium chromium-driver)"
    );
    false
}

async fn launch_browser() -> anyhow::Result<Browser> {
    // The port was free a moment ago; if chromedriver cannot take it, it exits and we try another.
    let mut last_error = anyhow!("chromedriver did not start");
    for _ in 0..3 {
        let port = free_port();
        let mut driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("cannot start chromedriver")?;
        let url = format!("http://127.0.0.1:{port}");
        match wait_driver_ready(&mut driver, &url).await {
            Ok(()) => {
                let profile = tempfile::tempdir()?;
                let client = connect(&url, profile.path()).await?;
                return Ok(Browser {
                    client,
                    _driver: driver,
                    _profile: profile,
                });
            }
            Err(e) => last_error = e,
        }
    }
    Err(last_error)
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

async fn connect(url: &str, profile: &Path) -> anyhow::Result<Client> {
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
        format!("--user-data-dir={}", profile.display()),
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
        .connect(url)
        .await
        .context("cannot open a Chromium session through chromedriver")?;
    // A 1366x768 laptop screen: the page itself gets that size, whatever the window's frame takes.
    let frame = client
        .execute("return [window.outerWidth - window.innerWidth, window.outerHeight - window.innerHeight]", vec![])
        .await?;
    let extra = |i: usize| frame[i].as_u64().unwrap_or(0).min(400) as u32;
    client
        .set_window_size(1366 + extra(0), 768 + extra(1))
        .await?;
    Ok(client)
}

/// The first element matching `css` whose text contains `text`, waiting for it (bounded).
async fn wait_text(client: &Client, css: &str, text: &str) -> anyhow::Result<Element> {
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        for element in client.find_all(Locator::Css(css)).await? {
            if let Ok(t) = element.text().await
                && t.contains(text)
            {
                return Ok(element);
            }
        }
        if Instant::now() >= deadline {
            bail!("no {css:?} showing {text:?} within {STEP_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits (bounded) until the form field matching `css` holds a value containing `text`.
async fn wait_value(client: &Client, css: &str, text: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        if let Some(element) = client.find_all(Locator::Css(css)).await?.into_iter().next()
            && element
                .prop("value")
                .await?
                .is_some_and(|v| v.contains(text))
        {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("{css:?} did not hold {text:?} within {STEP_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits (bounded) until an image matching `css` has been loaded by the browser.
async fn wait_loaded_image(client: &Client, css: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + STEP_TIMEOUT;
    let script = "const i = document.querySelector(arguments[0]); return !!i && i.complete && i.naturalWidth > 0;";
    while client.execute(script, vec![json!(css)]).await? != json!(true) {
        if Instant::now() >= deadline {
            bail!("no loaded image {css:?} within {STEP_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// The first element matching `css`, waiting for it (bounded).
async fn wait_css(client: &Client, css: &str) -> anyhow::Result<Element> {
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        if let Some(element) = client.find_all(Locator::Css(css)).await?.into_iter().next() {
            return Ok(element);
        }
        if Instant::now() >= deadline {
            bail!("no {css:?} within {STEP_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn text_of(client: &Client, css: &str) -> anyhow::Result<String> {
    Ok(wait_css(client, css).await?.text().await?)
}

fn screenshot_dir() -> PathBuf {
    // The workspace's target/ is two levels above this crate.
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("browser-screenshots")
}

/// With `ATENDE_BROWSER_SCREENSHOTS` set, saves the current page as `<test>-<page>.png`.
async fn maybe_screenshot(client: &Client, page: &str) -> anyhow::Result<()> {
    if std::env::var_os("ATENDE_BROWSER_SCREENSHOTS").is_some() {
        let path = save_screenshot(client, &format!("{TEST}-{page}")).await?;
        eprintln!("screenshot: {}", path.display());
    }
    Ok(())
}

async fn save_screenshot(client: &Client, name: &str) -> anyhow::Result<PathBuf> {
    let png = client.screenshot().await?;
    let dir = screenshot_dir();
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{name}.png"));
    std::fs::write(&path, png)?;
    Ok(path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customer_and_agent_talk_through_the_web_pages() {
    if !browser_available() {
        return;
    }
    let app = spawn_app_with(Backend::Sqlite, |config| {
        config.demo = server::demo::DemoMode::On;
        // The pt-BR demo flow answers first, with the protocol number, as in the real demo.
        config.seed_demo_flow = true;
    })
    .await
    .expect("SQLite app");
    let browser = launch_browser()
        .await
        .unwrap_or_else(|e| panic!("cannot start the browser: {e:#}"));
    let client = browser.client.clone();
    let outcome = scenario(&client, &app).await;
    if let Err(e) = &outcome {
        match save_screenshot(&client, TEST).await {
            Ok(path) => eprintln!("screenshot of the failed step: {}", path.display()),
            Err(s) => eprintln!("no screenshot: {s:#}"),
        }
        let _ = client.close().await;
        panic!("browser scenario failed: {e:#}");
    }
    client.close().await.expect("close the browser session");
}

async fn scenario(client: &Client, app: &TestApp) -> anyhow::Result<()> {
    // The app opens on the login screen, in Brazilian Portuguese.
    client.goto(&format!("{}/", app.address)).await?;
    wait_css(client, "#login-email").await?;
    let url = client.current_url().await?;
    anyhow::ensure!(
        url.path() == "/app/",
        "/ should redirect to /app/, got {url}"
    );
    anyhow::ensure!(text_of(client, "label[for=login-email]").await? == "E-mail");
    anyhow::ensure!(text_of(client, "label[for=login-password]").await? == "Senha");
    anyhow::ensure!(text_of(client, "#login-submit").await? == "Entrar");
    let lang = client
        .execute("return document.documentElement.lang", vec![])
        .await?;
    anyhow::ensure!(lang == "pt-BR", "<html lang> is {lang}");

    // A wrong password is refused with a pt-BR message; the right one opens the shell.
    client
        .find(Locator::Css("#login-email"))
        .await?
        .send_keys(&app.admin_email)
        .await?;
    client
        .find(Locator::Css("#login-password"))
        .await?
        .send_keys("not-the-password")
        .await?;
    client
        .find(Locator::Css("#login-submit"))
        .await?
        .click()
        .await?;
    wait_text(client, "#login-error", "E-mail ou senha incorretos.").await?;
    let password = client.find(Locator::Css("#login-password")).await?;
    password.clear().await?;
    password.send_keys(&app.admin_password).await?;
    client
        .find(Locator::Css("#login-submit"))
        .await?
        .click()
        .await?;
    wait_css(client, "#user-name").await?;
    wait_text(client, ".nav-link[data-nav=conversations]", "Conversas").await?;
    let app_window = client.window().await?;

    // The customer writes "Oi" from the simulator, in a second tab.
    let tab = client.new_window(true).await?;
    client.switch_to_window(tab.handle.clone()).await?;
    client.goto(&format!("{}/simulator", app.address)).await?;
    wait_text(client, ".sim-title", "Simulador de WhatsApp").await?;
    anyhow::ensure!(
        client
            .find(Locator::Css("#sim-number"))
            .await?
            .prop("value")
            .await?
            .as_deref()
            == Some(CUSTOMER)
    );
    client
        .find(Locator::Css("#sim-input"))
        .await?
        .send_keys("Oi")
        .await?;
    client
        .find(Locator::Css("#sim-send"))
        .await?
        .click()
        .await?;
    wait_text(client, "#sim-chat [data-own]", "Oi").await?;

    // The agent sees the conversation appear, opens it, reads "Oi" and answers.
    client.switch_to_window(app_window.clone()).await?;
    let item = wait_css(client, &format!(".conv-item[data-wa-id='{CUSTOMER}']")).await?;
    anyhow::ensure!(
        item.text().await?.contains("Maria"),
        "the list names the customer: {}",
        item.text().await?
    );
    item.click().await?;
    wait_text(client, "#messages .row-in", "Oi").await?;
    let protocol = text_of(client, ".conv-header .protocol").await?;
    let number = protocol.trim_start_matches("Protocolo").trim().to_owned();
    anyhow::ensure!(
        number.len() >= 9,
        "the header shows the protocol: {protocol:?}"
    );
    client
        .find(Locator::Css("#composer-input"))
        .await?
        .send_keys("Olá, tudo bem?")
        .await?;
    client
        .find(Locator::Css("#composer-send"))
        .await?
        .click()
        .await?;
    wait_text(client, "#messages .row-out", "Olá, tudo bem?").await?;
    // The simulator reports sent, delivered and read: blue ticks.
    wait_css(client, "#messages .row-out[data-author=you] .ticks-read").await?;

    // The customer's phone shows the bot's greeting with the protocol, and the agent's answer.
    client.switch_to_window(tab.handle.clone()).await?;
    wait_text(client, "#sim-chat .from-business", &number).await?;
    wait_text(client, "#sim-chat .from-business", "Olá, tudo bem?").await?;

    // The customer opens the bot's list and taps an option: a list_reply with the option's id.
    client
        .find(Locator::Css("#sim-chat .list-opener"))
        .await?
        .click()
        .await?;
    wait_css(client, "#sim-chat .list-row[data-option-id=atendente]")
        .await?
        .click()
        .await?;
    wait_text(client, "#sim-chat [data-own]", "Falar com atendente").await?;
    // And sends a picture with a caption (file input → base64 → customer/send).
    let picture = tempfile::tempdir()?;
    let path = picture.path().join("boleto.png");
    std::fs::write(&path, PNG_1X1)?;
    client
        .find(Locator::Css("#sim-input"))
        .await?
        .send_keys("Foto do boleto")
        .await?;
    client
        .find(Locator::Css("#sim-file"))
        .await?
        .send_keys(&path.display().to_string())
        .await?;
    wait_text(client, "#sim-chat [data-own]", "Foto do boleto").await?;
    maybe_screenshot(client, "simulator").await?;
    client.switch_to_window(app_window.clone()).await?;
    wait_text(client, "#messages .row-in", "Falar com atendente").await?;
    // The agent sees the picture once Atende has downloaded it from "WhatsApp".
    wait_text(client, "#messages .row-in", "Foto do boleto").await?;
    wait_loaded_image(client, "#messages .row-in img.media-image").await?;
    maybe_screenshot(client, "conversations").await?;

    // The bot flow editor: the seeded flow validates, and its preview shows the customer's menu.
    client
        .find(Locator::Css(".nav-link[data-nav=flows]"))
        .await?
        .click()
        .await?;
    wait_css(client, ".flow-item").await?.click().await?;
    wait_value(client, "#flow-json", "\"steps\"").await?;
    client
        .find(Locator::Css("#flow-validate"))
        .await?
        .click()
        .await?;
    wait_text(client, "#flow-preview", "Falar com atendente").await?;
    maybe_screenshot(client, "flows").await?;
    // Saving makes a new version, listed in the history.
    client
        .find(Locator::Css("#flow-save"))
        .await?
        .click()
        .await?;
    wait_text(client, "#flow-saved", "Versão 2 salva.").await?;
    wait_text(client, "#flow-history", "versão 2").await?;
    // A broken flow is refused on save, with the server's pt-BR reasons.
    let broken =
        json!({ "start": "nowhere", "human_queue": "atendimento", "steps": {} }).to_string();
    client
        .execute(
            "const e = document.querySelector('#flow-json'); e.value = arguments[0]; e.dispatchEvent(new Event('input'));",
            vec![json!(broken)],
        )
        .await?;
    client
        .find(Locator::Css("#flow-save"))
        .await?
        .click()
        .await?;
    wait_text(client, "#flow-errors", "não existe").await?;

    // English on request: labels change and <html lang> follows.
    client
        .find(Locator::Css("#lang-select"))
        .await?
        .select_by_value("en")
        .await?;
    wait_text(client, ".nav-link[data-nav=conversations]", "Conversations").await?;
    wait_text(client, ".nav-link[data-nav=flows]", "Bot flows").await?;
    wait_text(client, "#flow-validate", "Validate").await?;
    wait_text(client, "#logout", "Sign out").await?;
    let lang = client
        .execute("return document.documentElement.lang", vec![])
        .await?;
    anyhow::ensure!(lang == "en", "<html lang> is {lang}");
    Ok(())
}
