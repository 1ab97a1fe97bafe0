//! How stored files go back to browsers (`GET /api/media/{id}`) and how their names are kept
//! harmless. A file may come from a customer, so neither its declared type nor its name is
//! trusted: the bytes decide whether it may be shown in place (`whatsapp::media::inline_mime_type`),
//! everything else is a download, and every answer is sandboxed so that even a file a browser
//! did render could run no script in the app's origin.

use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use store::media::MediaRecord;
use whatsapp::media::sanitize_filename;

/// No script, no plugin, no same-origin access, no loads: a rendered file is inert.
pub const MEDIA_CSP: &str = "sandbox; default-src 'none'";

/// What a file that may not be shown in place is sent as.
const DOWNLOAD_TYPE: &str = "application/octet-stream";

/// The answer carrying a stored file's bytes. Inline, with the type sniffed from the bytes, only
/// for the images, audio and video that `inline_mime_type` allows; anything else (documents,
/// markup declared as an image, unknown bytes) is an `application/octet-stream` attachment.
pub fn file_response(media: &MediaRecord, bytes: Bytes) -> Response {
    let sniffed = whatsapp::media::inline_mime_type(&bytes);
    // Rows stored before inbound names were cleaned may still hold control characters.
    let filename = media
        .filename
        .as_deref()
        .map(sanitize_filename)
        .unwrap_or_else(|| format!("arquivo-{}", media.id));
    let disposition = content_disposition(sniffed.is_some(), &filename);
    sandboxed(
        (
            [
                (
                    header::CONTENT_TYPE,
                    sniffed.unwrap_or(DOWNLOAD_TYPE).to_owned(),
                ),
                (header::CONTENT_DISPOSITION, disposition),
                (header::CACHE_CONTROL, "private, max-age=3600".to_owned()),
            ],
            Body::from(bytes),
        )
            .into_response(),
    )
}

/// Puts the media policy on any answer of the media route, errors included, replacing the
/// app-wide defaults.
pub fn sandboxed(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(MEDIA_CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// RFC 6266: `filename="..."` in plain ASCII for old clients (quotes, backslashes and control
/// characters dropped, other characters as `_`), and the real name in `filename*` (RFC 8187,
/// UTF-8 percent-encoded), which current browsers prefer. Always a valid header value.
pub fn content_disposition(inline: bool, filename: &str) -> String {
    let fallback: String = filename
        .chars()
        .filter(|c| !c.is_control() && !matches!(c, '"' | '\\'))
        .map(|c| if c.is_ascii() { c } else { '_' })
        .collect();
    let fallback = if fallback.trim().is_empty() {
        "arquivo"
    } else {
        fallback.as_str()
    };
    format!(
        "{}; filename=\"{fallback}\"; filename*=UTF-8''{}",
        if inline { "inline" } else { "attachment" },
        percent_encode(filename)
    )
}

/// Every byte but letters, digits, `.`, `-` and `_` as `%XX` (a subset of RFC 8187's attr-char,
/// so always valid).
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_lose_paths_controls_quotes_and_bidi_marks() {
        assert_eq!(sanitize_filename("../../etc/passwd"), "passwd");
        assert_eq!(sanitize_filename("C:\\Users\\x\\nota.pdf"), "nota.pdf");
        assert_eq!(
            sanitize_filename("fatura\r\nSet-Cookie: a=b.pdf"),
            "faturaSet-Cookie: a=b.pdf"
        );
        assert_eq!(sanitize_filename("a\"b\u{7}.pdf"), "ab.pdf");
        assert_eq!(sanitize_filename("fatura\u{202E}fdp.exe"), "faturafdp.exe");
        assert_eq!(
            sanitize_filename("Relatório março.pdf"),
            "Relatório março.pdf"
        );
        assert_eq!(sanitize_filename(".."), "arquivo");
        assert_eq!(sanitize_filename("\r\n"), "arquivo");
        assert_eq!(sanitize_filename(&"x".repeat(300)).chars().count(), 200);
    }

    #[test]
    fn disposition_has_an_ascii_fallback_and_the_utf8_name() {
        assert_eq!(
            content_disposition(false, "Relatório \"final\".pdf"),
            "attachment; filename=\"Relat_rio final.pdf\"; \
             filename*=UTF-8''Relat%C3%B3rio%20%22final%22.pdf"
        );
        assert_eq!(
            content_disposition(true, "foto.png"),
            "inline; filename=\"foto.png\"; filename*=UTF-8''foto.png"
        );
        assert_eq!(
            content_disposition(false, "açã"),
            "attachment; filename=\"a__\"; filename*=UTF-8''a%C3%A7%C3%A3"
        );
    }

    #[test]
    fn disposition_is_a_valid_header_whatever_the_name() {
        for name in [
            "a\r\nb",
            "\\\"\u{0}\u{7f}",
            "日本語.pdf",
            "😀",
            "",
            "\u{202E}",
            "a;b=c,d.pdf",
        ] {
            let value = content_disposition(false, name);
            assert!(HeaderValue::from_str(&value).is_ok(), "{name:?}: {value}");
            let fallback = value
                .split("filename=\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .unwrap_or_default();
            assert!(!fallback.is_empty() && !fallback.contains('\\'), "{value}");
        }
    }
}
